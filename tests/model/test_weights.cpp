// Weight sources: deterministic random weights, the safetensors reader (dtype conversion, index
// files) and the messages of bad checkpoints.
#include <cstring>

#include "model_test_util.hpp"
#include "safetensors.hpp"

namespace swarm::model::test {
namespace {

using detail::bf16_to_f32;
using detail::f16_to_f32;

// ---------------------------------------------------------------------------------------------
// RandomWeights

TEST(RandomWeights, DependOnlyOnSeedAndTensorName) {
  auto small = tiny_config();
  auto large = tiny_config();
  large.num_hidden_layers = 40;  // other blocks exist: must not change block 3
  const RandomWeights a(small, 11), b(large, 11), c(small, 12);
  for (const auto& spec : block_tensor_specs(small, 3)) {
    EXPECT_EQ(a.read(spec), b.read(spec)) << spec.name;
    EXPECT_NE(a.read(spec), c.read(spec)) << spec.name;
  }
  const auto specs0 = block_tensor_specs(small, 0);
  const auto specs1 = block_tensor_specs(small, 1);
  EXPECT_NE(a.read(specs0[1]), a.read(specs1[1]));  // blocks differ from each other
}

TEST(RandomWeights, ScaleKeepsActivationsOrderOne) {
  const RandomWeights w(tiny_config(), 1);
  const auto q = w.read({"model.layers.0.self_attn.q_proj.weight", {48, 48}});
  double sum2 = 0;
  for (const float v : q) sum2 += double{v} * v;
  EXPECT_NEAR(std::sqrt(sum2 / q.size()), 1.0 / std::sqrt(48.0), 0.1 / std::sqrt(48.0));
  const auto norm = w.read({"model.layers.0.input_layernorm.weight", {48}});
  for (const float v : norm) EXPECT_TRUE(v >= 0.9F && v <= 1.1F) << v;
}

TEST(RandomWeights, KnowTheirTensorsAndShapes) {
  auto config = tiny_config();
  config.tie_word_embeddings = true;
  const RandomWeights w(config, 1);
  EXPECT_TRUE(w.has_tensor("model.layers.4.mlp.down_proj.weight"));
  EXPECT_FALSE(w.has_tensor("model.layers.5.mlp.down_proj.weight"));
  EXPECT_FALSE(w.has_tensor("model.layers.0.self_attn.q_proj.bias"));
  EXPECT_FALSE(w.has_tensor("lm_head.weight"));  // tied
  EXPECT_TRUE(w.has_tensor("model.embed_tokens.weight"));
  const std::string message =
      message_of<CheckpointError>([&] { (void)w.read({"model.layers.0.mlp.up_proj.weight", {80, 47}}); });
  EXPECT_NE(message.find("[80, 48], expected [80, 47]"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversion

TEST(HalfConversion, F16SpecialValuesAndSubnormals) {
  EXPECT_EQ(f16_to_f32(0x0000), 0.0F);
  EXPECT_FALSE(std::signbit(f16_to_f32(0x0000)));
  EXPECT_EQ(f16_to_f32(0x8000), 0.0F);
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));  // negative zero survives
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0F, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x8001), -std::ldexp(1.0F, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0F, -24));  // largest subnormal
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0F, -14));     // smallest normal
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0F);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0F);
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125F);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0F);
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
}

TEST(HalfConversion, F16AllFiniteValuesMatchTheDefinition) {
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const std::uint32_t exponent = (bits >> 10) & 0x1F, mantissa = bits & 0x3FF;
    if (exponent == 0x1F) continue;
    const double magnitude = exponent == 0 ? std::ldexp(double(mantissa), -24)
                                           : std::ldexp(1.0 + mantissa / 1024.0, int(exponent) - 15);
    const double expected = (bits & 0x8000) ? -magnitude : magnitude;
    ASSERT_EQ(double(f16_to_f32(static_cast<std::uint16_t>(bits))), expected) << std::hex << bits;
  }
}

TEST(HalfConversion, Bf16IsTheUpperHalfOfF32) {
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0F);
  EXPECT_EQ(bf16_to_f32(0x4049), 3.140625F);
  EXPECT_TRUE(std::signbit(bf16_to_f32(0x8000)));
  EXPECT_EQ(bf16_to_f32(0x0001), std::ldexp(1.0F, -133));  // bf16 subnormal
  EXPECT_EQ(bf16_to_f32(0xFF80), -std::numeric_limits<float>::infinity());
  for (const float v : {0.15625F, -7.5F, 0x1p-70F, -0x1.8p100F}) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &v, 4);
    EXPECT_EQ(bf16_to_f32(static_cast<std::uint16_t>(bits >> 16)), v);  // exact in bf16
  }
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

std::vector<std::byte> u16_bytes(std::span<const std::uint16_t> values) {
  std::vector<std::byte> out(values.size() * 2);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

void write_config(const std::filesystem::path& dir, const ModelConfig& config) {
  std::ofstream(dir / "config.json") << config.to_hf_json();
}

TEST(Checkpoint, ConvertsF16AndBf16Tensors) {
  TempDir dir;
  auto config = tiny_config();
  config.hidden_size = 4;
  config.num_attention_heads = 2;
  config.num_key_value_heads = 2;
  config.head_dim = 2;
  write_config(dir.path(), config);
  const std::vector<std::uint16_t> f16 = {0x8000, 0x0001, 0x3C00, 0x7BFF};
  const std::vector<std::uint16_t> bf16 = {0x8000, 0x0001, 0x3F80, 0xC049};
  const std::vector<detail::RawTensor> tensors = {
      {"model.norm.weight", "F16", {4}, u16_bytes(f16)},
      {"model.layers.0.input_layernorm.weight", "BF16", {4}, u16_bytes(bf16)}};
  detail::write_safetensors(dir.path() / "model.safetensors", tensors);
  const Checkpoint checkpoint(dir.path());
  const auto a = checkpoint.read({"model.norm.weight", {4}});
  EXPECT_TRUE(a[0] == 0.0F && std::signbit(a[0]));
  EXPECT_EQ(a[1], std::ldexp(1.0F, -24));
  EXPECT_EQ(a[2], 1.0F);
  EXPECT_EQ(a[3], 65504.0F);
  const auto b = checkpoint.read({"model.layers.0.input_layernorm.weight", {4}});
  EXPECT_TRUE(b[0] == 0.0F && std::signbit(b[0]));
  EXPECT_EQ(b[1], std::ldexp(1.0F, -133));
  EXPECT_EQ(b[2], 1.0F);
  EXPECT_EQ(b[3], -3.140625F);
}

TEST(Checkpoint, ReadsShardedCheckpointThroughIndex) {
  const Checkpoint checkpoint(fixture_dir("tiny_bf16_sharded"));
  const auto& config = checkpoint.config();
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (const auto& spec : block_tensor_specs(config, layer)) EXPECT_TRUE(checkpoint.has_tensor(spec.name)) << spec.name;
  }
  for (const auto& spec : client_tensor_specs(config)) EXPECT_TRUE(checkpoint.has_tensor(spec.name)) << spec.name;
}

TEST(Checkpoint, SavedRandomWeightsReadBackExactly) {
  TempDir dir;
  const RandomWeights random(tiny_config(), 5);
  save_checkpoint(random, dir.path());
  const Checkpoint checkpoint(dir.path());
  EXPECT_EQ(checkpoint.config(), random.config());
  for (const auto& spec : block_tensor_specs(random.config(), 2)) EXPECT_EQ(checkpoint.read(spec), random.read(spec));
  const auto head = client_tensor_specs(random.config())[2];
  EXPECT_EQ(checkpoint.read(head), random.read(head));
}

// A saved tiny checkpoint with one tensor replaced, removed or corrupted, for error messages.
class BadCheckpoint : public ::testing::Test {
 protected:
  void write(const std::function<void(std::vector<detail::RawTensor>&)>& edit) {
    const RandomWeights random(tiny_config(), 5);
    write_config(dir_.path(), random.config());
    std::vector<detail::RawTensor> tensors;
    std::vector<TensorSpec> specs = client_tensor_specs(random.config());
    for (int layer = 0; layer < random.config().num_hidden_layers; ++layer) {
      for (auto& spec : block_tensor_specs(random.config(), layer)) specs.push_back(spec);
    }
    for (const auto& spec : specs) tensors.push_back({spec.name, "F32", spec.shape, detail::f32_bytes(random.read(spec))});
    edit(tensors);
    detail::write_safetensors(file(), tensors);
  }
  // Replaces the file by a hand-written header (8-byte little-endian length, JSON) and
  // `data_bytes` zero bytes of data, for headers the writer would never produce.
  void write_raw(const std::string& header, std::size_t data_bytes) const {
    std::string length(8, '\0');
    for (int i = 0; i < 8; ++i) length[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    std::ofstream(file(), std::ios::binary | std::ios::trunc) << length << header << std::string(data_bytes, '\0');
  }
  [[nodiscard]] std::filesystem::path file() const { return dir_.path() / "model.safetensors"; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }

 private:
  TempDir dir_;
};

constexpr const char* kUp1 = "model.layers.1.mlp.up_proj.weight";

void erase_tensor(std::vector<detail::RawTensor>& tensors, const std::string& name) {
  std::erase_if(tensors, [&](const auto& t) { return t.name == name; });
}

TEST_F(BadCheckpoint, MissingTensorNamesTensorDirectoryAndShape) {
  write([](auto& tensors) { erase_tensor(tensors, kUp1); });
  const Checkpoint checkpoint(dir());
  auto executor = make_executor(Backend::cpu);
  executor->load(checkpoint, {2, 5});  // a rank whose span lacks block 1 never reads it
  const std::string message = message_of<CheckpointError>([&] { executor->load(checkpoint, {0, 2}); });
  EXPECT_NE(message.find(dir().string()), std::string::npos) << message;
  EXPECT_NE(message.find(std::string("'") + kUp1 + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("[80, 48]"), std::string::npos) << message;
  EXPECT_NE(message.find("missing"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, WrongShapeNamesFileTensorExpectedAndFound) {
  write([](auto& tensors) {
    for (auto& t : tensors) {
      if (t.name == kUp1) {
        t.shape = {80, 47};
        t.data.resize(80 * 47 * 4);
      }
    }
  });
  const Checkpoint checkpoint(dir());
  auto executor = make_executor(Backend::cpu);
  const std::string message = message_of<CheckpointError>([&] { executor->load(checkpoint, {1, 2}); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find(kUp1), std::string::npos) << message;
  EXPECT_NE(message.find("has shape [80, 47], expected [80, 48]"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, TruncatedFileNamesFileAndTensor) {
  std::string last;
  write([&](auto& tensors) { last = tensors.back().name; });
  std::filesystem::resize_file(file(), std::filesystem::file_size(file()) - 100);
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("'" + last + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("truncated"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, TruncatedHeaderIsReported) {
  write([](auto&) {});
  std::filesystem::resize_file(file(), 64);
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("header length"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, HeaderWithAnOverflowingNumberIsReported) {
  write([](auto&) {});
  const std::string header = R"({"__metadata__": {"format": "pt"}, "x": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})";
  write_raw(header, 4);
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("not valid JSON"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, ShapeWhoseProductWrapsIsReported) {
  write([](auto& tensors) {
    for (auto& t : tensors) {
      if (t.name == "model.norm.weight") {
        t.shape = {std::int64_t{1} << 40, std::int64_t{1} << 40};  // 2^80 elements: 0 modulo 2^64
        t.data.clear();
      }
    }
  });
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find("'model.norm.weight'"), std::string::npos) << message;
  EXPECT_NE(message.find("more elements than the file has bytes"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, UnsupportedDtypeNamesIt) {
  write([](auto& tensors) {
    for (auto& t : tensors) {
      if (t.name == "model.norm.weight") t.dtype = "I32";
    }
  });
  const Checkpoint checkpoint(dir());
  const std::string message = message_of<CheckpointError>([&] { ClientModel client(checkpoint); });
  EXPECT_NE(message.find("'model.norm.weight' has dtype I32"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, MissingLmHeadWithoutTyingIsAnError) {
  write([](auto& tensors) { erase_tensor(tensors, "lm_head.weight"); });
  const Checkpoint checkpoint(dir());
  const std::string message = message_of<CheckpointError>([&] { ClientModel client(checkpoint); });
  EXPECT_NE(message.find("'lm_head.weight'"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, OverlappingDataOffsetsAreRefused) {
  write([](auto&) {});
  // Two tensors sharing bytes 4-7: the format gives every tensor its own.
  const std::string header = R"({"model.norm.weight": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                             R"( "lm_head.weight": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})";
  write_raw(header, 12);
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("'lm_head.weight'"), std::string::npos) << message;
  EXPECT_NE(message.find("'model.norm.weight'"), std::string::npos) << message;
  EXPECT_NE(message.find("overlap"), std::string::npos) << message;
}

TEST_F(BadCheckpoint, AnIndexEntryOutsideTheDirectoryIsRefused) {
  write([](auto&) {});
  for (const char* target : {"../../../../etc/passwd", "/etc/passwd", "sub/model.safetensors", ".."}) {
    std::ofstream(dir() / "model.safetensors.index.json", std::ios::trunc)
        << R"({"weight_map": {"model.norm.weight": ")" << target << R"("}})";
    const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
    EXPECT_NE(message.find("model.safetensors.index.json"), std::string::npos) << message;
    EXPECT_NE(message.find("'model.norm.weight'"), std::string::npos) << message;
    EXPECT_NE(message.find(std::string("'") + target + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("not a file name in the checkpoint directory"), std::string::npos) << message;
  }
}

TEST_F(BadCheckpoint, BlocksBeyondTheConfigAreRefused) {
  const int layers = tiny_config().num_hidden_layers;
  const std::string extra = "model.layers." + std::to_string(layers) + ".mlp.up_proj.weight";
  write([&](auto& tensors) { tensors.push_back({extra, "F32", {2}, std::vector<std::byte>(8)}); });
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find(file().string()), std::string::npos) << message;
  EXPECT_NE(message.find("'" + extra + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("num_hidden_layers = " + std::to_string(layers)), std::string::npos) << message;
}

TEST_F(BadCheckpoint, IndexListingAWrongFileIsReported) {
  write([](auto&) {});
  std::ofstream(dir() / "model.safetensors.index.json")
      << R"({"weight_map": {"model.norm.weight": "model.safetensors", "lm_head.weight": "other.safetensors"}})";
  const std::string message = message_of<CheckpointError>([&] { Checkpoint checkpoint(dir()); });
  EXPECT_NE(message.find("other.safetensors"), std::string::npos) << message;
}

TEST(Checkpoint, AcceptsTensorNamesWithoutTheModelPrefix) {
  TempDir dir;
  const RandomWeights random(tiny_config(), 8);
  std::ofstream(dir.path() / "config.json") << random.config().to_hf_json();
  const TensorSpec norm{"model.norm.weight", {48}};
  const std::vector<detail::RawTensor> tensors = {{"norm.weight", "F32", {48}, detail::f32_bytes(random.read(norm))}};
  detail::write_safetensors(dir.path() / "model.safetensors", tensors);
  const Checkpoint checkpoint(dir.path());
  EXPECT_TRUE(checkpoint.has_tensor("model.norm.weight"));
  EXPECT_EQ(checkpoint.read(norm), random.read(norm));
}

TEST(Checkpoint, MissingDirectoryOrFilesAreReported) {
  EXPECT_NE(message_of<CheckpointError>([] { Checkpoint c("/nonexistent/model"); }).find("/nonexistent/model"),
            std::string::npos);
  TempDir dir;
  std::ofstream(dir.path() / "config.json") << tiny_config().to_hf_json();
  const std::string message = message_of<CheckpointError>([&] { Checkpoint c(dir.path()); });
  EXPECT_NE(message.find("no *.safetensors"), std::string::npos) << message;
}

TEST(ClientModel, TiedEmbeddingsServeAsLmHead) {
  const Checkpoint checkpoint(fixture_dir("tiny_f32_tied"));
  ASSERT_FALSE(checkpoint.has_tensor("lm_head.weight"));
  const ClientModel client(checkpoint);
  const auto& c = client.config();
  EXPECT_EQ(client.weight_bytes(), static_cast<std::size_t>(c.client_weight_bytes()));
  const auto hidden = client.embed(std::vector<std::int32_t>{5});
  const auto embed = checkpoint.read({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}});
  ASSERT_EQ(hidden.size(), static_cast<std::size_t>(c.hidden_size));
  EXPECT_TRUE(std::equal(hidden.begin(), hidden.end(), embed.begin() + 5 * c.hidden_size));
  // logits[v] = (rmsnorm(h) * norm) . embed[v], computed here in double.
  const auto norm = checkpoint.read({"model.norm.weight", {c.hidden_size}});
  double mean2 = 0;
  for (const float v : hidden) mean2 += double{v} * v / c.hidden_size;
  const auto logits = client.logits(hidden, 1);
  ASSERT_EQ(logits.size(), static_cast<std::size_t>(c.vocab_size));
  for (int v = 0; v < c.vocab_size; ++v) {
    double dot = 0;
    for (int i = 0; i < c.hidden_size; ++i) {
      dot += hidden[i] / std::sqrt(mean2 + c.rms_norm_eps) * norm[i] * embed[std::size_t(v) * c.hidden_size + i];
    }
    EXPECT_NEAR(logits[v], dot, 1e-5 * (1 + std::abs(dot))) << v;
  }
  EXPECT_FALSE(message_of<UsageError>([&] { (void)client.embed(std::vector<std::int32_t>{c.vocab_size}); }).empty());
}

// The head on a GPU is asked for where there is none: one clear message, and the host head goes
// on as before.
TEST(ClientModel, AHeadOnAMissingGpuIsRefusedAndTheHostHeadStays) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is here: test_model_cuda checks the GPU head";
  const Checkpoint checkpoint(fixture_dir("tiny_f32_tied"));
  ClientModel client(checkpoint);
  const auto hidden = client.embed(std::vector<std::int32_t>{5, 7});
  const auto before = client.logits(hidden, 2);
  const std::string message = message_of<UsageError>([&] { client.run_head_on(Backend::cuda); });
  EXPECT_NE(message.find("cuda"), std::string::npos) << message;
  EXPECT_EQ(client.head_backend(), Backend::cpu);
  EXPECT_EQ(client.logits(hidden, 2), before);
}

}  // namespace
}  // namespace swarm::model::test
