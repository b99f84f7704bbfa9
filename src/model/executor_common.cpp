#include "executor_common.hpp"

#include <algorithm>

#include "memory.hpp"
#include "swarm/model/errors.hpp"

namespace swarm::model::detail {

std::string span_string(const Span& span) {
  std::string text = std::to_string(span.start);  // built by appending: GCC 12 warns on "[" + string
  text.append(", ").append(std::to_string(span.end)).append(")");
  return text.insert(0, 1, '[');
}

void check_forward(const Span& loaded, bool is_loaded, int first, int last, int batch, int tokens, const void* hidden) {
  if (!is_loaded) throw UsageError("forward() before load(): the executor holds no blocks");
  if (!loaded.contains(Span{first, last})) {
    throw UsageError("forward() over blocks " + span_string({first, last}) + " outside the loaded span " +
                     span_string(loaded));
  }
  if (batch < 1 || tokens < 0) {
    throw UsageError("forward() with batch " + std::to_string(batch) + " and tokens " + std::to_string(tokens) +
                     ": need batch >= 1, tokens >= 0");
  }
  if (hidden == nullptr && tokens > 0) throw UsageError("forward() with a null hidden-state pointer");
}

std::int64_t check_batch(const Span& loaded, bool is_loaded, std::span<const Segment> segments, int first, int last,
                         const void* rows) {
  if (!is_loaded) throw UsageError("forward() before load(): the executor holds no blocks");
  if (!loaded.contains(Span{first, last})) {
    throw UsageError("forward() over blocks " + span_string({first, last}) + " outside the loaded span " +
                     span_string(loaded));
  }
  std::int64_t total = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const Segment& seg = segments[i];
    if (seg.batch < 1 || seg.tokens < 0 || seg.position < 0) {
      throw UsageError("forward() with batch " + std::to_string(seg.batch) + ", tokens " + std::to_string(seg.tokens) +
                       " and position " + std::to_string(seg.position) + " for session " + std::to_string(seg.session) +
                       ": need batch >= 1, tokens >= 0, position >= 0");
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (segments[j].session == seg.session) {
        throw UsageError("forward() with session " + std::to_string(seg.session) + " twice in one batch");
      }
    }
    total += seg.rows();
  }
  if (rows == nullptr && total > 0) throw UsageError("forward() with a null hidden-state pointer");
  return total;
}

void check_window(const ModelConfig& config, std::span<const Segment> segments) {
  if (config.sliding_window <= 0) return;
  for (const Segment& seg : segments) {
    if (std::int64_t{seg.position} + seg.tokens > config.sliding_window) {
      throw UsageError("session " + std::to_string(seg.session) + " reaches position " +
                       std::to_string(std::int64_t{seg.position} + seg.tokens) + ", beyond the model's sliding_window " +
                       std::to_string(config.sliding_window) + " (only full attention is implemented)");
    }
  }
}

void throw_position_mismatch(SessionId id, int block, int cached, int position) {
  throw UsageError("session " + std::to_string(id) + " continues at position " + std::to_string(position) +
                   " but its cache in block " + std::to_string(block) + " holds " + std::to_string(cached) +
                   " tokens");
}

void check_span(const ModelConfig& config, const Span& span, const std::string& source) {
  if (span.start < 0 || span.start >= span.end || span.end > config.num_hidden_layers) {
    throw UsageError("span " + span_string(span) + " is not a non-empty range of the " +
                     std::to_string(config.num_hidden_layers) + " blocks of " + source);
  }
}

}  // namespace swarm::model::detail

namespace swarm::model {

std::uint64_t session_kv_bytes_per_block(const ModelConfig& config, int batch, int total_tokens) {
  return 2ULL * static_cast<std::uint64_t>(batch) *
         static_cast<std::uint64_t>(std::max(1, total_tokens)) *
         static_cast<std::uint64_t>(config.kv_dim()) * sizeof(float);
}

}  // namespace swarm::model

namespace swarm::model::detail {

void check_cache_budget(const ExecutorOptions& options, std::uint64_t current, std::uint64_t extra, SessionId session) {
  if (options.max_cache_bytes == 0 || current + extra <= options.max_cache_bytes) return;
  throw CacheBudgetError("KV cache of session " + std::to_string(session) + " needs " + format_bytes(extra) +
                         " more, beyond the cache budget of " + format_bytes(options.max_cache_bytes) + " (" +
                         format_bytes(current) + " in use)");
}

void throw_batch_mismatch(SessionId id, int started, int called) {
  throw UsageError("session " + std::to_string(id) + " was started with batch " + std::to_string(started) +
                   ", forward() called with batch " + std::to_string(called));
}

}  // namespace swarm::model::detail
