// Seed studies' pure parts: the seed list, a run's bytes between ranks, the confidence interval.
#include <gtest/gtest.h>

#include <cmath>
#include <stdexcept>

#include "swarm/sim/seeds.hpp"

namespace swarm::sim {
namespace {

TEST(SimSeeds, ListsAndRangesInTheOrderGiven) {
  EXPECT_EQ(parse_seeds("1-4"), (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(parse_seeds("3,7,9-12"), (std::vector<std::uint64_t>{3, 7, 9, 10, 11, 12}));
  EXPECT_EQ(parse_seeds(" 20 , 2-3 "), (std::vector<std::uint64_t>{20, 2, 3}));
  EXPECT_EQ(parse_seeds("5-5"), (std::vector<std::uint64_t>{5}));
}

TEST(SimSeeds, BadListsNameTheItem) {
  for (const char* bad : {"", ",", "1,,2", "x", "4-3", "-4", "1-", "2,2", "1-3,3", "1.5", "18446744073709551616"}) {
    try {
      (void)parse_seeds(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()), "") << bad;
    }
  }
  EXPECT_THROW((void)parse_seeds("1-1000", 100), std::invalid_argument);
  EXPECT_NO_THROW((void)parse_seeds("1-100", 100));
}

TEST(SimSeeds, IntervalIsStudentT) {
  // Two values 0 and 2: mean 1, sd sqrt(2), t(1) = 12.706205: half-width 12.706205.
  const Interval two = mean_ci95({0.0, 2.0});
  EXPECT_DOUBLE_EQ(two.mean, 1.0);
  EXPECT_NEAR(two.ci95, 12.706205, 1e-6);
  // Sixteen values 0..15: sd = sqrt(136/6), t(15) = 2.131450.
  std::vector<double> v;
  for (int i = 0; i < 16; ++i) v.push_back(i);
  const Interval sixteen = mean_ci95(v);
  EXPECT_DOUBLE_EQ(sixteen.mean, 7.5);
  EXPECT_NEAR(sixteen.ci95, 2.131450 * std::sqrt(136.0 / 6.0) / 4.0, 1e-6);
  // Beyond the table: 64 values, t(63) = 1.998341 (scipy), within 1e-4.
  std::vector<double> w;
  for (int i = 0; i < 64; ++i) w.push_back(i % 2);
  const double sd = std::sqrt(16.0 / 63.0);
  EXPECT_NEAR(mean_ci95(w).ci95 / (sd / 8.0), 1.998341, 1e-4);
  EXPECT_TRUE(std::isnan(mean_ci95({3.0}).ci95));
  EXPECT_DOUBLE_EQ(mean_ci95({3.0}).mean, 3.0);
}

SimConfig tiny() {
  SimConfig c;
  c.blocks = 12;
  c.hidden_size = 4096;
  c.duration = 600;
  c.period = 60;
  c.seed = 11;
  c.placement_time_limit = 0;
  c.initial_servers = 8;
  c.arrival_rate = 0.01;
  c.mean_lifetime = 400;
  c.classes = {{"big", 1, 6, 20000, 1000, 0, 2, 0.1}, {"small", 2, 3, 5000, 200, 0.3, 2, 0.2}};
  return c;
}

TEST(SimSeeds, RunSurvivesPackingAndReplaysAsRecorded) {
  const SimConfig c = tiny();
  SeedRecorder recorder(c.seed);
  const SeedRun original = recorder.take(run(c, recorder));
  ASSERT_FALSE(original.records.empty());
  const std::vector<char> bytes = pack(original);
  const SeedRun back = unpack(bytes);
  EXPECT_EQ(back.seed, 11u);
  EXPECT_EQ(pack(back), bytes);  // every field travels: packing again gives the same bytes
  ASSERT_EQ(back.records.size(), original.records.size());
  EXPECT_EQ(back.records[0].second.size(), original.records[0].second.size());
  EXPECT_EQ(back.result.summaries.size(), original.result.summaries.size());

  SeedRecorder again(back.seed);
  replay(back, c, again);
  EXPECT_EQ(pack(again.take(back.result)), bytes);

  for (std::size_t cut : {std::size_t{0}, std::size_t{7}, bytes.size() / 2, bytes.size() - 1}) {
    std::vector<char> truncated(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_THROW((void)unpack(truncated), std::invalid_argument) << cut;
  }
  std::vector<char> longer = bytes;
  longer.push_back(0);
  EXPECT_THROW((void)unpack(longer), std::invalid_argument);
}

TEST(SimSeeds, FiguresOnePerSeedInOrder) {
  std::vector<std::pair<std::uint64_t, SimResult>> results;
  for (std::uint64_t seed : {4u, 2u}) {
    SimConfig c = tiny();
    c.seed = seed;
    SeedRecorder ignored(seed);
    results.emplace_back(seed, run(c, ignored));
  }
  const std::vector<SeedFigures> figures = seed_figures(results);
  ASSERT_EQ(figures.size(), tiny().strategies.size());
  for (const SeedFigures& f : figures) {
    EXPECT_EQ(f.seeds, (std::vector<std::uint64_t>{4, 2}));
    for (const char* name : kFigureNames) ASSERT_EQ(f.figures.at(name).size(), 2u) << name;
  }
  // Seed 4's moves under full are its run's own.
  for (const SeedFigures& f : figures) {
    for (const auto& s : results[0].second.summaries) {
      if (s.kind == f.kind) {
        EXPECT_EQ(f.figures.at("moves")[0], static_cast<double>(s.moves));
      }
    }
  }
}

}  // namespace
}  // namespace swarm::sim
