#pragma once
// Internal: the CUDA backend behind make_executor(Backend::cuda). Only built with SWARM_HAVE_CUDA.
#include <memory>

#include "swarm/model/executor.hpp"

namespace swarm::model::detail {

/// Number of usable CUDA devices; 0 when there is no driver or no device (never throws).
[[nodiscard]] int cuda_device_count() noexcept;

[[nodiscard]] std::unique_ptr<SpanExecutor> make_cuda_executor(const ExecutorOptions& options);

}  // namespace swarm::model::detail
