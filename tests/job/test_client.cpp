// Rank 0's client without MPI: its messages are answered here as the last hop would answer them,
// so that the order of events (a leave between two steps) is chosen, not left to timing.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "../../src/job/client.hpp"
#include "swarm/model/weights.hpp"

namespace swarm::job {
namespace {

model::ModelConfig tiny_model() {
  model::ModelConfig m;
  m.vocab_size = 256;
  m.hidden_size = 64;
  m.intermediate_size = 172;
  m.num_hidden_layers = 8;
  m.num_attention_heads = 4;
  m.num_key_value_heads = 2;
  m.head_dim = 16;
  m.max_position_embeddings = 4096;
  m.validate("test");
  return m;
}

RouteServer server(int rank, int start, int end) {
  RouteServer s;
  s.rank = rank;
  s.span = {start, end};
  s.online = true;
  s.block_tokens_per_s = 1000;
  return s;
}

// The last hop's answer to a forward step: hidden rows of the step's size (their values only
// pick the greedy token, which does not matter here).
Message answer(const Message& step, int hidden) {
  Message r;
  r.peer = step.header.rank[static_cast<std::size_t>(step.header.hops - 1)];
  r.header = step.header;
  r.header.hop = step.header.hops;
  r.payload.assign(step.header.payload_floats(hidden), 0.5f);
  return r;
}

bool crosses(const Message& m, int rank) {
  const auto* end = m.header.rank.begin() + m.header.hops;
  return std::find(m.header.rank.begin(), end, rank) != end;
}

class ClientAdmission : public ::testing::Test {
 protected:
  ClientAdmission() : weights_(tiny_model(), 3), model_(weights_) {
    config_.workload.arrival = Arrival::batch;
    config_.workload.sessions = 3;
    config_.workload.prompt_tokens = 8;
    config_.workload.new_tokens = 12;
    // A session's cache on 4 blocks: 256 bytes a position a block x 32 positions (19 used, then
    // the cache's doubling) x 4 blocks = 32 KiB, 36 KiB when restarted late. 0.04 MiB holds one.
    config_.max_cache_mb = 0.04;
    servers_ = {server(0, 0, 4), server(1, 0, 4), server(2, 4, 8), server(3, 4, 8)};
  }

  // Answers every forward step of `out` and returns the messages the answers produced.
  std::vector<Message> answer_all(Client& c, const std::vector<Message>& out, double now) {
    std::vector<Message> more;
    for (const Message& m : out) {
      if (m.header.kind == MessageKind::forward) c.on_result(answer(m, 64), now, more);
    }
    return more;
  }

  model::RandomWeights weights_;
  model::ClientModel model_;
  JobConfig config_;
  std::vector<RouteServer> servers_;
};

// Rank 3 leaves between two steps of the session routed through it: that session's caches go,
// its room on the hop that stays is given back, and it waits (first in line) for room again.
// Without the release, its old reservation would keep rank 1 full and the run would stall or
// hold room on a rank that is gone.
TEST_F(ClientAdmission, ALeaveReleasesTheRoomOfTheSessionsRoutedThroughIt) {
  Client c(model_, config_, 4);
  c.set_servers(servers_);
  std::vector<Message> out = c.tick(0.0, true);
  ASSERT_EQ(out.size(), 2u) << "one session a rank: two routes, two sessions";
  EXPECT_EQ(c.waiting_for_cache(), 1);
  for (int r = 0; r < 4; ++r) EXPECT_GT(c.cache_reserved(r), 0u) << "rank " << r;
  const auto through3 = std::find_if(out.begin(), out.end(), [](const Message& m) { return crosses(m, 3); });
  ASSERT_NE(through3, out.end());
  const int partner = through3->header.rank[0];  // the first hop of the route through rank 3
  const std::uint64_t held = c.cache_reserved(partner);
  (void)answer_all(c, out, 0.1);

  servers_[3].online = false;
  c.set_servers(servers_);
  const std::vector<Message> drops = c.reroute({3});
  ASSERT_EQ(drops.size(), 1u) << "only the hop that stays holds caches to drop";
  EXPECT_EQ(drops[0].peer, partner);
  EXPECT_EQ(drops[0].header.kind, MessageKind::drop);
  EXPECT_EQ(c.cache_reserved(3), 0u);
  EXPECT_EQ(c.cache_reserved(partner), 0u) << "held " << held << " before the leave";

  // With rank 3 away only one route exists, and the session on it keeps it: both others wait.
  out = c.tick(0.2, true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(crosses(out[0], partner));
  EXPECT_EQ(c.waiting_for_cache(), 2);

  // Rank 3 is back: the rerouted session (ahead in line) gets the freed route and replays.
  servers_[3].online = true;
  c.set_servers(servers_);
  EXPECT_TRUE(c.reroute({3}).empty());
  std::vector<Message> next = answer_all(c, out, 0.3);
  out = c.tick(0.4, true);
  out.insert(out.end(), next.begin(), next.end());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(c.waiting_for_cache(), 1);
  const auto replay = std::find_if(out.begin(), out.end(), [](const Message& m) { return crosses(m, 3); });
  ASSERT_NE(replay, out.end());
  EXPECT_EQ(replay->header.tokens, 8 + 1) << "the prompt and the token generated before the leave";

  // Everything runs to the end and every reservation is given back.
  double now = 0.5;
  for (int guard = 0; guard < 200 && !c.batch_done(); ++guard) {
    next = answer_all(c, out, now);
    out = c.tick(now += 0.1, true);
    out.insert(out.end(), next.begin(), next.end());
  }
  ASSERT_TRUE(c.batch_done());
  for (int r = 0; r < 4; ++r) EXPECT_EQ(c.cache_reserved(r), 0u) << "rank " << r;
  const ClientStats stats = c.take_stats();
  EXPECT_EQ(stats.sessions_completed, 3);
  EXPECT_EQ(stats.sessions_rerouted, 1);
  EXPECT_EQ(stats.replay_tokens, 8.0) << "the prompt was in the caches the leave took";
  EXPECT_EQ(stats.cache_waits, 2) << "the third session at the start, the rerouted one after the leave";
}

// Without a budget nobody waits and nothing is reserved.
TEST_F(ClientAdmission, NoBudgetNoWaits) {
  config_.max_cache_mb = 0;
  Client c(model_, config_, 4);
  c.set_servers(servers_);
  const std::vector<Message> out = c.tick(0.0, true);
  EXPECT_EQ(out.size(), 3u);
  EXPECT_EQ(c.waiting_for_cache(), 0);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(c.cache_reserved(r), 0u);
}

}  // namespace
}  // namespace swarm::job
