// CPU backend: OpenBLAS sgemm for every projection, loops for norms, RoPE and attention.
#include "cpu_executor.hpp"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <new>
#include <optional>
#include <unordered_map>

#include "block_weights.hpp"
#include "cpu_ops.hpp"
#include "executor_common.hpp"
#include "memory.hpp"
#include "swarm/model/errors.hpp"

namespace swarm::model::detail {
namespace {

const float* bias_or_null(const std::vector<float>& bias) { return bias.empty() ? nullptr : bias.data(); }

// One block's cache for one session: rotated keys and values, [batch][capacity][kv_dim].
struct KvCache {
  int length = 0;
  int capacity = 0;
  std::vector<float> k;
  std::vector<float> v;

  [[nodiscard]] std::uint64_t bytes() const { return (k.size() + v.size()) * sizeof(float); }
};

using Session = detail::SessionTable<KvCache>::Session;

// Scratch arrays reused across calls (sized for the largest call seen).
struct Workspace {
  std::vector<float> norm, q, k, v, attn, delta, gate, up, scores, cos, sin;
  std::vector<int> valid;
};

class CpuExecutor final : public SpanExecutor {
 public:
  explicit CpuExecutor(const ExecutorOptions& options) : options_(options) {}

  void load(const WeightSource& source, Span span) override {
    const ModelConfig& config = source.config();
    check_span(config, span, source.describe());
    blocks_.clear();  // free the old span first: a move must not need both in memory
    blocks_.shrink_to_fit();
    sessions_.clear();
    loaded_ = false;
    const bool bf16 = options_.compute == DType::bf16;
    ModelConfig held = config;  // the matrices as this executor holds them
    if (bf16) held.weights_dtype = DType::bf16;
    const auto needed = static_cast<std::uint64_t>(held.block_weight_bytes()) * static_cast<std::uint64_t>(span.length());
    require_memory("blocks " + span_string(span) + " of " + source.describe(), needed, available_host_bytes(), "host");
    try {
      blocks_.reserve(static_cast<std::size_t>(span.length()));
      for (int layer = span.start; layer < span.end; ++layer) {
        blocks_.push_back(load_block(source, layer));
        if (bf16) blocks_.back().round_to_bf16();
      }
    } catch (const std::bad_alloc&) {
      blocks_.clear();
      throw OutOfMemoryError("blocks " + span_string(span) + " of " + source.describe() + " need " +
                             format_bytes(needed) + " of host memory: allocation failed");
    }
    config_ = config;
    span_ = span;
    inv_freq_ = rope_inv_freq(config_);
    loaded_ = true;
  }

  using SpanExecutor::forward;

  void forward(std::span<const Segment> segments, int first_block, int last_block, float* rows,
               Memory memory) override {
    if (memory == Memory::device) throw UsageError("forward() with device rows needs the cuda backend; this executor is cpu");
    auto began = std::chrono::steady_clock::now();
    const std::int64_t total = check_batch(span_, loaded_, segments, first_block, last_block, rows);
    check_window(config_, segments);
    if (total > 0 && first_block < last_block) {
      std::optional<Bf16Threads> threads;
      if (options_.compute == DType::bf16) threads.emplace();
      const std::vector<Session*> states = sessions_.prepare_checked(
          segments, span_, first_block, last_block,
          [&](const std::vector<Session*>& prepared) { grow_caches(segments, prepared, first_block, last_block); });
      for (int block = first_block; block < last_block; ++block) {
        const auto index = static_cast<std::size_t>(block - span_.start);
        run_block(blocks_[index], segments, states, index, rows, total);
        if (between_blocks_ && block + 1 < last_block) {
          const auto hook = std::chrono::steady_clock::now();
          between_blocks_();
          began += std::chrono::steady_clock::now() - hook;  // the forward's own time only
        }
      }
    }
    last_seconds_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  }

  [[nodiscard]] bool idle() override { return true; }
  void synchronize() override {}
  [[nodiscard]] double last_forward_seconds() const override { return last_seconds_; }
  void upload(std::span<const float>, float*) override {
    throw UsageError("upload() to device memory needs the cuda backend; this executor is cpu");
  }
  void download_rows(const float*, std::span<const std::int64_t>, std::span<float>) override {
    throw UsageError("download_rows() from device memory needs the cuda backend; this executor is cpu");
  }

  void drop_session(SessionId session) override { sessions_.drop(session); }

  [[nodiscard]] int cached_tokens(SessionId session, int block) const override {
    if (!span_.contains(block)) return 0;
    return sessions_.cached_tokens(session, block - span_.start);
  }

  [[nodiscard]] Span span() const override { return span_; }
  [[nodiscard]] Backend backend() const override { return Backend::cpu; }
  [[nodiscard]] const ModelConfig& config() const override { return config_; }

  [[nodiscard]] std::size_t cache_bytes() const override { return sessions_.bytes(); }
  [[nodiscard]] std::size_t weight_bytes() const override { return detail::total_bytes(blocks_); }

 private:

  // Grows every block's cache of every segment to hold its new tokens (capacity doubles:
  // amortised O(1) copies a token). The whole batch's growth is checked against the budget
  // first, so a refused batch leaves every cache as it was.
  void grow_caches(std::span<const Segment> segments, const std::vector<Session*>& states, int first_block,
                   int last_block) {
    detail::SessionTable<KvCache>::check_growth(options_, cache_bytes(), config_.kv_dim(), segments, states, span_,
                                                first_block, last_block);
    for (std::size_t i = 0; i < segments.size(); ++i) {
      for (int block = first_block; block < last_block; ++block) {
        KvCache& cache = states[i]->blocks[static_cast<std::size_t>(block - span_.start)];
        reserve(cache, segments[i].session, segments[i].batch, cache.length + segments[i].tokens, segments[i].length);
      }
    }
  }

  void reserve(KvCache& cache, SessionId session, int batch, int needed, int length) {
    if (needed <= cache.capacity) return;
    const int capacity = grown_kv_capacity(cache.capacity, needed, length);
    const auto row = static_cast<std::size_t>(config_.kv_dim());
    const std::uint64_t new_bytes = 2ULL * batch * capacity * row * sizeof(float);
    try {
      for (auto* data : {&cache.k, &cache.v}) {
        std::vector<float> grown(static_cast<std::size_t>(batch) * capacity * row);
        for (int b = 0; b < batch; ++b) {
          std::copy_n(data->data() + static_cast<std::size_t>(b) * cache.capacity * row, cache.length * row,
                      grown.data() + static_cast<std::size_t>(b) * capacity * row);
        }
        *data = std::move(grown);
      }
    } catch (const std::bad_alloc&) {
      throw OutOfMemoryError("KV cache of session " + std::to_string(session) + " needs " + format_bytes(new_bytes) +
                             " of host memory: allocation failed");
    }
    cache.capacity = capacity;
  }

  // One block over the whole batch: the projections and the MLP as one GEMM each over all rows;
  // RoPE, the cache append and attention per segment (each over its own cache).
  void run_block(const BlockWeights& w, std::span<const Segment> segments, const std::vector<Session*>& states,
                 std::size_t index, float* x, std::int64_t rows) {
    const ModelConfig& c = config_;
    const int h = c.hidden_size, inter = c.intermediate_size;
    const auto q_dim = static_cast<int>(c.q_dim()), kv_dim = static_cast<int>(c.kv_dim());
    const auto eps = static_cast<float>(c.rms_norm_eps);
    ws_.norm.resize(static_cast<std::size_t>(rows * h));
    ws_.q.resize(static_cast<std::size_t>(rows * q_dim));
    ws_.k.resize(static_cast<std::size_t>(rows * kv_dim));
    ws_.v.resize(static_cast<std::size_t>(rows * kv_dim));
    ws_.attn.resize(static_cast<std::size_t>(rows * q_dim));
    ws_.delta.resize(static_cast<std::size_t>(rows * h));

    // Attention: h = x + o_proj(attn(rmsnorm(x)))
    rms_norm(x, w.input_norm.data(), ws_.norm.data(), rows, h, eps);
    project(ws_.norm.data(), rows, h, w.q, q_dim, bias_or_null(w.q_bias), ws_.q.data());
    project(ws_.norm.data(), rows, h, w.k, kv_dim, bias_or_null(w.k_bias), ws_.k.data());
    project(ws_.norm.data(), rows, h, w.v, kv_dim, bias_or_null(w.v_bias), ws_.v.data());
    std::int64_t first_row = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      KvCache& cache = states[i]->blocks[index];
      rotate_and_cache(cache, segments[i], first_row);
      attention(cache, segments[i], first_row);
      cache.length += segments[i].tokens;
      first_row += segments[i].rows();
    }
    project(ws_.attn.data(), rows, q_dim, w.o, h, nullptr, ws_.delta.data());
    residual_add(x, ws_.delta.data(), bias_or_null(w.o_bias), rows, h);

    // MLP: out = h + down(silu(gate(n)) * up(n)), n = rmsnorm(h)
    ws_.gate.resize(static_cast<std::size_t>(rows * inter));
    ws_.up.resize(static_cast<std::size_t>(rows * inter));
    rms_norm(x, w.post_norm.data(), ws_.norm.data(), rows, h, eps);
    project(ws_.norm.data(), rows, h, w.gate, inter, bias_or_null(w.gate_bias), ws_.gate.data());
    project(ws_.norm.data(), rows, h, w.up, inter, bias_or_null(w.up_bias), ws_.up.data());
    swiglu(ws_.gate.data(), ws_.up.data(), rows * inter);
    project(ws_.gate.data(), rows, inter, w.down, h, nullptr, ws_.delta.data());
    residual_add(x, ws_.delta.data(), bias_or_null(w.down_bias), rows, h);
  }

  // One projection in the configured compute dtype.
  void project(const float* x, std::int64_t rows, int in, const Matrix& w, int out, const float* bias, float* y) const {
    if (options_.compute == DType::bf16) return linear_bf16(x, rows, in, w, out, bias, y);
    linear(x, rows, in, w, out, bias, y);
  }

  // RoPE on the segment's q and k rows at positions cache.length + t, then append k and v to
  // its cache.
  void rotate_and_cache(KvCache& cache, const Segment& seg, std::int64_t first_row) {
    const ModelConfig& c = config_;
    const int half = c.head_dim / 2;
    const auto q_dim = c.q_dim(), kv_dim = c.kv_dim();
    ws_.cos.resize(static_cast<std::size_t>(half));
    ws_.sin.resize(static_cast<std::size_t>(half));
    for (int t = 0; t < seg.tokens; ++t) {
      rope_cos_sin(cache.length + t, inv_freq_, ws_.cos.data(), ws_.sin.data());
      for (int b = 0; b < seg.batch; ++b) {
        const std::int64_t row = first_row + std::int64_t{b} * seg.tokens + t;
        apply_rope(ws_.q.data() + row * q_dim, c.num_attention_heads, half, ws_.cos.data(), ws_.sin.data());
        apply_rope(ws_.k.data() + row * kv_dim, c.num_key_value_heads, half, ws_.cos.data(), ws_.sin.data());
        const std::size_t slot = (static_cast<std::size_t>(b) * cache.capacity + cache.length + t) * kv_dim;
        std::memcpy(cache.k.data() + slot, ws_.k.data() + row * kv_dim, kv_dim * sizeof(float));
        std::memcpy(cache.v.data() + slot, ws_.v.data() + row * kv_dim, kv_dim * sizeof(float));
      }
    }
  }

  // softmax(q k^T / sqrt(head_dim), causal) v per (sequence, query head) of the segment; query
  // head h reads kv head h / (heads / kv_heads). New tokens go in tiles of kQueryTile rows, each
  // scoring only the keys its last row can see, so a prefill skips most of the masked triangle.
  void attention(const KvCache& cache, const Segment& seg, std::int64_t segment_row) {
    constexpr int kQueryTile = 64;
    const ModelConfig& c = config_;
    const int d = c.head_dim, heads = c.num_attention_heads, group = heads / c.num_key_value_heads;
    const auto q_dim = static_cast<int>(c.q_dim()), kv_dim = static_cast<int>(c.kv_dim());
    const int past = cache.length, tokens = seg.tokens;
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(d)));  // head_dim**-0.5
    ws_.scores.resize(static_cast<std::size_t>(std::min(tokens, kQueryTile)) * (past + tokens));
    ws_.valid.resize(static_cast<std::size_t>(kQueryTile));
    for (int t0 = 0; t0 < tokens; t0 += kQueryTile) {
      const int rows = std::min(kQueryTile, tokens - t0);
      const int keys = past + t0 + rows;  // visible to the tile's last row
      for (int r = 0; r < rows; ++r) ws_.valid[static_cast<std::size_t>(r)] = past + t0 + r + 1;
      for (int b = 0; b < seg.batch; ++b) {
        const float* k_seq = cache.k.data() + static_cast<std::size_t>(b) * cache.capacity * kv_dim;
        const float* v_seq = cache.v.data() + static_cast<std::size_t>(b) * cache.capacity * kv_dim;
        const std::int64_t first_row = segment_row + std::int64_t{b} * tokens + t0;
        for (int head = 0; head < heads; ++head) {
          const int kv_head = head / group;
          const float* q = ws_.q.data() + first_row * q_dim + std::int64_t{head} * d;
          float* out = ws_.attn.data() + first_row * q_dim + std::int64_t{head} * d;
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, keys, d, scale, q, q_dim, k_seq + kv_head * d,
                      kv_dim, 0.0F, ws_.scores.data(), keys);
          masked_softmax(ws_.scores.data(), rows, keys, std::span(ws_.valid).first(static_cast<std::size_t>(rows)));
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, d, keys, 1.0F, ws_.scores.data(), keys,
                      v_seq + kv_head * d, kv_dim, 0.0F, out, q_dim);
        }
      }
    }
  }

  ExecutorOptions options_;
  ModelConfig config_;
  Span span_;
  bool loaded_ = false;
  std::vector<BlockWeights> blocks_;
  std::vector<float> inv_freq_;
  detail::SessionTable<KvCache> sessions_;
  Workspace ws_;
  double last_seconds_ = 0;
};

}  // namespace

std::unique_ptr<SpanExecutor> make_cpu_executor(const ExecutorOptions& options) {
  return std::make_unique<CpuExecutor>(options);
}

}  // namespace swarm::model::detail
