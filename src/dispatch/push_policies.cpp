// Policies that decide a session's worker when it arrives (push): static, round robin,
// consistent hashing, bounded-load consistent hashing, power of d choices. Each worker serves
// its queue first come, first served.
#include <algorithm>
#include <functional>
#include <queue>
#include <set>
#include <utility>

#include "queue_policy.hpp"
#include "swarm/dispatch/hash_ring.hpp"

namespace swarm::dispatch::detail {

namespace {

// The CS 294-8 lecture's static load balancing: all information (the routes' announced throughputs, the
// sessions' sizes) is used once, when the work is split, and never revised. Each session goes to
// the worker whose share would be done first, i.e. the smallest assigned_work / announced_speed
// (ties to the lowest id), so the split follows the announced throughputs: with equal sessions a
// worker announcing twice the throughput gets twice the sessions. Measured speeds are ignored on
// purpose: that is what separates static from the dynamic policies.
class StaticSplit final : public QueuePolicy {
 public:
  using QueuePolicy::QueuePolicy;
  PolicyKind kind() const override { return PolicyKind::static_split; }

 private:
  using Entry = std::pair<double, WorkerId>;  // (virtual finish time, worker)

  void on_joined(WorkerId w, double, Actions&) override {
    if (finish_.size() <= w) finish_.resize(static_cast<std::size_t>(w) + 1, 0.0);
    // A joiner starts level with the least loaded worker, so that it takes its proportional
    // share of what comes next instead of everything until it has caught up.
    drop_stale();
    finish_[w] = heap_.empty() ? 0.0 : heap_.top().first;
    heap_.push({finish_[w], w});
  }

  Placement place(TaskId t, double, Actions&) override {
    drop_stale();
    if (heap_.empty()) return {};
    const WorkerId w = heap_.top().second;
    heap_.pop();
    finish_[w] += tasks_[t].work / workers_[w].announced_speed;
    heap_.push({finish_[w], w});
    return {w, 0.0};
  }

  // Lazy deletion: entries of workers that left or whose key moved on are skipped.
  void drop_stale() {
    while (!heap_.empty()) {
      const auto [key, w] = heap_.top();
      if (alive(w) && key == finish_[w]) return;
      heap_.pop();
    }
  }

  std::vector<double> finish_;
  std::priority_queue<Entry, std::vector<Entry>, std::greater<>> heap_;
};

// The naive baseline: live workers in turn, blind to speed and load.
class RoundRobin final : public QueuePolicy {
 public:
  using QueuePolicy::QueuePolicy;
  PolicyKind kind() const override { return PolicyKind::round_robin; }

 private:
  Placement place(TaskId, double, Actions&) override {
    if (alive_.empty()) return {};
    const WorkerId w = alive_[next_ % alive_.size()];
    ++next_;
    return {w, 0.0};
  }
  std::size_t next_ = 0;
};

// What both hashing policies share: the ring of live workers, and an index of the unfinished
// sessions by ring position, so that the sessions a joiner takes over are found from its arcs
// instead of by rehashing every session.
class HashPolicy : public QueuePolicy {
 public:
  HashPolicy(const DispatchOptions& o, std::uint64_t seed) : QueuePolicy(o, seed), ring_(o.hash.virtual_nodes) {}

  void task_finished(WorkerId w, TaskId id, double elapsed_s, double tokens, double now, Actions& out) override {
    QueuePolicy::task_finished(w, id, elapsed_s, tokens, now, out);
    by_position_.erase({mix64(tasks_[id].session), id});
  }

 protected:
  void admit(TaskId t, double now, Actions& out) override {
    by_position_.insert({mix64(tasks_[t].session), t});
    dispatch(t, now, out);
  }

  // Bound sessions (queued or running elsewhere) whose ring successor is now `w`, oldest first.
  [[nodiscard]] std::vector<TaskId> taken_over_by(WorkerId w) const {
    std::vector<TaskId> movers;
    if (by_position_.empty()) return movers;  // e.g. the swarm forming before any session
    for (const auto& [first, last] : ring_.arcs(w)) {
      for (auto it = by_position_.lower_bound({first, 0}); it != by_position_.end() && it->first <= last; ++it) {
        if (bound_[it->second] != kNoWorker && bound_[it->second] != w) movers.push_back(it->second);
      }
    }
    sort_by_arrival(movers);
    return movers;
  }

  HashRing ring_;

 private:
  std::set<std::pair<std::uint64_t, TaskId>> by_position_;
};

// Consistent hashing (Karger et al. 1997): a session goes to the first point clockwise from the
// hash of its id on a ring where each worker has `virtual_nodes` points. Any client computes it
// locally (no control message), a session keeps its server (and KV cache) while other servers
// come and go, and when the k-th server arrives only the sessions whose arc it takes over move,
// about 1/k of them, all to it (smoothness). The router follows the ring, so a running session
// that now maps to the joiner moves too and rebuilds its cache there.
class ConsistentHash final : public HashPolicy {
 public:
  using HashPolicy::HashPolicy;
  PolicyKind kind() const override { return PolicyKind::consistent_hash; }

 private:
  void on_joined(WorkerId w, double now, Actions& out) override {
    ring_.add(w, workers_[w].name);
    for (TaskId t : taken_over_by(w)) move(t, w, now, out);
  }

  void on_left(WorkerId w, std::span<const TaskId> orphans, double now, Actions& out) override {
    ring_.remove(w);  // its arcs fall to the successors; nobody else moves
    QueuePolicy::on_left(w, orphans, now, out);
  }

  Placement place(TaskId t, double, Actions&) override { return {ring_.owner(tasks_[t].session), 0.0}; }
};

// Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, SODA 2018): with m
// sessions on n workers no worker takes a session while it holds ceil((1 + eps) m / n) or more;
// a session whose ring successor is full walks on clockwise to the first worker below the cap.
// m counts every unfinished session, the one being placed included.
// The paper defines the assignment for a given insertion order; recomputing it at every
// membership change would move many sessions that have nothing to do with the change (m has
// changed since they were placed). So, as with plain consistent hashing, sessions move as
// little as the rule allows:
//  - a joiner takes the sessions whose ring successor it now is, while it is below the cap;
//  - a leaver's sessions walk the ring from their own hash;
//  - then the cap for the new (m, n) is restored: a worker above it sheds its newest queued
//    sessions, each walking the ring from its hash. Excess never exceeds the queue (the cap is
//    at least 1), so restoring it never interrupts a running session.
// Between membership changes nothing moves: when sessions finish, m and the cap shrink, and a
// worker left above the cap simply receives nothing until it is below.
class BoundedHash final : public HashPolicy {
 public:
  BoundedHash(const DispatchOptions& o, std::uint64_t seed) : HashPolicy(o, seed), eps_(o.hash.eps) {}
  PolicyKind kind() const override { return PolicyKind::bounded_hash; }

  // Unlike plain hashing, the cap needs the loads: each finished session costs a report to the
  // dispatcher that keeps the counts (the only control message of this policy).
  void task_finished(WorkerId w, TaskId id, double elapsed_s, double tokens, double now, Actions& out) override {
    HashPolicy::task_finished(w, id, elapsed_s, tokens, now, out);
    ++out.messages;
  }

 private:
  void on_joined(WorkerId w, double now, Actions& out) override {
    ring_.add(w, workers_[w].name);
    const std::size_t c = cap();
    for (TaskId t : taken_over_by(w)) {
      if (load(w) >= c) break;
      move(t, w, now, out);
    }
    restore_cap(now, out);
  }

  void on_left(WorkerId w, std::span<const TaskId> orphans, double now, Actions& out) override {
    ring_.remove(w);
    QueuePolicy::on_left(w, orphans, now, out);
    restore_cap(now, out);
  }

  Placement place(TaskId t, double, Actions&) override {
    if (alive_.empty()) return {};
    return {bounded_owner(tasks_[t].session), 0.0};
  }

  [[nodiscard]] std::size_t cap() const { return bounded_load_cap(active_.size(), alive_.size(), eps_); }

  // The first worker clockwise from the session's hash below the cap; the plain successor if
  // none is (impossible while n * cap >= m, which the cap guarantees, but a guard costs nothing).
  [[nodiscard]] WorkerId bounded_owner(std::uint64_t session) const {
    const WorkerId w = ring_.first_below(session, cap(), [this](WorkerId b) { return load(b); });
    return w != kNoWorker ? w : ring_.owner(session);
  }

  void restore_cap(double now, Actions& out) {
    if (alive_.empty()) return;
    const std::size_t c = cap();
    for (WorkerId w : alive_) {
      while (load(w) > c && !workers_[w].queue.empty()) {
        const TaskId t = workers_[w].queue.back().task;
        unbind(t, out);
        enqueue(bounded_owner(tasks_[t].session), t, now, now, out);
      }
    }
  }

  double eps_;
};

// Power of d choices (Mitzenmacher, IEEE TPDS 2001; "supermarket model"): probe d distinct
// random workers and send the session to the one with the fewest sessions (queued + running).
// With d = 2 the maximum load drops from about log n / log log n to log log n / log 2 + O(1),
// an exponential improvement over one random choice for 2d control messages per session.
class PowerOfChoices final : public QueuePolicy {
 public:
  using QueuePolicy::QueuePolicy;
  PolicyKind kind() const override { return PolicyKind::power_of_two; }

 private:
  Placement place(TaskId, double, Actions& out) override {
    if (alive_.empty()) return {};
    if (alive_.size() == 1) return {alive_[0], 0.0};  // no choice, no probe
    const std::size_t d = std::min(options_.choices.choices, alive_.size());
    probes_.clear();
    while (probes_.size() < d) {
      const WorkerId w = random_alive();
      if (std::find(probes_.begin(), probes_.end(), w) == probes_.end()) probes_.push_back(w);
    }
    WorkerId best = probes_[0];
    for (WorkerId w : probes_) {
      if (load(w) < load(best)) best = w;
    }
    out.messages += 2 * d;  // a probe and its answer per candidate
    return {best, 2.0 * latency()};
  }
  std::vector<WorkerId> probes_;
};

}  // namespace

std::unique_ptr<Policy> make_static_split(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<StaticSplit>(o, seed);
}
std::unique_ptr<Policy> make_round_robin(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<RoundRobin>(o, seed);
}
std::unique_ptr<Policy> make_consistent_hash(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<ConsistentHash>(o, seed);
}
std::unique_ptr<Policy> make_bounded_hash(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<BoundedHash>(o, seed);
}
std::unique_ptr<Policy> make_power_of_choices(const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<PowerOfChoices>(o, seed);
}

}  // namespace swarm::dispatch::detail
