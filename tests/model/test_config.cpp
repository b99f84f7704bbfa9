// ModelConfig: Hugging Face config.json parsing (4.x and 5.x layouts), validation messages and
// the accounting helpers used for memory and FLOP/s reports.
#include "model_test_util.hpp"

namespace swarm::model::test {
namespace {

const char* kMinimal = R"({"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
                          "num_hidden_layers": 3, "num_attention_heads": 8})";

TEST(ModelConfig, ReadsTransformers5FixtureWithRopeParameters) {
  const auto c = ModelConfig::from_hf_json(fixture_dir("tiny_bf16_sharded") / "config.json");
  EXPECT_EQ(c.vocab_size, 128);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_hidden_layers, 6);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.num_key_value_heads, 1);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);  // from rope_parameters
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_FALSE(c.tie_word_embeddings);
}

TEST(ModelConfig, ReadsExplicitHeadDimAndBiases) {
  const auto c = ModelConfig::from_hf_json(fixture_dir("tiny_f16_headdim_bias") / "config.json");
  EXPECT_EQ(c.head_dim, 32);
  EXPECT_EQ(c.q_dim(), 128);
  EXPECT_EQ(c.kv_dim(), 64);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_TRUE(c.mlp_bias);
  EXPECT_TRUE(ModelConfig::from_hf_json(fixture_dir("tiny_f32_tied") / "config.json").tie_word_embeddings);
}

TEST(ModelConfig, AppliesLlamaDefaults) {
  const auto c = ModelConfig::parse_hf_json(kMinimal, "inline");
  EXPECT_EQ(c.num_key_value_heads, 8);  // = heads
  EXPECT_EQ(c.head_dim, 8);             // hidden / heads
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.family, Family::llama);
  EXPECT_EQ(c.weights_dtype, DType::f32);
}

TEST(ModelConfig, AcceptsTransformers4RopeKeys) {
  const auto c = ModelConfig::parse_hf_json(
      R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "num_key_value_heads": null, "head_dim": null,
          "rope_theta": 123.0, "rope_scaling": null, "model_type": "llama", "hidden_act": "silu"})",
      "v4");
  EXPECT_DOUBLE_EQ(c.rope_theta, 123.0);
  EXPECT_EQ(c.num_key_value_heads, 2);
  const auto d = ModelConfig::parse_hf_json(
      R"({"vocab_size": 10, "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "rope_scaling": {"rope_type": "default"}})",
      "default-type");
  EXPECT_DOUBLE_EQ(d.rope_theta, 10000.0);
}

TEST(ModelConfig, RoundTripsThroughHfJson) {
  auto c = tiny_config();
  c.qkv_bias = c.o_bias = true;
  c.tie_word_embeddings = true;
  c.rope_theta = 500000.0;
  EXPECT_EQ(ModelConfig::parse_hf_json(c.to_hf_json(), "round trip"), c);
  c.rope_scaling = {true, 32.0, 1.0, 4.0, 8192};
  c.weights_dtype = DType::bf16;
  EXPECT_EQ(ModelConfig::parse_hf_json(c.to_hf_json(), "round trip llama3"), c);
  ModelConfig q = tiny_config();
  q.family = Family::qwen2;
  q.qkv_bias = true;
  EXPECT_EQ(ModelConfig::parse_hf_json(q.to_hf_json(), "round trip qwen2"), q);
  ModelConfig m = tiny_config();
  m.family = Family::mistral;
  m.sliding_window = 4096;
  EXPECT_EQ(ModelConfig::parse_hf_json(m.to_hf_json(), "round trip mistral"), m);
}

struct BadConfig {
  const char* json;
  std::vector<std::string> message_parts;
};

class ModelConfigErrors : public ::testing::TestWithParam<BadConfig> {};

TEST_P(ModelConfigErrors, NameFileKeyAndValue) {
  TempDir dir;
  const auto path = dir.path() / "config.json";
  std::ofstream(path) << GetParam().json;
  const std::string message = message_of<ConfigError>([&] { (void)ModelConfig::from_hf_json(path); });
  ASSERT_FALSE(message.empty()) << "no ConfigError for " << GetParam().json;
  EXPECT_NE(message.find(path.string()), std::string::npos) << message;
  for (const auto& part : GetParam().message_parts) EXPECT_NE(message.find(part), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Messages, ModelConfigErrors,
    ::testing::Values(
        BadConfig{R"({"hidden_size": 64})", {"required key 'vocab_size' is missing"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": "64", "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 1})",
                  {"'hidden_size'", "\"64\"", "positive integer"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1000000000,
                      "num_attention_heads": 8})",
                  {"'num_hidden_layers' = 1000000000", "more than 100000"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "num_key_value_heads": 3})",
                  {"'num_key_value_heads' = 3", "divide", "num_attention_heads = 8"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})",
                  {"'rope_scaling.low_freq_factor' is missing", "llama3"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                      "low_freq_factor": 4.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}})",
                  {"'rope_scaling.high_freq_factor' = 1.0", "low_freq_factor = 4.0"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "rope_scaling": {"rope_type": "linear", "factor": 2.0}})",
                  {"'rope_scaling'", "\"linear\"", "\"llama3\""}},
        BadConfig{R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 1,
                      "num_hidden_layers": 1, "num_attention_heads": 8, "use_sliding_window": true})",
                  {"'use_sliding_window' = true", "full attention"}},
        BadConfig{R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 1,
                      "num_hidden_layers": 2, "num_attention_heads": 8,
                      "layer_types": ["full_attention", "sliding_attention"]})",
                  {"'layer_types[1]' = \"sliding_attention\""}},
        BadConfig{R"({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 1,
                      "num_hidden_layers": 1, "num_attention_heads": 8, "attention_bias": false})",
                  {"'attention_bias' = false", "not a Qwen2 key"}},
        BadConfig{R"({"model_type": "mistral", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 1,
                      "num_hidden_layers": 1, "num_attention_heads": 8, "sliding_window": -4})",
                  {"'sliding_window' = -4", "positive integer"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "sliding_window": 4096})",
                  {"'sliding_window' = 4096", "not a Llama key"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}})",
                  {"'rope_parameters'", "\"yarn\""}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "hidden_act": "gelu"})",
                  {"'hidden_act'", "\"gelu\"", "silu"}},
        BadConfig{R"({"model_type": "gpt2"})", {"'model_type'", "\"gpt2\"", "\"qwen2\""}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 60, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8})",
                  {"hidden_size = 60", "num_attention_heads = 8"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "rms_norm_eps": -1})",
                  {"'rms_norm_eps' = -1"}},
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
                      "num_attention_heads": 8, "tie_word_embeddings": 1})",
                  {"'tie_word_embeddings' = 1", "true or false"}},
        BadConfig{R"({"vocab_size": 10, )", {"not valid JSON"}},
        // A number the parser cannot hold is its own exception type, not a parse error.
        BadConfig{R"({"vocab_size": 10, "hidden_size": 64, "rms_norm_eps": 1e999})", {"not valid JSON", "1e999"}}));

// eos_token_id: an integer, a list, or null/absent; a checkpoint's generation_config.json wins
// (as in transformers' generate()); a bad one names the file and the key.
TEST(ModelConfig, ReadsTheEndOfSequenceTokens) {
  EXPECT_EQ(ModelConfig::from_hf_json(fixture_dir("tiny_f32_tied") / "config.json").eos_token_ids,
            std::vector<std::int32_t>{2});
  const std::string base = R"({"vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
                              "num_hidden_layers": 3, "num_attention_heads": 8, "eos_token_id": )";
  EXPECT_EQ(ModelConfig::parse_hf_json(base + "[7, 9]}", "c").eos_token_ids, (std::vector<std::int32_t>{7, 9}));
  EXPECT_TRUE(ModelConfig::parse_hf_json(base + "null}", "c").eos_token_ids.empty());
  EXPECT_TRUE(ModelConfig::parse_hf_json(kMinimal, "c").eos_token_ids.empty());
  for (const char* bad : {"\"2\"}", "[1, -1]}", "100}"}) {
    const std::string message = message_of<ConfigError>([&] { (void)ModelConfig::parse_hf_json(base + bad, "cfg.json"); });
    EXPECT_NE(message.find("cfg.json"), std::string::npos) << message;
    EXPECT_NE(message.find("eos_token_id"), std::string::npos) << message;
  }
  ModelConfig c = ModelConfig::parse_hf_json(base + "3}", "c");
  c.read_eos(R"({"eos_token_id": [4, 5], "do_sample": false})", "generation_config.json");
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{4, 5}));
  c.read_eos(R"({"do_sample": false})", "generation_config.json");
  EXPECT_EQ(c.eos_token_ids, (std::vector<std::int32_t>{4, 5})) << "absent: kept";
  EXPECT_EQ(ModelConfig::parse_hf_json(c.to_hf_json(), "round trip").eos_token_ids, c.eos_token_ids);
}

TEST(ModelConfig, MissingFileNamesIt) {
  const std::string message = message_of<ConfigError>([] { (void)ModelConfig::from_hf_json("/nonexistent/config.json"); });
  EXPECT_NE(message.find("/nonexistent/config.json"), std::string::npos) << message;
}

TEST(ModelConfig, ParameterCountsMatchTensorSpecs) {
  for (const auto& name : fixture_names()) {
    const auto c = ModelConfig::from_hf_json(fixture_dir(name) / "config.json");
    std::int64_t block = 0, bytes = 0;
    for (const auto& spec : block_tensor_specs(c, 0)) {
      block += spec.elements();
      bytes += spec.elements() * (spec.shape.size() == 2 ? dtype_bytes(c.weights_dtype) : 4);  // matrices in dtype
    }
    EXPECT_EQ(c.block_parameters(), block) << name;
    EXPECT_EQ(c.block_weight_bytes(), bytes) << name;
    const std::int64_t table = std::int64_t{c.vocab_size} * c.hidden_size;
    EXPECT_EQ(c.client_parameters(), table + c.hidden_size + (c.tie_word_embeddings ? 0 : table)) << name;
    EXPECT_EQ(c.kv_bytes_per_token(), 8 * c.kv_dim()) << name;
  }
}

TEST(ModelConfig, BlockFlopsCountProjectionsAndCausalAttention) {
  const auto c = tiny_config();  // h 48, q 48, kv 16, i 80
  const double matmul = 48.0 * 48 * 2 + 2 * 48.0 * 16 + 3 * 48.0 * 80;
  EXPECT_DOUBLE_EQ(c.block_flops(1, 0), 2 * matmul + 4 * 48.0 * 1);
  EXPECT_DOUBLE_EQ(c.block_flops(1, 99), 2 * matmul + 4 * 48.0 * 100);
  // Prefill of 4 tokens sees 1 + 2 + 3 + 4 keys.
  EXPECT_DOUBLE_EQ(c.block_flops(4, 0), 4 * 2 * matmul + 4 * 48.0 * 10);
}

}  // namespace
}  // namespace swarm::model::test
