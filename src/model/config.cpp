// Parsing and validation of Hugging Face Llama config.json files.
#include "swarm/model/config.hpp"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "swarm/model/errors.hpp"

namespace swarm::model {
namespace {

using nlohmann::json;

[[noreturn]] void fail(std::string_view origin, const std::string& what) {
  throw ConfigError(std::string(origin) + ": " + what);
}

// A value as messages echo it: JSON (control characters escaped), cut after 80 characters.
std::string show(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 80) + "... (" + std::to_string(text.size()) + " characters)";
  return text;
}

// A key that is absent or null counts as not given (HF writes null for unset optionals).
const json* find(const json& doc, const char* key) {
  const auto it = doc.find(key);
  return it == doc.end() || it->is_null() ? nullptr : &*it;
}

int positive_int(std::string_view origin, const json& value, const char* key) {
  if (!value.is_number_integer() || value.get<std::int64_t>() <= 0 || value.get<std::int64_t>() > INT32_MAX) {
    fail(origin, std::string("key '") + key + "' = " + show(value) + " must be a positive integer");
  }
  return value.get<int>();
}

int required_int(std::string_view origin, const json& doc, const char* key) {
  const json* value = find(doc, key);
  if (value == nullptr) fail(origin, std::string("required key '") + key + "' is missing");
  return positive_int(origin, *value, key);
}

void optional_int(std::string_view origin, const json& doc, const char* key, int& out) {
  if (const json* value = find(doc, key)) out = positive_int(origin, *value, key);
}

void optional_positive(std::string_view origin, const json& doc, const char* key, double& out) {
  const json* value = find(doc, key);
  if (value == nullptr) return;
  if (!value->is_number() || value->get<double>() <= 0.0) {
    fail(origin, std::string("key '") + key + "' = " + show(*value) + " must be a positive number");
  }
  out = value->get<double>();
}

void optional_bool(std::string_view origin, const json& doc, const char* key, bool& out) {
  const json* value = find(doc, key);
  if (value == nullptr) return;
  if (!value->is_boolean()) fail(origin, std::string("key '") + key + "' = " + show(*value) + " must be true or false");
  out = value->get<bool>();
}

void require_string(std::string_view origin, const json& doc, const char* key, std::string_view allowed) {
  const json* value = find(doc, key);
  if (value == nullptr) return;
  if (!value->is_string() || value->get<std::string>() != allowed) {
    fail(origin, std::string("key '") + key + "' = " + show(*value) + " is not supported (only \"" +
                     std::string(allowed) + "\")");
  }
}

// RoPE variants: the default rotary embedding and Llama 3's scaling. transformers 4.x writes
// rope_theta + rope_scaling; 5.x writes rope_parameters {rope_type, rope_theta, ...}.
void parse_rope(std::string_view origin, const json& doc, ModelConfig& config) {
  optional_positive(origin, doc, "rope_theta", config.rope_theta);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* rope = find(doc, key);
    if (rope == nullptr) continue;
    if (!rope->is_object()) fail(origin, std::string("key '") + key + "' = " + show(*rope) + " must be null or an object");
    const json* type = find(*rope, "rope_type");
    if (type == nullptr) type = find(*rope, "type");
    const std::string name = type != nullptr && type->is_string() ? type->get<std::string>() : "";
    if (type != nullptr && name != "default" && name != "llama3") {
      fail(origin, std::string("key '") + key + "' has rope type " + show(*type) +
                       ": only null, \"default\" and \"llama3\" RoPE are supported (no linear, dynamic, yarn, longrope)");
    }
    optional_positive(origin, *rope, "rope_theta", config.rope_theta);
    if (name != "llama3") continue;
    const std::string at = std::string(key) + ".";
    RopeScaling& s = config.rope_scaling;
    s.llama3 = true;
    for (const auto& [field, out] : {std::pair{"factor", &s.factor}, std::pair{"low_freq_factor", &s.low_freq_factor},
                                     std::pair{"high_freq_factor", &s.high_freq_factor}}) {
      const json* value = find(*rope, field);
      if (value == nullptr) fail(origin, "key '" + at + field + "' is missing (rope type llama3 needs it)");
      if (!value->is_number() || !(value->get<double>() > 0.0)) {
        fail(origin, "key '" + at + field + "' = " + show(*value) + " must be a positive number");
      }
      *out = value->get<double>();
    }
    const json* original = find(*rope, "original_max_position_embeddings");
    if (original == nullptr) fail(origin, "key '" + at + "original_max_position_embeddings' is missing (rope type llama3 needs it)");
    s.original_max_position_embeddings = positive_int(origin, *original, (at + "original_max_position_embeddings").c_str());
    if (!(s.high_freq_factor > s.low_freq_factor)) {
      fail(origin, "key '" + at + "high_freq_factor' = " + show((*rope)["high_freq_factor"]) +
                       " must exceed low_freq_factor = " + show((*rope)["low_freq_factor"]));
    }
  }
}

// Full attention only: a sliding window that is on for some layer is refused; one that is
// merely configured (Mistral's sliding_window) is kept so that longer sequences are refused.
void parse_sliding_window(std::string_view origin, const json& doc, ModelConfig& config) {
  const json* window = find(doc, "sliding_window");
  if (config.family == Family::qwen2) {
    bool use = false;
    optional_bool(origin, doc, "use_sliding_window", use);
    if (use) fail(origin, "key 'use_sliding_window' = true is not supported (full attention only)");
    window = nullptr;  // Qwen2 ignores sliding_window unless use_sliding_window
  } else if (window != nullptr && config.family == Family::llama) {
    fail(origin, "key 'sliding_window' = " + show(*window) + " is not a Llama key (use model_type mistral)");
  }
  if (window != nullptr) config.sliding_window = positive_int(origin, *window, "sliding_window");
  if (const json* types = find(doc, "layer_types")) {
    if (!types->is_array()) fail(origin, "key 'layer_types' = " + show(*types) + " must be a list");
    for (std::size_t i = 0; i < types->size(); ++i) {
      const json& t = (*types)[i];
      if (!(t.is_string() && t.get<std::string>() == "full_attention")) {
        fail(origin, "key 'layer_types[" + std::to_string(i) + "]' = " + show(t) +
                         " is not supported (only \"full_attention\")");
      }
    }
  }
}

void parse_dtype_key(std::string_view origin, const json& doc, ModelConfig& config) {
  for (const char* key : {"torch_dtype", "dtype"}) {
    const json* value = find(doc, key);
    if (value == nullptr || !value->is_string()) continue;
    const std::string t = value->get<std::string>();
    if (t == "float32") config.weights_dtype = DType::f32;
    if (t == "bfloat16") config.weights_dtype = DType::bf16;
    if (t == "float16") config.weights_dtype = DType::f16;
  }
  (void)origin;  // informational: a checkpoint's stored tensors decide (Checkpoint)
}

void parse_eos(std::string_view origin, const json& doc, std::vector<std::int32_t>& out) {
  const json* value = find(doc, "eos_token_id");
  if (value == nullptr) return;
  const auto one = [&](const json& v) {
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > INT32_MAX) {
      fail(origin, "key 'eos_token_id' = " + show(*value) + " must be a token id or a list of token ids");
    }
    return v.get<std::int32_t>();
  };
  std::vector<std::int32_t> ids;
  if (value->is_array()) {
    for (const json& v : *value) ids.push_back(one(v));
  } else {
    ids.push_back(one(*value));
  }
  out = std::move(ids);
}

ModelConfig parse(std::string_view origin, const json& doc) {
  if (!doc.is_object()) fail(origin, "the top level must be a JSON object");
  ModelConfig config;
  if (const json* type = find(doc, "model_type")) {
    const std::string t = type->is_string() ? type->get<std::string>() : "";
    if (t == "llama") config.family = Family::llama;
    else if (t == "qwen2") config.family = Family::qwen2;
    else if (t == "mistral") config.family = Family::mistral;
    else fail(origin, "key 'model_type' = " + show(*type) + " is not supported (only \"llama\", \"qwen2\", \"mistral\")");
  }
  require_string(origin, doc, "hidden_act", "silu");
  config.vocab_size = required_int(origin, doc, "vocab_size");
  config.hidden_size = required_int(origin, doc, "hidden_size");
  config.intermediate_size = required_int(origin, doc, "intermediate_size");
  config.num_hidden_layers = required_int(origin, doc, "num_hidden_layers");
  config.num_attention_heads = required_int(origin, doc, "num_attention_heads");
  config.num_key_value_heads = config.num_attention_heads;
  optional_int(origin, doc, "num_key_value_heads", config.num_key_value_heads);
  if (const json* value = find(doc, "head_dim")) {
    config.head_dim = positive_int(origin, *value, "head_dim");
  } else if (config.hidden_size % config.num_attention_heads != 0) {
    fail(origin, "hidden_size = " + std::to_string(config.hidden_size) + " is not divisible by num_attention_heads = " +
                     std::to_string(config.num_attention_heads) + " and no head_dim is given");
  } else {
    config.head_dim = config.hidden_size / config.num_attention_heads;
  }
  optional_positive(origin, doc, "rms_norm_eps", config.rms_norm_eps);
  parse_rope(origin, doc, config);
  optional_int(origin, doc, "max_position_embeddings", config.max_position_embeddings);
  optional_bool(origin, doc, "tie_word_embeddings", config.tie_word_embeddings);
  if (config.family == Family::qwen2) {
    config.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o_proj without (not a config key)
    for (const char* key : {"attention_bias", "mlp_bias"}) {
      if (const json* v = find(doc, key)) fail(origin, std::string("key '") + key + "' = " + show(*v) + " is not a Qwen2 key");
    }
  } else {
    bool attention_bias = false;
    optional_bool(origin, doc, "attention_bias", attention_bias);
    config.qkv_bias = config.o_bias = attention_bias;
    optional_bool(origin, doc, "mlp_bias", config.mlp_bias);
  }
  parse_sliding_window(origin, doc, config);
  parse_dtype_key(origin, doc, config);
  parse_eos(origin, doc, config.eos_token_ids);
  config.validate(origin);
  return config;
}

}  // namespace

std::string_view to_string(DType dtype) {
  switch (dtype) {
    case DType::bf16: return "bf16";
    case DType::f16: return "f16";
    case DType::f32: break;
  }
  return "f32";
}

DType parse_dtype(std::string_view text, std::string_view origin) {
  if (text == "f32") return DType::f32;
  if (text == "bf16") return DType::bf16;
  if (text == "f16") return DType::f16;
  std::string message = "'";  // appended, not `"'" + string`: GCC 12's -Wrestrict misfires on that
  message.append(text).append("' is not a dtype (expected f32, bf16 or f16)");
  fail(origin, message);
}

std::string_view to_string(Family family) {
  switch (family) {
    case Family::qwen2: return "qwen2";
    case Family::mistral: return "mistral";
    case Family::llama: break;
  }
  return "llama";
}

ModelConfig ModelConfig::parse_hf_json(std::string_view json_text, std::string_view origin) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number like 1e999
    fail(origin, std::string("not valid JSON: ") + e.what());
  }
  return parse(origin, doc);
}

ModelConfig ModelConfig::from_hf_json(const std::filesystem::path& config_json) {
  std::ifstream in(config_json, std::ios::binary);
  if (!in) throw ConfigError(config_json.string() + ": cannot open the model config");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_hf_json(text.str(), config_json.string());
}

void ModelConfig::read_eos(std::string_view json_text, std::string_view origin) {
  json doc;
  try {
    doc = json::parse(json_text);
  } catch (const json::exception& e) {
    fail(origin, std::string("not valid JSON: ") + e.what());
  }
  if (!doc.is_object()) fail(origin, "the top level must be a JSON object");
  parse_eos(origin, doc, eos_token_ids);
}

std::string ModelConfig::to_hf_json() const {
  const char* architecture = family == Family::qwen2     ? "Qwen2ForCausalLM"
                             : family == Family::mistral ? "MistralForCausalLM"
                                                         : "LlamaForCausalLM";
  json doc = {{"architectures", {architecture}},
                    {"model_type", std::string(to_string(family))},
                    {"hidden_act", "silu"},
                    {"vocab_size", vocab_size},
                    {"hidden_size", hidden_size},
                    {"intermediate_size", intermediate_size},
                    {"num_hidden_layers", num_hidden_layers},
                    {"num_attention_heads", num_attention_heads},
                    {"num_key_value_heads", num_key_value_heads},
                    {"head_dim", head_dim},
                    {"rms_norm_eps", rms_norm_eps},
                    {"rope_theta", rope_theta},
                    {"rope_scaling", nullptr},
                    {"max_position_embeddings", max_position_embeddings},
                    {"tie_word_embeddings", tie_word_embeddings}};
  doc["torch_dtype"] = weights_dtype == DType::bf16 ? "bfloat16" : weights_dtype == DType::f16 ? "float16" : "float32";
  if (family != Family::qwen2) {
    doc["attention_bias"] = qkv_bias;
    doc["mlp_bias"] = mlp_bias;
  }
  if (rope_scaling.llama3) {
    doc["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", rope_scaling.factor},
                           {"low_freq_factor", rope_scaling.low_freq_factor},
                           {"high_freq_factor", rope_scaling.high_freq_factor},
                           {"original_max_position_embeddings", rope_scaling.original_max_position_embeddings}};
  }
  if (family == Family::mistral) doc["sliding_window"] = sliding_window > 0 ? json(sliding_window) : json(nullptr);
  if (family == Family::qwen2) doc["use_sliding_window"] = false;
  if (eos_token_ids.size() == 1) doc["eos_token_id"] = eos_token_ids.front();
  if (eos_token_ids.size() > 1) doc["eos_token_id"] = eos_token_ids;
  return doc.dump(2);
}

void ModelConfig::validate(std::string_view origin) const {
  const auto need_positive = [&](const char* key, long long value) {
    if (value <= 0) fail(origin, std::string("key '") + key + "' = " + std::to_string(value) + " must be positive");
  };
  need_positive("vocab_size", vocab_size);
  need_positive("hidden_size", hidden_size);
  need_positive("intermediate_size", intermediate_size);
  need_positive("num_hidden_layers", num_hidden_layers);
  // Bounded before anything sized by it (the balancer's per-block tables, the job's spans): the
  // deepest published models have a few hundred blocks.
  if (num_hidden_layers > kMaxLayers) {
    fail(origin, "key 'num_hidden_layers' = " + std::to_string(num_hidden_layers) + " is more than " +
                     std::to_string(kMaxLayers) + " blocks");
  }
  need_positive("num_attention_heads", num_attention_heads);
  need_positive("num_key_value_heads", num_key_value_heads);
  need_positive("head_dim", head_dim);
  need_positive("max_position_embeddings", max_position_embeddings);
  if (num_attention_heads % num_key_value_heads != 0) {
    fail(origin, "key 'num_key_value_heads' = " + std::to_string(num_key_value_heads) +
                     " must divide num_attention_heads = " + std::to_string(num_attention_heads));
  }
  if (head_dim % 2 != 0) fail(origin, "key 'head_dim' = " + std::to_string(head_dim) + " must be even (rotate-half RoPE)");
  if (!(rms_norm_eps > 0.0)) fail(origin, "key 'rms_norm_eps' = " + std::to_string(rms_norm_eps) + " must be positive");
  if (!(rope_theta > 0.0)) fail(origin, "key 'rope_theta' = " + std::to_string(rope_theta) + " must be positive");
  if (qkv_bias != o_bias && family != Family::qwen2) {
    fail(origin, "q/k/v and o_proj biases differ, which only model_type qwen2 has");
  }
  if (family == Family::qwen2 && (!qkv_bias || o_bias || mlp_bias)) {
    fail(origin, "model_type qwen2 has q/k/v biases only");
  }
  if (sliding_window < 0) fail(origin, "key 'sliding_window' = " + std::to_string(sliding_window) + " must be positive or null");
  for (const std::int32_t id : eos_token_ids) {
    if (id >= vocab_size) {
      fail(origin, "key 'eos_token_id' = " + std::to_string(id) + " is outside the vocabulary of " +
                       std::to_string(vocab_size));
    }
  }
}

std::int64_t ModelConfig::block_parameters() const {
  const std::int64_t h = hidden_size;
  const std::int64_t i = intermediate_size;
  std::int64_t n = 2 * h;                          // input and post-attention norms
  n += h * q_dim() + 2 * h * kv_dim() + q_dim() * h;  // q, k, v, o
  n += 3 * h * i;                                  // gate, up, down
  if (qkv_bias) n += q_dim() + 2 * kv_dim();
  if (o_bias) n += h;
  if (mlp_bias) n += 2 * i + h;
  return n;
}

std::int64_t ModelConfig::block_matrix_parameters() const {
  const std::int64_t h = hidden_size;
  return h * q_dim() + 2 * h * kv_dim() + q_dim() * h + 3 * h * intermediate_size;
}

std::int64_t ModelConfig::block_weight_bytes() const {
  const std::int64_t matrices = block_matrix_parameters();
  return dtype_bytes(weights_dtype) * matrices + 4 * (block_parameters() - matrices);
}

std::int64_t ModelConfig::client_weight_bytes() const {
  return dtype_bytes(weights_dtype) * (client_parameters() - hidden_size) + 4 * std::int64_t{hidden_size};
}

std::int64_t ModelConfig::client_parameters() const {
  const std::int64_t table = std::int64_t{vocab_size} * hidden_size;
  return table + hidden_size + (tie_word_embeddings ? 0 : table);
}

double ModelConfig::block_flops(std::int64_t tokens, std::int64_t past) const {
  const double h = hidden_size;
  const double matmul_params = h * static_cast<double>(q_dim()) * 2 + 2 * h * static_cast<double>(kv_dim()) +
                               3 * h * intermediate_size;
  const double t = static_cast<double>(tokens);
  const double visible_keys = t * static_cast<double>(past) + t * (t + 1) / 2;  // causal
  return 2 * matmul_params * t + 4 * static_cast<double>(q_dim()) * visible_keys;
}

}  // namespace swarm::model
