#pragma once
// Dimensions and hyper-parameters of a Llama-family model (Hugging Face LlamaConfig semantics).
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace swarm::model {

/// Element type of a weight matrix in memory. Arithmetic always accumulates in fp32.
enum class DType { f32, bf16, f16 };

[[nodiscard]] std::string_view to_string(DType dtype);
/// "f32", "bf16" or "f16"; throws ConfigError naming `origin` and the value otherwise.
[[nodiscard]] DType parse_dtype(std::string_view text, std::string_view origin);
/// Bytes of one element.
[[nodiscard]] constexpr std::int64_t dtype_bytes(DType dtype) { return dtype == DType::f32 ? 4 : 2; }

/// The decoder families the executors implement: the same pre-norm SwiGLU decoder with RoPE,
/// differing in biases (Qwen2: q/k/v) and in the config keys they write.
enum class Family { llama, qwen2, mistral };

[[nodiscard]] std::string_view to_string(Family family);

/// Rotary embedding variant (transformers' rope_type): the default one, or Llama 3's frequency
/// scaling (transformers' _compute_llama3_parameters), whose fields are those below.
struct RopeScaling {
  bool llama3 = false;
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;

  bool operator==(const RopeScaling&) const = default;
};

/// The most blocks a model may have (ModelConfig::validate).
inline constexpr int kMaxLayers = 100'000;

/// A Llama-family model's shape. Defaults are those of Hugging Face LlamaConfig for the optional keys;
/// the structural sizes have no meaningful default and must be given.
struct ModelConfig {
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  ///< divides num_attention_heads (GQA); = heads for plain MHA
  int head_dim = 0;             ///< config.head_dim when given, else hidden_size / heads
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int max_position_embeddings = 2048;  ///< informational: default RoPE has no length limit
  bool tie_word_embeddings = false;    ///< lm_head reuses embed_tokens when lm_head.weight is absent
  Family family = Family::llama;       ///< config.json's model_type
  bool qkv_bias = false;               ///< q/k/v projections carry a bias (Llama attention_bias; Qwen2 always)
  bool o_bias = false;                 ///< o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;               ///< gate/up/down projections carry a bias
  RopeScaling rope_scaling;            ///< rope_scaling / rope_parameters of type llama3
  /// Mistral/Qwen2 sliding-window attention span in tokens; 0 when off. The executors implement
  /// full attention only, so a sequence longer than a non-zero window is refused.
  int sliding_window = 0;
  /// The dtype the weight matrices are held in: a checkpoint's stored dtype of its block
  /// matrices, or model.weights_dtype for random weights. Norms and biases are always fp32.
  DType weights_dtype = DType::f32;
  /// Tokens that end a sequence (config.json's eos_token_id: an integer or a list; empty when
  /// absent or null). A checkpoint's generation_config.json, when present, wins, as in
  /// transformers' generate().
  std::vector<std::int32_t> eos_token_ids;

  /// Reads a Hugging Face config.json. Throws ConfigError naming the file, key and value for a
  /// missing or mistyped key, a model_type other than llama/qwen2/mistral, a RoPE type other
  /// than default/llama3, a hidden_act other than silu, or a sliding window that is on for some
  /// layer (Qwen2's use_sliding_window, layer_types).
  [[nodiscard]] static ModelConfig from_hf_json(const std::filesystem::path& config_json);

  /// Same as from_hf_json on JSON text already in memory (e.g. the "model" object of a job file);
  /// `origin` names where the text came from, for messages.
  [[nodiscard]] static ModelConfig parse_hf_json(std::string_view json_text, std::string_view origin);

  /// Reads eos_token_id from a JSON object (`origin` names it for messages): an integer, a list
  /// of integers, or null/absent (then `eos_token_ids` is left as it is).
  void read_eos(std::string_view json_text, std::string_view origin);

  /// Serialises to Hugging Face config.json form (its model_type); parse_hf_json round-trips it.
  [[nodiscard]] std::string to_hf_json() const;

  /// Throws ConfigError (prefixed by `origin`) unless every size is positive and consistent.
  void validate(std::string_view origin) const;

  [[nodiscard]] std::int64_t q_dim() const { return std::int64_t{num_attention_heads} * head_dim; }
  [[nodiscard]] std::int64_t kv_dim() const { return std::int64_t{num_key_value_heads} * head_dim; }

  /// Parameters of one decoder block (norms, attention, MLP, biases if any).
  [[nodiscard]] std::int64_t block_parameters() const;
  /// Parameters held by the client: embeddings, final norm, and lm_head unless tied.
  [[nodiscard]] std::int64_t client_parameters() const;
  /// Parameters of one block's seven projection matrices (the part held in weights_dtype).
  [[nodiscard]] std::int64_t block_matrix_parameters() const;
  /// Bytes of one block's weights as held by a CPU executor: matrices in weights_dtype, norms
  /// and biases in fp32.
  [[nodiscard]] std::int64_t block_weight_bytes() const;
  /// Bytes of the client's weights: the embedding and lm_head tables in weights_dtype (as a
  /// checkpoint stores them alike), the final norm fp32.
  [[nodiscard]] std::int64_t client_weight_bytes() const;
  /// KV-cache bytes one token of one sequence occupies in one block (fp32 k and v).
  [[nodiscard]] std::int64_t kv_bytes_per_token() const { return 2 * 4 * kv_dim(); }

  /// Floating-point operations of one block forward for one sequence of `tokens` new tokens
  /// after `past` cached ones: 2 per multiply-add of the projections and MLP, plus the causal
  /// attention (q.k and p.v over the visible keys). Norms, RoPE and softmax are not counted.
  [[nodiscard]] double block_flops(std::int64_t tokens, std::int64_t past) const;

  bool operator==(const ModelConfig&) const = default;
};

}  // namespace swarm::model
