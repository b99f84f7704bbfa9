// Policies driven directly through the interface, as the MPI dispatcher will drive them (no
// engine): the decisions for a given sequence of events.
#include <gtest/gtest.h>

#include <algorithm>

#include "helpers.hpp"
#include "swarm/dispatch/policy.hpp"

namespace swarm::dispatch {
namespace {

Task session(std::uint64_t id) { return Task{id, 0.0, 1.0}; }

// Worker 0 alone receives four sessions (runs the first, queues three); worker 1 joins and,
// idle, steals from worker 0, the only victim. Returns the task worker 1 is given first and
// how many it got.
std::pair<TaskId, std::size_t> first_steal(const WorkStealingOptions& stealing, std::size_t queued) {
  DispatchOptions o;
  o.stealing = stealing;
  o.message_latency_s = 0.25;
  const auto p = make_policy(PolicyKind::work_stealing, o, 1);
  Actions out;
  p->worker_joined(0, {"a", 1.0}, 0.0, out);
  p->worker_idle(0, 0.0, out);
  EXPECT_EQ(out.messages, 0U);  // nobody to steal from
  for (TaskId t = 0; t <= queued; ++t) p->task_arrived(t, session(t), 0.0, out);
  EXPECT_EQ(out.runs.size(), 1U);  // the first starts, the rest wait
  out.clear();
  p->worker_joined(1, {"b", 1.0}, 0.0, out);
  p->worker_idle(1, 0.0, out);
  EXPECT_EQ(out.messages, 2U);  // steal request and answer
  EXPECT_EQ(out.runs.size(), 1U);
  EXPECT_EQ(out.runs.at(0).worker, 1U);
  EXPECT_DOUBLE_EQ(out.runs.at(0).delay_s, 0.5);  // the loot arrives with the answer
  return {out.runs.at(0).task, out.assigns.size()};
}

TEST(WorkStealingPolicy, StealsFromTheFarEndOfTheVictimsQueue) {
  // Victim's queue, oldest first: 1, 2, 3 (0 is running).
  // Owner works at the top (newest): the thief takes the oldest.
  EXPECT_EQ(first_steal({.owner_lifo = true}, 3), (std::pair<TaskId, std::size_t>{1, 1}));
  // Owner serves the oldest first: the thief takes the newest.
  EXPECT_EQ(first_steal({.owner_lifo = false}, 3), (std::pair<TaskId, std::size_t>{3, 1}));
  // Steal half of four queued: the oldest two; the thief starts the first of its loot.
  EXPECT_EQ(first_steal({.steal_half = true, .owner_lifo = true}, 4), (std::pair<TaskId, std::size_t>{1, 2}));
}

TEST(SelfSchedulingPolicy, GrantsGuidedChunksThroughTheInterface) {
  const auto p = make_policy(PolicyKind::self_gss, {}, 1);
  Actions out;
  for (WorkerId w = 0; w < 4; ++w) p->worker_joined(w, {"w", 1.0}, 0.0, out);
  for (TaskId t = 0; t < 100; ++t) p->task_arrived(t, session(t), 0.0, out);
  EXPECT_TRUE(out.empty());  // nobody asked yet: all wait in the central queue
  std::vector<std::size_t> chunks;
  for (WorkerId w = 0; w < 4; ++w) {
    out.clear();
    p->worker_idle(w, 0.0, out);
    chunks.push_back(out.assigns.size());
    EXPECT_EQ(out.runs.size(), 1U);
    EXPECT_EQ(out.messages, 2U);
  }
  EXPECT_EQ(chunks, (std::vector<std::size_t>{25, 19, 14, 11}));  // ceil(R_i / 4)
}

TEST(ConsistentHashPolicy, ASessionKeepsItsServerWhileOthersLeave) {
  const auto p = make_policy(PolicyKind::consistent_hash, {}, 1);
  Actions out;
  for (WorkerId w = 0; w < 5; ++w) p->worker_joined(w, {test::numbered("s", w), 1.0}, 0.0, out);
  std::vector<WorkerId> home(200);
  for (TaskId t = 0; t < 200; ++t) {
    out.clear();
    p->task_arrived(t, session(1000 + t), 0.0, out);
    ASSERT_EQ(out.assigns.size(), 1U);
    home[t] = out.assigns[0].worker;
  }
  out.clear();
  p->worker_left(3, {}, 1.0, out);
  for (const Assignment& a : out.assigns) {
    EXPECT_EQ(home[a.task], 3U) << "session " << a.task << " moved although its server stayed";
    EXPECT_NE(a.worker, 3U);
  }
  EXPECT_EQ(out.assigns.size(), static_cast<std::size_t>(std::count(home.begin(), home.end(), 3U)));
  EXPECT_EQ(out.messages, 0U);
}

}  // namespace
}  // namespace swarm::dispatch
