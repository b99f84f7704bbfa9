// Distributed task queues with work stealing (Blumofe & Leiserson, FOCS 1994; the CS 294-8 lecture's
// "engineering distributed queues"): each entry server keeps its own queue, works at one end
// and, when it runs dry, asks random victims for work from the other (far) end. No central
// queue, no global knowledge; the price is steal attempts, which cost a round trip each and are
// wasted when the victim has nothing.
#include <algorithm>
#include <cmath>

#include "queue_policy.hpp"

namespace swarm::dispatch::detail {

namespace {

class WorkStealing final : public QueuePolicy {
 public:
  using QueuePolicy::QueuePolicy;
  PolicyKind kind() const override { return PolicyKind::work_stealing; }

  void task_finished(WorkerId w, TaskId id, double elapsed_s, double tokens, double now,
                     Actions& out) override {
    QueuePolicy::task_finished(w, id, elapsed_s, tokens, now, out);
    failures_[w] = 0;  // it had work: its next dry spell starts with a prompt attempt
  }

  void timer_fired(const Timer& timer, double now, Actions& out) override {
    const WorkerId w = timer.worker;
    pending_[w] = 0;
    if (alive(w) && workers_[w].idle && workers_[w].queue.empty()) try_steal(w, now, out);
  }

 private:
  // Owner works at the top (newest, as the CS 294-8 lecture's stack); thieves take the bottom.
  bool owner_pops_newest() const override { return options_.stealing.owner_lifo; }

  void on_joined(WorkerId w, double, Actions&) override {
    if (failures_.size() <= w) {
      failures_.resize(static_cast<std::size_t>(w) + 1, 0);
      pending_.resize(static_cast<std::size_t>(w) + 1, 0);
    }
  }

  // A session enters at a random entry server (the client's choice), with no message.
  Placement place(TaskId, double, Actions&) override { return {random_alive(), 0.0}; }

  void on_starved(WorkerId w, double now, Actions& out) override { try_steal(w, now, out); }

  void try_steal(WorkerId w, double now, Actions& out) {
    if (alive_.size() < 2) return;  // nobody to steal from; an arrival will wake it
    const WorkerId victim = random_other(w);
    out.messages += 2;  // the steal request and its answer
    WorkerState& v = workers_[victim];
    if (v.queue.empty()) {
      ++failures_[w];
      retry_later(w, now, out);
      return;
    }
    failures_[w] = 0;
    const std::size_t count = options_.stealing.steal_half ? std::max<std::size_t>(1, v.queue.size() / 2) : 1;
    // Far end: the end its owner does not work at.
    const bool owner_top = options_.stealing.owner_lifo;
    std::vector<Queued> loot;
    for (std::size_t i = 0; i < count; ++i) loot.push_back(owner_top ? take_front(victim) : take_back(victim));
    // The loot reaches the thief with the answer; the first task starts then.
    for (const Queued& q : loot) enqueue(w, q.task, now + 2.0 * latency(), now, out);
  }

  // Uniform over the live workers other than `w`.
  [[nodiscard]] WorkerId random_other(WorkerId w) {
    const auto self = static_cast<std::size_t>(std::lower_bound(alive_.begin(), alive_.end(), w) - alive_.begin());
    std::size_t i = uniform_index(rng_, alive_.size() - 1);
    if (i >= self) ++i;
    return alive_[i];
  }

  // After a failed attempt the thief waits for the answer plus a back-off that doubles with
  // each consecutive failure (capped): a busy swarm retries quickly, an idle one stops flooding.
  void retry_later(WorkerId w, double now, Actions& out) {
    if (pending_[w]) return;  // one retry timer per worker is enough
    pending_[w] = 1;
    const auto& o = options_.stealing;
    const int doublings = static_cast<int>(std::min<std::uint32_t>(failures_[w] - 1, 40));
    const double backoff = std::min(o.backoff_max_s, o.backoff_s * std::ldexp(1.0, doublings));
    out.timers.push_back({now + 2.0 * latency() + backoff, w, 0});
  }

  std::vector<std::uint32_t> failures_;  // consecutive failed steals, by worker
  std::vector<char> pending_;            // a retry timer is set, by worker
};

}  // namespace

std::unique_ptr<Policy> make_work_stealing(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<WorkStealing>(o, seed);
}

}  // namespace swarm::dispatch::detail
