#pragma once
// Dispatch policies: which worker (route or entry server) serves which session, when several can.
// One interface, driven by events, used unchanged by the discrete-event engine of swarm_sim
// (engine.hpp) and by the dispatcher of the MPI job (docs/dispatch.md, "Wiring").
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

#include "swarm/dispatch/chunking.hpp"
#include "swarm/dispatch/diffusion.hpp"
#include "swarm/dispatch/types.hpp"

namespace swarm::dispatch {

enum class PolicyKind {
  static_split,             // "static": split in proportion to announced throughputs
  round_robin,              // the naive baseline
  consistent_hash,          // Karger et al. 1997
  bounded_hash,             // Mirrokni, Thorup & Zadimoghaddam 2018
  self_fixed,               // central queue, fixed chunk K (Kruskal & Weiss 1985)
  self_gss,                 // guided self-scheduling (Polychronopoulos & Kuck 1987)
  self_factoring,           // factoring (Hummel, Schonberg & Flynn 1992)
  self_weighted_factoring,  // weighted factoring (Hummel, Schmidt, Uma & Wein 1996)
  self_tapering,            // tapering (Lucco 1992)
  work_stealing,            // distributed queues, random victims (Blumofe & Leiserson 1994)
  diffusion1,               // first-order diffusion (Cybenko 1989)
  diffusion2,               // second-order diffusion (Ghosh, Muthukrishnan & Schultz 1996)
  power_of_two,             // power of d choices (Mitzenmacher 2001)
};

[[nodiscard]] std::string_view to_string(PolicyKind kind);
[[nodiscard]] std::optional<PolicyKind> parse_policy(std::string_view name);
/// As parse_policy, but throws std::invalid_argument naming the unknown policy and the known ones.
[[nodiscard]] PolicyKind parse_policy_or_throw(std::string_view name);
[[nodiscard]] std::span<const PolicyKind> all_policies();
/// The self-scheduling family (a central queue at rank 0), and its chunk rule.
[[nodiscard]] bool is_self_scheduling(PolicyKind kind);
[[nodiscard]] ChunkRuleKind chunk_rule_of(PolicyKind kind);

struct HashOptions {
  int virtual_nodes = 100;  // points per bucket on the ring (>= 1)
  double eps = 0.25;        // bounded_hash: cap = ceil((1 + eps) m / n) (> 0)
};

struct WorkStealingOptions {
  bool steal_half = false;     // take half the victim's queue instead of one task
  bool owner_lifo = true;      // owner pops the newest (Blumofe & Leiserson); false: the oldest
  double backoff_s = 0.01;     // idle wait after the first failed steal, doubling (> 0)
  double backoff_max_s = 1.0;  // cap of that wait (>= backoff_s)
};

struct DiffusionOptions {
  double period_s = 1.0;         // time between load-exchange rounds (> 0)
  std::optional<double> alpha;   // diffusion parameter in (0, 1]; default 1 / (max degree + 1)
  double beta = 1.8;             // diffusion2's beta in (0, 2); see optimal_beta()
  Graph neighbours;              // over all worker ids; empty: a ring over the live workers
};

struct PowerOfChoicesOptions {
  std::size_t choices = 2;  // d servers probed per session (>= 1; 1 is random assignment)
};

struct DispatchOptions {
  double message_latency_s = 0.005;  // one-way latency of a control message (>= 0)
  double speed_smoothing = 0.5;      // weight of the newest speed measurement, in (0, 1]
  HashOptions hash;
  SelfSchedulingOptions self;
  WorkStealingOptions stealing;
  DiffusionOptions diffusion;
  PowerOfChoicesOptions choices;
};

/// Throws std::invalid_argument with a message naming the parameter and its value, e.g.
/// "dispatch option self.chunk = 0 is invalid: a chunk holds at least one task".
void validate(const DispatchOptions& options);

/// A dispatch policy. The driver (simulator or MPI dispatcher) owns execution and time; the
/// policy owns every decision and everything that waits (queues). Contract:
/// - Ids are dense: tasks in arrival order of the driver's choosing, workers by index.
/// - worker_joined comes before any other call about a worker; the driver then calls
///   worker_idle once the worker is free.
/// - The driver calls worker_idle(w) whenever w is alive and has nothing running or in flight:
///   after joining, after task_finished, after a preempt. The policy answers with at most one
///   Run for w, in that call or in any later call (e.g. when a task arrives).
/// - A Run names a worker that is idle in that sense; a task runs on one worker at a time.
/// - worker_left(w, interrupted): `interrupted` are the tasks w was running or about to start
///   (their progress is lost); the policy re-dispatches them and whatever it queued at w.
/// - timer_fired is called at each requested time, also if the timer's worker has left.
class Policy {
 public:
  virtual ~Policy() = default;
  [[nodiscard]] virtual PolicyKind kind() const = 0;
  [[nodiscard]] std::string_view name() const { return to_string(kind()); }

  virtual void worker_joined(WorkerId worker, const WorkerInfo& info, double now, Actions& out) = 0;
  virtual void worker_left(WorkerId worker, std::span<const TaskId> interrupted, double now,
                           Actions& out) = 0;
  virtual void task_arrived(TaskId id, const Task& task, double now, Actions& out) = 0;
  virtual void worker_idle(WorkerId worker, double now, Actions& out) = 0;
  /// `elapsed_s` and `tokens` measure the finished run (the worker's speed is tokens/elapsed).
  virtual void task_finished(WorkerId worker, TaskId id, double elapsed_s, double tokens,
                             double now, Actions& out) = 0;
  virtual void timer_fired(const Timer& timer, double now, Actions& out) = 0;
};

/// Validates `options` and builds the policy; `seed` drives its random choices (victims,
/// probes, entry servers), so the same seed gives the same decisions.
[[nodiscard]] std::unique_ptr<Policy> make_policy(PolicyKind kind, const DispatchOptions& options,
                                                  std::uint64_t seed);

}  // namespace swarm::dispatch
