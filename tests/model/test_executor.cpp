// SpanExecutor (CPU): KV cache semantics, independence from how blocks are split over
// executors, sessions, reloading on a move, and usage / memory errors.
#include <array>

#include "model_test_util.hpp"

namespace swarm::model::test {
namespace {

class Executor : public ::testing::Test {
 protected:
  const ModelConfig config_ = tiny_config();
  const RandomWeights weights_{config_, 42};
  const int layers_ = config_.num_hidden_layers;

  [[nodiscard]] std::unique_ptr<SpanExecutor> loaded(Span span) const {
    auto executor = make_executor(Backend::cpu);
    executor->load(weights_, span);
    return executor;
  }
};

TEST_F(Executor, IncrementalDecodeEqualsFullRecompute) {
  const int tokens = 12, h = config_.hidden_size;
  const auto input = random_hidden(tokens, h, 1);
  auto full = input;
  loaded({0, layers_})->forward(1, 0, layers_, full.data(), 1, tokens);

  auto executor = loaded({0, layers_});
  std::vector<float> pieces;
  int done = 0;
  for (const int chunk : {5, 1, 1, 3, 2}) {  // prefill, decode steps, then a multi-token append
    std::vector<float> part(input.begin() + done * h, input.begin() + (done + chunk) * h);
    executor->forward(7, 0, layers_, part.data(), 1, chunk);
    pieces.insert(pieces.end(), part.begin(), part.end());
    done += chunk;
    EXPECT_EQ(executor->cached_tokens(7, 0), done);
  }
  // Same math, different GEMM shapes: equal up to fp32 re-association.
  EXPECT_LE(max_abs_diff(pieces, full), 1e-5F * max_abs(full));
}

TEST_F(Executor, SplitOverExecutorsIsBitwiseIdentical) {
  const int tokens = 9, h = config_.hidden_size;
  const auto input = random_hidden(2 * tokens, h, 2);
  auto whole = input;
  auto one = loaded({0, layers_});
  one->forward(1, 0, layers_, whole.data(), 2, tokens);
  auto step = random_hidden(2, h, 3);
  auto step_whole = step;
  one->forward(1, 0, layers_, step_whole.data(), 2, 1);

  for (const std::vector<Span>& split : {std::vector<Span>{{0, 2}, {2, 3}, {3, 5}},
                                         std::vector<Span>{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}},
                                         std::vector<Span>{{0, 4}, {4, 5}}}) {
    std::vector<std::unique_ptr<SpanExecutor>> servers;
    for (const Span& span : split) servers.push_back(loaded(span));
    auto x = input;
    auto y = step;
    for (auto& server : servers) server->forward(3, server->span().start, server->span().end, x.data(), 2, tokens);
    for (auto& server : servers) server->forward(3, server->span().start, server->span().end, y.data(), 2, 1);
    EXPECT_EQ(x, whole);
    EXPECT_EQ(y, step_whole);
  }
}

TEST_F(Executor, RouteMayUseSubRangesOfASpan) {
  const int tokens = 6, h = config_.hidden_size;
  const auto input = random_hidden(tokens, h, 4);
  auto whole = input;
  loaded({0, layers_})->forward(1, 0, layers_, whole.data(), 1, tokens);
  auto server = loaded({0, layers_});
  auto x = input;
  server->forward(1, 0, 2, x.data(), 1, tokens);
  server->forward(1, 2, 3, x.data(), 1, tokens);
  server->forward(1, 3, layers_, x.data(), 1, tokens);
  EXPECT_EQ(x, whole);
  // A server holding [1, 4) used for [2, 4) only by one route and fully by another.
  auto partial = loaded({1, 4});
  auto a = input, b = input;
  partial->forward(10, 2, 4, a.data(), 1, tokens);
  loaded({2, 4})->forward(10, 2, 4, b.data(), 1, tokens);
  EXPECT_EQ(a, b);
  EXPECT_EQ(partial->cached_tokens(10, 1), 0);
  EXPECT_EQ(partial->cached_tokens(10, 2), tokens);
}

TEST_F(Executor, BatchedSequencesMatchSeparateRuns) {
  const int tokens = 7, h = config_.hidden_size;
  auto batch = random_hidden(2 * tokens, h, 5);
  std::vector<float> first(batch.begin(), batch.begin() + tokens * h), second(batch.begin() + tokens * h, batch.end());
  auto executor = loaded({0, layers_});
  executor->forward(1, 0, layers_, batch.data(), 2, tokens);
  executor->forward(2, 0, layers_, first.data(), 1, tokens);
  executor->forward(3, 0, layers_, second.data(), 1, tokens);
  std::vector<float> separate = first;
  separate.insert(separate.end(), second.begin(), second.end());
  EXPECT_LE(max_abs_diff(batch, separate), 1e-5F * max_abs(separate));
}

// The job's batched hop: sessions at different positions (a prefill, decode steps, a batch of
// two sequences, a multi-token append) in one forward give what each gives alone.
TEST_F(Executor, ABatchOfSessionsEqualsEachAlone) {
  const int h = config_.hidden_size;
  auto batched = loaded({0, layers_});
  auto alone = loaded({0, layers_});
  // Histories first, one session at a time, in both executors.
  const std::vector<std::pair<SessionId, std::array<int, 2>>> history = {{10, {1, 5}}, {11, {2, 3}}, {12, {1, 9}}};
  for (const auto& [id, shape] : history) {
    auto x = random_hidden(shape[0] * shape[1], h, static_cast<std::uint64_t>(id));
    auto y = x;
    batched->forward(id, 0, layers_, x.data(), shape[0], shape[1]);
    alone->forward(id, 0, layers_, y.data(), shape[0], shape[1]);
  }
  // One step of every kind together: new session 13 (prefill of 4), 10 and 11 decode one token,
  // 12 appends 3.
  const std::vector<Segment> segments = {{13, 1, 4, 0}, {10, 1, 1, 5}, {11, 2, 1, 3}, {12, 1, 3, 9}};
  auto rows = random_hidden(static_cast<int>(batch_rows(segments)), h, 99);
  std::vector<float> expected;
  std::size_t offset = 0;
  for (const Segment& s : segments) {
    std::vector<float> part(rows.begin() + static_cast<std::ptrdiff_t>(offset),
                            rows.begin() + static_cast<std::ptrdiff_t>(offset + s.rows() * h));
    alone->forward(s.session, 0, layers_, part.data(), s.batch, s.tokens);
    expected.insert(expected.end(), part.begin(), part.end());
    offset += static_cast<std::size_t>(s.rows() * h);
  }
  batched->forward(segments, 0, layers_, rows.data());
  // Same math in other GEMM shapes: equal up to fp32 re-association.
  EXPECT_LE(max_abs_diff(rows, expected), 1e-5F * max_abs(expected));
  for (const Segment& s : segments) EXPECT_EQ(batched->cached_tokens(s.session, layers_ - 1), s.position + s.tokens);
}

// A batch that cannot run is refused whole, before any cache changes.
TEST_F(Executor, ARefusedBatchChangesNoCache) {
  const int h = config_.hidden_size;
  auto executor = loaded({0, 2});
  auto x = random_hidden(3, h, 1);
  executor->forward(5, 0, 2, x.data(), 1, 3);
  auto rows = random_hidden(8, h, 2);
  const std::vector<Segment> stale = {{6, 1, 2, 0}, {5, 1, 1, 2}};  // session 5 holds 3 tokens, not 2
  const std::string message = message_of<UsageError>([&] { executor->forward(stale, 0, 2, rows.data()); });
  EXPECT_NE(message.find("session 5 continues at position 2 but its cache in block 0 holds 3"), std::string::npos)
      << message;
  EXPECT_EQ(executor->cached_tokens(6, 0), 0) << "the new session of the refused batch was not created";
  const std::vector<Segment> twice = {{5, 1, 1, 3}, {5, 1, 1, 3}};
  EXPECT_NE(message_of<UsageError>([&] { executor->forward(twice, 0, 2, rows.data()); }).find("twice"),
            std::string::npos);
  ExecutorOptions options;
  options.max_cache_bytes = static_cast<std::size_t>(2 * 16 * config_.kv_bytes_per_token());  // 16 positions
  auto tight = make_executor(Backend::cpu, options);
  tight->load(weights_, {0, 2});
  const std::vector<Segment> over = {{1, 1, 4, 0}, {2, 1, 4, 0}};  // each fits alone, not both
  EXPECT_THROW(tight->forward(over, 0, 2, rows.data()), CacheBudgetError);
  EXPECT_EQ(tight->cache_bytes(), 0U);
  EXPECT_EQ(tight->cached_tokens(1, 0), 0);
  // No empty session stays behind either: session 1 with another batch size is judged on the
  // budget again, not refused as a batch that changed its size.
  const Segment wider{1, 2, 1, 0};
  EXPECT_THROW(tight->forward({&wider, 1}, 0, 2, rows.data()), CacheBudgetError);
  EXPECT_EQ(executor->cached_tokens(5, 1), 3);
}

TEST_F(Executor, SessionsAreIndependentAndDroppable) {
  const int h = config_.hidden_size;
  auto executor = loaded({0, layers_});
  auto a1 = random_hidden(4, h, 6), b1 = random_hidden(3, h, 7);
  auto a_alone = a1;
  loaded({0, layers_})->forward(1, 0, layers_, a_alone.data(), 1, 4);
  executor->forward(1, 0, layers_, a1.data(), 1, 4);
  executor->forward(2, 0, layers_, b1.data(), 1, 3);  // interleaved session must not disturb session 1
  EXPECT_EQ(a1, a_alone);
  EXPECT_EQ(executor->cached_tokens(1, 0), 4);
  EXPECT_EQ(executor->cached_tokens(2, 4), 3);
  // Capacity is allocated in steps of at least 16 positions: 2 sessions x 5 blocks x 16 x kv.
  EXPECT_EQ(executor->cache_bytes(), 2U * layers_ * 16 * config_.kv_bytes_per_token());
  executor->drop_session(1);
  EXPECT_EQ(executor->cached_tokens(1, 0), 0);
  EXPECT_EQ(executor->cache_bytes(), 1U * layers_ * 16 * config_.kv_bytes_per_token());
  executor->drop_session(2);
  executor->drop_session(99);  // unknown: no-op
  EXPECT_EQ(executor->cache_bytes(), 0U);
}

TEST_F(Executor, ReloadOnMoveDropsSessionsAndReadsNewSpan) {
  auto executor = loaded({0, 2});
  EXPECT_EQ(executor->weight_bytes(), 2U * config_.block_weight_bytes());
  auto x = random_hidden(3, config_.hidden_size, 8);
  executor->forward(1, 0, 2, x.data(), 1, 3);
  executor->load(weights_, {2, 5});
  EXPECT_EQ(executor->span(), (Span{2, 5}));
  EXPECT_EQ(executor->weight_bytes(), 3U * config_.block_weight_bytes());
  EXPECT_EQ(executor->cache_bytes(), 0U);
  auto a = random_hidden(3, config_.hidden_size, 9), b = a;
  executor->forward(1, 2, 5, a.data(), 1, 3);
  loaded({2, 5})->forward(1, 2, 5, b.data(), 1, 3);
  EXPECT_EQ(a, b);
}

TEST_F(Executor, GenerationDoesNotDependOnTheSplit) {
  const std::vector<std::int32_t> prompt = {3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9, 3};  // batch 2 x 6
  GreedyOptions options;
  options.max_new_tokens = 10;
  const auto one = generate_local(weights_, Backend::cpu, prompt, 2, options);
  ASSERT_EQ(one.steps(), 10);
  for (const std::vector<Span>& split : {std::vector<Span>{{0, 1}, {1, 3}, {3, 5}}, std::vector<Span>{{0, 4}, {4, 5}}}) {
    const auto many = generate_local(weights_, Backend::cpu, prompt, 2, options, split);
    EXPECT_EQ(many.tokens, one.tokens);
    EXPECT_EQ(many.logits, one.logits);  // same code and shapes: bitwise
  }
}

TEST_F(Executor, GreedyStopsAtEos) {
  const std::vector<std::int32_t> prompt = {1, 2, 3};
  GreedyOptions options;
  options.max_new_tokens = 6;
  const auto free_run = generate_local(weights_, Backend::cpu, prompt, 1, options);
  options.eos_token_id = free_run.tokens[0][2];
  const auto stopped = generate_local(weights_, Backend::cpu, prompt, 1, options);
  const auto& all = free_run.tokens[0];
  const auto first_eos = std::find(all.begin(), all.end(), *options.eos_token_id) - all.begin();
  EXPECT_EQ(stopped.steps(), first_eos + 1);
  EXPECT_EQ(stopped.logits.size(), static_cast<std::size_t>(stopped.steps()) * config_.vocab_size);
}

TEST_F(Executor, UsageErrorsAreReported) {
  auto empty = make_executor(Backend::cpu);
  std::vector<float> x(4 * config_.hidden_size);
  EXPECT_NE(message_of<UsageError>([&] { empty->forward(1, 0, 1, x.data(), 1, 1); }).find("before load"),
            std::string::npos);
  auto executor = loaded({1, 3});
  EXPECT_NE(message_of<UsageError>([&] { executor->forward(1, 0, 2, x.data(), 1, 1); }).find("outside the loaded span [1, 3)"),
            std::string::npos);
  executor->forward(1, 1, 3, x.data(), 2, 1);
  EXPECT_NE(message_of<UsageError>([&] { executor->forward(1, 1, 3, x.data(), 1, 1); }).find("started with batch 2"),
            std::string::npos);
  EXPECT_NE(message_of<UsageError>([&] { executor->load(weights_, {3, 9}); }).find("[3, 9)"), std::string::npos);
  const Segment one{1, 2, 1, 1};
  EXPECT_NE(message_of<UsageError>([&] { executor->forward({&one, 1}, 1, 3, x.data(), Memory::device); }).find("cuda"),
            std::string::npos);
  EXPECT_FALSE(message_of<UsageError>([] { (void)parse_backend("tpu"); }).empty());
  EXPECT_EQ(parse_backend("cuda"), Backend::cuda);
  EXPECT_EQ(to_string(Backend::cpu), "cpu");
}

TEST_F(Executor, CacheBudgetIsEnforced) {
  ExecutorOptions options;
  options.max_cache_bytes = static_cast<std::size_t>(2 * 16 * config_.kv_bytes_per_token());  // 2 blocks x 16 positions
  auto executor = make_executor(Backend::cpu, options);
  executor->load(weights_, {0, 2});
  auto x = random_hidden(17, config_.hidden_size, 10);
  executor->forward(1, 0, 2, x.data(), 1, 16);
  const std::string message = message_of<OutOfMemoryError>([&] { executor->forward(1, 0, 2, x.data(), 1, 1); });
  EXPECT_NE(message.find("cache budget"), std::string::npos) << message;
}

// The start-up check of a job (servers.max_cache_mb) and the client's admission rest on
// session_kv_bytes_per_block: a budget of exactly that holds a session that says its length
// (Segment::length) however its positions are fed (a prompt at once, in chunks, replayed whole
// after a reroute, then decode steps); a byte less does not. Its caches are allocated once, at
// the first forward, and never grow. A session that does not say grows by doubling.
TEST_F(Executor, SessionCacheBytesAreWhatTheCacheGrowsToHoweverItIsFed) {
  for (const auto& [batch, prompt, total] : {std::tuple{1, 5, 40}, std::tuple{2, 16, 17}, std::tuple{1, 20, 20},
                                             std::tuple{3, 33, 70}, std::tuple{1, 1, 1}}) {
    const std::uint64_t per_block = session_kv_bytes_per_block(config_, batch, total);
    const std::uint64_t doubled =
        per_block / static_cast<std::uint64_t>(total) * static_cast<std::uint64_t>(grown_kv_capacity(0, total));
    // Feed schedules: the prompt at once, in chunks of 3 and of 7, or all but the last position
    // at once (a late replay), each followed by single tokens.
    for (const int chunk : {prompt, 3, 7, total - 1}) {
      if (chunk < 1) continue;
      for (const bool says : {true, false}) {
        const std::uint64_t needs = says ? per_block : doubled;
        for (const std::uint64_t budget : {2 * needs, 2 * needs - 1}) {
          ExecutorOptions options;
          options.max_cache_bytes = static_cast<std::size_t>(budget);
          auto executor = make_executor(Backend::cpu, options);
          executor->load(weights_, {0, 2});
          auto x = random_hidden(batch * std::max(prompt, chunk), config_.hidden_size, 11);
          const int first = std::max(prompt, chunk == total - 1 ? chunk : prompt);
          const int length = says ? total : 0;
          std::vector<std::uint64_t> sizes;
          const auto run = [&] {
            for (int fed = 0; fed < first;) {
              const int n = std::min(chunk, first - fed);
              executor->forward(1, 0, 2, x.data(), batch, n, length);
              sizes.push_back(executor->cache_bytes());
              fed += n;
            }
            for (int t = first; t < total; ++t) {
              executor->forward(1, 0, 2, x.data(), batch, 1, length);
              sizes.push_back(executor->cache_bytes());
            }
          };
          const std::string what = std::to_string(batch) + " x " + std::to_string(prompt) + ".." +
                                   std::to_string(total) + " in chunks of " + std::to_string(chunk) +
                                   (says ? ", length said" : ", length not said");
          if (budget == 2 * needs) {
            EXPECT_NO_THROW(run()) << what;
            EXPECT_EQ(executor->cache_bytes(), 2 * needs) << what;
            if (says) {
              for (std::uint64_t size : sizes) EXPECT_EQ(size, 2 * per_block) << what << ": allocated once";
            }
          } else {
            EXPECT_THROW(run(), CacheBudgetError) << what;
          }
        }
      }
    }
  }
  EXPECT_EQ(grown_kv_capacity(0, 1), 16);
  EXPECT_EQ(grown_kv_capacity(16, 17), 32);
  EXPECT_EQ(grown_kv_capacity(40, 41), 64) << "a power of two, whatever the capacity before";
  EXPECT_EQ(grown_kv_capacity(64, 64), 64);
  EXPECT_EQ(grown_kv_capacity(0, 5, 40), 40) << "the session's length, at once";
  EXPECT_EQ(grown_kv_capacity(40, 41, 40), 64) << "a segment past its length grows by doubling";
}

TEST(ExecutorMemory, ModelTooBigForHostMemoryIsReportedBeforeAllocating) {
  ModelConfig huge = tiny_config();
  huge.hidden_size = 65536;
  huge.intermediate_size = 1 << 20;
  huge.num_attention_heads = 512;
  huge.num_key_value_heads = 512;
  huge.head_dim = 128;
  huge.num_hidden_layers = 64;  // ~0.9 TB of fp32 weights per block: beyond any host
  const RandomWeights weights(huge, 1);
  auto executor = make_executor(Backend::cpu);
  const std::string message = message_of<OutOfMemoryError>([&] { executor->load(weights, {0, 64}); });
  EXPECT_NE(message.find("blocks [0, 64) of random weights (seed 1) needs"), std::string::npos) << message;
  EXPECT_NE(message.find("of host memory but only"), std::string::npos) << message;
}

TEST(Backends, CpuThreadsCanBeSet) {
  const int before = cpu_threads();
  set_cpu_threads(1);
  EXPECT_EQ(cpu_threads(), 1);
  set_cpu_threads(before);
  EXPECT_FALSE(message_of<UsageError>([] { set_cpu_threads(0); }).empty());
}

TEST(Backends, CudaIsRefusedCleanlyWithoutAGpu) {
  if (cuda_available()) GTEST_SKIP() << "a GPU is present";
  const std::string message = message_of<UsageError>([] { (void)make_executor(Backend::cuda); });
  EXPECT_NE(message.find("cuda"), std::string::npos) << message;
}

}  // namespace
}  // namespace swarm::model::test
