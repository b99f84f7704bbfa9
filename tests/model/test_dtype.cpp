// Weights held in bf16/f16: the conversions, the 16-bit matrix products against
// fp32 sgemm on the widened weights, an executor and a checkpoint in bf16
// against the same values in fp32, and the memory a span then holds.
#include <cstring>

#include "block_weights.hpp"
#include "cpu_ops.hpp"
#include "model_test_util.hpp"
#include "safetensors.hpp"

namespace swarm::model::test {
namespace {

TEST(DType, SixteenBitValuesRoundTripExactly) {
  for (std::uint32_t b = 0; b <= 0xFFFF; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    const float bf = detail::bf16_to_f32(bits);
    if (!std::isnan(bf)) {
      EXPECT_EQ(detail::f32_to_bf16(bf), bits) << "bf16 " << b;
    }
    const float h = detail::f16_to_f32(bits);
    if (!std::isnan(h)) {
      EXPECT_EQ(detail::f32_to_f16(h), bits) << "f16 " << b;
    }
  }
}

TEST(DType, RoundsToNearestEven) {
  // bf16 keeps 8 significant bits: 1 + 2^-8 is halfway between 1 and 1 + 2^-7
  // (ties to even: 1).
  EXPECT_EQ(detail::f32_to_bf16(1.0F + 0x1p-8F), 0x3F80);
  EXPECT_EQ(detail::f32_to_bf16(1.0F + 0x1p-8F + 0x1p-20F),
            0x3F81);  // above halfway: up
  EXPECT_EQ(detail::f32_to_bf16(1.0F + 3 * 0x1p-8F),
            0x3F82);  // halfway, odd below: up to even
  EXPECT_TRUE(std::isnan(detail::bf16_to_f32(detail::f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(detail::f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  // f16: 11 significant bits, max 65504, subnormals below 2^-14.
  EXPECT_EQ(detail::f32_to_f16(1.0F + 0x1p-11F), 0x3C00);
  EXPECT_EQ(detail::f32_to_f16(1.0F + 3 * 0x1p-11F), 0x3C02);
  EXPECT_EQ(detail::f32_to_f16(65504.0F), 0x7BFF);
  EXPECT_EQ(detail::f32_to_f16(65520.0F), 0x7C00);   // rounds to infinity
  EXPECT_EQ(detail::f32_to_f16(-0x1p-24F), 0x8001);  // the smallest subnormal
  EXPECT_EQ(detail::f32_to_f16(0x1p-26F), 0x0000);   // below half of it: zero
  EXPECT_EQ(detail::f32_to_f16(0x1p-14F - 0x1p-25F),
            0x0400);  // rounds up into the normals
  EXPECT_TRUE(std::isnan(detail::f16_to_f32(detail::f32_to_f16(std::nanf("")))));
}

detail::Matrix random_matrix(DType dtype, int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0F, 1.0F);
  detail::Matrix m;
  m.dtype = dtype;
  for (int i = 0; i < rows * cols; ++i) {
    const float v = u(rng);
    m.bits.push_back(dtype == DType::bf16 ? detail::f32_to_bf16(v) : detail::f32_to_f16(v));
  }
  return m;
}

// Every shape class of the kernels: decode rows (1-8, each register tile),
// panel rows (> 8), inner sizes with and without a vector tail, output counts
// below, at and above a tile.
TEST(DType, SixteenBitProductsEqualTheFp32ProductOfTheWidenedWeights) {
  for (const bool portable : {false, true}) {
    detail::use_portable_gemm16(portable);
    for (const DType dtype : {DType::bf16, DType::f16}) {
      for (const int rows : {1, 2, 3, 4, 5, 7, 8, 9, 33}) {
        for (const int in : {16, 37, 200}) {
          for (const int out : {1, 5, 64, 130}) {
            const detail::Matrix w = random_matrix(dtype, out, in, static_cast<unsigned>(rows * 1000 + in + out));
            const std::vector<float> wide = w.to_f32();
            const auto x = random_hidden(rows, in, static_cast<unsigned>(rows + in));
            std::vector<float> bias(static_cast<std::size_t>(out));
            for (int j = 0; j < out; ++j) bias[static_cast<std::size_t>(j)] = 0.01F * static_cast<float>(j);
            std::vector<float> got(static_cast<std::size_t>(rows) * out, -7.0F), want(got.size());
            detail::linear(x.data(), rows, in, w, out, bias.data(), got.data());
            detail::linear(x.data(), rows, in, wide.data(), out, bias.data(), want.data());
            EXPECT_LE(max_abs_diff(got, want), 1e-5F * std::max(1.0F, max_abs(want)))
                << to_string(dtype) << (portable ? " portable" : " simd") << " rows " << rows << " in " << in << " out "
                << out;
          }
        }
      }
    }
  }
  detail::use_portable_gemm16(false);
}

// A source with another's values, held in fp32: the reference for the same
// weights.
class Widened final : public WeightSource {
 public:
  explicit Widened(const WeightSource& inner) : inner_(inner), config_(inner.config()) {
    config_.weights_dtype = DType::f32;
  }
  [[nodiscard]] const ModelConfig& config() const override { return config_; }
  [[nodiscard]] bool has_tensor(std::string_view name) const override { return inner_.has_tensor(name); }
  [[nodiscard]] std::vector<float> read(const TensorSpec& spec) const override { return inner_.read(spec); }
  [[nodiscard]] std::string describe() const override { return "widened " + inner_.describe(); }
  [[nodiscard]] DType stored_dtype(std::string_view) const override { return DType::f32; }
  [[nodiscard]] std::vector<std::uint16_t> read_16(const TensorSpec& spec) const override {
    throw CheckpointError(describe() + ": '" + spec.name + "' is f32");
  }

 private:
  const WeightSource& inner_;
  ModelConfig config_;
};

TEST(DType, ABf16SpanComputesWhatTheFp32SpanOfTheSameValuesDoesInHalfTheMemory) {
  for (const DType dtype : {DType::bf16, DType::f16}) {
    ModelConfig c = tiny_config();
    c.weights_dtype = dtype;
    const RandomWeights half(c, 5);
    const Widened full(half);
    auto a = make_executor(Backend::cpu);
    auto b = make_executor(Backend::cpu);
    a->load(half, {0, c.num_hidden_layers});
    b->load(full, {0, c.num_hidden_layers});
    for (const int tokens : {13, 1, 1, 4}) {  // a prefill (panel path), decode steps, an append
      auto x = random_hidden(2 * tokens, c.hidden_size, static_cast<unsigned>(tokens));
      auto y = x;
      a->forward(1, 0, c.num_hidden_layers, x.data(), 2, tokens);
      b->forward(1, 0, c.num_hidden_layers, y.data(), 2, tokens);
      EXPECT_LE(max_abs_diff(x, y), 1e-5F * max_abs(y)) << to_string(dtype) << " tokens " << tokens;
    }
    EXPECT_EQ(a->weight_bytes(), static_cast<std::size_t>(c.block_weight_bytes()) * c.num_hidden_layers);
    EXPECT_LE(static_cast<double>(a->weight_bytes()), 0.55 * static_cast<double>(b->weight_bytes()))
        << to_string(dtype);
  }
}

TEST(DType, ABf16CheckpointKeepsItsDtypeAndGeneratesTheFp32Tokens) {
  ModelConfig c = tiny_config();
  c.weights_dtype = DType::bf16;
  const RandomWeights random(c, 9);
  TempDir dir;
  save_checkpoint(random, dir.path());
  const Checkpoint checkpoint(dir.path());
  EXPECT_EQ(checkpoint.config().weights_dtype, DType::bf16);
  EXPECT_EQ(checkpoint.stored_dtype("model.layers.0.mlp.up_proj.weight"), DType::bf16);
  EXPECT_EQ(checkpoint.stored_dtype("model.layers.0.input_layernorm.weight"), DType::f32);
  const TensorSpec up{"model.layers.1.mlp.up_proj.weight", {c.intermediate_size, c.hidden_size}};
  EXPECT_EQ(checkpoint.read_16(up), random.read_16(up));
  EXPECT_EQ(checkpoint.read(up), random.read(up));
  const std::vector<std::int32_t> prompt{3, 1, 4, 1, 5, 9, 2, 6};
  GreedyOptions options;
  options.max_new_tokens = 6;
  options.keep_logits = true;
  const Generation half = generate_local(checkpoint, Backend::cpu, prompt, 1, options);
  const Generation full = generate_local(Widened(checkpoint), Backend::cpu, prompt, 1, options);
  EXPECT_EQ(half.tokens, full.tokens);
  EXPECT_LE(max_abs_diff(half.logits, full.logits), 1e-5F * max_abs(full.logits));
}

TEST(DType, TheClientHoldsItsTablesInTheirDtype) {
  ModelConfig c = tiny_config();
  c.weights_dtype = DType::bf16;
  const RandomWeights half(c, 3);
  const ClientModel a(half);
  const ClientModel b{Widened(half)};
  EXPECT_EQ(a.weight_bytes(), static_cast<std::size_t>(c.client_weight_bytes()));
  EXPECT_LE(static_cast<double>(a.weight_bytes()), 0.55 * static_cast<double>(b.weight_bytes()));
  const std::vector<std::int32_t> tokens{0, 5, 17, c.vocab_size - 1};
  EXPECT_EQ(a.embed(tokens), b.embed(tokens));  // widening is exact
  for (const int rows : {1, 3, 12}) {  // the direct kernel and the panels
    const auto x = random_hidden(rows, c.hidden_size, static_cast<unsigned>(rows));
    const auto la = a.logits(x, rows), lb = b.logits(x, rows);
    EXPECT_LE(max_abs_diff(la, lb), 1e-5F * max_abs(lb)) << rows;
  }
}

TEST(DType, AnF32TensorHasNoSixteenBitWords) {
  const RandomWeights random(tiny_config(), 1);
  const std::string message = message_of<CheckpointError>([&] {
    (void)random.read_16(
        {"model.layers.0.mlp.up_proj.weight", {tiny_config().intermediate_size, tiny_config().hidden_size}});
  });
  EXPECT_NE(message.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << message;
}

}  // namespace
}  // namespace swarm::model::test
