// Greedy generation on the Hugging Face fixtures (tests/data/model, written by
// tests/reference/make_model_fixtures.py with transformers): tokens must be identical and every
// step's logits within kTolerance * max |logit| of transformers' fp32 logits.
#include "cpu_ops.hpp"
#include "model_test_util.hpp"

namespace swarm::model::test {
namespace {

// fp32 with different summation orders (OpenBLAS vs PyTorch) differs by ~1e-6 relative over a
// few blocks; 1e-4 leaves two orders of magnitude of headroom and still catches any semantic
// slip (a wrong RoPE variant, eps, scale or bias moves logits by > 1e-2).
constexpr float kTolerance = 1e-4F;

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, GreedyGenerationMatchesTransformers) {
  const Expected expected = load_expected(GetParam());
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  const auto result = generate_local(checkpoint, Backend::cpu, expected.prompt, expected.batch, options);
  EXPECT_EQ(result.tokens, expected.tokens);
  ASSERT_EQ(result.logits.size(), expected.logits.size());
  EXPECT_LE(max_abs_diff(result.logits, expected.logits), kTolerance * max_abs(expected.logits));
}

TEST_P(Golden, OneExecutorPerBlockGivesTheSameLogits) {
  const Expected expected = load_expected(GetParam());
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  std::vector<Span> per_block;
  for (int i = 0; i < checkpoint.config().num_hidden_layers; ++i) per_block.push_back({i, i + 1});
  const auto one = generate_local(checkpoint, Backend::cpu, expected.prompt, expected.batch, options);
  const auto many = generate_local(checkpoint, Backend::cpu, expected.prompt, expected.batch, options, per_block);
  EXPECT_EQ(many.tokens, one.tokens);
  EXPECT_EQ(many.logits, one.logits);
}

TEST_P(Golden, GreedyThroughACustomPipelineCallback) {
  // What the MPI job does: its own client loop, blocks reached through a callback.
  const Expected expected = load_expected(GetParam());
  const Checkpoint checkpoint(fixture_dir(GetParam()));
  const int layers = checkpoint.config().num_hidden_layers;
  auto front = make_executor(Backend::cpu), back = make_executor(Backend::cpu);
  front->load(checkpoint, {0, layers / 2});
  back->load(checkpoint, {layers / 2, layers});
  const ClientModel client(checkpoint);
  int calls = 0;
  const BlocksFn blocks = [&](float* hidden, int batch, int tokens) {
    ++calls;
    front->forward(77, 0, layers / 2, hidden, batch, tokens);
    back->forward(77, layers / 2, layers, hidden, batch, tokens);
  };
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  options.keep_logits = false;
  const auto result = greedy(client, expected.prompt, expected.batch, options, blocks);
  EXPECT_EQ(result.tokens, expected.tokens);
  EXPECT_TRUE(result.logits.empty());
  EXPECT_EQ(calls, expected.max_new_tokens);
  const int prompt_len = static_cast<int>(expected.prompt.size()) / expected.batch;
  EXPECT_EQ(back->cached_tokens(77, layers - 1), prompt_len + expected.max_new_tokens - 1);
}

TEST_P(Golden, Bf16ComputeStaysWithinItsTolerance) {
  if (!detail::bf16_compute_available()) GTEST_SKIP() << "this build has no oneDNN (SWARM_DNNL): bf16 compute is f32";
  expect_bf16_within_tolerance(GetParam(), Backend::cpu);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden, ::testing::ValuesIn(fixture_names()));

}  // namespace
}  // namespace swarm::model::test
