// CUDA backend: one cuBLAS GEMM for every projection over all rows of a batch, the kernels of
// kernels.cu for the rest (per row, each row finding its session's cache and position in the
// batch's metadata). Host code (C++20, g++); the kernels are compiled by nvcc. With
// model.compute_dtype = f32 data stay fp32 end to end (16-bit weights widened on the host) and
// cuBLAS runs in CUBLAS_DEFAULT_MATH, which never uses TF32 for sgemm, so results track the CPU
// path. With bf16 the matrices are held in bf16 and each product's activations rounded to bf16
// (cublasGemmEx, fp32 accumulation and output, tensor cores), as the CPU's bf16 path does.
//
// Streams: the compute stream runs every forward, its copies, cache growth and the stream-ordered
// frees; the copy stream runs upload() and download_rows(), so the rows of the next batch can
// move while a forward runs. An event orders an upload before the next forward.
#include "cuda_executor.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "../block_weights.hpp"
#include "../cpu_ops.hpp"
#include "../executor_common.hpp"
#include "../head.hpp"
#include "../memory.hpp"
#include "check.hpp"
#include "kernels.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/util/cuda.hpp"

namespace swarm::model::detail {
namespace {

std::string device_label() {
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess) return "device ?";
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) return "device " + std::to_string(device);
  return "device " + std::to_string(device) + " (" + properties.name + ")";
}

}  // namespace

void raise_cuda_error(cudaError_t status, const std::string& failure) {
  const std::string message = device_label() + ": " + failure;
  if (status == cudaErrorMemoryAllocation) throw OutOfMemoryError(message);
  throw DeviceError(message);
}

void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const std::string message = device_label() + ": " + file + ":" + std::to_string(line) + ": " + statement +
                              " failed: " + cublasGetStatusName(status) + " (" + cublasGetStatusString(status) + ")";
  if (status == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfMemoryError(message);
  throw DeviceError(message);
}

int cuda_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {  // no driver, no device: an error code, not a crash
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

namespace {

template <typename T>
using DeviceArray = ::swarm::cuda::DeviceArray<T, raise_cuda_error>;
using DeviceBuffer = DeviceArray<float>;
using ::swarm::cuda::ensure;

// Weights: copied on the executor's compute stream; `host` must stay alive until that stream
// has been synchronised (load() does).
template <typename T>
DeviceArray<T> upload_async(const std::vector<T>& host, cudaStream_t stream) {
  DeviceArray<T> buffer(host.size());
  if (!host.empty()) {
    SWARM_CUDA_CHECK(cudaMemcpyAsync(buffer.get(), host.data(), buffer.bytes(), cudaMemcpyHostToDevice, stream));
  }
  return buffer;
}

// Page-locked host memory, so that a cudaMemcpyAsync out of it is a true asynchronous copy.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes_ > 0) SWARM_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&data_), bytes_));
  }
  ~PinnedBuffer() {
    if (data_ != nullptr) (void)cudaFreeHost(data_);
  }
  PinnedBuffer(PinnedBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  [[nodiscard]] std::byte* get() const { return data_; }
  [[nodiscard]] std::size_t bytes() const { return bytes_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// A projection matrix on the device: fp32, or bf16 words for model.compute_dtype = bf16.
struct DeviceMatrix {
  DeviceBuffer f32;
  DeviceArray<std::uint16_t> bf16;

  DeviceMatrix(const Matrix& m, cudaStream_t stream) {
    if (m.dtype == DType::bf16) {
      bf16 = upload_async(m.bits, stream);
    } else {
      f32 = upload_async(m.f32, stream);  // load() widened every other dtype
    }
  }
  [[nodiscard]] std::size_t bytes() const { return f32.bytes() + bf16.bytes(); }
};

struct DeviceBlock {
  DeviceBuffer input_norm, post_norm;
  DeviceMatrix q, k, v, o, gate, up, down;
  DeviceBuffer q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;

  DeviceBlock(const BlockWeights& w, cudaStream_t stream)
      : input_norm(upload_async(w.input_norm, stream)), post_norm(upload_async(w.post_norm, stream)),
        q(w.q, stream), k(w.k, stream), v(w.v, stream), o(w.o, stream), gate(w.gate, stream), up(w.up, stream),
        down(w.down, stream), q_bias(upload_async(w.q_bias, stream)), k_bias(upload_async(w.k_bias, stream)),
        v_bias(upload_async(w.v_bias, stream)), o_bias(upload_async(w.o_bias, stream)),
        gate_bias(upload_async(w.gate_bias, stream)), up_bias(upload_async(w.up_bias, stream)),
        down_bias(upload_async(w.down_bias, stream)) {}

  [[nodiscard]] std::size_t bytes() const {
    std::size_t n = 0;
    for (const DeviceBuffer* b : {&input_norm, &post_norm, &q_bias, &k_bias, &v_bias, &o_bias, &gate_bias, &up_bias,
                                  &down_bias}) {
      n += b->bytes();
    }
    for (const DeviceMatrix* m : {&q, &k, &v, &o, &gate, &up, &down}) n += m->bytes();
    return n;
  }
};

// One block's cache for one session: [batch][kv_heads][capacity][head_dim], stream-ordered.
struct DeviceKv {
  int length = 0;
  int capacity = 0;
  DeviceBuffer k, v;

  [[nodiscard]] std::size_t bytes() const { return k.bytes() + v.bytes(); }
};

using Session = detail::SessionTable<DeviceKv>::Session;

// Activations of the rows of a forward (x only for host rows) and the batch's metadata.
struct Workspace {
  DeviceBuffer x, norm, q, k, v, attn, delta, gate, up;
  DeviceArray<std::uint16_t> operand;  // a bf16 product's activations, rounded
  DeviceArray<std::byte> meta;
};

class CublasHandle {
 public:
  CublasHandle() {
    SWARM_CUBLAS_CHECK(cublasCreate(&handle_));
    SWARM_CUBLAS_CHECK(cublasSetMathMode(handle_, CUBLAS_DEFAULT_MATH));  // fp32, no TF32
  }
  ~CublasHandle() { (void)cublasDestroy(handle_); }
  CublasHandle(const CublasHandle&) = delete;
  CublasHandle& operator=(const CublasHandle&) = delete;
  [[nodiscard]] cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

using Stream = ::swarm::cuda::Stream<raise_cuda_error>;
using Event = ::swarm::cuda::Event<raise_cuda_error>;
bool ready(cudaError_t status, const char* statement) { return ::swarm::cuda::ready<raise_cuda_error>(status, statement); }

// The executor's own stream-ordered memory pool. Its release threshold keeps freed cache and
// workspace memory reserved for the next growth (the device's default pool hands it back to the
// driver at every synchronisation and maps it again on the next allocation); load() trims it.
class MemoryPool {
 public:
  explicit MemoryPool(int device) {
    cudaMemPoolProps properties{};
    properties.allocType = cudaMemAllocationTypePinned;
    properties.handleTypes = cudaMemHandleTypeNone;
    properties.location.type = cudaMemLocationTypeDevice;
    properties.location.id = device;
    SWARM_CUDA_CHECK(cudaMemPoolCreate(&pool_, &properties));
    std::uint64_t keep = std::numeric_limits<std::uint64_t>::max();
    const cudaError_t status = cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep);
    if (status != cudaSuccess) (void)cudaMemPoolDestroy(pool_);
    SWARM_CUDA_CHECK(status);
  }
  ~MemoryPool() { (void)cudaMemPoolDestroy(pool_); }  // deferred by the driver until pending frees ran
  MemoryPool(const MemoryPool&) = delete;
  MemoryPool& operator=(const MemoryPool&) = delete;
  [[nodiscard]] cudaMemPool_t get() const { return pool_; }
  /// Returns the free reserved memory to the driver (after the frees have run on their streams).
  void trim() { SWARM_CUDA_CHECK(cudaMemPoolTrimTo(pool_, 0)); }

 private:
  cudaMemPool_t pool_ = nullptr;
};

// Waits for a stream on every way out of a scope, errors ignored: host memory that copies queued
// on it read must outlive them, also when an exception unwinds.
class StreamDrain {
 public:
  explicit StreamDrain(cudaStream_t stream) : stream_(stream) {}
  ~StreamDrain() { (void)cudaStreamSynchronize(stream_); }
  StreamDrain(const StreamDrain&) = delete;
  StreamDrain& operator=(const StreamDrain&) = delete;

 private:
  cudaStream_t stream_;
};

// Makes the executor's device current (the caller may use other devices between calls).
int select_device(int device) {
  SWARM_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

// Device pointers of the batch's metadata (inside Workspace::meta).
struct BatchMetadata {
  const cuda::CacheView* caches = nullptr;  // [block - first_block][segment]
  const cuda::RowInfo* rows = nullptr;      // [row]
};

class CudaExecutor final : public SpanExecutor {
 public:
  explicit CudaExecutor(const ExecutorOptions& options)
      : options_(options), device_(select_device(options.device)), pool_(device_) {
    SWARM_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
  }

  // Queued work may still read the weights (cudaFree) and the staging buffer freed below.
  ~CudaExecutor() override {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_.get());
    (void)cudaStreamSynchronize(copy_stream_.get());
  }
  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  void load(const WeightSource& source, Span span) override {
    select_device(device_);
    const ModelConfig& config = source.config();
    check_span(config, span, source.describe());
    if (config.head_dim > cuda::kMaxHeadDim) {
      throw UsageError("head_dim " + std::to_string(config.head_dim) + " exceeds the CUDA attention kernel's limit of " +
                       std::to_string(cuda::kMaxHeadDim));
    }
    // Free the old span first (a move must not need both in memory), once no queued work reads it.
    synchronize();
    loaded_ = false;
    blocks_.clear();
    sessions_.clear();
    ws_ = Workspace();
    cudaStream_t stream = stream_.get();
    SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the frees just queued have run
    pool_.trim();
    std::size_t free_bytes = 0, total_bytes = 0;
    SWARM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    // The device holds fp32 matrices (widened on the host), or bf16 ones for bf16 compute.
    const bool bf16 = options_.compute == DType::bf16;
    ModelConfig held = config;
    held.weights_dtype = bf16 ? DType::bf16 : DType::f32;
    const auto needed = static_cast<std::uint64_t>(held.block_weight_bytes()) * static_cast<std::uint64_t>(span.length());
    require_memory("blocks " + span_string(span) + " of " + source.describe(), needed, free_bytes, device_label());

    // Copies on the compute stream, so every later forward is ordered after them. At most two
    // blocks are on the host: the next one is read while the previous one's copies may run.
    const std::vector<float> inv_freq = rope_inv_freq(config);
    BlockWeights in_flight;
    const StreamDrain drain(stream);  // destroyed first: no copy still reads in_flight / inv_freq
    inv_freq_ = upload_async(inv_freq, stream);
    blocks_.reserve(static_cast<std::size_t>(span.length()));
    for (int layer = span.start; layer < span.end; ++layer) {
      BlockWeights next = load_block(source, layer);
      if (bf16) {
        next.round_to_bf16();
      } else {
        next.widen();
      }
      SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));  // the previous block's copies have read in_flight
      in_flight = std::move(next);
      blocks_.emplace_back(in_flight, stream);
    }
    SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));
    config_ = config;
    span_ = span;
    loaded_ = true;
  }

  using SpanExecutor::forward;

  void forward(std::span<const Segment> segments, int first_block, int last_block, float* rows,
               Memory memory) override {
    const std::int64_t total = check_batch(span_, loaded_, segments, first_block, last_block, rows);
    check_window(config_, segments);
    if (total == 0 || first_block == last_block) return;
    if (total > std::numeric_limits<int>::max()) {
      throw UsageError("forward() with " + std::to_string(total) +
                       " rows: the CUDA backend takes at most 2^31 - 1 rows a batch");
    }
    select_device(device_);
    if (memory == Memory::device) check_device_pointer(rows, "forward() with device rows");
    const int n = static_cast<int>(total);
    cudaStream_t stream = stream_.get();
    // Every check before any work: a refused batch changes no cache.
    const std::vector<Session*> states = sessions_.prepare_checked(
        segments, span_, first_block, last_block,
        [&](const std::vector<Session*>& prepared) { check_growth(segments, prepared, first_block, last_block); });
    ensure_workspace(n, memory);

    if (upload_pending_) {  // the rows an upload() wrote are read by this forward (or a later one)
      SWARM_CUDA_CHECK(cudaStreamWaitEvent(stream, uploaded_.get(), 0));
      upload_pending_ = false;
    }
    if (const auto seconds = finished_forward_seconds()) last_seconds_ = *seconds;
    timed_ = false;
    start_.record(stream);  // host rows: their copies in and out are part of the forward's time
    for (std::size_t i = 0; i < segments.size(); ++i) {
      for (int block = first_block; block < last_block; ++block) {
        DeviceKv& cache = states[i]->blocks[static_cast<std::size_t>(block - span_.start)];
        reserve(cache, segments[i].batch, cache.length + segments[i].tokens, segments[i].length);
      }
    }
    const BatchMetadata meta = stage_metadata(segments, states, first_block, last_block, n);
    const std::size_t row_bytes = static_cast<std::size_t>(n) * config_.hidden_size * sizeof(float);
    float* x = rows;
    if (memory == Memory::host) {
      x = ws_.x.get();
      SWARM_CUDA_CHECK(cudaMemcpyAsync(x, rows, row_bytes, cudaMemcpyHostToDevice, stream));
    }
    for (int block = first_block; block < last_block; ++block) {
      const auto step = static_cast<std::size_t>(block - first_block);
      run_block(blocks_[static_cast<std::size_t>(block - span_.start)], meta.caches + step * segments.size(),
                meta.rows, x, n);
    }
    for (std::size_t i = 0; i < segments.size(); ++i) {
      for (int block = first_block; block < last_block; ++block) {
        states[i]->blocks[static_cast<std::size_t>(block - span_.start)].length += segments[i].tokens;
      }
    }
    if (memory == Memory::host) {
      SWARM_CUDA_CHECK(cudaMemcpyAsync(rows, x, row_bytes, cudaMemcpyDeviceToHost, stream));
    }
    end_.record(stream);
    timed_ = true;
    if (memory == Memory::host) SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  [[nodiscard]] bool idle() override { return end_.done() && uploaded_.done(); }

  void synchronize() override {
    SWARM_CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
    SWARM_CUDA_CHECK(cudaStreamSynchronize(copy_stream_.get()));
  }

  [[nodiscard]] double last_forward_seconds() const override {
    return finished_forward_seconds().value_or(last_seconds_);
  }

  void upload(std::span<const float> host, float* device) override {
    if (host.empty()) return;
    select_device(device_);
    check_device_pointer(device, "upload()");
    cudaStream_t copy = copy_stream_.get();
    SWARM_CUDA_CHECK(cudaMemcpyAsync(device, host.data(), host.size_bytes(), cudaMemcpyHostToDevice, copy));
    uploaded_.record(copy);
    upload_pending_ = true;
  }

  void download_rows(const float* device, std::span<const std::int64_t> rows, std::span<float> host) override {
    if (!loaded_) throw UsageError("download_rows() before load(): rows are hidden_size floats of the loaded model");
    const auto h = static_cast<std::size_t>(config_.hidden_size);
    if (host.size() < rows.size() * h) {
      throw UsageError("download_rows() of " + std::to_string(rows.size()) + " rows of " + std::to_string(h) +
                       " floats into " + std::to_string(host.size()) + " floats");
    }
    if (rows.empty()) return;
    for (const std::int64_t row : rows) {
      if (row < 0) throw UsageError("download_rows() of row " + std::to_string(row));
    }
    select_device(device_);
    check_device_pointer(device, "download_rows()");
    cudaStream_t copy = copy_stream_.get();
    for (std::size_t i = 0; i < rows.size();) {
      std::size_t run = 1;  // consecutive rows go in one copy
      while (i + run < rows.size() && rows[i + run] == rows[i] + static_cast<std::int64_t>(run)) ++run;
      SWARM_CUDA_CHECK(cudaMemcpyAsync(host.data() + i * h, device + static_cast<std::size_t>(rows[i]) * h,
                                       run * h * sizeof(float), cudaMemcpyDeviceToHost, copy));
      i += run;
    }
    SWARM_CUDA_CHECK(cudaStreamSynchronize(copy));
  }

  // The caches are freed behind the forwards already queued, which may still read them.
  void drop_session(SessionId session) override {
    select_device(device_);
    sessions_.drop(session);
  }

  [[nodiscard]] int cached_tokens(SessionId session, int block) const override {
    if (!span_.contains(block)) return 0;
    return sessions_.cached_tokens(session, block - span_.start);
  }

  [[nodiscard]] Span span() const override { return span_; }
  [[nodiscard]] Backend backend() const override { return Backend::cuda; }
  [[nodiscard]] const ModelConfig& config() const override { return config_; }

  [[nodiscard]] std::size_t cache_bytes() const override { return sessions_.bytes(); }
  [[nodiscard]] std::size_t weight_bytes() const override { return detail::total_bytes(blocks_); }

 private:
  // UsageError unless `pointer` is memory of this executor's device (a host pointer passed as
  // device rows would otherwise fault inside a kernel, taking the whole context down).
  void check_device_pointer(const void* pointer, const char* what) const {
    if (pointer == nullptr) throw UsageError(std::string(what) + " with a null device pointer");
    cudaPointerAttributes attributes{};
    SWARM_CUDA_CHECK(cudaPointerGetAttributes(&attributes, pointer));
    const bool device_memory = attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
    if (!device_memory || attributes.device != device_) {
      throw UsageError(std::string(what) + ": the pointer is not memory of CUDA device " + std::to_string(device_));
    }
  }

  // The last forward's device time, once it has finished.
  [[nodiscard]] std::optional<double> finished_forward_seconds() const {
    if (!timed_) return std::nullopt;
    float milliseconds = 0.0F;
    if (!ready(cudaEventElapsedTime(&milliseconds, start_.get(), end_.get()), "cudaEventElapsedTime")) {
      return std::nullopt;
    }
    return static_cast<double>(milliseconds) * 1e-3;
  }

  // CacheBudgetError when growing the batch's caches would pass the budget: checked for the
  // whole batch before any allocation, so a refused batch leaves every cache as it was.
  void check_growth(std::span<const Segment> segments, const std::vector<Session*>& states, int first_block,
                    int last_block) const {
    detail::SessionTable<DeviceKv>::check_growth(options_, cache_bytes(), config_.kv_dim(), segments, states, span_,
                                                 first_block, last_block);
  }

  void ensure_workspace(int rows, Memory memory) {
    const ModelConfig& c = config_;
    const auto n = static_cast<std::size_t>(rows);
    const auto h = static_cast<std::size_t>(c.hidden_size), inter = static_cast<std::size_t>(c.intermediate_size);
    const std::size_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
    cudaMemPool_t pool = pool_.get();
    cudaStream_t stream = stream_.get();
    if (memory == Memory::host) ensure(ws_.x, n * h, pool, stream);
    ensure(ws_.norm, n * h, pool, stream);
    ensure(ws_.q, n * q_dim, pool, stream);
    ensure(ws_.k, n * kv_dim, pool, stream);
    ensure(ws_.v, n * kv_dim, pool, stream);
    ensure(ws_.attn, n * q_dim, pool, stream);
    ensure(ws_.delta, n * h, pool, stream);
    ensure(ws_.gate, n * inter, pool, stream);
    ensure(ws_.up, n * inter, pool, stream);
  }

  // Grows a block's cache to `needed` positions, all on the compute stream: new arrays from the
  // pool, one 2D copy of the cached positions of every (sequence, kv head) plane, and the old
  // arrays freed behind the copies. No synchronisation.
  void reserve(DeviceKv& cache, int batch, int needed, int length) {
    if (needed <= cache.capacity) return;
    const int capacity = grown_kv_capacity(cache.capacity, needed, length);
    const auto head_dim = static_cast<std::size_t>(config_.head_dim);
    const std::size_t planes = static_cast<std::size_t>(batch) * config_.num_key_value_heads;
    const std::size_t count = planes * capacity * head_dim;
    cudaStream_t stream = stream_.get();
    DeviceBuffer k(count, pool_.get(), stream), v(count, pool_.get(), stream);
    if (cache.length > 0) {
      for (auto [dst, src] : {std::pair{&k, &cache.k}, std::pair{&v, &cache.v}}) {
        SWARM_CUDA_CHECK(cudaMemcpy2DAsync(dst->get(), capacity * head_dim * sizeof(float), src->get(),
                                           cache.capacity * head_dim * sizeof(float),
                                           cache.length * head_dim * sizeof(float), planes, cudaMemcpyDeviceToDevice,
                                           stream));
      }
    }
    cache.k = std::move(k);  // the old arrays land in k and v and are freed behind the copies
    cache.v = std::move(v);
    cache.capacity = capacity;
  }

  // Uploads the batch's metadata with one copy on the compute stream: a CacheView per (block,
  // segment), block-major (capacities after growth), then a RowInfo per row. The pinned staging
  // buffer is rewritten only once the previous forward's copy out of it has completed.
  BatchMetadata stage_metadata(std::span<const Segment> segments, const std::vector<Session*>& states,
                               int first_block, int last_block, int rows) {
    static_assert(sizeof(cuda::CacheView) % alignof(cuda::RowInfo) == 0, "RowInfo array after the CacheViews");
    views_.clear();
    for (int block = first_block; block < last_block; ++block) {
      for (Session* state : states) {
        DeviceKv& cache = state->blocks[static_cast<std::size_t>(block - span_.start)];
        views_.push_back({cache.k.get(), cache.v.get(), cache.capacity});
      }
    }
    row_info_.clear();
    row_info_.reserve(static_cast<std::size_t>(rows));
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const Segment& seg = segments[i];
      for (int b = 0; b < seg.batch; ++b) {
        for (int t = 0; t < seg.tokens; ++t) row_info_.push_back({static_cast<int>(i), b, seg.position + t});
      }
    }
    const std::size_t view_bytes = views_.size() * sizeof(cuda::CacheView);
    const std::size_t bytes = view_bytes + row_info_.size() * sizeof(cuda::RowInfo);
    staged_.wait();
    if (staging_.bytes() < bytes) staging_ = PinnedBuffer(std::max(bytes, 2 * staging_.bytes()));
    std::memcpy(staging_.get(), views_.data(), view_bytes);
    std::memcpy(staging_.get() + view_bytes, row_info_.data(), bytes - view_bytes);
    cudaStream_t stream = stream_.get();
    ensure(ws_.meta, bytes, pool_.get(), stream);
    SWARM_CUDA_CHECK(cudaMemcpyAsync(ws_.meta.get(), staging_.get(), bytes, cudaMemcpyHostToDevice, stream));
    staged_.record(stream);
    return {reinterpret_cast<const cuda::CacheView*>(ws_.meta.get()),
            reinterpret_cast<const cuda::RowInfo*>(ws_.meta.get() + view_bytes)};
  }

  // y[rows, out] = x[rows, in] W^T (+ bias). Row-major y^T = W x^T, i.e. in cuBLAS's
  // column-major view y = op(W) x with W stored as an [in, out] column-major matrix, op = T.
  // bf16 weights: x is rounded to bf16 as the CPU's bf16 path rounds it, and cuBLAS multiplies
  // bf16 by bf16 on the tensor cores, accumulating and writing fp32.
  void linear(const float* x, int rows, int in, const DeviceMatrix& weight, int out, const DeviceBuffer* bias,
              float* y) {
    const float one = 1.0F, zero = 0.0F;
    if (weight.bf16.count() > 0) {
      const auto n = static_cast<long long>(rows) * in;
      ensure(ws_.operand, static_cast<std::size_t>(n), pool_.get(), stream_.get());
      SWARM_CUDA_CHECK(cuda::to_bf16(x, reinterpret_cast<unsigned short*>(ws_.operand.get()), n, stream_.get()));
      SWARM_CUBLAS_CHECK(cublasGemmEx(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, weight.bf16.get(),
                                      CUDA_R_16BF, in, ws_.operand.get(), CUDA_R_16BF, in, &zero, y, CUDA_R_32F, out,
                                      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
      SWARM_CUBLAS_CHECK(cublasSgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, weight.f32.get(),
                                     in, x, in, &zero, y, out));
    }
    if (bias != nullptr && bias->count() > 0) SWARM_CUDA_CHECK(cuda::add_bias(y, bias->get(), rows, out, stream_.get()));
  }

  // One block over the whole batch: one GEMM per projection over all rows; RoPE, the cache
  // append and attention per row, each row on its own session's cache (`caches`: this block's
  // CacheView per segment).
  void run_block(const DeviceBlock& w, const cuda::CacheView* caches, const cuda::RowInfo* row_info, float* x,
                 int rows) {
    const ModelConfig& c = config_;
    const int h = c.hidden_size, inter = c.intermediate_size;
    const auto q_dim = static_cast<int>(c.q_dim()), kv_dim = static_cast<int>(c.kv_dim());
    const auto eps = static_cast<float>(c.rms_norm_eps);
    const auto n = static_cast<std::size_t>(rows);
    cudaStream_t stream = stream_.get();

    // Attention: h = x + o_proj(attn(rmsnorm(x)))
    SWARM_CUDA_CHECK(cuda::rms_norm(x, w.input_norm.get(), ws_.norm.get(), rows, h, eps, stream));
    linear(ws_.norm.get(), rows, h, w.q, q_dim, &w.q_bias, ws_.q.get());
    linear(ws_.norm.get(), rows, h, w.k, kv_dim, &w.k_bias, ws_.k.get());
    linear(ws_.norm.get(), rows, h, w.v, kv_dim, &w.v_bias, ws_.v.get());
    SWARM_CUDA_CHECK(cuda::rope_and_cache(ws_.q.get(), ws_.k.get(), ws_.v.get(), inv_freq_.get(), row_info, caches,
                                          rows, c.num_attention_heads, c.num_key_value_heads, c.head_dim, stream));
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));  // head_dim**-0.5
    SWARM_CUDA_CHECK(cuda::attention(ws_.q.get(), row_info, caches, ws_.attn.get(), rows, c.num_attention_heads,
                                     c.num_key_value_heads, c.head_dim, scale, stream));
    linear(ws_.attn.get(), rows, q_dim, w.o, h, nullptr, ws_.delta.get());
    SWARM_CUDA_CHECK(cuda::residual_add(x, ws_.delta.get(), w.o_bias.get(), rows, h, stream));

    // MLP: out = h + down(silu(gate(n)) * up(n)), n = rmsnorm(h)
    SWARM_CUDA_CHECK(cuda::rms_norm(x, w.post_norm.get(), ws_.norm.get(), rows, h, eps, stream));
    linear(ws_.norm.get(), rows, h, w.gate, inter, &w.gate_bias, ws_.gate.get());
    linear(ws_.norm.get(), rows, h, w.up, inter, &w.up_bias, ws_.up.get());
    SWARM_CUDA_CHECK(cuda::swiglu(ws_.gate.get(), ws_.up.get(), static_cast<long long>(n) * inter, stream));
    linear(ws_.gate.get(), rows, inter, w.down, h, nullptr, ws_.delta.get());
    SWARM_CUDA_CHECK(cuda::residual_add(x, ws_.delta.get(), w.down_bias.get(), rows, h, stream));
  }

  ExecutorOptions options_;
  int device_;
  MemoryPool pool_;
  Stream stream_;       // compute: forwards, their copies, cache growth, stream-ordered frees
  Stream copy_stream_;  // upload() and download_rows()
  CublasHandle cublas_;
  Event start_{cudaEventDefault};             // around the last forward, for its device time
  Event end_{cudaEventDefault};
  Event staged_{cudaEventDisableTiming};      // the last forward's metadata copy out of staging_
  Event uploaded_{cudaEventDisableTiming};    // the last upload()
  bool upload_pending_ = false;               // the compute stream does not yet wait for uploaded_
  bool timed_ = false;                        // start_ and end_ enclose the last forward
  double last_seconds_ = 0;                   // the forward before it, when it had finished
  ModelConfig config_;
  Span span_;
  bool loaded_ = false;
  std::vector<DeviceBlock> blocks_;
  DeviceBuffer inv_freq_;
  detail::SessionTable<DeviceKv> sessions_;
  Workspace ws_;
  PinnedBuffer staging_;
  std::vector<cuda::CacheView> views_;  // host side of the metadata, reused
  std::vector<cuda::RowInfo> row_info_;
};

// The client's final norm and LM head on the GPU: one GEMM [rows, hidden] x [hidden, vocab] a
// batch, the largest the client runs (32000 x 2048 for a 1B model). Its own stream; each call
// returns with the logits on the host.
class CudaHead final : public DeviceHead {
 public:
  CudaHead(const ModelConfig& config, const std::vector<float>& norm, const Matrix& lm_head,
           const ExecutorOptions& options)
      : config_(config), device_(select_device(options.device)), pool_(device_) {
    SWARM_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream_.get()));
    Matrix held = lm_head;  // a copy: widened or rounded here, the host table stays as it is
    if (options.compute == DType::bf16) {
      held.round_to_bf16();
    } else {
      held.widen();
    }
    std::size_t free_bytes = 0, total_bytes = 0;
    SWARM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    require_memory("the LM head (" + std::to_string(config.vocab_size) + " x " + std::to_string(config.hidden_size) +
                       ")",
                   held.bytes() + norm.size() * sizeof(float), free_bytes, device_label());
    cudaStream_t stream = stream_.get();
    const StreamDrain drain(stream);  // `held` and `norm` outlive the copies that read them
    norm_ = upload_async(norm, stream);
    head_.emplace(held, stream);
  }
  ~CudaHead() override {
    (void)cudaSetDevice(device_);
    (void)cudaStreamSynchronize(stream_.get());
  }
  CudaHead(const CudaHead&) = delete;
  CudaHead& operator=(const CudaHead&) = delete;

  void logits(const float* hidden, int rows, float* out) override {
    select_device(device_);
    const int h = config_.hidden_size, vocab = config_.vocab_size;
    cudaStream_t stream = stream_.get();
    const auto in = static_cast<std::size_t>(rows) * h, outs = static_cast<std::size_t>(rows) * vocab;
    ensure(x_, in, pool_.get(), stream);
    ensure(logits_, outs, pool_.get(), stream);
    SWARM_CUDA_CHECK(cudaMemcpyAsync(x_.get(), hidden, in * sizeof(float), cudaMemcpyHostToDevice, stream));
    SWARM_CUDA_CHECK(cuda::rms_norm(x_.get(), norm_.get(), x_.get(), rows, h, static_cast<float>(config_.rms_norm_eps),
                                    stream));
    const float one = 1.0F, zero = 0.0F;
    if (head_->bf16.count() > 0) {
      ensure(operand_, in, pool_.get(), stream);
      SWARM_CUDA_CHECK(cuda::to_bf16(x_.get(), reinterpret_cast<unsigned short*>(operand_.get()),
                                     static_cast<long long>(in), stream));
      SWARM_CUBLAS_CHECK(cublasGemmEx(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, vocab, rows, h, &one, head_->bf16.get(),
                                      CUDA_R_16BF, h, operand_.get(), CUDA_R_16BF, h, &zero, logits_.get(), CUDA_R_32F,
                                      vocab, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    } else {
      SWARM_CUBLAS_CHECK(cublasSgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, vocab, rows, h, &one, head_->f32.get(), h,
                                     x_.get(), h, &zero, logits_.get(), vocab));
    }
    SWARM_CUDA_CHECK(cudaMemcpyAsync(out, logits_.get(), outs * sizeof(float), cudaMemcpyDeviceToHost, stream));
    SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  [[nodiscard]] std::size_t weight_bytes() const override { return norm_.bytes() + (head_ ? head_->bytes() : 0); }

 private:
  ModelConfig config_;
  int device_;
  MemoryPool pool_;
  Stream stream_;
  CublasHandle cublas_;
  DeviceBuffer norm_;
  std::optional<DeviceMatrix> head_;
  DeviceBuffer x_, logits_;
  DeviceArray<std::uint16_t> operand_;
};

}  // namespace

std::unique_ptr<SpanExecutor> make_cuda_executor(const ExecutorOptions& options) {
  return std::make_unique<CudaExecutor>(options);
}

std::unique_ptr<DeviceHead> make_cuda_head(const ModelConfig& config, const std::vector<float>& norm,
                                           const Matrix& lm_head, const ExecutorOptions& options) {
  return std::make_unique<CudaHead>(config, norm, lm_head, options);
}

}  // namespace swarm::model::detail
