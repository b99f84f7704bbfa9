#pragma once
// Internal: argument checks and load-time accounting shared by the CPU and CUDA executors.
#include <cstdint>
#include <string>

#include "swarm/model/executor.hpp"

namespace swarm::model::detail {

/// UsageError unless [first, last) lies in the loaded span and batch >= 1, tokens >= 0.
void check_forward(const Span& loaded, bool is_loaded, int first, int last, int batch, int tokens, const void* hidden);

/// UsageError unless 0 <= span.start < span.end <= config.num_hidden_layers.
void check_span(const ModelConfig& config, const Span& span, const std::string& source);

/// OutOfMemoryError when growing the caches by `extra` bytes would pass options.max_cache_bytes.
void check_cache_budget(const ExecutorOptions& options, std::uint64_t current, std::uint64_t extra, SessionId session);

/// "[a, b)".
[[nodiscard]] std::string span_string(const Span& span);

}  // namespace swarm::model::detail
