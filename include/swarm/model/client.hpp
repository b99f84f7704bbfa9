#pragma once
// The client's side of the model (embeddings, final norm, LM head) and greedy generation with a
// pluggable "run all blocks" step, so the same loop drives an MPI pipeline or local executors.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "swarm/model/config.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/model/weights.hpp"

namespace swarm::model {

namespace detail {
struct Matrix;
class DeviceHead;
}  // namespace detail

/// Embeddings, final RMSNorm and LM head, on the CPU. The tables stay in their stored dtype
/// (bf16/f16 widened exactly as they are used); arithmetic is fp32.
class ClientModel {
 public:
  /// Reads model.embed_tokens.weight, model.norm.weight and lm_head.weight (or, when
  /// tie_word_embeddings is set and lm_head.weight is absent, reuses the embeddings).
  explicit ClientModel(const WeightSource& source);

  [[nodiscard]] const ModelConfig& config() const { return config_; }
  /// Embedding rows of `tokens`: [tokens.size(), hidden_size]. UsageError for ids outside the vocab.
  [[nodiscard]] std::vector<float> embed(std::span<const std::int32_t> tokens) const;
  /// Final norm + LM head of `rows` hidden rows [rows, hidden_size] -> logits [rows, vocab_size].
  [[nodiscard]] std::vector<float> logits(std::span<const float> hidden, int rows) const;
  /// Runs the final norm and LM head (the client's one large GEMM, vocab x hidden) on `backend`
  /// from now on: cuda copies them to `options.device` (fp32, or bf16 for options.compute = bf16)
  /// and logits() sends the rows there; cpu goes back to the host. The embeddings stay on the
  /// host (a lookup of a few rows a step). UsageError for cuda in a build or on a machine
  /// without it; OutOfMemoryError when the device cannot hold the table.
  void run_head_on(Backend backend, const ExecutorOptions& options = {});
  [[nodiscard]] Backend head_backend() const;
  /// Bytes held (embedding, norm, and lm_head unless tied), tables in their dtype.
  [[nodiscard]] std::size_t weight_bytes() const;

 private:
  ModelConfig config_;
  std::shared_ptr<const detail::Matrix> embed_;
  std::vector<float> norm_;
  std::shared_ptr<const detail::Matrix> lm_head_;  // null when tied to embed_
  std::shared_ptr<detail::DeviceHead> device_head_;  // the head on a GPU (run_head_on), or null
};

/// Runs blocks 0..num_hidden_layers-1 in place on host `hidden` [batch * tokens, hidden_size]
/// for one session, continuing its KV caches (the job plugs its pipeline route in here).
using BlocksFn = std::function<void(float* hidden, int batch, int tokens)>;

struct GreedyOptions {
  int max_new_tokens = 16;
  /// When set, a sequence that emits it keeps emitting it, and generation stops once all have.
  std::optional<std::int32_t> eos_token_id;
  /// Keep every step's logits in Generation::logits (tests compare them).
  bool keep_logits = true;
};

struct Generation {
  int batch = 0;
  int vocab_size = 0;
  std::vector<std::vector<std::int32_t>> tokens;  ///< per sequence, the generated tokens
  std::vector<float> logits;                      ///< [steps, batch, vocab] when keep_logits

  [[nodiscard]] int steps() const { return tokens.empty() ? 0 : static_cast<int>(tokens.front().size()); }
};

/// Greedy decoding (Hugging Face do_sample=False: argmax, first index on ties) of `batch`
/// prompts of equal length, `prompt` = [batch, prompt_len] row-major. Step 0 feeds the whole
/// prompt, every later step the previous token; each step costs one call of `blocks`.
[[nodiscard]] Generation greedy(const ClientModel& client, std::span<const std::int32_t> prompt, int batch,
                                const GreedyOptions& options, const BlocksFn& blocks);

/// Single-process generation: the client plus one executor per span of `split` (contiguous spans
/// covering all blocks; empty = one executor for all). The single-rank truth of the tests.
[[nodiscard]] Generation generate_local(const WeightSource& source, Backend backend,
                                        std::span<const std::int32_t> prompt, int batch,
                                        const GreedyOptions& options, std::span<const Span> split = {},
                                        const ExecutorOptions& executor = {});

}  // namespace swarm::model
