// Policy names and the rejection of bad parameters, with the messages users will read.
#include <gtest/gtest.h>

#include <functional>

#include "swarm/dispatch/engine.hpp"
#include "swarm/dispatch/policy.hpp"
#include "helpers.hpp"

namespace swarm::dispatch {
namespace {

constexpr double kForever = std::numeric_limits<double>::infinity();

// The message of the std::invalid_argument that `f` throws ("" if it throws none).
std::string rejection(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::string reject_options(const std::function<void(DispatchOptions&)>& change) {
  DispatchOptions o;
  change(o);
  return rejection([&] { (void)make_policy(PolicyKind::round_robin, o, 1); });
}

TEST(PolicyNames, RoundTripAndOneNamePerPolicy) {
  EXPECT_EQ(all_policies().size(), 13U);
  for (PolicyKind k : all_policies()) {
    EXPECT_EQ(parse_policy(to_string(k)), k);
    EXPECT_EQ(make_policy(k, {}, 1)->kind(), k);
  }
  EXPECT_EQ(to_string(PolicyKind::static_split), "static");
  EXPECT_FALSE(parse_policy("Static").has_value());
}

TEST(PolicyNames, UnknownPolicyIsRejectedWithTheKnownOnes) {
  const std::string msg = rejection([] { (void)parse_policy_or_throw("fifo"); });
  EXPECT_NE(msg.find("unknown dispatch policy 'fifo'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("static, round_robin, consistent_hash"), std::string::npos) << msg;
  EXPECT_NE(msg.find("power_of_two"), std::string::npos) << msg;
}

TEST(PolicyOptions, DefaultsAreValid) { EXPECT_NO_THROW(validate(DispatchOptions{})); }

TEST(PolicyOptions, BadParametersAreRejectedNamingParameterAndValue) {
  EXPECT_EQ(reject_options([](auto& o) { o.self.chunk = 0; }),
            "dispatch option self.chunk = 0 is invalid: a chunk holds at least one task");
  EXPECT_EQ(reject_options([](auto& o) { o.self.min_chunk = 0; }),
            "dispatch option self.min_chunk = 0 is invalid: a chunk holds at least one task");
  EXPECT_EQ(reject_options([](auto& o) { o.hash.eps = 0.0; }),
            "dispatch option hash.eps = 0 is invalid: bounded loads need eps > 0");
  EXPECT_EQ(reject_options([](auto& o) { o.hash.eps = -0.5; }),
            "dispatch option hash.eps = -0.5 is invalid: bounded loads need eps > 0");
  EXPECT_EQ(reject_options([](auto& o) { o.hash.virtual_nodes = 0; }),
            "dispatch option hash.virtual_nodes = 0 is invalid: a bucket needs at least one point on the ring");
  EXPECT_EQ(reject_options([](auto& o) { o.choices.choices = 0; }),
            "dispatch option choices.choices = 0 is invalid: at least one server must be probed");
  EXPECT_EQ(reject_options([](auto& o) { o.diffusion.beta = 2.0; }),
            "dispatch option diffusion.beta = 2 is invalid: second-order diffusion converges only for beta in (0, 2)");
  EXPECT_EQ(reject_options([](auto& o) { o.diffusion.alpha = 0.0; }),
            "dispatch option diffusion.alpha = 0 is invalid: it must be in (0, 1]");
  EXPECT_EQ(reject_options([](auto& o) { o.diffusion.period_s = 0.0; }),
            "dispatch option diffusion.period_s = 0 is invalid: it must be > 0");
  EXPECT_NE(reject_options([](auto& o) { o.stealing.backoff_s = 0.0; }).find("stealing.backoff_s = 0"), std::string::npos);
  EXPECT_NE(reject_options([](auto& o) { o.stealing.backoff_max_s = 0.001; }).find("stealing.backoff_max_s = 0.001"),
            std::string::npos);
  EXPECT_NE(reject_options([](auto& o) { o.message_latency_s = -1.0; }).find("message_latency_s = -1"), std::string::npos);
  EXPECT_NE(reject_options([](auto& o) { o.speed_smoothing = 0.0; }).find("speed_smoothing = 0"), std::string::npos);
  EXPECT_NE(reject_options([](auto& o) { o.self.tapering_alpha = -2.0; }).find("self.tapering_alpha = -2"), std::string::npos);
}

TEST(PolicyOptions, BadEngineInputsAreRejectedNamingTheField) {
  const std::vector<WorkerSpec> workers{test::worker(1.0)};
  const std::vector<Task> tasks{{1, 0.0, 10.0}, {2, 0.0, 0.0}};
  EXPECT_EQ(rejection([&] { (void)simulate(tasks, workers, PolicyKind::round_robin, {}, 1); }),
            "dispatch option tasks[1].work = 0 is invalid: a session has some tokens to process");
  const std::vector<Task> ok{{1, 0.0, 10.0}};
  EXPECT_EQ(rejection([&] {
              (void)simulate(ok, workers, PolicyKind::round_robin, {}, 1, {.rebuild_fraction = 1.5});
            }),
            "dispatch option engine.rebuild_fraction = 1.5 is invalid: it must be in [0, 1]");
  const std::vector<WorkerSpec> slow{test::worker(-1.0)};
  EXPECT_NE(rejection([&] { (void)simulate(ok, slow, PolicyKind::round_robin, {}, 1); }).find("workers[0].speed = -1"),
            std::string::npos);
  const std::vector<WorkerSpec> backwards{test::worker(1.0, kForever, {{5.0, 2.0}, {4.0, 1.0}})};
  EXPECT_NE(rejection([&] { (void)simulate(ok, backwards, PolicyKind::round_robin, {}, 1); })
                .find("workers[0].speed_changes[1].time = 4"),
            std::string::npos);
  std::vector<WorkerSpec> inverted{test::worker(1.0, 5.0)};
  inverted[0].join_time = 5.0;
  EXPECT_NE(rejection([&] { (void)simulate(ok, inverted, PolicyKind::round_robin, {}, 1); }).find("workers[0].leave_time"),
            std::string::npos);
}

TEST(PolicyOptions, ADiffusionGraphMustCoverEveryWorker) {
  DispatchOptions o;
  o.diffusion.neighbours = ring_graph(2);
  const std::vector<WorkerSpec> workers(3);
  const std::vector<Task> tasks{{1, 0.0, 10.0}};
  const std::string msg = rejection([&] { (void)simulate(tasks, workers, PolicyKind::diffusion1, o, 1); });
  EXPECT_NE(msg.find("diffusion.neighbours has 2 nodes, but worker 2 joined"), std::string::npos) << msg;
}

}  // namespace
}  // namespace swarm::dispatch
