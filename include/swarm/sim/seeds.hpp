#pragma once
// Studies over many seeds (`--run.seeds 1-16`): the seed list, one run captured in memory so it
// can travel between MPI ranks, and the end-of-run figures with their 95% confidence intervals.
// Pure: no MPI, no files.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/sim/simulator.hpp"

namespace swarm::sim {

/// "1-16", "3,7,9-12": seeds in the order listed. Throws std::invalid_argument naming the item
/// for an empty list, a malformed item, a reversed range, a duplicate, or more than `max_seeds`.
[[nodiscard]] std::vector<std::uint64_t> parse_seeds(std::string_view text, std::size_t max_seeds = 100000);

/// One run of the study, as the observer saw it.
struct SeedRun {
  std::uint64_t seed = 0;
  std::vector<ServerPlan> plans;
  std::vector<std::pair<StrategyKind, std::vector<PeriodRecord>>> records;  // in the config's order
  SimResult result;
};

/// An observer that keeps everything a run reports.
class SeedRecorder final : public SimObserver {
 public:
  explicit SeedRecorder(std::uint64_t seed) { run_.seed = seed; }
  void on_start(const SimConfig& config, const std::vector<ServerPlan>& plans) override;
  void on_period(StrategyKind kind, const PeriodRecord& record) override;
  [[nodiscard]] SeedRun take(SimResult result);

 private:
  SeedRun run_;
};

/// Replays a captured run into another observer, as if it ran now.
void replay(const SeedRun& run, const SimConfig& config, SimObserver& observer);

/// Flat bytes of a run for MPI and back; unpack throws std::invalid_argument on a truncated or
/// malformed buffer.
[[nodiscard]] std::vector<char> pack(const SeedRun& run);
[[nodiscard]] SeedRun unpack(const std::vector<char>& bytes);

/// Mean and half-width of the two-sided 95% confidence interval of the mean (Student's t with
/// n - 1 degrees of freedom); the half-width is NaN for fewer than two values.
struct Interval {
  double mean = 0;
  double ci95 = 0;
};
[[nodiscard]] Interval mean_ci95(const std::vector<double>& values);

/// The end-of-run figures of one strategy over the seeds, one value per seed (seed order).
struct SeedFigures {
  StrategyKind kind;
  std::vector<std::uint64_t> seeds;
  std::map<std::string, std::vector<double>> figures;  // name -> values (names: kFigureNames)
};
inline constexpr const char* kFigureNames[] = {"mean_throughput", "ratio_to_upper_bound", "moves", "reload_hours",
                                               "disjoint_time_fraction"};
/// From each seed's end-of-run summaries, in the order given.
[[nodiscard]] std::vector<SeedFigures> seed_figures(const std::vector<std::pair<std::uint64_t, SimResult>>& results);

}  // namespace swarm::sim
