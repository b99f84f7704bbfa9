#pragma once
// Shared helpers of the model tests: fixture access, temporary directories, comparisons.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "swarm/model/model.hpp"

namespace swarm::model::test {

/// tests/data/model/<name> in the source tree.
inline std::filesystem::path fixture_dir(const std::string& name) {
  return std::filesystem::path(SWARM_MODEL_TEST_DATA) / name;
}

inline const std::vector<std::string>& fixture_names() {
  static const std::vector<std::string> names = {"tiny_f32_tied",    "tiny_bf16_sharded", "tiny_f16_headdim_bias",
                                                       "tiny_llama3_bf16", "tiny_qwen2_bf16",   "tiny_mistral_f32"};
  return names;
}

/// The transformers golden of a fixture (written by tests/reference/make_model_fixtures.py).
struct Expected {
  std::vector<std::int32_t> prompt;  // [batch, prompt_len]
  int batch = 0;
  int max_new_tokens = 0;
  std::vector<std::vector<std::int32_t>> tokens;  // [batch][steps]
  std::vector<float> logits;                      // [steps, batch, vocab]
};

inline Expected load_expected(const std::string& name) {
  std::ifstream in(fixture_dir(name) / "expected.json");
  const auto doc = nlohmann::json::parse(in);
  Expected e;
  for (const auto& row : doc["prompt"]) {
    for (const auto& id : row) e.prompt.push_back(id.get<std::int32_t>());
  }
  e.batch = doc["batch"].get<int>();
  e.max_new_tokens = doc["max_new_tokens"].get<int>();
  e.tokens = doc["tokens"].get<std::vector<std::vector<std::int32_t>>>();
  for (const auto& step : doc["logits"]) {
    for (const auto& row : step) {
      for (const auto& v : row) e.logits.push_back(v.get<float>());
    }
  }
  return e;
}

/// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device device;
    path_ = std::filesystem::temp_directory_path() / ("swarm_model_test_" + std::to_string(device()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline float max_abs(std::span<const float> values) {
  float m = 0.0F;
  for (const float v : values) m = std::max(m, std::abs(v));
  return m;
}

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0.0F;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

/// A small GQA model for executor tests: 6 query heads over 2 kv heads, head_dim 8, 5 blocks.
inline ModelConfig tiny_config() {
  ModelConfig c;
  c.vocab_size = 61;
  c.hidden_size = 48;
  c.intermediate_size = 80;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000.0;
  return c;
}

/// Deterministic pseudo-random hidden states [rows, hidden] of order 1.
inline std::vector<float> random_hidden(std::int64_t rows, int hidden, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0F, 1.0F);
  std::vector<float> x(static_cast<std::size_t>(rows * hidden));
  for (auto& v : x) v = dist(rng);
  return x;
}

/// Runs `body` and returns the what() of the exception of type E it throws ("" if none).
template <typename E, typename F>
std::string message_of(F&& body) {
  try {
    body();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

// model.compute_dtype = bf16 rounds every product's activations to bf16 (8 significant bits),
// as a bf16 model in transformers does: logits move by up to kBf16Tolerance * max |logit| of the
// fp32 golden (measured on the CPU: at most 1.0e-2 over these fixtures), and greedy tokens may
// differ only after a step whose top-1 margin is below that.
constexpr float kBf16Tolerance = 3e-2F;

/// Greedy generation of `fixture`'s prompt with bf16 compute on `backend`: its logits within
/// kBf16Tolerance of the fp32 golden, and not equal to fp32's (the bf16 path ran).
inline void expect_bf16_within_tolerance(const std::string& fixture, Backend backend) {
  const Expected expected = load_expected(fixture);
  const Checkpoint checkpoint(fixture_dir(fixture));
  GreedyOptions options;
  options.max_new_tokens = expected.max_new_tokens;
  options.keep_logits = true;
  ExecutorOptions bf16;
  bf16.compute = DType::bf16;
  const auto result = generate_local(checkpoint, backend, expected.prompt, expected.batch, options, {}, bf16);
  ASSERT_EQ(result.logits.size(), expected.logits.size());
  const float diff = max_abs_diff(result.logits, expected.logits) / max_abs(expected.logits);
  std::printf("%s: %s bf16 compute, max |dlogit| / max |logit| = %.2e\n", fixture.c_str(),
              std::string(to_string(backend)).c_str(), diff);
  EXPECT_LE(diff, kBf16Tolerance);
  EXPECT_GT(diff, 1e-4F) << "bf16 compute gave fp32 logits: the bf16 path did not run";
}

}  // namespace swarm::model::test
