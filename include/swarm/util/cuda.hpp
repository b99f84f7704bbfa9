#pragma once
// CUDA builds only: what the components that drive a GPU (comm's NCCL transport, model's CUDA
// executor) share: the one check macro, the wording of a failed call, and the RAII stream,
// event and device array. Each component keeps its own error types: it declares, in its own namespace,
//   [[noreturn]] void raise_cuda_error(cudaError_t status, const std::string& failure);
// which SWARM_CUDA_CHECK finds by ordinary lookup from where it is used, and the handles are
// instantiated with it (Stream<raise_cuda_error>), so a failure throws that component's error.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <string>
#include <utility>

namespace swarm::cuda {

/// A component's thrower: never returns; `failure` is failure_text()'s wording.
using RaiseFn = void (*)(cudaError_t status, const std::string& failure);

/// "file:line: statement failed: cudaErrorName (description)".
[[nodiscard]] inline std::string failure_text(cudaError_t status, const char* statement, const char* file, int line) {
  return std::string(file)
      .append(":")
      .append(std::to_string(line))
      .append(": ")
      .append(statement)
      .append(" failed: ")
      .append(cudaGetErrorName(status))
      .append(" (")
      .append(cudaGetErrorString(status))
      .append(")");
}

/// Returns on cudaSuccess; otherwise clears a non-sticky error (so a later, unrelated call is not
/// blamed for it) and throws through Raise.
template <RaiseFn Raise>
void check(cudaError_t status, const char* statement, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();
  Raise(status, failure_text(status, statement, file, line));
}

#define SWARM_CUDA_CHECK(stmt) ::swarm::cuda::check<raise_cuda_error>((stmt), #stmt, __FILE__, __LINE__)
#define SWARM_CUDA_HANDLE_CHECK(stmt) check<Raise>((stmt), #stmt, __FILE__, __LINE__)

/// cudaErrorNotReady from a query is an answer, not a failure: false, and cleared so that the
/// next launch check (cudaGetLastError) does not report it. Other errors go to Raise.
template <RaiseFn Raise>
bool ready(cudaError_t status, const char* statement) {
  if (status == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  check<Raise>(status, statement, __FILE__, __LINE__);
  return true;
}

/// Owns a non-blocking CUDA stream (it must not synchronise with the legacy default stream).
template <RaiseFn Raise>
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
template <RaiseFn Raise>
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
  [[nodiscard]] bool done() const { return !recorded_ || ready<Raise>(cudaEventQuery(event_), "cudaEventQuery"); }
  void wait() const {
    if (recorded_) SWARM_CUDA_HANDLE_CHECK(cudaEventSynchronize(event_));
  }
  [[nodiscard]] cudaEvent_t get() const noexcept { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
  bool recorded_ = false;
};

/// Owning device array. Two kinds of allocation: cudaMalloc for what lives as long as its owner
/// (weights); stream-ordered allocation from a pool for what comes and goes between forwards
/// (KV caches, workspaces). A stream-ordered array may be used by work queued on its stream
/// after the allocation, and is freed (cudaFreeAsync) behind the work queued on that stream
/// before its destruction, so replacing or dropping one never waits for the device.
template <typename T, RaiseFn Raise>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(std::size_t count) : count_(count) {
    if (count_ > 0) SWARM_CUDA_HANDLE_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  DeviceArray(std::size_t count, cudaMemPool_t pool, cudaStream_t stream)
      : count_(count), stream_(stream), ordered_(true) {
    if (count_ > 0) {
      SWARM_CUDA_HANDLE_CHECK(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&data_), bytes(), pool, stream));
    }
  }
  ~DeviceArray() {
    if (data_ == nullptr) return;
    if (ordered_) {
      (void)cudaFreeAsync(data_, stream_);
    } else {
      (void)cudaFree(data_);
    }
  }
  DeviceArray(DeviceArray&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        count_(std::exchange(other.count_, 0)),
        stream_(other.stream_),
        ordered_(other.ordered_) {}
  DeviceArray& operator=(DeviceArray&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    std::swap(stream_, other.stream_);
    std::swap(ordered_, other.ordered_);
    return *this;
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;

  [[nodiscard]] T* get() const { return data_; }
  [[nodiscard]] std::size_t count() const { return count_; }
  [[nodiscard]] std::size_t bytes() const { return count_ * sizeof(T); }

 private:
  T* data_ = nullptr;
  std::size_t count_ = 0;
  cudaStream_t stream_ = nullptr;
  bool ordered_ = false;
};

/// Grows `buffer` to at least `count` elements (contents not kept). Stream-ordered: forwards
/// queued before still use the old array, which is freed behind them, and the new one is only
/// touched by work queued after; so a growing workspace needs no synchronisation.
template <typename T, RaiseFn Raise>
void ensure(DeviceArray<T, Raise>& buffer, std::size_t count, cudaMemPool_t pool, cudaStream_t stream) {
  if (buffer.count() >= count) return;
  buffer = DeviceArray<T, Raise>();  // free first: the pool can hand the same memory to the new array
  buffer = DeviceArray<T, Raise>(count, pool, stream);
}

#undef SWARM_CUDA_HANDLE_CHECK

}  // namespace swarm::cuda
