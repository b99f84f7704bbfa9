// CUDA backend vs CPU backend. Every test skips itself when cuda_available() is false (no GPU
// in this build or on this machine).
//
// Tolerance: max |logit_cuda - logit_cpu| <= 1e-3 * max |logit_cpu| (and tokens equal on the
// fixtures, whose top-1 margins are >= 2e-3). cuBLAS and the CUDA kernels sum in other orders
// than OpenBLAS and use FMA; fp32 over a few blocks stays ~1e-6 relative, the bound leaves room
// for long contexts and bigger heads.
#include <array>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <thread>

#include "model_test_util.hpp"

#ifdef SWARM_MODEL_TEST_CUDA
#include <cuda_runtime_api.h>
#endif

namespace swarm::model::test {
namespace {

constexpr float kTolerance = 1e-3F;

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or no CUDA backend in this build)";
  }
};

class CudaGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or no CUDA backend in this build)";
  }
};

TEST_P(CudaGolden, GenerationMatchesCpuAndTransformers) {
  const Expected expected = load_expected(GetParam());
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  const auto cpu = generate_local(checkpoint, Backend::cpu, expected.prompt, expected.batch, options);
  const auto gpu = generate_local(checkpoint, Backend::cuda, expected.prompt, expected.batch, options);
  EXPECT_EQ(gpu.tokens, cpu.tokens);
  EXPECT_EQ(gpu.tokens, expected.tokens);
  EXPECT_LE(max_abs_diff(gpu.logits, cpu.logits), kTolerance * max_abs(cpu.logits));
  EXPECT_LE(max_abs_diff(gpu.logits, expected.logits), kTolerance * max_abs(expected.logits));
  std::vector<Span> per_block;
  for (int i = 0; i < checkpoint.config().num_hidden_layers; ++i) per_block.push_back({i, i + 1});
  const auto split = generate_local(checkpoint, Backend::cuda, expected.prompt, expected.batch, options, per_block);
  EXPECT_EQ(split.tokens, gpu.tokens);
  EXPECT_LE(max_abs_diff(split.logits, gpu.logits), 1e-6F * max_abs(gpu.logits));
}

// model.compute_dtype = bf16 on the GPU: bf16 matrices, activations rounded to bf16 before each
// product (cublasGemmEx on the tensor cores, fp32 accumulation). The tolerance of the CPU's bf16
// path against the fp32 golden (test_golden.cpp) holds here too; half the weight bytes of fp32.
TEST_P(CudaGolden, Bf16ComputeStaysWithinItsTolerance) {
  expect_bf16_within_tolerance(GetParam(), Backend::cuda);
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  ExecutorOptions bf16;
  bf16.compute = DType::bf16;
  const Span all{0, checkpoint.config().num_hidden_layers};
  auto f32 = make_executor(Backend::cuda, {});
  auto half = make_executor(Backend::cuda, bf16);
  f32->load(checkpoint, all);
  half->load(checkpoint, all);
  EXPECT_LE(static_cast<double>(half->weight_bytes()), 0.55 * static_cast<double>(f32->weight_bytes()));
}

// The client's final norm and LM head on the GPU (rank 0 with model.backend cuda): its logits are
// the host head's, within the fp32 tolerance (the bf16 tolerance for bf16 compute), and greedy
// generation with it gives the goldens' tokens.
TEST_P(CudaGolden, TheHeadOnTheGpuEqualsTheHostHead) {
  const Expected expected = load_expected(GetParam());
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  ClientModel host(checkpoint);
  const int rows = 5;
  std::vector<std::int32_t> tokens;
  for (int i = 0; i < rows; ++i) tokens.push_back((7 * i + 3) % host.config().vocab_size);
  const auto hidden = host.embed(tokens);
  const auto want = host.logits(hidden, rows);
  for (const DType compute : {DType::f32, DType::bf16}) {
    ClientModel gpu(checkpoint);
    ExecutorOptions options;
    options.compute = compute;
    gpu.run_head_on(Backend::cuda, options);
    ASSERT_EQ(gpu.head_backend(), Backend::cuda);
    const auto got = gpu.logits(hidden, rows);
    ASSERT_EQ(got.size(), want.size());
    const float tolerance = compute == DType::bf16 ? kBf16Tolerance : kTolerance;
    EXPECT_LE(max_abs_diff(got, want), tolerance * max_abs(want)) << to_string(compute);
    if (compute == DType::bf16) {
      EXPECT_GT(max_abs_diff(got, want), 0.0F) << "the bf16 head did not round";
    }
  }
  ClientModel gpu(checkpoint);
  gpu.run_head_on(Backend::cuda);
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  auto executor = make_executor(Backend::cuda, {});
  executor->load(checkpoint, {0, checkpoint.config().num_hidden_layers});
  const Generation g = greedy(gpu, expected.prompt, expected.batch, options, [&](float* x, int batch, int n) {
    executor->forward(1, 0, checkpoint.config().num_hidden_layers, x, batch, n);
  });
  EXPECT_EQ(g.tokens, expected.tokens);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGolden, ::testing::ValuesIn(fixture_names()));

// Bigger heads (several dims per thread in the attention kernel), a prompt longer than one
// 128-key chunk, and decode steps that grow the cache past its first capacities.
TEST_F(Cuda, HiddenStatesMatchCpuOverLongContexts) {
  for (const int head_dim : {64, 128, 256}) {
    ModelConfig c = tiny_config();
    c.hidden_size = 256;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = head_dim;
    c.intermediate_size = 512;
    c.num_hidden_layers = 3;
    c.qkv_bias = c.o_bias = head_dim == 128;
    const RandomWeights weights(c, 3);
    auto cpu = make_executor(Backend::cpu);
    auto gpu = make_executor(Backend::cuda);
    cpu->load(weights, {0, 3});
    gpu->load(weights, {0, 3});
    const int batch = 2, prompt = 300;
    for (int step = 0; step < 40; ++step) {
      const int tokens = step == 0 ? prompt : (step % 10 == 0 ? 3 : 1);
      auto a = random_hidden(std::int64_t{batch} * tokens, c.hidden_size, 100 + step);
      auto b = a;
      cpu->forward(1, 0, 3, a.data(), batch, tokens);
      gpu->forward(1, 0, 3, b.data(), batch, tokens);
      ASSERT_LE(max_abs_diff(b, a), kTolerance * max_abs(a)) << "head_dim " << head_dim << " step " << step;
    }
    EXPECT_EQ(gpu->cached_tokens(1, 2), cpu->cached_tokens(1, 2));
    EXPECT_EQ(gpu->weight_bytes(), cpu->weight_bytes());
  }
}

// Histories of three sessions, then one batch of every kind of step (a new session's prefill,
// decodes, a batch-of-2 decode, an append): each session's rows as if it had run alone (up to
// the rounding of GEMMs of other shapes), and as on the CPU backend.
TEST_F(Cuda, ABatchOfSessionsEqualsEachAlone) {
  const ModelConfig c = tiny_config();
  const RandomWeights weights(c, 42);
  const int h = c.hidden_size, layers = c.num_hidden_layers;
  auto batched = make_executor(Backend::cuda);
  auto alone = make_executor(Backend::cuda);
  auto cpu = make_executor(Backend::cpu);
  for (auto* executor : {batched.get(), alone.get(), cpu.get()}) executor->load(weights, {0, layers});
  const std::vector<std::pair<SessionId, std::array<int, 2>>> history = {{10, {1, 5}}, {11, {2, 3}}, {12, {1, 9}}};
  for (const auto& [id, shape] : history) {
    const auto x = random_hidden(shape[0] * shape[1], h, static_cast<unsigned>(id));
    for (auto* executor : {batched.get(), alone.get(), cpu.get()}) {
      auto y = x;
      executor->forward(id, 0, layers, y.data(), shape[0], shape[1]);
    }
  }
  const std::vector<Segment> segments = {{13, 1, 4, 0}, {10, 1, 1, 5}, {11, 2, 1, 3}, {12, 1, 3, 9}};
  const auto input = random_hidden(batch_rows(segments), h, 99);
  std::vector<float> expected;
  std::size_t offset = 0;
  for (const Segment& s : segments) {
    std::vector<float> part(input.begin() + static_cast<std::ptrdiff_t>(offset),
                            input.begin() + static_cast<std::ptrdiff_t>(offset + s.rows() * h));
    alone->forward(s.session, 0, layers, part.data(), s.batch, s.tokens);
    expected.insert(expected.end(), part.begin(), part.end());
    offset += static_cast<std::size_t>(s.rows() * h);
  }
  auto rows = input, rows_cpu = input;
  batched->forward(segments, 0, layers, rows.data());
  cpu->forward(segments, 0, layers, rows_cpu.data());
  EXPECT_LE(max_abs_diff(rows, expected), 1e-5F * max_abs(expected));
  EXPECT_LE(max_abs_diff(rows, rows_cpu), kTolerance * max_abs(rows_cpu));
  for (const Segment& s : segments) EXPECT_EQ(batched->cached_tokens(s.session, layers - 1), s.position + s.tokens);
  EXPECT_EQ(batched->cache_bytes(), cpu->cache_bytes());
}

// A batch that cannot run is refused whole, before any cache changes; the sessions then go on
// as if it had never been tried.
TEST_F(Cuda, ARefusedBatchChangesNoCache) {
  const ModelConfig c = tiny_config();
  const RandomWeights weights(c, 42);
  const int h = c.hidden_size;
  auto executor = make_executor(Backend::cuda);
  auto cpu = make_executor(Backend::cpu);
  executor->load(weights, {0, 2});
  cpu->load(weights, {0, 2});
  const auto x = random_hidden(3, h, 1);
  for (auto* e : {executor.get(), cpu.get()}) {
    auto y = x;
    e->forward(5, 0, 2, y.data(), 1, 3);
  }
  const std::size_t bytes = executor->cache_bytes();
  auto rows = random_hidden(8, h, 2);
  const auto untouched = rows;
  const std::vector<Segment> stale = {{6, 1, 2, 0}, {5, 1, 1, 2}};  // session 5 holds 3 tokens, not 2
  const std::string message = message_of<UsageError>([&] { executor->forward(stale, 0, 2, rows.data()); });
  EXPECT_NE(message.find("session 5 continues at position 2 but its cache in block 0 holds 3"), std::string::npos)
      << message;
  EXPECT_EQ(executor->cached_tokens(6, 0), 0) << "the new session of the refused batch was not created";
  const std::vector<Segment> twice = {{5, 1, 1, 3}, {5, 1, 1, 3}};
  EXPECT_NE(message_of<UsageError>([&] { executor->forward(twice, 0, 2, rows.data()); }).find("twice"),
            std::string::npos);
  EXPECT_EQ(rows, untouched);
  EXPECT_EQ(executor->cache_bytes(), bytes);

  ExecutorOptions options;
  options.max_cache_bytes = static_cast<std::size_t>(2 * 16 * c.kv_bytes_per_token());  // 16 positions, 2 blocks
  auto tight = make_executor(Backend::cuda, options);
  tight->load(weights, {0, 2});
  const std::vector<Segment> over = {{1, 1, 4, 0}, {2, 1, 4, 0}};  // each fits alone, not both
  const std::string budget = message_of<CacheBudgetError>([&] { tight->forward(over, 0, 2, rows.data()); });
  EXPECT_NE(budget.find("beyond the cache budget"), std::string::npos) << budget;
  EXPECT_EQ(tight->cache_bytes(), 0U);
  EXPECT_EQ(tight->cached_tokens(1, 0), 0);
  EXPECT_EQ(rows, untouched);

  // Session 5 continues at 3 exactly as on the CPU backend.
  auto next = random_hidden(2, h, 3), next_cpu = next;
  executor->forward(5, 0, 2, next.data(), 1, 2);
  cpu->forward(5, 0, 2, next_cpu.data(), 1, 2);
  EXPECT_LE(max_abs_diff(next, next_cpu), kTolerance * max_abs(next_cpu));
  EXPECT_EQ(executor->cached_tokens(5, 1), 5);
}

#ifdef SWARM_MODEL_TEST_CUDA
// Device memory for rows, as the job's transport holds them.
class DeviceRows {
 public:
  explicit DeviceRows(std::size_t floats) {
    if (cudaMalloc(reinterpret_cast<void**>(&data_), floats * sizeof(float)) != cudaSuccess) data_ = nullptr;
  }
  ~DeviceRows() { (void)cudaFree(data_); }
  DeviceRows(const DeviceRows&) = delete;
  DeviceRows& operator=(const DeviceRows&) = delete;
  [[nodiscard]] float* get() const { return data_; }

 private:
  float* data_ = nullptr;
};
#endif

// upload(), forward() on device rows and download_rows() give the host-rows path's results
// bit for bit (same kernels, same GEMM shapes). Two batches are queued back to back on two
// buffers before anything is waited for: uploads, cache growth and metadata staging must be
// ordered on the device, not by the caller.
TEST_F(Cuda, DeviceRowsEqualHostRows) {
#ifdef SWARM_MODEL_TEST_CUDA
  const ModelConfig c = tiny_config();
  const RandomWeights weights(c, 9);
  const int h = c.hidden_size, layers = c.num_hidden_layers;
  auto host_path = make_executor(Backend::cuda);
  auto device_path = make_executor(Backend::cuda);
  host_path->load(weights, {0, layers});
  device_path->load(weights, {0, layers});
  EXPECT_TRUE(device_path->idle());
  // Prefills (session 2 of batch 2), then decodes that grow the caches past 16 positions.
  std::vector<std::vector<Segment>> steps = {{{1, 1, 5, 0}, {2, 2, 3, 0}}, {{1, 1, 1, 5}, {2, 2, 14, 3}}};
  for (int step = 0; step < 4; ++step) steps.push_back({{2, 2, 1, 17 + step}, {1, 1, 1, 6 + step}});
  const DeviceRows a(std::size_t{64} * h), b(std::size_t{64} * h);
  ASSERT_NE(a.get(), nullptr);
  ASSERT_NE(b.get(), nullptr);
  for (std::size_t step = 0; step + 1 < steps.size(); step += 2) {
    float* const buffers[] = {a.get(), b.get()};
    std::vector<float> expected[2];
    for (int i = 0; i < 2; ++i) {
      const auto& segments = steps[step + static_cast<std::size_t>(i)];
      expected[i] = random_hidden(batch_rows(segments), h, static_cast<unsigned>(step) + i);
      device_path->upload(expected[i], buffers[i]);
      device_path->forward(segments, 0, layers, buffers[i], Memory::device);
      host_path->forward(segments, 0, layers, expected[i].data());
    }
    if (step == 0) {
      device_path->synchronize();
    } else {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!device_path->idle() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
    }
    ASSERT_TRUE(device_path->idle());
    EXPECT_GT(device_path->last_forward_seconds(), 0.0);
    for (int i = 0; i < 2; ++i) {
      const auto rows = static_cast<std::int64_t>(expected[i].size() / static_cast<std::size_t>(h));
      std::vector<std::int64_t> all(static_cast<std::size_t>(rows));
      std::iota(all.begin(), all.end(), 0);
      std::vector<float> got(expected[i].size());
      device_path->download_rows(buffers[i], all, got);
      EXPECT_EQ(got, expected[i]) << "step " << step + static_cast<std::size_t>(i);
      // A gather of scattered rows, e.g. the last row of each sequence for the client's head.
      const std::vector<std::int64_t> picked = {rows - 1, 0, rows - 1};
      std::vector<float> some(picked.size() * static_cast<std::size_t>(h));
      device_path->download_rows(buffers[i], picked, some);
      for (std::size_t r = 0; r < picked.size(); ++r) {
        const auto first = expected[i].begin() + picked[r] * h;
        EXPECT_TRUE(std::equal(first, first + h, some.begin() + static_cast<std::ptrdiff_t>(r) * h)) << r;
      }
    }
  }
  for (int block = 0; block < layers; ++block) EXPECT_EQ(device_path->cached_tokens(2, block), 21);
  EXPECT_EQ(device_path->cache_bytes(), host_path->cache_bytes());
#else
  GTEST_SKIP() << "built without the CUDA runtime";
#endif
}

TEST_F(Cuda, ModelTooBigForTheDeviceIsReported) {
  ModelConfig huge = tiny_config();
  huge.hidden_size = 65536;
  huge.intermediate_size = 1 << 20;
  huge.num_attention_heads = 512;
  huge.num_key_value_heads = 512;
  huge.head_dim = 128;
  huge.num_hidden_layers = 8;
  const RandomWeights weights(huge, 1);
  auto executor = make_executor(Backend::cuda);
  const std::string message = message_of<OutOfMemoryError>([&] { executor->load(weights, {0, 8}); });
  EXPECT_NE(message.find("memory but only"), std::string::npos) << message;
  EXPECT_NE(message.find("device 0"), std::string::npos) << message;
}

}  // namespace
}  // namespace swarm::model::test
