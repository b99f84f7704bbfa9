// Backend selection: the factory is the only place that knows which executors exist.
#include <cblas.h>

#include "cpu_executor.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/model/executor.hpp"

#ifdef SWARM_MODEL_HAVE_CUDA
#include "cuda/cuda_executor.hpp"
#endif

namespace swarm::model {

std::int64_t batch_rows(std::span<const Segment> segments) {
  std::int64_t rows = 0;
  for (const Segment& s : segments) rows += s.rows();
  return rows;
}

void SpanExecutor::forward(SessionId session, int first_block, int last_block, float* hidden, int batch, int tokens,
                          int length) {
  const Segment segment{session, batch, tokens, cached_tokens(session, first_block), length};
  forward(std::span(&segment, 1), first_block, last_block, hidden, Memory::host);
}

std::string_view to_string(Backend backend) { return backend == Backend::cuda ? "cuda" : "cpu"; }

Backend parse_backend(std::string_view text) {
  if (text == "cpu") return Backend::cpu;
  if (text == "cuda") return Backend::cuda;
  throw UsageError("unknown backend '" + std::string(text) + "' (expected cpu or cuda)");
}

void set_cpu_threads(int threads) {
  if (threads < 1) throw UsageError("set_cpu_threads(" + std::to_string(threads) + "): need at least 1 thread");
  openblas_set_num_threads(threads);
}

int cpu_threads() { return openblas_get_num_threads(); }

bool cuda_available() noexcept {
#ifdef SWARM_MODEL_HAVE_CUDA
  return detail::cuda_device_count() > 0;
#else
  return false;
#endif
}

std::unique_ptr<SpanExecutor> make_executor(Backend backend, ExecutorOptions options) {
  if (backend == Backend::cpu) return detail::make_cpu_executor(options);
#ifdef SWARM_MODEL_HAVE_CUDA
  if (!cuda_available()) throw UsageError("backend cuda requested but no CUDA device is usable here");
  if (options.compute != DType::f32 && options.compute != DType::bf16) {
    throw UsageError("compute dtype " + std::string(to_string(options.compute)) +
                     " is not implemented by the cuda backend (f32 or bf16)");
  }
  return detail::make_cuda_executor(options);
#else
  throw UsageError("backend cuda requested but this build has no CUDA backend (configure with SWARM_CUDA=ON)");
#endif
}

}  // namespace swarm::model
