#pragma once
// Internal: argument checks and load-time accounting shared by the CPU and CUDA executors.
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "swarm/model/executor.hpp"

namespace swarm::model::detail {

/// UsageError unless [first, last) lies in the loaded span, every segment has batch >= 1,
/// tokens >= 0, position >= 0, no session appears twice, and `rows` is not null when there are
/// rows. Returns the batch's rows.
[[nodiscard]] std::int64_t check_batch(const Span& loaded, bool is_loaded, std::span<const Segment> segments, int first,
                                       int last, const void* rows);

/// UsageError when a segment would reach past config.sliding_window (when set): the executors
/// implement full attention, which equals sliding-window attention only within the window.
void check_window(const ModelConfig& config, std::span<const Segment> segments);

/// UsageError: a segment continues at another position than its cache holds.
[[noreturn]] void throw_position_mismatch(SessionId id, int block, int cached, int position);

/// UsageError unless 0 <= span.start < span.end <= config.num_hidden_layers.
void check_span(const ModelConfig& config, const Span& span, const std::string& source);

/// OutOfMemoryError when growing the caches by `extra` bytes would pass options.max_cache_bytes.
void check_cache_budget(const ExecutorOptions& options, std::uint64_t current, std::uint64_t extra, SessionId session);

/// "[a, b)".
[[nodiscard]] std::string span_string(const Span& span);

/// UsageError: a session continued with another batch size than it started with.
[[noreturn]] void throw_batch_mismatch(SessionId id, int started, int called);

/// The per-session KV caches of an executor, one Cache per block of its span; Cache has a
/// `length` (cached positions) and `bytes()`. The same bookkeeping for host and device caches.
template <typename Cache>
class SessionTable {
 public:
  struct Session {
    int batch = 0;
    std::vector<Cache> blocks;  // index: block - span.start
  };

  /// The sessions of a batch over blocks [first, last) of `span`, in segment order, created empty
  /// on first use. Checks every segment first (batch size, position equal to each block's cache
  /// length), so a refused batch creates or changes nothing.
  std::vector<Session*> prepare(std::span<const Segment> segments, const Span& span, int first, int last) {
    for (const Segment& seg : segments) {
      const auto it = sessions_.find(seg.session);
      if (it == sessions_.end()) {
        if (seg.position != 0) throw_position_mismatch(seg.session, first, 0, seg.position);
        continue;
      }
      if (it->second.batch != seg.batch) throw_batch_mismatch(seg.session, it->second.batch, seg.batch);
      for (int block = first; block < last; ++block) {
        const int cached = it->second.blocks[static_cast<std::size_t>(block - span.start)].length;
        if (cached != seg.position) throw_position_mismatch(seg.session, block, cached, seg.position);
      }
    }
    std::vector<Session*> states;
    states.reserve(segments.size());
    for (const Segment& seg : segments) states.push_back(&get(seg.session, seg.batch, span.length()));
    return states;
  }

  /// CacheBudgetError when growing the caches of `states` (from prepare) by the segments' tokens
  /// over blocks [first, last) would pass `options`' budget, given `current` bytes in use.
  static void check_growth(const ExecutorOptions& options, std::uint64_t current, std::int64_t kv_dim,
                           std::span<const Segment> segments, const std::vector<Session*>& states, const Span& span,
                           int first, int last) {
    std::uint64_t extra = 0;
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const Segment& seg = segments[i];
      for (int block = first; block < last; ++block) {
        const Cache& cache = states[i]->blocks[static_cast<std::size_t>(block - span.start)];
        const int capacity = grown_kv_capacity(cache.capacity, cache.length + seg.tokens, seg.length);
        extra += 2ULL * static_cast<std::uint64_t>(seg.batch) * static_cast<std::uint64_t>(capacity - cache.capacity) *
                 static_cast<std::uint64_t>(kv_dim) * sizeof(float);
      }
    }
    if (extra > 0) check_cache_budget(options, current, extra, segments.front().session);
  }

  /// prepare(), then `check(states)` (e.g. the cache budget); when the check throws, the
  /// sessions prepare() created are dropped again, so that the refused batch leaves no trace.
  template <typename Check>
  std::vector<Session*> prepare_checked(std::span<const Segment> segments, const Span& span, int first, int last,
                                        Check&& check) {
    std::vector<SessionId> fresh;
    for (const Segment& seg : segments) {
      if (!sessions_.contains(seg.session)) fresh.push_back(seg.session);
    }
    std::vector<Session*> states = prepare(segments, span, first, last);
    try {
      check(states);
    } catch (...) {
      for (SessionId id : fresh) sessions_.erase(id);
      throw;
    }
    return states;
  }

  /// The session's caches, created empty for `span_blocks` blocks on first use.
  Session& get(SessionId id, int batch, int span_blocks) {
    auto [it, fresh] = sessions_.try_emplace(id);
    if (fresh) {
      it->second.batch = batch;
      it->second.blocks.resize(static_cast<std::size_t>(span_blocks));
    } else if (it->second.batch != batch) {
      throw_batch_mismatch(id, it->second.batch, batch);
    }
    return it->second;
  }
  void drop(SessionId id) { sessions_.erase(id); }
  void clear() { sessions_.clear(); }
  /// Cached positions of block `index` of the span (0 for an unknown session).
  [[nodiscard]] int cached_tokens(SessionId id, int index) const {
    const auto it = sessions_.find(id);
    return it == sessions_.end() ? 0 : it->second.blocks[static_cast<std::size_t>(index)].length;
  }
  [[nodiscard]] std::size_t bytes() const {
    std::size_t total = 0;
    for (const auto& [id, session] : sessions_) {
      for (const auto& cache : session.blocks) total += cache.bytes();
    }
    return total;
  }

 private:
  std::unordered_map<SessionId, Session> sessions_;
};

/// Sum of bytes() over a span's blocks.
template <typename Block>
[[nodiscard]] std::size_t total_bytes(const std::vector<Block>& blocks) {
  std::size_t total = 0;
  for (const auto& b : blocks) total += b.bytes();
  return total;
}

}  // namespace swarm::model::detail
