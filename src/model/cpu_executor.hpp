#pragma once
#include <memory>

#include "swarm/model/executor.hpp"

namespace swarm::model::detail {

/// The OpenBLAS executor behind make_executor(Backend::cpu).
[[nodiscard]] std::unique_ptr<SpanExecutor> make_cpu_executor(const ExecutorOptions& options);

}  // namespace swarm::model::detail
