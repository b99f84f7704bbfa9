// Self-scheduling from a central queue at rank 0 (Tang & Yew, ICPP 1986): sessions wait in one
// queue; a worker whose local chunk is used up asks for the next chunk, whose size the chunk
// rule decides (chunking.cpp). A request and its reply are two control messages, and the chunk
// reaches the worker one round trip after the request: small chunks balance the finish times,
// big chunks save messages and round trips.
#include "queue_policy.hpp"

namespace swarm::dispatch::detail {

namespace {

class SelfScheduling final : public QueuePolicy {
 public:
  SelfScheduling(PolicyKind kind, const DispatchOptions& o, std::uint64_t seed)
      : QueuePolicy(o, seed), kind_(kind), rule_(chunk_rule_of(kind), o.self) {}
  PolicyKind kind() const override { return kind_; }

  void task_finished(WorkerId w, TaskId id, double elapsed_s, double tokens, double now,
                     Actions& out) override {
    const double before = workers_[w].speed;
    QueuePolicy::task_finished(w, id, elapsed_s, tokens, now, out);
    speed_sum_ += workers_[w].speed - before;
    // Task times for tapering; in the MPI job they ride on the next request (no extra message).
    times_.add(elapsed_s);
  }

 private:
  void admit(TaskId t, double now, Actions& out) override {
    central_.push_back(t);
    serve_waiting(now, out);
  }

  // The worker's chunk is used up: it asks rank 0 for the next one.
  void on_starved(WorkerId w, double now, Actions& out) override {
    ++out.messages;  // the request
    if (central_.empty()) {
      waiting_.push_back(w);  // rank 0 answers when work arrives
      return;
    }
    grant(w, now, now + 2.0 * latency(), out);
  }

  void on_joined(WorkerId w, double, Actions&) override { speed_sum_ += workers_[w].speed; }

  // Interrupted and queued sessions of a leaver go back to the head of the central queue: they
  // are the oldest.
  void on_left(WorkerId w, std::span<const TaskId> orphans, double now, Actions& out) override {
    speed_sum_ -= workers_[w].speed;
    for (auto it = orphans.rbegin(); it != orphans.rend(); ++it) central_.push_front(*it);
    serve_waiting(now, out);
  }

  void serve_waiting(double now, Actions& out) {
    while (!waiting_.empty() && !central_.empty()) {
      const WorkerId w = waiting_.front();
      waiting_.pop_front();
      // A parked request is stale if its worker left meanwhile.
      if (!alive(w) || !workers_[w].idle || !workers_[w].queue.empty()) continue;
      grant(w, now, now + latency(), out);  // the request is already at rank 0: only the reply travels
    }
  }

  // Rank 0 answers a request of `w` with the next chunk, which reaches `w` at `ready_at`.
  void grant(WorkerId w, double now, double ready_at, Actions& out) {
    ++out.messages;  // the reply
    const std::size_t k = rule_.next({central_.size(), alive_.size(), weight_share(w), times_.cv()});
    for (std::size_t i = 0; i < k; ++i) {
      const TaskId t = central_.front();
      central_.pop_front();
      enqueue(w, t, ready_at, now, out);  // the first one starts at once: w is idle
    }
  }

  // w_i / sum_j w_j over live workers, w the measured speeds (weighted factoring).
  [[nodiscard]] double weight_share(WorkerId w) const {
    return speed_sum_ > 0.0 ? workers_[w].speed / speed_sum_ : 0.0;
  }

  PolicyKind kind_;
  ChunkRule rule_;
  std::deque<TaskId> central_;
  std::deque<WorkerId> waiting_;
  Welford times_;
  double speed_sum_ = 0.0;  // of live workers' measured speeds, kept up to date incrementally
};

}  // namespace

std::unique_ptr<Policy> make_self_scheduling(PolicyKind kind, const DispatchOptions& o,
                                             std::uint64_t seed) {
  return std::make_unique<SelfScheduling>(kind, o, seed);
}

}  // namespace swarm::dispatch::detail
