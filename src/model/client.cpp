// Client side of the model: embeddings, final norm, LM head, and greedy decoding.
#include "swarm/model/client.hpp"

#include <algorithm>
#include <new>

#include "block_weights.hpp"
#include "cpu_ops.hpp"
#include "executor_common.hpp"
#include "head.hpp"
#include "memory.hpp"
#include "swarm/model/errors.hpp"

namespace swarm::model {
namespace {

constexpr const char* kEmbed = "model.embed_tokens.weight";
constexpr const char* kNorm = "model.norm.weight";
constexpr const char* kLmHead = "lm_head.weight";

// The spans of `split` must tile [0, layers) in order.
void check_split(std::span<const Span> split, int layers) {
  int next = 0;
  for (const Span& span : split) {
    if (span.start != next || span.end <= span.start) {
      throw UsageError("split spans must tile [0, " + std::to_string(layers) + ") in order; got " +
                       detail::span_string(span) + " where block " + std::to_string(next) + " was expected next");
    }
    next = span.end;
  }
  if (next != layers) {
    throw UsageError("split spans end at block " + std::to_string(next) + " but the model has " +
                     std::to_string(layers) + " blocks");
  }
}

}  // namespace

ClientModel::ClientModel(const WeightSource& source) : config_(source.config()) {
  const ModelConfig& c = config_;
  const std::vector<std::int64_t> table{c.vocab_size, c.hidden_size};
  const bool has_embed = source.has_tensor(kEmbed);
  const bool has_head = source.has_tensor(kLmHead);
  // Hugging Face tying: with tie_word_embeddings a missing lm_head takes the embeddings (and a
  // missing embedding the lm_head); when both are stored, each keeps its own values.
  const bool share = c.tie_word_embeddings && (has_embed != has_head);
  const bool embed_from_head = share && !has_embed;
  const auto cells = static_cast<std::uint64_t>(c.vocab_size) * static_cast<std::uint64_t>(c.hidden_size);
  const auto table_bytes = [&](const char* name) { return cells * static_cast<std::uint64_t>(dtype_bytes(source.stored_dtype(name))); };
  detail::require_memory("client weights of " + source.describe(),
                         table_bytes(embed_from_head ? kLmHead : kEmbed) + (share ? 0 : table_bytes(kLmHead)) +
                             4ULL * c.hidden_size,
                         detail::available_host_bytes(), "host");
  try {
    embed_ = std::make_shared<const detail::Matrix>(detail::read_matrix(source, {embed_from_head ? kLmHead : kEmbed, table}));
    norm_ = source.read({kNorm, {c.hidden_size}});
    if (!share) lm_head_ = std::make_shared<const detail::Matrix>(detail::read_matrix(source, {kLmHead, table}));
  } catch (const std::bad_alloc&) {
    throw OutOfMemoryError("client weights of " + source.describe() + ": host allocation failed");
  }
}

std::vector<float> ClientModel::embed(std::span<const std::int32_t> tokens) const {
  const auto h = static_cast<std::size_t>(config_.hidden_size);
  std::vector<float> hidden(tokens.size() * h);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::int32_t id = tokens[i];
    if (id < 0 || id >= config_.vocab_size) {
      throw UsageError("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                       std::to_string(config_.vocab_size) + ")");
    }
    embed_->widen_into(static_cast<std::size_t>(id) * h, h, hidden.data() + i * h);
  }
  return hidden;
}

std::vector<float> ClientModel::logits(std::span<const float> hidden, int rows) const {
  const int h = config_.hidden_size, vocab = config_.vocab_size;
  if (rows < 0 || hidden.size() != static_cast<std::size_t>(rows) * h) {
    throw UsageError("logits(): " + std::to_string(hidden.size()) + " floats are not " + std::to_string(rows) +
                     " rows of hidden_size " + std::to_string(h));
  }
  if (device_head_) {
    std::vector<float> out(static_cast<std::size_t>(rows) * vocab);
    if (rows > 0) device_head_->logits(hidden.data(), rows, out.data());
    return out;
  }
  std::vector<float> normed(hidden.size());
  detail::rms_norm(hidden.data(), norm_.data(), normed.data(), rows, h, static_cast<float>(config_.rms_norm_eps));
  std::vector<float> out(static_cast<std::size_t>(rows) * vocab);
  detail::linear(normed.data(), rows, h, lm_head_ ? *lm_head_ : *embed_, vocab, nullptr, out.data());
  return out;
}

void ClientModel::run_head_on(Backend backend, const ExecutorOptions& options) {
  if (backend == Backend::cpu) {
    device_head_.reset();
    return;
  }
#ifdef SWARM_MODEL_HAVE_CUDA
  if (!cuda_available()) throw UsageError("the LM head on cuda requested but no CUDA device is usable here");
  device_head_ = detail::make_cuda_head(config_, norm_, lm_head_ ? *lm_head_ : *embed_, options);
#else
  (void)options;
  throw UsageError("the LM head on cuda requested but this build has no CUDA backend (configure with SWARM_CUDA=ON)");
#endif
}

Backend ClientModel::head_backend() const { return device_head_ ? Backend::cuda : Backend::cpu; }

std::size_t ClientModel::weight_bytes() const {
  return embed_->bytes() + norm_.size() * sizeof(float) + (lm_head_ ? lm_head_->bytes() : 0);
}

Generation greedy(const ClientModel& client, std::span<const std::int32_t> prompt, int batch,
                  const GreedyOptions& options, const BlocksFn& blocks) {
  if (batch < 1 || prompt.empty() || prompt.size() % static_cast<std::size_t>(batch) != 0) {
    throw UsageError("greedy(): " + std::to_string(prompt.size()) + " prompt tokens do not form " +
                     std::to_string(batch) + " non-empty prompts of equal length");
  }
  if (options.max_new_tokens < 0) throw UsageError("greedy(): max_new_tokens must be >= 0");
  const int h = client.config().hidden_size, vocab = client.config().vocab_size;
  const int prompt_len = static_cast<int>(prompt.size() / static_cast<std::size_t>(batch));
  Generation result;
  result.batch = batch;
  result.vocab_size = vocab;
  result.tokens.assign(static_cast<std::size_t>(batch), {});
  std::vector<std::int32_t> step_tokens(prompt.begin(), prompt.end());
  std::vector<bool> finished(static_cast<std::size_t>(batch), false);
  for (int step = 0; step < options.max_new_tokens; ++step) {
    const int tokens = step == 0 ? prompt_len : 1;
    std::vector<float> hidden = client.embed(step_tokens);
    blocks(hidden.data(), batch, tokens);
    std::vector<float> last(static_cast<std::size_t>(batch) * h);  // each sequence's last position
    for (int b = 0; b < batch; ++b) {
      std::copy_n(hidden.data() + (static_cast<std::size_t>(b) * tokens + tokens - 1) * h, h,
                  last.data() + static_cast<std::size_t>(b) * h);
    }
    const std::vector<float> logits = client.logits(last, batch);
    step_tokens.assign(static_cast<std::size_t>(batch), 0);
    for (int b = 0; b < batch; ++b) {
      const auto row = std::span(logits).subspan(static_cast<std::size_t>(b) * vocab, static_cast<std::size_t>(vocab));
      std::int32_t next = detail::argmax(row);
      if (finished[static_cast<std::size_t>(b)]) next = *options.eos_token_id;
      finished[static_cast<std::size_t>(b)] = options.eos_token_id && next == *options.eos_token_id;
      step_tokens[static_cast<std::size_t>(b)] = next;
      result.tokens[static_cast<std::size_t>(b)].push_back(next);
    }
    if (options.keep_logits) result.logits.insert(result.logits.end(), logits.begin(), logits.end());
    if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; })) break;
  }
  return result;
}

Generation generate_local(const WeightSource& source, Backend backend, std::span<const std::int32_t> prompt, int batch,
                          const GreedyOptions& options, std::span<const Span> split,
                          const ExecutorOptions& executor_options) {
  const int layers = source.config().num_hidden_layers;
  const std::vector<Span> spans = split.empty() ? std::vector<Span>{{0, layers}} : std::vector<Span>(split.begin(), split.end());
  check_split(spans, layers);
  std::vector<std::unique_ptr<SpanExecutor>> executors;
  for (const Span& span : spans) {
    executors.push_back(make_executor(backend, executor_options));
    executors.back()->load(source, span);
  }
  const ClientModel client(source);
  constexpr SessionId kSession = 1;
  const BlocksFn blocks = [&](float* hidden, int b, int tokens) {
    for (const auto& executor : executors) {
      executor->forward(kSession, executor->span().start, executor->span().end, hidden, b, tokens);
    }
  };
  return greedy(client, prompt, batch, options, blocks);
}

}  // namespace swarm::model
