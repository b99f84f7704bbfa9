// Tensor naming, seeded random weights and Hugging Face safetensors checkpoints.
#include "swarm/model/weights.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "block_weights.hpp"
#include "safetensors.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/util/random.hpp"

namespace swarm::model {

std::int64_t TensorSpec::elements() const {
  std::int64_t n = 1;
  for (const auto dim : shape) n *= dim;
  return n;
}

namespace {

std::string layer_prefix(int layer) { return "model.layers." + std::to_string(layer) + "."; }

// Every member of BlockWeights with its name suffix: the seven projection matrices (held in
// their stored dtype) and the vectors (norms, biases: fp32; a bias absent from the config has
// no shape and is skipped).
struct MatrixField {
  const char* suffix;
  detail::Matrix detail::BlockWeights::*member;
};
constexpr MatrixField kMatrixFields[] = {
    {"self_attn.q_proj.weight", &detail::BlockWeights::q},   {"self_attn.k_proj.weight", &detail::BlockWeights::k},
    {"self_attn.v_proj.weight", &detail::BlockWeights::v},   {"self_attn.o_proj.weight", &detail::BlockWeights::o},
    {"mlp.gate_proj.weight", &detail::BlockWeights::gate},   {"mlp.up_proj.weight", &detail::BlockWeights::up},
    {"mlp.down_proj.weight", &detail::BlockWeights::down},
};
struct VectorField {
  const char* suffix;
  std::vector<float> detail::BlockWeights::*member;
};
constexpr VectorField kVectorFields[] = {
    {"input_layernorm.weight", &detail::BlockWeights::input_norm},
    {"post_attention_layernorm.weight", &detail::BlockWeights::post_norm},
    {"self_attn.q_proj.bias", &detail::BlockWeights::q_bias},
    {"self_attn.k_proj.bias", &detail::BlockWeights::k_bias},
    {"self_attn.v_proj.bias", &detail::BlockWeights::v_bias},
    {"self_attn.o_proj.bias", &detail::BlockWeights::o_bias},
    {"mlp.gate_proj.bias", &detail::BlockWeights::gate_bias},
    {"mlp.up_proj.bias", &detail::BlockWeights::up_bias},
    {"mlp.down_proj.bias", &detail::BlockWeights::down_bias},
};

// Shape of a block tensor by suffix; empty when the config has no such tensor (unused bias).
std::vector<std::int64_t> block_shape(const ModelConfig& c, std::string_view suffix) {
  const std::int64_t h = c.hidden_size, i = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  const bool qkv_bias = c.qkv_bias, o_bias = c.o_bias, mlp_bias = c.mlp_bias;
  if (suffix == "input_layernorm.weight" || suffix == "post_attention_layernorm.weight") return {h};
  if (suffix == "self_attn.q_proj.weight") return {q, h};
  if (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight") return {kv, h};
  if (suffix == "self_attn.o_proj.weight") return {h, q};
  if (suffix == "mlp.gate_proj.weight" || suffix == "mlp.up_proj.weight") return {i, h};
  if (suffix == "mlp.down_proj.weight") return {h, i};
  if (suffix == "self_attn.q_proj.bias" && qkv_bias) return {q};
  if ((suffix == "self_attn.k_proj.bias" || suffix == "self_attn.v_proj.bias") && qkv_bias) return {kv};
  if (suffix == "self_attn.o_proj.bias" && o_bias) return {h};
  if ((suffix == "mlp.gate_proj.bias" || suffix == "mlp.up_proj.bias") && mlp_bias) return {i};
  if (suffix == "mlp.down_proj.bias" && mlp_bias) return {h};
  return {};
}

// The expected spec of `name` under `config`, if it names a tensor of the model.
std::optional<TensorSpec> expected_spec(const ModelConfig& config, std::string_view name) {
  for (auto& spec : client_tensor_specs(config)) {
    if (spec.name == name) return spec;
  }
  constexpr std::string_view kLayers = "model.layers.";
  if (!name.starts_with(kLayers)) return std::nullopt;
  const auto dot = name.find('.', kLayers.size());
  if (dot == std::string_view::npos) return std::nullopt;
  int layer = 0;
  for (const char ch : name.substr(kLayers.size(), dot - kLayers.size())) {
    if (ch < '0' || ch > '9' || layer > 100'000'000) return std::nullopt;
    layer = layer * 10 + (ch - '0');
  }
  if (layer >= config.num_hidden_layers || layer_prefix(layer).size() != dot + 1) return std::nullopt;
  auto shape = block_shape(config, name.substr(dot + 1));
  if (shape.empty()) return std::nullopt;
  return TensorSpec{std::string(name), std::move(shape)};
}

// Counter-based generator: value i of a tensor is a hash of (tensor key, i), so tensors can be
// generated in any order or in part and still agree bit for bit.
float uniform_pm1(std::uint64_t key, std::uint64_t i) {
  std::uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<float>(static_cast<double>(z >> 40) * 0x1.0p-23 - 1.0);  // 24 bits in [-1, 1)
}

}  // namespace

std::vector<TensorSpec> block_tensor_specs(const ModelConfig& config, int layer) {
  std::vector<TensorSpec> specs;
  const auto add = [&](const char* suffix) {
    auto shape = block_shape(config, suffix);
    if (!shape.empty()) specs.push_back({layer_prefix(layer) + suffix, std::move(shape)});
  };
  add("input_layernorm.weight");
  for (const auto& field : kMatrixFields) add(field.suffix);
  for (const auto& field : kVectorFields) {
    if (std::string_view(field.suffix) != "input_layernorm.weight") add(field.suffix);
  }
  return specs;
}

std::vector<TensorSpec> client_tensor_specs(const ModelConfig& config) {
  const std::int64_t v = config.vocab_size, h = config.hidden_size;
  return {{"model.embed_tokens.weight", {v, h}}, {"model.norm.weight", {h}}, {"lm_head.weight", {v, h}}};
}

detail::Matrix detail::read_matrix(const WeightSource& source, const TensorSpec& spec) {
  Matrix m;
  m.dtype = source.stored_dtype(spec.name);
  if (m.dtype == DType::f32) {
    m.f32 = source.read(spec);
  } else {
    m.bits = source.read_16(spec);
  }
  return m;
}

std::size_t detail::BlockWeights::bytes() const {
  std::size_t n = 0;
  for (const auto& field : kMatrixFields) n += (this->*field.member).bytes();
  for (const auto& field : kVectorFields) n += (this->*field.member).size() * sizeof(float);
  return n;
}

detail::BlockWeights detail::load_block(const WeightSource& source, int layer) {
  BlockWeights weights;
  const ModelConfig& config = source.config();
  for (const auto& field : kMatrixFields) {
    weights.*field.member = read_matrix(source, {layer_prefix(layer) + field.suffix, block_shape(config, field.suffix)});
  }
  for (const auto& field : kVectorFields) {
    auto shape = block_shape(config, field.suffix);
    if (!shape.empty()) weights.*field.member = source.read({layer_prefix(layer) + field.suffix, std::move(shape)});
  }
  return weights;
}

// ---------------------------------------------------------------------------------------------
// RandomWeights

RandomWeights::RandomWeights(ModelConfig config, std::uint64_t seed) : config_(std::move(config)), seed_(seed) {
  config_.validate("random weights config");
}

bool RandomWeights::has_tensor(std::string_view name) const {
  if (name == "lm_head.weight" && config_.tie_word_embeddings) return false;
  return expected_spec(config_, name).has_value();
}

std::vector<float> RandomWeights::generate(const TensorSpec& spec) const {
  const auto expected = has_tensor(spec.name) ? expected_spec(config_, spec.name) : std::nullopt;
  if (!expected) throw CheckpointError(describe() + ": no tensor '" + spec.name + "' in this model");
  if (expected->shape != spec.shape) {
    throw CheckpointError(describe() + ": tensor '" + spec.name + "' has shape " +
                          detail::shape_string(expected->shape) + ", expected " + detail::shape_string(spec.shape));
  }
  const std::uint64_t key = derive_seed(seed_, spec.name);
  const bool is_norm = spec.name.ends_with("norm.weight");
  // Uniform(-a, a) has std a/sqrt(3): std 1/sqrt(fan_in) keeps activations O(1) through the
  // residual stream; norms near 1 and small biases exercise those tensors without dominating.
  const double std_dev = spec.shape.size() == 2 ? 1.0 / std::sqrt(static_cast<double>(spec.shape[1])) : 0.02;
  const auto half_width = static_cast<float>(is_norm ? 0.1 : std_dev * std::sqrt(3.0));
  std::vector<float> values(static_cast<std::size_t>(spec.elements()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    const float u = uniform_pm1(key, i) * half_width;
    values[i] = is_norm ? 1.0F + u : u;
  }
  return values;
}

DType RandomWeights::stored_dtype(std::string_view name) const {
  const auto spec = has_tensor(name) ? expected_spec(config_, name) : std::nullopt;
  return spec && spec->shape.size() == 2 ? config_.weights_dtype : DType::f32;
}

std::vector<std::uint16_t> RandomWeights::read_16(const TensorSpec& spec) const {
  const DType dtype = stored_dtype(spec.name);
  const std::vector<float> values = generate(spec);
  if (dtype == DType::f32) throw CheckpointError(describe() + ": tensor '" + spec.name + "' is f32, not 16-bit");
  std::vector<std::uint16_t> bits(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    bits[i] = dtype == DType::bf16 ? detail::f32_to_bf16(values[i]) : detail::f32_to_f16(values[i]);
  }
  return bits;
}

std::vector<float> RandomWeights::read(const TensorSpec& spec) const {
  const DType dtype = stored_dtype(spec.name);
  if (dtype == DType::f32) return generate(spec);
  const std::vector<std::uint16_t> bits = read_16(spec);
  std::vector<float> values(bits.size());
  for (std::size_t i = 0; i < bits.size(); ++i) {
    values[i] = dtype == DType::bf16 ? detail::bf16_to_f32(bits[i]) : detail::f16_to_f32(bits[i]);
  }
  return values;
}

std::string RandomWeights::describe() const { return "random weights (seed " + std::to_string(seed_) + ")"; }

// ---------------------------------------------------------------------------------------------
// Checkpoint

struct Checkpoint::Index {
  std::vector<std::unique_ptr<detail::SafetensorsFile>> files;
  std::unordered_map<std::string, std::pair<const detail::SafetensorsFile*, const detail::TensorEntry*>> tensors;
};

namespace {

// Files named by model.safetensors.index.json ("weight_map": name -> file), or every
// *.safetensors in the directory, sorted for reproducible messages.
std::vector<std::filesystem::path> checkpoint_files(const std::filesystem::path& dir,
                                                    std::unordered_map<std::string, std::string>& weight_map) {
  std::vector<std::filesystem::path> files;
  const auto index_path = dir / "model.safetensors.index.json";
  if (std::filesystem::exists(index_path)) {
    std::ifstream in(index_path);
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw CheckpointError(index_path.string() + ": not valid JSON: " + e.what());
    }
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      throw CheckpointError(index_path.string() + ": no \"weight_map\" object");
    }
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) throw CheckpointError(index_path.string() + ": weight_map entry '" + name + "' is not a file name");
      // A shard is a file of the checkpoint directory itself: a path could read any file.
      const std::string f = file.get<std::string>();
      if (f.empty() || f == "." || f == ".." || f.find('/') != std::string::npos || f.find('\\') != std::string::npos ||
          f.find('\0') != std::string::npos) {
        throw CheckpointError(index_path.string() + ": weight_map entry '" + name + "' names '" + f +
                              "', which is not a file name in the checkpoint directory");
      }
      weight_map.emplace(name, f);
      const auto path = dir / file.get<std::string>();
      if (std::find(files.begin(), files.end(), path) == files.end()) files.push_back(path);
    }
  } else {
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
      if (entry.path().extension() == ".safetensors") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw CheckpointError(dir.string() + ": no *.safetensors files in the checkpoint directory");
  return files;
}

}  // namespace

Checkpoint::Checkpoint(const std::filesystem::path& directory)
    : directory_(directory), index_(std::make_unique<Index>()) {
  if (!std::filesystem::is_directory(directory_)) {
    throw CheckpointError(directory_.string() + ": checkpoint directory does not exist");
  }
  config_ = ModelConfig::from_hf_json(directory_ / "config.json");
  // transformers' generate() stops at generation_config.json's eos_token_id when the file exists.
  if (const auto generation = directory_ / "generation_config.json"; std::filesystem::exists(generation)) {
    std::ifstream in(generation, std::ios::binary);
    if (!in) throw CheckpointError(generation.string() + ": cannot open");
    std::ostringstream text;
    text << in.rdbuf();
    config_.read_eos(text.str(), generation.string());
    config_.validate(generation.string());
  }
  std::unordered_map<std::string, std::string> weight_map;
  for (const auto& path : checkpoint_files(directory_, weight_map)) {
    if (!std::filesystem::exists(path)) throw CheckpointError(path.string() + ": listed in model.safetensors.index.json but missing");
    index_->files.push_back(std::make_unique<detail::SafetensorsFile>(path));
    const auto& file = *index_->files.back();
    for (const auto& [name, entry] : file.tensors()) {
      const auto [it, fresh] = index_->tensors.emplace(name, std::pair{&file, &entry});
      if (!fresh) {
        throw CheckpointError(path.string() + ": tensor '" + name + "' also appears in " + it->second.first->path().string());
      }
    }
  }
  for (const auto& [name, file] : weight_map) {
    const auto it = index_->tensors.find(name);
    if (it == index_->tensors.end() || it->second.first->path().filename() != file) {
      throw CheckpointError((directory_ / file).string() + ": tensor '" + name +
                            "' is listed there by model.safetensors.index.json but not found in that file");
    }
  }
  // Blocks beyond num_hidden_layers mean config.json and the weights disagree on the model.
  for (const auto& [name, where] : index_->tensors) {
    std::string_view n = name;
    if (n.starts_with("model.")) n.remove_prefix(6);
    if (!n.starts_with("layers.")) continue;
    n.remove_prefix(7);
    long long layer = 0;
    std::size_t digits = 0;
    while (digits < n.size() && digits < 12 && n[digits] >= '0' && n[digits] <= '9') layer = layer * 10 + (n[digits++] - '0');
    if (digits > 0 && layer >= config_.num_hidden_layers) {
      throw CheckpointError(where.first->path().string() + ": tensor '" + name + "' is of block " + std::to_string(layer) +
                            " but config.json has num_hidden_layers = " + std::to_string(config_.num_hidden_layers));
    }
  }
  // Memory checks count the matrices in the dtype they will be held in: the stored one.
  config_.weights_dtype = stored_dtype(layer_prefix(0) + "self_attn.q_proj.weight");
}

Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;

// Exact name first; then, like transformers' base_model_prefix handling, without "model."
// (checkpoints saved from a bare LlamaModel name their tensors "layers.0....", "embed_tokens...").
const std::pair<const detail::SafetensorsFile*, const detail::TensorEntry*>* Checkpoint::find(std::string_view name) const {
  auto it = index_->tensors.find(std::string(name));
  if (it == index_->tensors.end() && name.starts_with("model.")) it = index_->tensors.find(std::string(name.substr(6)));
  return it == index_->tensors.end() ? nullptr : &it->second;
}

bool Checkpoint::has_tensor(std::string_view name) const { return find(name) != nullptr; }

const std::pair<const detail::SafetensorsFile*, const detail::TensorEntry*>& Checkpoint::entry(
    const TensorSpec& spec) const {
  const auto* found = find(spec.name);
  if (found == nullptr) {
    std::string files;
    for (const auto& file : index_->files) files += (files.empty() ? "" : ", ") + file->path().filename().string();
    throw CheckpointError(describe() + ": tensor '" + spec.name + "' (expected shape " + detail::shape_string(spec.shape) +
                          ") is missing; searched " + files);
  }
  const auto& [file, entry] = *found;
  if (entry->shape != spec.shape) {
    throw CheckpointError(file->path().string() + ": tensor '" + spec.name + "' has shape " +
                          detail::shape_string(entry->shape) + ", expected " + detail::shape_string(spec.shape) +
                          " from config.json");
  }
  return *found;
}

std::vector<float> Checkpoint::read(const TensorSpec& spec) const {
  const auto& [file, entry] = this->entry(spec);
  std::vector<float> values(static_cast<std::size_t>(spec.elements()));
  file->read_f32(spec.name, *entry, values);
  return values;
}

DType Checkpoint::stored_dtype(std::string_view name) const {
  const auto* found = find(name);
  if (found == nullptr) return DType::f32;
  const std::string& dtype = found->second->dtype;
  return dtype == "BF16" ? DType::bf16 : dtype == "F16" ? DType::f16 : DType::f32;
}

std::vector<std::uint16_t> Checkpoint::read_16(const TensorSpec& spec) const {
  const auto& [file, entry] = this->entry(spec);
  std::vector<std::uint16_t> bits(static_cast<std::size_t>(spec.elements()));
  file->read_16(spec.name, *entry, bits);
  return bits;
}

std::string Checkpoint::describe() const { return "checkpoint " + directory_.string(); }

void save_checkpoint(const WeightSource& source, const std::filesystem::path& directory,
                     std::optional<DType> matrices) {
  ModelConfig config = source.config();
  if (matrices) config.weights_dtype = *matrices;
  std::filesystem::create_directories(directory);
  std::vector<TensorSpec> specs = client_tensor_specs(config);
  for (int layer = 0; layer < config.num_hidden_layers; ++layer) {
    for (auto& spec : block_tensor_specs(config, layer)) specs.push_back(std::move(spec));
  }
  std::vector<detail::RawTensor> tensors;
  for (const auto& spec : specs) {
    if (!source.has_tensor(spec.name)) continue;  // a tied lm_head
    const DType stored = source.stored_dtype(spec.name);
    const DType dtype = matrices && spec.shape.size() == 2 ? *matrices : stored;
    if (dtype == DType::f32) {
      tensors.push_back({spec.name, "F32", spec.shape, detail::f32_bytes(source.read(spec))});
    } else {
      std::vector<std::uint16_t> bits;
      if (stored == dtype) {
        bits = source.read_16(spec);
      } else {
        for (const float v : source.read(spec)) bits.push_back(dtype == DType::bf16 ? detail::f32_to_bf16(v) : detail::f32_to_f16(v));
      }
      std::vector<std::byte> bytes(bits.size() * 2);
      std::memcpy(bytes.data(), bits.data(), bytes.size());
      tensors.push_back({spec.name, dtype == DType::bf16 ? "BF16" : "F16", spec.shape, std::move(bytes)});
    }
  }
  detail::write_safetensors(directory / "model.safetensors", tensors);
  std::ofstream out(directory / "config.json");
  out << config.to_hf_json() << '\n';
  if (!out.flush()) throw CheckpointError((directory / "config.json").string() + ": cannot write");
}

}  // namespace swarm::model
