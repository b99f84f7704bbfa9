#pragma once
// A server's share of the model: decoder blocks [start, end) on one backend, with a KV cache per
// session. Pure compute: no MPI, no files beyond the WeightSource it is loaded from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "swarm/model/config.hpp"
#include "swarm/model/weights.hpp"

namespace swarm::model {

/// Where a SpanExecutor computes. Both take and return host fp32 data through forward().
enum class Backend { cpu, cuda };

/// "cpu" / "cuda".
[[nodiscard]] std::string_view to_string(Backend backend);
/// Parses "cpu" / "cuda"; throws UsageError otherwise.
[[nodiscard]] Backend parse_backend(std::string_view text);

/// True when this build has the CUDA backend and a usable GPU is present. Never throws and never
/// crashes on machines without a driver.
[[nodiscard]] bool cuda_available() noexcept;

/// Sets how many threads OpenBLAS (the CPU backend and the client head) uses in this process,
/// e.g. cores / ranks per node so MPI ranks sharing a node do not oversubscribe it. Process-wide.
void set_cpu_threads(int threads);
/// The OpenBLAS thread count currently in effect.
[[nodiscard]] int cpu_threads();

/// Half-open range of block indices [start, end).
struct Span {
  int start = 0;
  int end = 0;

  [[nodiscard]] int size() const { return end - start; }
  [[nodiscard]] bool contains(int first, int last) const { return start <= first && first <= last && last <= end; }
  bool operator==(const Span&) const = default;
};

/// Identifies one inference session (a batch of sequences decoded in lockstep).
using SessionId = std::uint64_t;

struct ExecutorOptions {
  int device = 0;                  ///< CUDA device ordinal (cuda backend only)
  std::size_t max_cache_bytes = 0; ///< KV-cache budget over all sessions; 0 = no limit
};

/// Positions a KV cache holds once grown to `needed` from `capacity`: it doubles (at least 16
/// positions), so that decoding one token at a time copies amortised O(1) rows a token.
[[nodiscard]] constexpr int grown_kv_capacity(int capacity, int needed) {
  return needed <= capacity ? capacity : std::max({needed, 2 * capacity, 16});
}

/// Bytes of one block's KV cache for a session of `batch` sequences that processes a prompt of
/// `prompt_tokens` and then up to `total_tokens` positions one at a time: what a cache budget
/// (ExecutorOptions::max_cache_bytes) must hold for it, block by block.
[[nodiscard]] std::uint64_t session_kv_bytes_per_block(const ModelConfig& config, int batch, int prompt_tokens,
                                                       int total_tokens);

/// The most session_kv_bytes_per_block can be for a session that ends at `total_tokens` positions
/// and (re)starts anywhere from `prompt_tokens` on: a session replayed after a reroute feeds its
/// whole sequence as one longer prompt, and the cache can then double once more.
[[nodiscard]] std::uint64_t worst_session_kv_bytes_per_block(const ModelConfig& config, int batch, int prompt_tokens,
                                                             int total_tokens);

/// Runs a contiguous span of decoder blocks. Not thread-safe: one caller thread per executor.
class SpanExecutor {
 public:
  virtual ~SpanExecutor() = default;

  /// Loads blocks [span.start, span.end) from `source`, replacing the previous span (a server
  /// that moves calls it again) and dropping every session. Only those blocks' tensors are read.
  /// Throws OutOfMemoryError when the weights do not fit, CheckpointError / ConfigError from the
  /// source, UsageError for a span outside [0, num_hidden_layers).
  virtual void load(const WeightSource& source, Span span) = 0;

  /// Runs blocks first..last-1 (inside the loaded span) in place on `hidden`, host memory,
  /// [batch * tokens, hidden_size] row-major (sequence-major: row b*tokens + t). Each block's
  /// KV cache for `session` is created on first use and extended by `tokens`; positions continue
  /// from that block's cache length. Throws UsageError on a batch size differing from the
  /// session's, OutOfMemoryError past max_cache_bytes.
  virtual void forward(SessionId session, int first_block, int last_block, float* hidden, int batch,
                       int tokens) = 0;

  /// As forward() but `device_hidden` is a device pointer and `stream` a cudaStream_t (passed as
  /// void* so callers need no CUDA headers); work is enqueued on that stream and the call returns
  /// when it is complete. cuda backend only (UsageError on cpu).
  virtual void forward_device(SessionId session, int first_block, int last_block, float* device_hidden,
                              int batch, int tokens, void* stream) = 0;

  /// Frees the session's KV caches (no-op for an unknown id).
  virtual void drop_session(SessionId session) = 0;

  /// Number of cached positions of `session` in `block` (0 when none).
  [[nodiscard]] virtual int cached_tokens(SessionId session, int block) const = 0;

  [[nodiscard]] virtual Span span() const = 0;
  [[nodiscard]] virtual Backend backend() const = 0;
  /// Configuration of the loaded source (default-constructed before the first load()).
  [[nodiscard]] virtual const ModelConfig& config() const = 0;
  /// Bytes currently allocated for KV caches, all sessions.
  [[nodiscard]] virtual std::size_t cache_bytes() const = 0;
  /// Bytes of the loaded weights (fp32).
  [[nodiscard]] virtual std::size_t weight_bytes() const = 0;
};

/// Creates an empty executor (call load()). Throws UsageError for Backend::cuda when
/// cuda_available() is false.
[[nodiscard]] std::unique_ptr<SpanExecutor> make_executor(Backend backend, ExecutorOptions options = {});

}  // namespace swarm::model
