#pragma once
// A pure discrete-event engine that runs a workload over workers under a dispatch policy: the
// part of swarm_sim that studies dispatch (jobs/dispatch-*.ini). Workers have piecewise-constant
// speeds and may join and leave; the policy is called on every event and its decisions are
// executed, timed (control-message latency) and checked.
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "swarm/dispatch/policy.hpp"
#include "swarm/dispatch/types.hpp"

namespace swarm::dispatch {

struct SpeedChange {
  double time = 0.0;   // seconds (absolute)
  double speed = 1.0;  // tokens/s from then on (> 0)
};

struct WorkerSpec {
  std::string name;                        // hashing key; empty: "w<index>"
  double speed = 1.0;                      // tokens/s at time 0 (> 0)
  double announced_speed = 0.0;            // what the policy is told; <= 0: `speed`
  std::vector<SpeedChange> speed_changes;  // ascending times: the CS 294-8 lecture's "hardest" case
  double join_time = 0.0;
  double leave_time = std::numeric_limits<double>::infinity();
};

struct EngineOptions {
  /// The share of an interrupted session's processed tokens that its next server recomputes to
  /// rebuild the KV cache, in [0, 1]; 1 is a restart from scratch.
  double rebuild_fraction = 1.0;
  /// Guard against a policy that never lets the run end (e.g. endless steal attempts).
  std::uint64_t max_events = 200'000'000;
};

struct TaskRecord {
  WorkerId worker = kNoWorker;  // the worker that completed it
  double first_start = std::numeric_limits<double>::quiet_NaN();
  double start = std::numeric_limits<double>::quiet_NaN();  // of the completing run
  double finish = std::numeric_limits<double>::quiet_NaN();
  std::uint32_t migrations = 0;  // times it was re-bound to another worker
  std::uint32_t restarts = 0;    // runs interrupted (preempted or its worker left)
  double rebuild_tokens = 0.0;   // extra tokens recomputed because of those interruptions
  [[nodiscard]] bool done() const { return finish == finish; }  // not NaN
};

struct WorkerStats {
  double busy_s = 0.0;   // time spent running tasks (including rebuilds and lost work)
  double tokens = 0.0;   // tokens processed (likewise)
  double alive_s = 0.0;  // time alive within the run
  std::uint32_t tasks = 0;
};

struct Metrics {
  std::size_t tasks = 0;
  std::size_t completed = 0;
  double makespan_s = 0.0;          // last finish - first arrival
  double tokens_per_s = 0.0;        // work of completed tasks / makespan
  double imbalance_busy = 1.0;      // max / mean busy time over workers alive during the run
  double imbalance_tokens = 1.0;    // max / mean tokens over the same workers
  double utilization = 0.0;         // total busy time / total alive time
  double latency_mean_s = 0.0;      // finish - arrival
  double latency_p50_s = 0.0;
  double latency_p95_s = 0.0;
  double latency_p99_s = 0.0;
  std::uint64_t migrations = 0;          // all re-bindings, = join + leave + balance
  std::uint64_t migrations_join = 0;     // decided while a worker joined (consistent hashing)
  std::uint64_t migrations_leave = 0;    // away from a worker that left
  std::uint64_t migrations_balance = 0;  // steals, diffusion transfers, other moves
  std::uint64_t sessions_migrated = 0;   // tasks with at least one migration
  std::uint64_t restarts = 0;            // interrupted runs
  double rebuild_tokens = 0.0;           // KV-cache rebuild work those caused
  std::uint64_t control_messages = 0;
  std::uint64_t events = 0;
};

struct RunResult {
  std::vector<TaskRecord> tasks;  // one per workload task, same order
  std::vector<WorkerStats> workers;
  Metrics metrics;
};

/// Runs `tasks` over `workers` under `policy` (fresh: no worker joined yet) until every task has
/// finished or nothing can happen any more (e.g. every worker left). Throws
/// std::invalid_argument for a bad task, worker or option (naming it, e.g. "tasks[3].work"),
/// std::logic_error when the policy breaks its contract (e.g. runs a task on a busy worker).
[[nodiscard]] RunResult simulate(std::span<const Task> tasks, std::span<const WorkerSpec> workers,
                                 Policy& policy, const EngineOptions& options = {});

/// Convenience: make_policy(kind, dispatch, seed), then simulate.
[[nodiscard]] RunResult simulate(std::span<const Task> tasks, std::span<const WorkerSpec> workers,
                                 PolicyKind kind, const DispatchOptions& dispatch,
                                 std::uint64_t seed, const EngineOptions& options = {});

/// A synthetic workload: `count` sessions with uniform work in [work_min, work_max] tokens and
/// random 64-bit session ids; all at time 0 (a batch) when arrival_rate is 0, else Poisson
/// arrivals at `arrival_rate` per second.
struct WorkloadSpec {
  std::size_t count = 1000;
  double arrival_rate = 0.0;
  double work_min = 128.0;
  double work_max = 512.0;
};
[[nodiscard]] std::vector<Task> make_workload(const WorkloadSpec& spec, std::uint64_t seed);

}  // namespace swarm::dispatch
