#pragma once
// A server's share of the model: decoder blocks [start, end) on one backend, with a KV cache per
// session. Pure compute: no MPI, no files beyond the WeightSource it is loaded from.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>

#include "swarm/model/config.hpp"
#include "swarm/model/weights.hpp"
#include "swarm/util/span.hpp"

namespace swarm::model {

/// Where a SpanExecutor computes.
enum class Backend { cpu, cuda };

/// Where the rows of a forward live: host memory (any backend; the cuda backend copies them in
/// and out on its stream) or device memory of the executor's GPU (cuda only: no copies).
enum class Memory { host, device };

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

using swarm::Span;

/// Identifies one session's KV caches on a server (a batch of sequences decoded in lockstep).
/// The job gives a session a fresh id whenever it restarts on a new route, so a late drop of its
/// old caches can never touch the new ones.
using SessionId = std::uint64_t;

/// One session's rows in a batched forward: `batch` sequences of `tokens` new tokens each, rows
/// sequence-major (sequence b, token t at row offset b * tokens + t), at positions
/// position .. position + tokens - 1. `position` is the number of tokens the session's caches
/// hold in every block of the forward (0 for a new session). `length`: the positions the
/// session's caches will hold at most (its prompt and the tokens it may generate), when the
/// caller knows it: each cache is then allocated once at that size instead of doubling as it
/// fills; 0 (unknown), or a segment that passes it, grows by doubling.
struct Segment {
  SessionId session = 0;
  std::int32_t batch = 1;
  std::int32_t tokens = 0;
  std::int32_t position = 0;
  std::int32_t length = 0;

  [[nodiscard]] std::int64_t rows() const { return std::int64_t{batch} * tokens; }
  bool operator==(const Segment&) const = default;
};

/// Rows of a batch: the sum of the segments' rows.
[[nodiscard]] std::int64_t batch_rows(std::span<const Segment> segments);

struct ExecutorOptions {
  int device = 0;                  ///< CUDA device ordinal (cuda backend only)
  std::size_t max_cache_bytes = 0; ///< KV-cache budget over all sessions; 0 = no limit
  /// Operands of the matrix products (model.compute_dtype; accumulation is fp32 either way).
  /// f32: activations fp32, weights widened exactly from their dtype. bf16 (cpu backend): the
  /// weights are held in bf16 (rounded at load when stored otherwise) and the activations are
  /// rounded to bf16 before each product, run by oneDNN on the CPU's bf16 instructions.
  DType compute = DType::f32;
};

/// Positions a KV cache holds once grown to `needed` from `capacity`. With the session's
/// `length` (Segment::length) at or above `needed`: that length, allocated once, never copied.
/// Otherwise the power of two at or above `needed` (at least 16), so that decoding one token at a
/// time copies amortised O(1) rows a token. Either way the size a cache ends at does not depend
/// on how its positions were fed (a prompt at once, in chunks, or replayed after a reroute).
[[nodiscard]] constexpr int grown_kv_capacity(int capacity, int needed, int length = 0) {
  if (needed <= capacity) return capacity;
  if (length >= needed) return length;
  int grown = 16;
  while (grown < needed) grown *= 2;
  return grown;
}

/// Bytes of one block's KV cache for a session of `batch` sequences that holds up to
/// `total_tokens` positions and says so (Segment::length = total_tokens): what a cache budget
/// (ExecutorOptions::max_cache_bytes) must hold for it, block by block, however its tokens are
/// fed. A session that does not say grows by doubling and may need up to twice as much.
[[nodiscard]] std::uint64_t session_kv_bytes_per_block(const ModelConfig& config, int batch, int total_tokens);

/// Runs a contiguous span of decoder blocks. Not thread-safe: one caller thread per executor.
class SpanExecutor {
 public:
  virtual ~SpanExecutor() = default;

  /// Loads blocks [span.start, span.end) from `source`, replacing the previous span (a server
  /// that moves calls it again) and dropping every session. Only those blocks' tensors are read.
  /// Throws OutOfMemoryError when the weights do not fit, CheckpointError / ConfigError from the
  /// source, UsageError for a span outside [0, num_hidden_layers).
  virtual void load(const WeightSource& source, Span span) = 0;

  /// Runs blocks first..last-1 (inside the loaded span) in place on `rows`
  /// ([batch_rows(segments), hidden_size] row-major, the segments' rows one after the other) as
  /// one batched forward: one GEMM per projection over all rows, RoPE at each row's position,
  /// and attention of each sequence over its own KV cache only, so a session's result does not
  /// depend on what it is batched with (up to the rounding of the GEMMs). Each block's cache for
  /// a session is created on first use and extended by its tokens.
  /// Host rows: returns when done. Device rows (cuda only): the work is enqueued on the
  /// executor's stream and the call returns; idle() tells when it has finished.
  /// Throws UsageError on a segment whose position differs from its caches' length, a batch size
  /// differing from the session's, device rows on the cpu backend; OutOfMemoryError past
  /// max_cache_bytes (checked before any work, so a refused batch changes no cache).
  virtual void forward(std::span<const Segment> segments, int first_block, int last_block, float* rows,
                       Memory memory = Memory::host) = 0;

  /// One session alone, continuing its caches: forward({{session, batch, tokens, cached,
  /// length}}, ...).
  void forward(SessionId session, int first_block, int last_block, float* hidden, int batch, int tokens,
               int length = 0);

  /// Whether the device work enqueued so far (forwards, uploads) has finished. cpu: always.
  [[nodiscard]] virtual bool idle() = 0;
  /// Waits until idle().
  virtual void synchronize() = 0;
  /// Seconds the last finished forward took on the device (cuda: between events on its stream;
  /// cpu: wall time). Valid once idle().
  [[nodiscard]] virtual double last_forward_seconds() const = 0;

  /// Copies host rows into device memory of this executor's GPU, ordered before every later
  /// forward; returns at once (the host memory must stay untouched until idle()). cuda only.
  virtual void upload(std::span<const float> host, float* device) = 0;
  /// Copies rows `rows[i]` of device memory ([*, hidden_size] row-major) to host row i; returns
  /// when they are there. The rows must have been written by finished work (after idle(), or a
  /// transfer the caller saw complete). cuda only (the client's head reads the last rows).
  virtual void download_rows(const float* device, std::span<const std::int64_t> rows, std::span<float> host) = 0;

  /// Called between the blocks of a host forward (not after the last): a rank whose one thread
  /// both computes and serves its network takes in packets there, so that a long forward does
  /// not hold up its peers. It must not call this executor. Device forwards run asynchronously
  /// and never call it.
  void set_between_blocks(std::function<void()> hook) { between_blocks_ = std::move(hook); }

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

 protected:
  std::function<void()> between_blocks_;
};

/// Creates an empty executor (call load()). Throws UsageError for Backend::cuda when
/// cuda_available() is false.
[[nodiscard]] std::unique_ptr<SpanExecutor> make_executor(Backend backend, ExecutorOptions options = {});

}  // namespace swarm::model
