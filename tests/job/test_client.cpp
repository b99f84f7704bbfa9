// Rank 0's client without MPI: its batches are answered here as the last hop would answer them,
// so that the order of events (a leave between two steps, which batch returns first) is chosen,
// not left to timing.
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

bool crosses(const Outgoing& m, int rank) {
  return std::any_of(m.header.route.begin(), m.header.route.end(), [&](const Hop& h) { return h.rank == rank; });
}

// What the last hop sends back: the batch's header at hop == hops; the client is given the
// rows its head needs (their values only pick the greedy token, which does not matter here).
std::vector<Outgoing> answer(Client& c, const Outgoing& batch, double now, float value = 0.5f) {
  Header result = batch.header;
  result.hop = static_cast<std::int32_t>(result.route.size());
  const std::vector<float> last(c.head_rows(result).size() * 64, value);
  std::vector<Outgoing> more;
  c.on_result(result, last, now, more);
  return more;
}

std::vector<Outgoing> answer_all(Client& c, const std::vector<Outgoing>& out, double now) {
  std::vector<Outgoing> more;
  for (const Outgoing& o : out) {
    if (o.header.kind != PacketKind::batch) continue;
    for (Outgoing& m : answer(c, o, now)) more.push_back(std::move(m));
  }
  return more;
}

class ClientTest : public ::testing::Test {
 protected:
  ClientTest() : weights_(tiny_model(), 3), model_(weights_) {
    config_.workload.arrival = Arrival::batch;
    config_.workload.prompt_tokens = 8;
    config_.workload.new_tokens = 12;
  }

  model::RandomWeights weights_;
  model::ClientModel model_;
  JobConfig config_;
};

class ClientAdmission : public ClientTest {
 protected:
  ClientAdmission() {
    config_.workload.sessions = 3;
    // A session's cache on 4 blocks: 256 bytes a position a block x 19 positions (8 + 12 - 1,
    // allocated once at the length its segments say) x 4 blocks = 19 KiB. 0.025 MiB holds one.
    config_.max_cache_mb = 0.025;
    servers_ = {server(0, 0, 4), server(1, 0, 4), server(2, 4, 8), server(3, 4, 8)};
  }
  std::vector<RouteServer> servers_;
};

// Rank 3 leaves between two steps of the session routed through it: that session's caches go,
// its room on the hop that stays is given back, and it waits (first in line) for room again.
// Without the release, its old reservation would keep rank 1 full and the run would stall or
// hold room on a rank that is gone.
TEST_F(ClientAdmission, ALeaveReleasesTheRoomOfTheSessionsRoutedThroughIt) {
  Client c(model_, config_, 4);
  c.set_servers(servers_);
  std::vector<Outgoing> out = c.step(0.0, true);
  ASSERT_EQ(out.size(), 2u) << "one session a rank: two routes, one batch each";
  EXPECT_EQ(c.waiting_for_cache(), 1);
  for (int r = 0; r < 4; ++r) EXPECT_GT(c.cache_reserved(r), 0u) << "rank " << r;
  const auto through3 = std::find_if(out.begin(), out.end(), [](const Outgoing& m) { return crosses(m, 3); });
  ASSERT_NE(through3, out.end());
  const int partner = through3->header.route[0].rank;  // the first hop of the route through rank 3
  const std::uint64_t held = c.cache_reserved(partner);
  (void)answer_all(c, out, 0.1);

  servers_[3].online = false;
  c.set_servers(servers_);
  const std::vector<Outgoing> drops = c.reroute({3});
  ASSERT_EQ(drops.size(), 1u) << "only the hop that stays holds caches to drop";
  EXPECT_EQ(drops[0].peer, partner);
  EXPECT_EQ(drops[0].header.kind, PacketKind::drop);
  EXPECT_EQ(c.cache_reserved(3), 0u);
  EXPECT_EQ(c.cache_reserved(partner), 0u) << "held " << held << " before the leave";

  // With rank 3 away only one route exists, and the session on it keeps it: both others wait.
  out = c.step(0.2, true);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(crosses(out[0], partner));
  EXPECT_EQ(c.waiting_for_cache(), 2);

  // Rank 3 is back: the rerouted session (ahead in line) gets the freed route and replays.
  servers_[3].online = true;
  c.set_servers(servers_);
  EXPECT_TRUE(c.reroute({3}).empty());
  std::vector<Outgoing> next = answer_all(c, out, 0.3);
  out = c.step(0.4, true);
  out.insert(out.end(), next.begin(), next.end());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(c.waiting_for_cache(), 1);
  const auto replay = std::find_if(out.begin(), out.end(), [](const Outgoing& m) { return crosses(m, 3); });
  ASSERT_NE(replay, out.end());
  ASSERT_EQ(replay->header.segments.size(), 1u);
  EXPECT_EQ(replay->header.segments[0].tokens, 8 + 1) << "the prompt and the token generated before the leave";
  EXPECT_EQ(replay->header.segments[0].position, 0) << "fresh caches";

  // Everything runs to the end and every reservation is given back.
  double now = 0.5;
  for (int guard = 0; guard < 200 && !c.done(); ++guard) {
    next = answer_all(c, out, now);
    out = c.step(now += 0.1, true);
    out.insert(out.end(), next.begin(), next.end());
  }
  ASSERT_TRUE(c.done());
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
  const std::vector<Outgoing> out = c.step(0.0, true);
  int sessions = 0;
  for (const Outgoing& o : out) sessions += static_cast<int>(o.header.segments.size());
  EXPECT_EQ(sessions, 3);
  EXPECT_EQ(c.waiting_for_cache(), 0);
  for (int r = 0; r < 4; ++r) EXPECT_EQ(c.cache_reserved(r), 0u);
}

// Continuous batching on one two-hop route: 12 sessions go out as hops + 2 = 4 micro-batches
// of equal tokens (3 prefills of 8), one for each server, the client and the transit; nothing
// more leaves until a batch is back, and then its sessions go on together as one batch.
TEST_F(ClientTest, MicroBatchesKeepEveryStageBusy) {
  config_.workload.sessions = 12;
  Client c(model_, config_, 2);
  c.set_servers({server(0, 0, 4), server(1, 4, 8)});
  const std::vector<Outgoing> first = c.step(0.0, true);
  ASSERT_EQ(first.size(), 4u);
  std::set<model::SessionId> seen;
  for (const Outgoing& b : first) {
    EXPECT_EQ(b.header.route.size(), 2u);
    EXPECT_EQ(b.peer, 0);
    ASSERT_EQ(b.header.segments.size(), 3u);
    for (const model::Segment& s : b.header.segments) {
      EXPECT_EQ(s.tokens, 8) << "a prefill";
      EXPECT_EQ(s.position, 0);
      EXPECT_EQ(s.length, 8 + 12 - 1) << "the positions its caches will hold: sized once";
      seen.insert(s.session);
    }
    EXPECT_EQ(b.rows.size(), static_cast<std::size_t>(3 * 8 * 64)) << "one embedding row per token";
  }
  EXPECT_EQ(seen.size(), 12u) << "every session once";
  EXPECT_TRUE(c.step(0.1, true).empty()) << "four lanes in flight: the rest waits";

  EXPECT_TRUE(answer(c, first[1], 0.2).empty());
  const std::vector<Outgoing> again = c.step(0.3, true);
  ASSERT_EQ(again.size(), 1u) << "the returned batch's sessions continue together";
  ASSERT_EQ(again[0].header.segments.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(again[0].header.segments[i].session, first[1].header.segments[i].session);
    EXPECT_EQ(again[0].header.segments[i].tokens, 1) << "a decode step";
    EXPECT_EQ(again[0].header.segments[i].position, 8);
    EXPECT_EQ(again[0].header.segments[i].length, 8 + 12 - 1);
  }
  EXPECT_TRUE(c.step(0.4, true).empty());
  const ClientStats stats = c.take_stats();
  EXPECT_EQ(stats.batches, 5);
  EXPECT_EQ(stats.tokens_fed, 12 * 8 + 3);
  EXPECT_EQ(stats.tokens_generated, 3);
}

// servers.max_batch_tokens caps a forward: 12 prefills of 8 tokens under a cap of 16 go two to
// a batch; a cap of 4 prefills each prompt in two chunks, the head reading nothing after the
// first.
TEST_F(ClientTest, TheTokenCapCutsBatchesAndChunksPrefills) {
  config_.workload.sessions = 12;
  config_.max_batch_tokens = 16;
  {
    Client c(model_, config_, 1);
    c.set_servers({server(0, 0, 8)});
    const std::vector<Outgoing> out = c.step(0.0, true);
    ASSERT_EQ(out.size(), 3u) << "a route of one hop holds three lanes";
    for (const Outgoing& b : out) EXPECT_EQ(b.header.rows(), 16);
  }
  config_.workload.sessions = 2;
  config_.max_batch_tokens = 4;
  Client c(model_, config_, 1);
  c.set_servers({server(0, 0, 8)});
  std::vector<Outgoing> out = c.step(0.0, true);
  ASSERT_EQ(out.size(), 2u);
  for (const Outgoing& b : out) {
    ASSERT_EQ(b.header.segments.size(), 1u);
    EXPECT_EQ(b.header.segments[0].tokens, 4);
    Header result = b.header;
    result.hop = 1;
    EXPECT_TRUE(c.head_rows(result).empty()) << "half the prompt: no token yet";
  }
  (void)answer_all(c, out, 0.1);
  EXPECT_EQ(c.take_stats().tokens_generated, 0);
  out = c.step(0.2, true);
  ASSERT_EQ(out.size(), 2u);
  for (const Outgoing& b : out) {
    EXPECT_EQ(b.header.segments[0].tokens, 4);
    EXPECT_EQ(b.header.segments[0].position, 4) << "the second half continues the caches";
  }
  (void)answer_all(c, out, 0.3);
  EXPECT_EQ(c.take_stats().tokens_generated, 2) << "the first token after the whole prompt";
}

// A prompt much longer than a lane's share of the tokens is prefilled in chunks (no smaller
// than 32 tokens), each continuing the caches where the last ended; its first token comes after
// the last chunk.
TEST_F(ClientTest, ALongPrefillIsChunkedToBalanceTheLanes) {
  std::vector<std::int32_t> prompt(200);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>(i % 256);
  Client c(model_, config_, 1, {{"1", prompt, 2, false}});
  c.set_servers({server(0, 0, 8)});
  int position = 0, chunks = 0;
  double now = 0;
  while (position < 200) {
    const std::vector<Outgoing> out = c.step(now += 0.1, true);
    ASSERT_EQ(out.size(), 1u);
    const model::Segment& s = out[0].header.segments.at(0);
    EXPECT_EQ(s.position, position);
    EXPECT_TRUE(s.tokens >= 32 || s.position + s.tokens == 200) << "chunk of " << s.tokens;
    EXPECT_LT(s.tokens, 200) << "one lane of three does not take the whole prompt";
    position += s.tokens;
    ++chunks;
    (void)answer(c, out[0], now);
    EXPECT_EQ(c.take_stats().tokens_generated, position == 200 ? 1 : 0);
  }
  EXPECT_GT(chunks, 1);
}

// A prompts workload: at most workload.concurrency prompts in flight, in file order; a prompt
// that emits the end-of-sequence token stops there; the answers come back in input order.
TEST_F(ClientTest, PromptsAreAnsweredInInputOrderAndStopAtEos) {
  // Every answer's head rows hold 0.5, so every greedy token is the same one: make it the end.
  const std::vector<float> rows(64, 0.5f);
  const std::vector<float> logits = model_.logits(rows, 1);
  const auto token = static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  model::ModelConfig with_eos = tiny_model();
  with_eos.eos_token_ids = {token};
  const model::RandomWeights weights(with_eos, 3);
  const model::ClientModel model(weights);
  config_.workload.concurrency = 2;
  std::vector<Prompt> prompts = {{"\"a\"", {1, 2, 3}, 4, true}, {"2", {4, 5}, 3, true}, {"\"c\"", {9}, 5, false}};
  Client c(model, config_, 1, prompts);
  c.set_servers({server(0, 0, 8)});
  std::vector<Outgoing> out = c.step(0.0, true);
  int admitted = 0;
  for (const Outgoing& b : out) admitted += static_cast<int>(b.header.segments.size());
  EXPECT_EQ(admitted, 2) << "workload.concurrency prompts in flight";
  double now = 0.1;
  for (int guard = 0; guard < 100 && !c.done(); ++guard) {
    std::vector<Outgoing> next = answer_all(c, out, now);
    out = c.step(now += 0.1, true);
    out.insert(out.end(), next.begin(), next.end());
  }
  ASSERT_TRUE(c.done());
  const auto& answers = c.answers();
  ASSERT_EQ(answers.size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) {
    ASSERT_GE(answers[i].size(), prompts[i].tokens.size() + 1);
    EXPECT_TRUE(std::equal(prompts[i].tokens.begin(), prompts[i].tokens.end(), answers[i].begin()))
        << "prompt then generated";
    const std::size_t generated = answers[i].size() - prompts[i].tokens.size();
    EXPECT_EQ(answers[i].back(), token);
    EXPECT_EQ(generated, prompts[i].stop_at_eos ? 1u : static_cast<std::size_t>(prompts[i].max_new_tokens))
        << "prompt " << i << ": stops at the end-of-sequence token only when asked to";
  }
}

}  // namespace
}  // namespace swarm::job
