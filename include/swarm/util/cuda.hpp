#pragma once
// CUDA builds only: the RAII handles the components that drive a GPU share (comm's NCCL
// transport, model's CUDA executor). Each component keeps its own error types: a handle is
// instantiated with that component's check function (its SWARM_CUDA_CHECK's target), which
// throws the component's error naming the statement, file and line.
#include <cuda_runtime_api.h>

#include <utility>

namespace swarm::cuda {

/// A component's check: returns on cudaSuccess, throws its own error otherwise.
using CheckFn = void (*)(cudaError_t status, const char* statement, const char* file, int line);

#define SWARM_CUDA_HANDLE_CHECK(stmt) Check((stmt), #stmt, __FILE__, __LINE__)

/// cudaErrorNotReady from a query is an answer, not a failure: false, and cleared so that the
/// next launch check (cudaGetLastError) does not report it. Other errors go to Check.
template <CheckFn Check>
bool ready(cudaError_t status, const char* statement) {
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  Check(status, statement, __FILE__, __LINE__);
  return true;
}

/// Owns a non-blocking CUDA stream (it must not synchronise with the legacy default stream).
template <CheckFn Check>
class Stream {
 public:
  Stream() { SWARM_CUDA_HANDLE_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  Stream(Stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  Stream& operator=(Stream&&) = delete;
  Stream(const Stream&) = delete;
  ~Stream() {
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  [[nodiscard]] cudaStream_t get() const noexcept { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

/// Owns a CUDA event (cudaEventDefault: it can time; cudaEventDisableTiming: cheaper, ordering
/// only) and whether it was recorded.
template <CheckFn Check>
class Event {
 public:
  explicit Event(unsigned flags = cudaEventDefault) {
    SWARM_CUDA_HANDLE_CHECK(cudaEventCreateWithFlags(&event_, flags));
  }
  Event(Event&& o) noexcept : event_(std::exchange(o.event_, nullptr)), recorded_(std::exchange(o.recorded_, false)) {}
  Event& operator=(Event&& o) noexcept {
    std::swap(event_, o.event_);
    std::swap(recorded_, o.recorded_);
    return *this;
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (event_) (void)cudaEventDestroy(event_);
  }

  void record(cudaStream_t stream) {
    SWARM_CUDA_HANDLE_CHECK(cudaEventRecord(event_, stream));
    recorded_ = true;
  }
  [[nodiscard]] bool recorded() const noexcept { return recorded_; }
  /// Whether the work before the last record has finished (true when never recorded).
  [[nodiscard]] bool done() const { return !recorded_ || ready<Check>(cudaEventQuery(event_), "cudaEventQuery"); }
  void wait() const {
    if (recorded_) SWARM_CUDA_HANDLE_CHECK(cudaEventSynchronize(event_));
  }
  [[nodiscard]] cudaEvent_t get() const noexcept { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
  bool recorded_ = false;
};

#undef SWARM_CUDA_HANDLE_CHECK

}  // namespace swarm::cuda
