// CUDA backend vs CPU backend. Every test skips itself when cuda_available() is false (no GPU
// in this build or on this machine).
//
// Tolerance: max |logit_cuda - logit_cpu| <= 1e-3 * max |logit_cpu| (and tokens equal on the
// fixtures, whose top-1 margins are >= 2e-3). cuBLAS and the CUDA kernels sum in other orders
// than OpenBLAS and use FMA; fp32 over a few blocks stays ~1e-6 relative, the bound leaves room
// for long contexts and bigger heads.
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
    c.attention_bias = head_dim == 128;
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

TEST_F(Cuda, DeviceEntryPointEqualsHostEntryPoint) {
#ifdef SWARM_MODEL_TEST_CUDA
  const ModelConfig c = tiny_config();
  const RandomWeights weights(c, 9);
  auto host_path = make_executor(Backend::cuda);
  auto device_path = make_executor(Backend::cuda);
  host_path->load(weights, {0, c.num_hidden_layers});
  device_path->load(weights, {0, c.num_hidden_layers});
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (const int tokens : {5, 1, 1}) {
    auto x = random_hidden(tokens, c.hidden_size, static_cast<unsigned>(tokens));
    auto y = x;
    host_path->forward(1, 0, c.num_hidden_layers, x.data(), 1, tokens);
    float* device = nullptr;
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&device), y.size() * sizeof(float)), cudaSuccess);
    ASSERT_EQ(cudaMemcpy(device, y.data(), y.size() * sizeof(float), cudaMemcpyHostToDevice), cudaSuccess);
    device_path->forward_device(1, 0, c.num_hidden_layers, device, 1, tokens, stream);
    ASSERT_EQ(cudaMemcpy(y.data(), device, y.size() * sizeof(float), cudaMemcpyDeviceToHost), cudaSuccess);
    cudaFree(device);
    EXPECT_EQ(x, y);
  }
  cudaStreamDestroy(stream);
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
