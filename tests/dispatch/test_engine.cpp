// The discrete-event engine with every policy: each task completes exactly once, also when
// workers join, leave and change speed; the same seed gives the same run; and the policies
// show their defining behaviour inside the engine.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "swarm/dispatch/engine.hpp"
#include "swarm/dispatch/hash_ring.hpp"
#include "helpers.hpp"

namespace swarm::dispatch {
namespace {

using test::numbered;
using test::worker;

constexpr double kForever = std::numeric_limits<double>::infinity();

// A swarm with everything the CS 294-8 lecture calls hard: heterogeneous speeds that change, two
// workers joining late, two leaving mid-run (busy: the batch keeps everybody busy).
std::vector<WorkerSpec> churning_workers() {
  std::vector<WorkerSpec> w(12);
  for (std::size_t i = 0; i < w.size(); ++i) {
    w[i].name = numbered("server-", i);
    w[i].speed = 50.0 + 25.0 * static_cast<double>(i % 4);
  }
  w[1].speed_changes = {{5.0, 20.0}, {30.0, 150.0}};  // slows down, then recovers
  w[6].speed_changes = {{12.0, 300.0}};
  w[9].announced_speed = 400.0;                     // announces far more than it has
  w[10].join_time = 8.0;
  w[11].join_time = 25.0;
  w[3].leave_time = 10.0;
  w[7].leave_time = 21.5;
  w[11].leave_time = 60.0;
  return w;
}

std::vector<Task> mixed_workload() {
  std::vector<Task> tasks = make_workload({.count = 300, .arrival_rate = 0.0, .work_min = 50, .work_max = 400}, 7);
  const std::vector<Task> later = make_workload({.count = 300, .arrival_rate = 20.0, .work_min = 20, .work_max = 600}, 8);
  tasks.insert(tasks.end(), later.begin(), later.end());
  return tasks;
}

void expect_each_task_done_once(const std::vector<Task>& tasks, const std::vector<WorkerSpec>& workers,
                                const RunResult& r, const std::string& label) {
  ASSERT_EQ(r.metrics.completed, tasks.size()) << label;
  ASSERT_EQ(r.tasks.size(), tasks.size()) << label;
  std::uint32_t by_workers = 0;
  for (const WorkerStats& s : r.workers) by_workers += s.tasks;
  EXPECT_EQ(by_workers, tasks.size()) << label;
  double work = 0.0, processed = 0.0, rebuilt = 0.0;
  std::uint64_t migrations = 0, restarts = 0;
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const TaskRecord& rec = r.tasks[t];
    ASSERT_TRUE(rec.done()) << label << " task " << t;
    ASSERT_LT(rec.worker, workers.size()) << label;
    EXPECT_GE(rec.first_start, tasks[t].arrival) << label;
    EXPECT_GE(rec.start, rec.first_start) << label;
    EXPECT_GE(rec.finish, rec.start) << label;
    // Finished by a worker while it was there.
    EXPECT_GE(rec.start, workers[rec.worker].join_time) << label;
    EXPECT_LE(rec.finish, workers[rec.worker].leave_time) << label;
    work += tasks[t].work;
    rebuilt += rec.rebuild_tokens;
    migrations += rec.migrations;
    restarts += rec.restarts;
  }
  for (const WorkerStats& s : r.workers) processed += s.tokens;
  // Conservation: every token processed either advanced a session once or rebuilt a lost cache.
  EXPECT_NEAR(processed, work + rebuilt, 1e-9 * work) << label;
  EXPECT_NEAR(r.metrics.rebuild_tokens, rebuilt, 1e-9 * work) << label;
  EXPECT_EQ(r.metrics.migrations, migrations) << label;
  EXPECT_EQ(r.metrics.restarts, restarts) << label;
  EXPECT_EQ(r.metrics.migrations, r.metrics.migrations_join + r.metrics.migrations_leave + r.metrics.migrations_balance)
      << label;
}

class EveryPolicy : public ::testing::TestWithParam<PolicyKind> {};

TEST_P(EveryPolicy, CompletesEveryTaskExactlyOnceThroughChurn) {
  const auto tasks = mixed_workload();
  const auto workers = churning_workers();
  const std::string label(to_string(GetParam()));
  const RunResult r = simulate(tasks, workers, GetParam(), {}, 42);
  expect_each_task_done_once(tasks, workers, r, label);
  EXPECT_GT(r.metrics.restarts, 0U) << label << ": workers 3 and 7 left while busy";
  EXPECT_GT(r.metrics.migrations_leave, 0U) << label;
  EXPECT_GT(r.metrics.makespan_s, 0.0);
  EXPECT_GE(r.metrics.imbalance_busy, 1.0);
  EXPECT_LE(r.metrics.latency_p50_s, r.metrics.latency_p95_s);
  EXPECT_LE(r.metrics.latency_p95_s, r.metrics.latency_p99_s);
}

TEST_P(EveryPolicy, PartialRebuildStillConservesWork) {
  const auto tasks = mixed_workload();
  const auto workers = churning_workers();
  const RunResult r = simulate(tasks, workers, GetParam(), {}, 43, {.rebuild_fraction = 0.25});
  expect_each_task_done_once(tasks, workers, r, std::string(to_string(GetParam())) + " f=0.25");
}

TEST_P(EveryPolicy, SameSeedSameRun) {
  const auto tasks = mixed_workload();
  const auto workers = churning_workers();
  const RunResult a = simulate(tasks, workers, GetParam(), {}, 99);
  const RunResult b = simulate(tasks, workers, GetParam(), {}, 99);
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    ASSERT_EQ(a.tasks[t].worker, b.tasks[t].worker);
    ASSERT_EQ(a.tasks[t].start, b.tasks[t].start);
    ASSERT_EQ(a.tasks[t].finish, b.tasks[t].finish);
    ASSERT_EQ(a.tasks[t].migrations, b.tasks[t].migrations);
  }
  EXPECT_EQ(a.metrics.control_messages, b.metrics.control_messages);
  EXPECT_EQ(a.metrics.events, b.metrics.events);
}

TEST_P(EveryPolicy, HoldsSessionsWhileTheSwarmIsEmpty) {
  std::vector<WorkerSpec> workers(3);
  workers[0].leave_time = 5.0;
  workers[1].leave_time = 5.0;
  workers[2].join_time = 20.0;  // nobody is alive in [5, 20)
  const auto tasks = make_workload({.count = 40, .arrival_rate = 2.0, .work_min = 1, .work_max = 3}, 3);
  const RunResult r = simulate(tasks, workers, GetParam(), {}, 5);
  expect_each_task_done_once(tasks, workers, r, std::string(to_string(GetParam())));
  for (const TaskRecord& rec : r.tasks) EXPECT_FALSE(rec.finish > 5.0 && rec.finish < 20.0);
}

INSTANTIATE_TEST_SUITE_P(Dispatch, EveryPolicy, ::testing::ValuesIn(all_policies().begin(), all_policies().end()),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(Engine, FollowsAPiecewiseConstantSpeedProfile) {
  // 100 tokens: 50 at 10 tokens/s until t = 5, the other 50 at 50 tokens/s: done at t = 6.
  const std::vector<WorkerSpec> workers{worker(10.0, kForever, {{5.0, 50.0}})};
  const std::vector<Task> tasks{{1, 0.0, 100.0}};
  const RunResult r = simulate(tasks, workers, PolicyKind::round_robin, {}, 1);
  EXPECT_NEAR(r.tasks[0].finish, 6.0, 1e-12);
  EXPECT_NEAR(r.metrics.tokens_per_s, 100.0 / 6.0, 1e-9);
}

TEST(Engine, ALeaverInterruptsItsSessionWhichRebuildsItsCacheElsewhere) {
  // Worker 0 runs the session (40 of 100 tokens done) and leaves at t = 4; worker 1 recomputes
  // half of those 40 (rebuild_fraction 0.5) and the remaining 60: 80 tokens, done at t = 12.
  const std::vector<WorkerSpec> workers{worker(10.0, 4.0), worker(10.0)};
  const std::vector<Task> tasks{{1, 0.0, 100.0}};
  const RunResult r = simulate(tasks, workers, PolicyKind::round_robin, {}, 1, {.rebuild_fraction = 0.5});
  EXPECT_EQ(r.tasks[0].worker, 1U);
  EXPECT_NEAR(r.tasks[0].finish, 12.0, 1e-12);
  EXPECT_EQ(r.tasks[0].restarts, 1U);
  EXPECT_EQ(r.tasks[0].migrations, 1U);
  EXPECT_NEAR(r.tasks[0].rebuild_tokens, 20.0, 1e-12);
  EXPECT_EQ(r.metrics.migrations_leave, 1U);
  EXPECT_NEAR(r.workers[0].tokens + r.workers[1].tokens, 120.0, 1e-9);
}

TEST(Engine, ControlMessagesTakeTheirLatency) {
  DispatchOptions o;
  o.message_latency_s = 0.5;
  const std::vector<Task> tasks{{1, 0.0, 10.0}, {2, 0.0, 10.0}};
  // The worker joins after the sessions: its request and rank 0's reply take a round trip
  // (start at 1 + 2 * 0.5), GSS gives it both (ceil(2/1)), and the second starts at once.
  std::vector<WorkerSpec> late{worker(10.0)};
  late[0].join_time = 1.0;
  const RunResult r = simulate(tasks, late, PolicyKind::self_gss, o, 1);
  EXPECT_NEAR(r.tasks[0].start, 2.0, 1e-12);
  EXPECT_NEAR(r.tasks[1].start, 3.0, 1e-12);
  // Request and reply, then the request it sends when done, which rank 0 parks.
  EXPECT_EQ(r.metrics.control_messages, 3U);

  // A worker that is there first asks before there is work: rank 0 parks the request, and
  // only the reply travels once a session arrives (start at 0.5). Each session then costs a
  // chunk of its own, as GSS sees one session in the queue at a time.
  const std::vector<WorkerSpec> early{worker(10.0)};
  const RunResult e = simulate(tasks, early, PolicyKind::self_gss, o, 1);
  EXPECT_NEAR(e.tasks[0].start, 0.5, 1e-12);
  EXPECT_NEAR(e.tasks[1].start, 1.5 + 1.0, 1e-12);
  EXPECT_EQ(e.metrics.control_messages, 5U);  // (request, reply) x 2, and the last request
}

TEST(Engine, PowerOfTwoProbesTwoServersPerSession) {
  const std::vector<WorkerSpec> workers(10);
  const auto tasks = make_workload({.count = 500, .arrival_rate = 5.0, .work_min = 1, .work_max = 2}, 4);
  const RunResult r = simulate(tasks, workers, PolicyKind::power_of_two, {}, 1);
  EXPECT_EQ(r.metrics.control_messages, 4U * tasks.size());
}

TEST(Engine, StaticSplitFollowsAnnouncedThroughputs) {
  std::vector<WorkerSpec> workers(4);
  for (std::size_t i = 0; i < 4; ++i) workers[i].speed = static_cast<double>(i + 1);
  const std::vector<Task> tasks(1000, Task{0, 0.0, 1.0});
  const RunResult r = simulate(tasks, workers, PolicyKind::static_split, {}, 1);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_NEAR(r.workers[i].tasks, 100.0 * static_cast<double>(i + 1), 1.0);
  // It believes what is announced, not what is measured: equal announcements, equal shares.
  for (WorkerSpec& w : workers) w.announced_speed = 1.0;
  const RunResult blind = simulate(tasks, workers, PolicyKind::static_split, {}, 1);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(blind.workers[i].tasks, 250U);
}

TEST(Engine, RoundRobinDealsEqually) {
  std::vector<WorkerSpec> workers(3);
  workers[2].speed = 10.0;
  const std::vector<Task> tasks(99, Task{0, 0.0, 1.0});
  const RunResult r = simulate(tasks, workers, PolicyKind::round_robin, {}, 1);
  for (const WorkerStats& s : r.workers) EXPECT_EQ(s.tasks, 33U);
}

TEST(Engine, ConsistentHashMovesOnlyTheJoinersArcAndOnlyItsSessionsWhenOneLeaves) {
  // 2000 long sessions on 8 servers; a 9th joins at t = 1 and server 2 leaves at t = 2. No
  // session finishes before t = 100, so all are active at both changes.
  std::vector<WorkerSpec> workers(9);
  for (std::size_t i = 0; i < 9; ++i) workers[i].name = numbered("s", i);
  workers[8].join_time = 1.0;
  workers[2].leave_time = 2.0;
  auto tasks = make_workload({.count = 2000, .work_min = 100, .work_max = 100}, 12);
  const RunResult r = simulate(tasks, workers, PolicyKind::consistent_hash, {}, 1);
  // Who owns what, computed on rings of our own (the same names give the same rings).
  HashRing eight(DispatchOptions{}.hash.virtual_nodes), nine(DispatchOptions{}.hash.virtual_nodes);
  for (WorkerId i = 0; i < 9; ++i) {
    if (i < 8) eight.add(i, workers[i].name);
    nine.add(i, workers[i].name);
  }
  std::size_t to_joiner = 0, on_leaver = 0;
  for (std::size_t t = 0; t < tasks.size(); ++t) {
    const bool joins = nine.owner(tasks[t].session) == 8;
    const bool leaves = nine.owner(tasks[t].session) == 2;
    to_joiner += joins;
    on_leaver += leaves;
    EXPECT_EQ(r.tasks[t].migrations, (joins ? 1U : 0U) + (leaves ? 1U : 0U)) << "task " << t;
    if (!joins && !leaves) {
      EXPECT_EQ(r.tasks[t].worker, eight.owner(tasks[t].session));
    }
  }
  EXPECT_EQ(r.metrics.migrations_join, to_joiner);
  EXPECT_EQ(r.metrics.migrations_leave, on_leaver);
  EXPECT_EQ(r.metrics.migrations_balance, 0U);
  EXPECT_GT(to_joiner, 2000U / 9 / 2);  // about 1/9 of the sessions
  EXPECT_LT(to_joiner, 2000U * 3 / 9 / 2);
  EXPECT_EQ(r.metrics.control_messages, 0U);  // hashing is computed locally
}

// Decorator that audits bounded_hash from outside: after every decision, no server above
// ceil((1 + eps) m / n) sessions holds a session that was just placed there.
class CapAudit final : public Policy {
 public:
  CapAudit(std::unique_ptr<Policy> inner, double eps) : inner_(std::move(inner)), eps_(eps) {}
  PolicyKind kind() const override { return inner_->kind(); }
  void worker_joined(WorkerId w, const WorkerInfo& info, double now, Actions& out) override {
    ++alive_;
    inner_->worker_joined(w, info, now, out);
    audit(out, true);
  }
  void worker_left(WorkerId w, std::span<const TaskId> interrupted, double now, Actions& out) override {
    --alive_;
    for (auto it = owner_.begin(); it != owner_.end(); ++it) {
      if (it->second == w) it->second = kNoWorker;
    }
    inner_->worker_left(w, interrupted, now, out);
    audit(out, true);
  }
  void task_arrived(TaskId id, const Task& task, double now, Actions& out) override {
    owner_[id] = kNoWorker;
    inner_->task_arrived(id, task, now, out);
    audit(out, false);
  }
  void worker_idle(WorkerId w, double now, Actions& out) override { inner_->worker_idle(w, now, out); }
  void task_finished(WorkerId w, TaskId id, double e, double tokens, double now, Actions& out) override {
    owner_.erase(id);
    inner_->task_finished(w, id, e, tokens, now, out);
  }
  void timer_fired(const Timer& t, double now, Actions& out) override { inner_->timer_fired(t, now, out); }
  std::size_t checks = 0;

 private:
  void audit(const Actions& out, bool everyone) {
    for (const Assignment& a : out.assigns) owner_[a.task] = a.worker;
    if (alive_ == 0) return;
    std::map<WorkerId, std::size_t> load;
    for (const auto& [t, w] : owner_) {
      if (w != kNoWorker) ++load[w];
    }
    const std::size_t cap = bounded_load_cap(owner_.size(), alive_, eps_);
    for (const auto& [w, n] : load) {
      const bool received = std::any_of(out.assigns.begin(), out.assigns.end(), [w = w](const Assignment& a) { return a.worker == w; });
      if (everyone || received) {
        ++checks;
        EXPECT_LE(n, cap) << "worker " << w << " with " << owner_.size() << " sessions on " << alive_ << " workers";
      }
    }
  }
  std::unique_ptr<Policy> inner_;
  double eps_;
  std::size_t alive_ = 0;
  std::map<TaskId, WorkerId> owner_;
};

TEST(Engine, BoundedHashNeverPlacesASessionAboveTheCap) {
  for (const double eps : {0.05, 0.3}) {
    DispatchOptions o;
    o.hash.eps = eps;
    auto workers = churning_workers();
    const auto tasks = mixed_workload();
    CapAudit audit(make_policy(PolicyKind::bounded_hash, o, 1), eps);
    const RunResult r = simulate(tasks, workers, audit, {});
    expect_each_task_done_once(tasks, workers, r, "bounded_hash");
    EXPECT_GT(audit.checks, tasks.size());
  }
}

TEST(Engine, WorkStealingExecutesEveryTaskOnceWhenAServerLeavesMidRun) {
  std::vector<WorkerSpec> workers(6);
  for (std::size_t i = 0; i < 6; ++i) workers[i].speed = 1.0 + static_cast<double>(i);
  workers[2].leave_time = 7.3;   // busy, with a queue
  workers[5].leave_time = 11.0;
  for (const bool half : {false, true}) {
    for (const bool lifo : {false, true}) {
      DispatchOptions o;
      o.stealing.steal_half = half;
      o.stealing.owner_lifo = lifo;
      const auto tasks = make_workload({.count = 400, .work_min = 1, .work_max = 20}, 77);
      const RunResult r = simulate(tasks, workers, PolicyKind::work_stealing, o, 3);
      expect_each_task_done_once(tasks, workers, r, half ? "steal half" : "steal one");
      EXPECT_EQ(r.metrics.restarts, 2U);  // both leavers were running something
      EXPECT_GT(r.metrics.migrations_balance, 0U);  // steals
      EXPECT_GT(r.metrics.control_messages, 0U);
    }
  }
}

TEST(Engine, WorkStealingBeatsRoundRobinOnHeterogeneousSpeeds) {
  const std::vector<WorkerSpec> workers{worker(1.0), worker(10.0)};
  const std::vector<Task> tasks(100, Task{0, 0.0, 10.0});
  const double rr = simulate(tasks, workers, PolicyKind::round_robin, {}, 1).metrics.makespan_s;
  const double ws = simulate(tasks, workers, PolicyKind::work_stealing, {}, 1).metrics.makespan_s;
  EXPECT_NEAR(rr, 500.0, 1e-9);  // the slow worker's 50 tasks
  EXPECT_LT(ws, 0.25 * rr);      // ideal: 1000 tokens / 11 tokens/s = 91 s
}

TEST(Engine, DiffusionMovesWorkFromSlowToFastNeighbours) {
  // Sessions enter at random servers; power_of_two with one choice is exactly that random
  // entry (the same draws), without balancing afterwards.
  std::vector<WorkerSpec> workers(8);
  for (std::size_t i = 0; i < 8; ++i) workers[i].speed = i % 2 == 0 ? 1.0 : 4.0;
  const std::vector<Task> tasks(800, Task{0, 0.0, 1.0});
  DispatchOptions o;
  o.choices.choices = 1;
  o.diffusion.period_s = 2.0;
  const RunResult random = simulate(tasks, workers, PolicyKind::power_of_two, o, 5);
  for (PolicyKind k : {PolicyKind::diffusion1, PolicyKind::diffusion2}) {
    const RunResult r = simulate(tasks, workers, k, o, 5);
    EXPECT_GT(r.metrics.migrations_balance, 0U) << to_string(k);
    EXPECT_LT(r.metrics.makespan_s, 0.8 * random.metrics.makespan_s) << to_string(k);
  }
}

TEST(Engine, PowerOfTwoChoicesCutsTheTailAgainstOneChoice) {
  // 50 equal servers at 90% load: the supermarket model's classic case.
  const std::vector<WorkerSpec> workers(50);
  const auto tasks = make_workload({.count = 20000, .arrival_rate = 45.0, .work_min = 0.5, .work_max = 1.5}, 6);
  DispatchOptions one;
  one.choices.choices = 1;
  const RunResult r1 = simulate(tasks, workers, PolicyKind::power_of_two, one, 2);
  const RunResult r2 = simulate(tasks, workers, PolicyKind::power_of_two, {}, 2);
  EXPECT_LT(r2.metrics.latency_p99_s, 0.5 * r1.metrics.latency_p99_s);
  EXPECT_LT(r2.metrics.latency_mean_s, r1.metrics.latency_mean_s);
}

TEST(Engine, GuidedSelfSchedulingNeedsFarFewerRequestsThanChunksOfOne) {
  const std::vector<WorkerSpec> workers(8);
  const auto tasks = make_workload({.count = 2000, .work_min = 1, .work_max = 2}, 9);
  DispatchOptions o;
  o.self.chunk = 1;
  const RunResult fixed = simulate(tasks, workers, PolicyKind::self_fixed, o, 1);
  const RunResult gss = simulate(tasks, workers, PolicyKind::self_gss, o, 1);
  EXPECT_GE(fixed.metrics.control_messages, 2U * tasks.size());
  EXPECT_LT(gss.metrics.control_messages * 10, fixed.metrics.control_messages);
  EXPECT_LT(gss.metrics.makespan_s, fixed.metrics.makespan_s);  // fewer round trips spent idle
}

// A policy that breaks the contract: it runs every arrival on worker 0, busy or not.
class Reckless final : public Policy {
 public:
  PolicyKind kind() const override { return PolicyKind::round_robin; }
  void worker_joined(WorkerId, const WorkerInfo&, double, Actions&) override {}
  void worker_left(WorkerId, std::span<const TaskId>, double, Actions&) override {}
  void task_arrived(TaskId id, const Task&, double, Actions& out) override { out.runs.push_back({id, 0, 0.0}); }
  void worker_idle(WorkerId, double, Actions&) override {}
  void task_finished(WorkerId, TaskId, double, double, double, Actions&) override {}
  void timer_fired(const Timer&, double, Actions&) override {}
};

TEST(Engine, RejectsAPolicyThatRunsTwoTasksOnOneWorker) {
  const std::vector<WorkerSpec> workers(1);
  const std::vector<Task> tasks{{1, 0.0, 5.0}, {2, 1.0, 5.0}};
  Reckless reckless;
  try {
    (void)simulate(tasks, workers, reckless);
    FAIL() << "double booking accepted";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("which is busy with task 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace swarm::dispatch
