#pragma once
// Writes a simulation into an HDF5 trace (schema: docs/trace.md): one group per strategy with
// per-period datasets, /servers with the churn trace, run metadata as root attributes.
#include <map>
#include <optional>
#include <string>

#include "swarm/sim/simulator.hpp"
#include "swarm/sim/seeds.hpp"
#include "swarm/trace/trace.hpp"

namespace swarm::sim {

struct RunMetadata {
  std::string program;
  std::string job_file;        // path
  std::string job_text;        // the job file as read
  std::string effective;       // effective configuration, "key = value" lines
};

class SimTrace final : public SimObserver {
 public:
  /// `group` empty: the run fills the file (root attributes, /<strategy>/, /servers); else it
  /// goes under /<group>/ (a seed of a study) and finish() leaves the file open.
  SimTrace(trace::File& file, RunMetadata meta, std::string group = {})
      : file_(file), meta_(std::move(meta)), group_name_(std::move(group)) {}

  void on_start(const SimConfig& config, const std::vector<ServerPlan>& plans) override;
  void on_period(StrategyKind kind, const PeriodRecord& record) override;
  void on_period_end(int period) override;
  /// End-of-run summaries as attributes of each strategy group; marks the trace complete
  /// (a run in a group: only the group's attributes).
  void finish(const SimResult& result);

 private:
  struct Datasets {
    trace::Group group;
    trace::Series time, swarm_throughput, swarm_throughput_sampled, disjoint_time, upper_bound, upper_bound_certified, moves, reload_downtime, disjoint,
        online, present, block_throughput, span_start, span_end, state;
    std::optional<trace::Series> planned_throughput, expected_gain;  // move_aware only
  };
  trace::File& file_;
  RunMetadata meta_;
  std::string group_name_;
  trace::Group seed_group_;        // /<group>/ when there is one
  trace::Group* base_ = nullptr;   // the root or seed_group_
  std::map<StrategyKind, Datasets> groups_;
};

/// A study over seeds: /summary/<strategy>/ with one value per seed of each end-of-run figure
/// (datasets `seed` and kFigureNames) and attributes `<figure>_mean`, `<figure>_ci95`.
void write_seed_summary(trace::Group& root, const std::vector<SeedFigures>& figures);

}  // namespace swarm::sim
