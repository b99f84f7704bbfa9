#pragma once
// The state every policy keeps (private to the library): the live workers, what each one is
// running, its local queue, its measured speed, and the tasks not finished yet. Policies differ
// in where a task goes (place / admit), what an idle worker with an empty queue does (starved),
// and what happens when membership changes.
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "swarm/dispatch/policy.hpp"
#include "swarm/util/random.hpp"

namespace swarm::dispatch::detail {

struct Queued {
  TaskId task = kNoTask;
  double ready_at = 0.0;  // when the session has physically reached the worker
};

struct Placement {
  WorkerId worker = kNoWorker;  // kNoWorker: hold the task until a worker joins
  double delay_s = 0.0;         // control messages before the task reaches the worker
};

/// Running mean and variance (Welford 1962): numerically stable, one pass.
class Welford {
 public:
  void add(double x);
  [[nodiscard]] std::uint64_t count() const { return n_; }
  [[nodiscard]] double mean() const { return mean_; }
  [[nodiscard]] double variance() const { return n_ > 1 ? m2_ / static_cast<double>(n_ - 1) : 0.0; }
  /// sigma / mu, 0 until two samples are known.
  [[nodiscard]] double cv() const;

 private:
  std::uint64_t n_ = 0;
  double mean_ = 0.0;
  double m2_ = 0.0;
};

/// Unfinished tasks, with O(1) insert and erase.
class TaskSet {
 public:
  void insert(TaskId t);
  void erase(TaskId t);
  [[nodiscard]] std::span<const TaskId> items() const { return items_; }
  [[nodiscard]] std::size_t size() const { return items_.size(); }

 private:
  std::vector<TaskId> items_;
  std::vector<std::uint32_t> pos_;
};

class QueuePolicy : public Policy {
 public:
  QueuePolicy(const DispatchOptions& options, std::uint64_t seed);

  void worker_joined(WorkerId worker, const WorkerInfo& info, double now, Actions& out) override;
  void worker_left(WorkerId worker, std::span<const TaskId> interrupted, double now,
                   Actions& out) override;
  void task_arrived(TaskId id, const Task& task, double now, Actions& out) override;
  void worker_idle(WorkerId worker, double now, Actions& out) override;
  void task_finished(WorkerId worker, TaskId id, double elapsed_s, double tokens, double now,
                     Actions& out) override;
  void timer_fired(const Timer&, double, Actions&) override {}

 protected:
  struct WorkerState {
    bool alive = false;
    bool idle = false;           // told idle by the driver and given nothing since
    TaskId current = kNoTask;    // running or in flight to it
    std::deque<Queued> queue;    // waiting at this worker
    double queued_work = 0.0;    // tokens in `queue`
    double announced_speed = 1.0;
    double speed = 1.0;          // measured: EWMA of tokens/elapsed of finished runs
    std::string name;
  };

  /// Where a new or orphaned task goes (push policies).
  [[nodiscard]] virtual Placement place(TaskId id, double now, Actions& out);
  /// A task arrived (the task is stored and counted active already). Default: dispatch().
  virtual void admit(TaskId id, double now, Actions& out) { dispatch(id, now, out); }
  /// After the worker's state exists and it is counted alive.
  virtual void on_joined(WorkerId, double, Actions&) {}
  /// After the worker is gone from every structure; `orphans` (its interrupted and queued
  /// tasks, in arrival order) are bound to nobody. Default: dispatch() each.
  virtual void on_left(WorkerId worker, std::span<const TaskId> orphans, double now, Actions& out);
  /// An idle worker whose queue is empty (stealing, chunk request).
  virtual void on_starved(WorkerId, double, Actions&) {}
  [[nodiscard]] virtual bool owner_pops_newest() const { return false; }

  /// Bind `t` to `w`'s queue, reachable at `ready_at`, and start it if `w` is idle.
  void enqueue(WorkerId w, TaskId t, double ready_at, double now, Actions& out);
  /// place() then enqueue, or hold the task while no worker can take it.
  void dispatch(TaskId t, double now, Actions& out);
  /// Start the next task of `w`'s queue if `w` is idle; false if the queue is empty.
  bool start_next(WorkerId w, double now, Actions& out);
  [[nodiscard]] Queued take_front(WorkerId w);
  [[nodiscard]] Queued take_back(WorkerId w);
  /// Detach `t` from its worker: out of the queue, or preempted if running or in flight.
  void unbind(TaskId t, Actions& out);
  /// unbind, then enqueue at `to` (ready now).
  void move(TaskId t, WorkerId to, double now, Actions& out);
  /// Tasks in arrival order (then id): the order in which re-dispatch and rebalancing go.
  void sort_by_arrival(std::vector<TaskId>& ids) const;

  [[nodiscard]] bool alive(WorkerId w) const { return w < workers_.size() && workers_[w].alive; }
  /// Sessions at `w`: queued plus the one running or in flight.
  [[nodiscard]] std::size_t load(WorkerId w) const;
  [[nodiscard]] WorkerId random_alive();
  [[nodiscard]] double latency() const { return options_.message_latency_s; }

  DispatchOptions options_;
  Rng rng_;
  std::vector<WorkerState> workers_;  // by id; dead ones stay (ids are not reused)
  std::vector<WorkerId> alive_;       // ascending
  std::vector<Task> tasks_;           // by id
  std::vector<WorkerId> bound_;       // by task: the worker that queues or runs it
  TaskSet active_;                    // arrived, not finished
  std::deque<TaskId> held_;           // no live worker could take these
};

// Factories of the concrete policies (one translation unit each family).
[[nodiscard]] std::unique_ptr<Policy> make_static_split(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_round_robin(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_consistent_hash(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_bounded_hash(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_power_of_choices(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_self_scheduling(PolicyKind kind, const DispatchOptions&,
                                                           std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_work_stealing(const DispatchOptions&, std::uint64_t seed);
[[nodiscard]] std::unique_ptr<Policy> make_diffusion(PolicyKind kind, const DispatchOptions&,
                                                     std::uint64_t seed);

}  // namespace swarm::dispatch::detail
