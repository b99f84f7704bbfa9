#pragma once
// Where a model's weights come from: seeded random (the default, any size) or a Hugging Face
// checkpoint directory (config.json + *.safetensors). Sources hand out single tensors, as fp32 or
// (matrices stored in bf16/f16) as their raw 16-bit words, so a rank reads only its own span.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "swarm/model/config.hpp"

namespace swarm::model {
namespace detail {
class SafetensorsFile;
struct TensorEntry;
}  // namespace detail

/// A tensor's Hugging Face name and its expected shape (row-major; Linear is [out, in]).
struct TensorSpec {
  std::string name;
  std::vector<std::int64_t> shape;

  [[nodiscard]] std::int64_t elements() const;
};

/// Tensors of decoder block `layer` ("model.layers.{layer}.…"), biases only when configured.
[[nodiscard]] std::vector<TensorSpec> block_tensor_specs(const ModelConfig& config, int layer);
/// "model.embed_tokens.weight", "model.norm.weight" and "lm_head.weight".
[[nodiscard]] std::vector<TensorSpec> client_tensor_specs(const ModelConfig& config);

/// Read-only access to a model's tensors. Implementations are safe to read from several threads.
class WeightSource {
 public:
  virtual ~WeightSource() = default;

  /// The model's configuration (validated).
  [[nodiscard]] virtual const ModelConfig& config() const = 0;
  /// Whether the tensor exists (used for optional tensors such as a tied lm_head).
  [[nodiscard]] virtual bool has_tensor(std::string_view name) const = 0;
  /// The tensor converted to fp32, row-major. Throws CheckpointError naming the source, the
  /// tensor, and expected vs found shape when it is missing, mis-shaped or of an unknown dtype.
  [[nodiscard]] virtual std::vector<float> read(const TensorSpec& spec) const = 0;
  /// One line for logs and messages, e.g. "checkpoint /data/llama" or "random weights (seed 7)".
  [[nodiscard]] virtual std::string describe() const = 0;
  /// The dtype the tensor is stored in (f32 when it does not exist).
  [[nodiscard]] virtual DType stored_dtype(std::string_view name) const = 0;
  /// The raw 16-bit words of a tensor stored in bf16 or f16 (see stored_dtype); read() gives the
  /// same values widened to fp32. Throws CheckpointError like read(), and for an f32 tensor.
  [[nodiscard]] virtual std::vector<std::uint16_t> read_16(const TensorSpec& spec) const = 0;
};

/// Deterministic random weights: tensor values depend only on (seed, tensor name), and the name
/// contains the block index, so every rank generates identical weights for block i whatever else
/// it loads. Linear weights and embeddings are uniform with std 1/sqrt(fan_in); norm weights are
/// 1 + uniform(-0.1, 0.1); biases uniform with std 0.02 (see docs/model.md). Matrices (2-D
/// tensors) are stored in config.weights_dtype, rounded to nearest even from those fp32 values.
class RandomWeights final : public WeightSource {
 public:
  /// Throws ConfigError when `config` is invalid.
  RandomWeights(ModelConfig config, std::uint64_t seed);

  [[nodiscard]] const ModelConfig& config() const override { return config_; }
  [[nodiscard]] bool has_tensor(std::string_view name) const override;
  [[nodiscard]] std::vector<float> read(const TensorSpec& spec) const override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] DType stored_dtype(std::string_view name) const override;
  [[nodiscard]] std::vector<std::uint16_t> read_16(const TensorSpec& spec) const override;
  [[nodiscard]] std::uint64_t seed() const { return seed_; }

 private:
  [[nodiscard]] std::vector<float> generate(const TensorSpec& spec) const;

 public:

 private:
  ModelConfig config_;
  std::uint64_t seed_;
};

/// A Hugging Face checkpoint directory: config.json plus *.safetensors (F32, F16 or BF16), or
/// the files listed by model.safetensors.index.json when present. Construction parses config.json
/// and every safetensors header (no tensor data); read() maps only the requested tensor's bytes.
class Checkpoint final : public WeightSource {
 public:
  /// Throws ConfigError for a bad config.json and CheckpointError for a missing directory, no
  /// safetensors files, a corrupt or truncated file (naming the file and tensor).
  explicit Checkpoint(const std::filesystem::path& directory);
  ~Checkpoint() override;
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;

  [[nodiscard]] const ModelConfig& config() const override { return config_; }
  [[nodiscard]] bool has_tensor(std::string_view name) const override;
  [[nodiscard]] std::vector<float> read(const TensorSpec& spec) const override;
  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] DType stored_dtype(std::string_view name) const override;
  [[nodiscard]] std::vector<std::uint16_t> read_16(const TensorSpec& spec) const override;
  [[nodiscard]] const std::filesystem::path& directory() const { return directory_; }

 private:
  struct Index;
  [[nodiscard]] const std::pair<const detail::SafetensorsFile*, const detail::TensorEntry*>* find(
      std::string_view name) const;
  // The entry of `spec`, its shape checked; throws CheckpointError when missing or mis-shaped.
  [[nodiscard]] const std::pair<const detail::SafetensorsFile*, const detail::TensorEntry*>& entry(
      const TensorSpec& spec) const;

  std::filesystem::path directory_;
  ModelConfig config_;
  std::unique_ptr<Index> index_;
};

/// Writes `source` as a Hugging Face checkpoint directory: config.json and one
/// model.safetensors (lm_head.weight omitted when tied and absent from the source), every tensor
/// in its stored dtype, or the 2-D ones (matrices, tables) in `matrices` when given (rounded to
/// nearest even, or widened exactly). For handing random models to other tools (e.g. the NumPy
/// reference) and converting checkpoints; holds all tensors in memory.
void save_checkpoint(const WeightSource& source, const std::filesystem::path& directory,
                     std::optional<DType> matrices = std::nullopt);

}  // namespace swarm::model
