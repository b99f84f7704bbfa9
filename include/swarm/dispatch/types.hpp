#pragma once
// Vocabulary shared by the dispatch policies and whoever drives them (the discrete-event engine
// of swarm_sim, the dispatcher of the MPI job). Pure value types: no I/O.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace swarm::dispatch {

/// Dense indices chosen by the driver: a task's index in its workload (in the MPI job, a counter
/// of admitted sessions) and a worker's index in its worker list. A worker index is never reused
/// after the worker left: a server that comes back is a new worker (with the same name, so that
/// consistent hashing gives it the same place on the ring).
using TaskId = std::uint32_t;
using WorkerId = std::uint32_t;
inline constexpr TaskId kNoTask = std::numeric_limits<TaskId>::max();
inline constexpr WorkerId kNoWorker = std::numeric_limits<WorkerId>::max();

/// One unit of dispatch: a session (or a batch of sessions) of `work` tokens. A worker is a
/// route or an entry server, whichever level the study dispatches at.
struct Task {
  std::uint64_t session = 0;  // key that consistent hashing hashes: stable across runs and views
  double arrival = 0.0;       // seconds
  double work = 1.0;          // tokens (> 0)
};

/// "w<index>": the name of a worker that was given none (its hashing key).
[[nodiscard]] inline std::string default_worker_name(WorkerId worker) {
  std::string name = "w";
  name += std::to_string(worker);
  return name;
}

/// What a policy learns about a joining worker. `announced_speed` is what the server claims
/// (Petals announces a throughput); policies that adapt measure the real speed from finished
/// tasks instead.
struct WorkerInfo {
  std::string name;              // hashing key of consistent hashing
  double announced_speed = 1.0;  // tokens/s (> 0)
};

/// Start `task` on `worker` after `delay_s` (the control messages that brought it there). Only
/// for a worker the policy knows to be idle (see Policy).
struct Run {
  TaskId task = kNoTask;
  WorkerId worker = kNoWorker;
  double delay_s = 0.0;
};

/// `task` now waits at `worker` (queued there, or about to run there). The driver counts a
/// migration when a task that was bound to one worker is bound to another; the MPI job can
/// forward the session's request ahead of time.
struct Assignment {
  TaskId task = kNoTask;
  WorkerId worker = kNoWorker;
};

/// Ask the driver to call Policy::timer_fired at time `at` (work stealing retries, diffusion
/// rounds). `worker` and `tag` are the policy's own; kNoWorker is allowed.
struct Timer {
  double at = 0.0;
  WorkerId worker = kNoWorker;
  std::uint32_t tag = 0;
};

/// The decisions of one policy call, executed by the driver in this order: preempts, assigns,
/// runs, timers. `messages` counts the control messages the decisions cost (probes, requests,
/// replies, load reports, transfer orders; never the session's own traffic).
struct Actions {
  std::vector<TaskId> preempts;  // running or in-flight tasks to stop (their KV cache is lost)
  std::vector<Assignment> assigns;
  std::vector<Run> runs;
  std::vector<Timer> timers;
  std::uint64_t messages = 0;

  void clear() {
    preempts.clear();
    assigns.clear();
    runs.clear();
    timers.clear();
    messages = 0;
  }
  [[nodiscard]] bool empty() const {
    return preempts.empty() && assigns.empty() && runs.empty() && timers.empty() && messages == 0;
  }
};

}  // namespace swarm::dispatch
