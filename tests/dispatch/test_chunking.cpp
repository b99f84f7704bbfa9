// Chunk rules of self-scheduling: the exact sequences of the papers' formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "swarm/dispatch/chunking.hpp"

namespace swarm::dispatch {
namespace {

using Chunks = std::vector<std::size_t>;

std::size_t sum(const Chunks& c) { return std::accumulate(c.begin(), c.end(), std::size_t{0}); }

TEST(Chunking, FixedTakesKUntilTheRest) {
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::fixed, {.chunk = 4}, 10, 3), (Chunks{4, 4, 2}));
}

TEST(Chunking, GuidedIsCeilOfRemainingOverWorkers) {
  // K_i = ceil(R_i / p) with R = 100, p = 4 (Polychronopoulos & Kuck 1987).
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::guided, {}, 100, 4),
            (Chunks{25, 19, 14, 11, 8, 6, 5, 3, 3, 2, 1, 1, 1, 1}));
  // GSS(k): the same, never below k = 3.
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::guided, {.min_chunk = 3}, 100, 4),
            (Chunks{25, 19, 14, 11, 8, 6, 5, 3, 3, 3, 3}));
}

TEST(Chunking, FactoringHandsOutBatchesOfPEqualChunks) {
  // Batch j: p chunks of ceil(R_j / (2p)) (Hummel, Schonberg & Flynn 1992); R = 100, p = 4.
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::factoring, {}, 100, 4),
            (Chunks{13, 13, 13, 13, 6, 6, 6, 6, 3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1}));
}

TEST(Chunking, WeightedFactoringChunksAreProportionalToWeights) {
  const std::vector<double> weights{1, 2, 3, 4};
  const Chunks c = chunk_sequence(ChunkRuleKind::weighted_factoring, {}, 1000, 4, weights);
  // Batch 1 shares R/2 = 500 as 1:2:3:4, batch 2 shares 250, batch 3 shares 125 (rounded up).
  ASSERT_GE(c.size(), 12U);
  EXPECT_EQ(Chunks(c.begin(), c.begin() + 12), (Chunks{50, 100, 150, 200, 25, 50, 75, 100, 13, 25, 38, 50}));
  EXPECT_EQ(sum(c), 1000U);
}

TEST(Chunking, WeightedFactoringWithEqualWeightsIsFactoring) {
  const std::vector<double> equal(5, 2.5);
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::weighted_factoring, {}, 777, 5, equal),
            chunk_sequence(ChunkRuleKind::factoring, {}, 777, 5));
}

TEST(Chunking, TaperingIsTheSmallerRootOfLuccosEquation) {
  // K solves (x - K)^2 = v^2 (x + K) with x = R/p + K_min/2: x - K = v sqrt(x + K).
  for (double v : {0.0, 0.3, 1.0, 2.5}) {
    const double x = 1000.0 / 8.0 + 0.5;
    const double k = tapering_chunk(1000, 8, 1, v);
    EXPECT_NEAR(x - k, v * std::sqrt(x + k), 1e-9) << "v = " << v;
  }
  // v = 0 (equal task times): ceil(R/p + K_min/2), GSS's chunk rounded half up.
  EXPECT_EQ(chunk_sequence(ChunkRuleKind::tapering, {}, 100, 4).front(), 26U);
}

TEST(Chunking, TaperingShrinksWithTheVarianceOfTaskTimes) {
  ChunkRule rule(ChunkRuleKind::tapering, {.min_chunk = 2, .tapering_alpha = 1.3});
  std::size_t previous = SIZE_MAX;
  for (double cv : {0.0, 0.2, 0.5, 1.0, 2.0, 4.0}) {
    const std::size_t k = rule.next({.remaining = 1000, .workers = 8, .task_time_cv = cv});
    EXPECT_LE(k, previous) << "cv = " << cv;
    EXPECT_GE(k, 2U);
    previous = k;
  }
  EXPECT_EQ(rule.next({.remaining = 1000, .workers = 8, .task_time_cv = 0.0}), 126U);  // 125 + K_min/2
  EXPECT_EQ(rule.next({.remaining = 1000, .workers = 8, .task_time_cv = 1.0}), 107U);  // v = 1.3: 106.19
  EXPECT_EQ(rule.next({.remaining = 10, .workers = 8, .task_time_cv = 50.0}), 2U);  // floor K_min
}

TEST(Chunking, EveryRuleHandsOutEachTaskOnce) {
  for (auto kind : {ChunkRuleKind::fixed, ChunkRuleKind::guided, ChunkRuleKind::factoring,
                    ChunkRuleKind::weighted_factoring, ChunkRuleKind::tapering}) {
    for (std::size_t total : {1UL, 7UL, 100UL, 12345UL}) {
      for (std::size_t p : {1UL, 3UL, 64UL}) {
        const Chunks c = chunk_sequence(kind, {.chunk = 5, .min_chunk = 2}, total, p, {}, 0.7);
        EXPECT_EQ(sum(c), total) << to_string(kind) << " R=" << total << " p=" << p;
        for (std::size_t k : c) EXPECT_GE(k, 1U);
      }
    }
  }
}

TEST(Chunking, BadOptionsAreRejectedWithTheirName) {
  try {
    ChunkRule rule(ChunkRuleKind::fixed, {.chunk = 0});
    FAIL() << "chunk 0 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "dispatch option self.chunk = 0 is invalid: a chunk holds at least one task");
  }
  EXPECT_THROW(ChunkRule(ChunkRuleKind::guided, {.min_chunk = 0}), std::invalid_argument);
  EXPECT_THROW(ChunkRule(ChunkRuleKind::tapering, {.tapering_alpha = -1}), std::invalid_argument);
}

}  // namespace
}  // namespace swarm::dispatch
