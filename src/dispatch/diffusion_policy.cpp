// Diffusion among workers that can stand in for each other (servers holding the same blocks,
// routes sharing servers): every `period_s` each worker exchanges its load with its neighbours
// and sends the flow of diffusion_flows() (first or second order) as whole queued sessions.
// Nothing central, only neighbours talk; balancing is slower than stealing's random reach, but
// work stays local to the graph.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "queue_policy.hpp"

namespace swarm::dispatch::detail {

namespace {

class Diffusion final : public QueuePolicy {
 public:
  Diffusion(PolicyKind kind, const DispatchOptions& o, std::uint64_t seed)
      : QueuePolicy(o, seed), kind_(kind), given_(o.diffusion.neighbours) {}
  PolicyKind kind() const override { return kind_; }

  void timer_fired(const Timer&, double now, Actions& out) override {
    tick_pending_ = false;
    round(now, out);
    bool queued = false;
    for (WorkerId w : alive_) queued = queued || !workers_[w].queue.empty();
    if (queued) {
      schedule_round(now, out);
    } else {
      previous_.clear();  // quiescent: the next busy spell starts again with a first-order step
    }
  }

 private:
  // A session enters at a random entry server (the client's choice), with no message.
  Placement place(TaskId, double now, Actions& out) override {
    schedule_round(now, out);
    return {random_alive(), 0.0};
  }

  void on_joined(WorkerId w, double, Actions&) override {
    if (!given_.empty() && w >= given_.nodes()) {
      throw std::invalid_argument("dispatch option diffusion.neighbours has " +
                                  std::to_string(given_.nodes()) + " nodes, but worker " +
                                  std::to_string(w) + " joined");
    }
    membership_changed();
  }

  // The orphans of a leaver go to its live neighbours (they hold the same blocks), else anywhere.
  void on_left(WorkerId w, std::span<const TaskId> orphans, double now, Actions& out) override {
    std::vector<WorkerId> near;
    if (!given_.empty()) {
      for (std::size_t e : given_.incident(w)) {
        if (alive(given_.other(e, w))) near.push_back(given_.other(e, w));
      }
    }
    membership_changed();
    for (TaskId t : orphans) {
      const WorkerId to = near.empty() ? random_alive() : near[uniform_index(rng_, near.size())];
      if (to == kNoWorker) {
        held_.push_back(t);
      } else {
        enqueue(to, t, now, now, out);
      }
    }
    if (!orphans.empty()) schedule_round(now, out);
  }

  void membership_changed() {
    previous_.clear();  // edge flows of the old graph mean nothing in the new one
    ring_stale_ = true;
  }

  // The given graph, or (none given) a ring over the live workers in id order, rebuilt lazily
  // so that a thousand joins at one instant cost one ring.
  [[nodiscard]] const Graph& graph() {
    if (!given_.empty()) return given_;
    if (ring_stale_) {
      std::vector<Graph::Edge> edges;
      for (std::size_t i = 0; alive_.size() >= 2 && i < alive_.size(); ++i) {
        edges.push_back({alive_[i], alive_[(i + 1) % alive_.size()]});
      }
      ring_ = Graph(workers_.size(), std::move(edges));
      ring_stale_ = false;
    }
    return ring_;
  }

  void schedule_round(double now, Actions& out) {
    if (tick_pending_) return;
    tick_pending_ = true;
    out.timers.push_back({now + options_.diffusion.period_s, kNoWorker, 0});
  }

  void round(double now, Actions& out) {
    const Graph& g = graph();
    if (alive_.size() < 2 || g.edges().empty()) return;
    load_.assign(g.nodes(), 0.0);
    speed_.assign(g.nodes(), 1.0);
    for (WorkerId w : alive_) {
      if (w >= g.nodes()) continue;
      load_[w] = workers_[w].queued_work;
      speed_[w] = workers_[w].speed;
    }
    const double alpha = options_.diffusion.alpha.value_or(default_alpha(g));
    const bool second = kind_ == PolicyKind::diffusion2 && !previous_.empty();
    const std::vector<double> flow =
        diffusion_flows(g, load_, speed_, alpha, options_.diffusion.beta,
                        second ? std::span<const double>(previous_) : std::span<const double>());
    std::vector<double> realised(flow.size(), 0.0);
    for (std::size_t e = 0; e < flow.size(); ++e) {
      const auto [u, v] = g.edges()[e];
      if (!alive(u) || !alive(v)) continue;
      out.messages += 2;  // both ends report their load
      const double moved = flow[e] >= 0.0 ? transfer(u, v, flow[e], now, out) : -transfer(v, u, -flow[e], now, out);
      if (moved != 0.0) ++out.messages;  // the transfer order
      realised[e] = moved;
    }
    // Second order's memory is the flow that really moved (whole sessions, never more than
    // was queued), so that the recurrence follows the actual loads.
    previous_ = std::move(realised);
  }

  // Move queued sessions from the far end of `from` (the newest: the owner serves the oldest)
  // while the amount left is at least half a session, i.e. round the flow to whole sessions.
  double transfer(WorkerId from, WorkerId to, double amount, double now, Actions& out) {
    double moved = 0.0;
    while (!workers_[from].queue.empty()) {
      const double work = tasks_[workers_[from].queue.back().task].work;
      if (amount - moved < work / 2.0) break;
      const Queued q = take_back(from);
      enqueue(to, q.task, now + latency(), now, out);
      moved += work;
    }
    return moved;
  }

  PolicyKind kind_;
  Graph given_;
  Graph ring_;
  std::vector<double> previous_;  // realised flow per edge of the last round (second order)
  std::vector<double> load_;
  std::vector<double> speed_;
  bool tick_pending_ = false;
  bool ring_stale_ = true;
};

}  // namespace

std::unique_ptr<Policy> make_diffusion(PolicyKind kind, const DispatchOptions& o, std::uint64_t seed) {
  return std::make_unique<Diffusion>(kind, o, seed);
}

}  // namespace swarm::dispatch::detail
