// CUDA backend: cuBLAS sgemm for every projection, the kernels of kernels.cu for the rest.
// Host code (C++20, g++); the kernels are compiled by nvcc. Data stay fp32 end to end; cuBLAS
// runs in CUBLAS_DEFAULT_MATH, which never uses TF32 for sgemm, so results track the CPU path.
#include "cuda_executor.hpp"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <utility>

#include "../block_weights.hpp"
#include "../cpu_ops.hpp"
#include "../executor_common.hpp"
#include "../memory.hpp"
#include "check.hpp"
#include "kernels.hpp"
#include "swarm/model/errors.hpp"

namespace swarm::model::detail {
namespace {

std::string device_label() {
  int device = -1;
  if (cudaGetDevice(&device) != cudaSuccess) return "device ?";
  cudaDeviceProp properties{};
  if (cudaGetDeviceProperties(&properties, device) != cudaSuccess) return "device " + std::to_string(device);
  return "device " + std::to_string(device) + " (" + properties.name + ")";
}

std::string where(const char* statement, const char* file, int line) {
  return " on " + device_label() + " at " + file + ":" + std::to_string(line) + ": " + statement;
}

}  // namespace

void check_cuda(cudaError_t status, const char* statement, const char* file, int line) {
  if (status == cudaSuccess) return;
  (void)cudaGetLastError();  // clear a non-sticky error so later calls are not blamed
  const std::string message = std::string("CUDA error ") + cudaGetErrorName(status) + " (" +
                              cudaGetErrorString(status) + ")" + where(statement, file, line);
  if (status == cudaErrorMemoryAllocation) throw OutOfMemoryError(message);
  throw DeviceError(message);
}

void check_cublas(cublasStatus_t status, const char* statement, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  const std::string message = std::string("cuBLAS error ") + cublasGetStatusName(status) + " (" +
                              cublasGetStatusString(status) + ")" + where(statement, file, line);
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

// Owning fp32 device array.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t count) : count_(count) {
    if (count_ > 0) SWARM_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&data_), bytes()));
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) (void)cudaFree(data_);
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), count_(std::exchange(other.count_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  [[nodiscard]] float* get() const { return data_; }
  [[nodiscard]] std::size_t count() const { return count_; }
  [[nodiscard]] std::size_t bytes() const { return count_ * sizeof(float); }

 private:
  float* data_ = nullptr;
  std::size_t count_ = 0;
};

DeviceBuffer upload(const std::vector<float>& host) {
  DeviceBuffer buffer(host.size());
  if (!host.empty()) SWARM_CUDA_CHECK(cudaMemcpy(buffer.get(), host.data(), buffer.bytes(), cudaMemcpyHostToDevice));
  return buffer;
}

// Grows `buffer` to at least `count` floats (contents not kept). Work queued on `stream` may
// still read the old one, so wait for it before freeing.
void ensure(DeviceBuffer& buffer, std::size_t count, cudaStream_t stream) {
  if (buffer.count() < count) {
    if (buffer.count() > 0) SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));
    buffer = DeviceBuffer();
    buffer = DeviceBuffer(count);
  }
}

struct DeviceBlock {
  DeviceBuffer input_norm, q, k, v, o, post_norm, gate, up, down;
  DeviceBuffer q_bias, k_bias, v_bias, o_bias, gate_bias, up_bias, down_bias;

  explicit DeviceBlock(const BlockWeights& w)
      : input_norm(upload(w.input_norm)), q(upload(w.q)), k(upload(w.k)), v(upload(w.v)), o(upload(w.o)),
        post_norm(upload(w.post_norm)), gate(upload(w.gate)), up(upload(w.up)), down(upload(w.down)),
        q_bias(upload(w.q_bias)), k_bias(upload(w.k_bias)), v_bias(upload(w.v_bias)), o_bias(upload(w.o_bias)),
        gate_bias(upload(w.gate_bias)), up_bias(upload(w.up_bias)), down_bias(upload(w.down_bias)) {}

  [[nodiscard]] std::size_t bytes() const {
    std::size_t n = 0;
    for (const DeviceBuffer* b : {&input_norm, &q, &k, &v, &o, &post_norm, &gate, &up, &down, &q_bias, &k_bias,
                                  &v_bias, &o_bias, &gate_bias, &up_bias, &down_bias}) {
      n += b->bytes();
    }
    return n;
  }
};

// One block's cache for one session: [batch][kv_heads][capacity][head_dim].
struct DeviceKv {
  int length = 0;
  int capacity = 0;
  DeviceBuffer k, v;

  [[nodiscard]] std::size_t bytes() const { return k.bytes() + v.bytes(); }
};

using Session = detail::SessionTable<DeviceKv>::Session;

struct Workspace {
  DeviceBuffer x, norm, q, k, v, attn, delta, gate, up;
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

class Stream {
 public:
  Stream() { SWARM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking)); }
  ~Stream() { (void)cudaStreamDestroy(stream_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  [[nodiscard]] cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Makes the executor's device current (the caller may use other devices between calls).
int select_device(int device) {
  SWARM_CUDA_CHECK(cudaSetDevice(device));
  return device;
}

class CudaExecutor final : public SpanExecutor {
 public:
  explicit CudaExecutor(const ExecutorOptions& options) : options_(options), device_(select_device(options.device)) {}

  void load(const WeightSource& source, Span span) override {
    select_device(device_);
    const ModelConfig& config = source.config();
    check_span(config, span, source.describe());
    if (config.head_dim > cuda::kMaxHeadDim) {
      throw UsageError("head_dim " + std::to_string(config.head_dim) + " exceeds the CUDA attention kernel's limit of " +
                       std::to_string(cuda::kMaxHeadDim));
    }
    blocks_.clear();  // free the old span first
    sessions_.clear();
    loaded_ = false;
    std::size_t free_bytes = 0, total_bytes = 0;
    SWARM_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const auto needed = static_cast<std::uint64_t>(config.block_weight_bytes()) * static_cast<std::uint64_t>(span.size());
    require_memory("blocks " + span_string(span) + " of " + source.describe(), needed, free_bytes, device_label());
    blocks_.reserve(static_cast<std::size_t>(span.size()));
    for (int layer = span.start; layer < span.end; ++layer) {
      blocks_.emplace_back(load_block(source, layer));  // one block on the host at a time
    }
    config_ = config;
    span_ = span;
    inv_freq_ = upload(rope_inv_freq(config.head_dim, config.rope_theta));
    loaded_ = true;
  }

  void forward(SessionId session, int first_block, int last_block, float* hidden, int batch, int tokens) override {
    check_forward(span_, loaded_, first_block, last_block, batch, tokens, hidden);
    if (tokens == 0 || first_block == last_block) return;
    select_device(device_);
    const std::size_t count = static_cast<std::size_t>(batch) * tokens * config_.hidden_size;
    cudaStream_t stream = stream_.get();
    ensure(ws_.x, count, stream);
    SWARM_CUDA_CHECK(cudaMemcpyAsync(ws_.x.get(), hidden, count * sizeof(float), cudaMemcpyHostToDevice, stream));
    run(session, first_block, last_block, ws_.x.get(), batch, tokens, stream);
    SWARM_CUDA_CHECK(cudaMemcpyAsync(hidden, ws_.x.get(), count * sizeof(float), cudaMemcpyDeviceToHost, stream));
    SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));
  }

  void forward_device(SessionId session, int first_block, int last_block, float* device_hidden, int batch, int tokens,
                      void* stream) override {
    check_forward(span_, loaded_, first_block, last_block, batch, tokens, device_hidden);
    if (tokens == 0 || first_block == last_block) return;
    select_device(device_);
    auto* cuda_stream = static_cast<cudaStream_t>(stream);
    run(session, first_block, last_block, device_hidden, batch, tokens, cuda_stream);
    SWARM_CUDA_CHECK(cudaStreamSynchronize(cuda_stream));
  }

  void drop_session(SessionId session) override { sessions_.drop(session); }

  [[nodiscard]] int cached_tokens(SessionId session, int block) const override {
    if (!span_.contains(block, block + 1)) return 0;
    return sessions_.cached_tokens(session, block - span_.start);
  }

  [[nodiscard]] Span span() const override { return span_; }
  [[nodiscard]] Backend backend() const override { return Backend::cuda; }
  [[nodiscard]] const ModelConfig& config() const override { return config_; }

  [[nodiscard]] std::size_t cache_bytes() const override { return sessions_.bytes(); }
  [[nodiscard]] std::size_t weight_bytes() const override { return detail::total_bytes(blocks_); }

 private:

  // Grows the cache to `needed` positions, copying the cached rows of every (sequence, kv head).
  void reserve(DeviceKv& cache, SessionId session, int batch, int needed, cudaStream_t stream) {
    if (needed <= cache.capacity) return;
    const int capacity = grown_kv_capacity(cache.capacity, needed);
    const auto head_dim = static_cast<std::size_t>(config_.head_dim);
    const std::size_t planes = static_cast<std::size_t>(batch) * config_.num_key_value_heads;
    const std::size_t count = planes * capacity * head_dim;
    check_cache_budget(options_, cache_bytes(), 2 * count * sizeof(float) - cache.bytes(), session);
    DeviceBuffer k(count), v(count);
    if (cache.length > 0) {
      for (auto [dst, src] : {std::pair{&k, &cache.k}, std::pair{&v, &cache.v}}) {
        SWARM_CUDA_CHECK(cudaMemcpy2DAsync(dst->get(), capacity * head_dim * sizeof(float), src->get(),
                                           cache.capacity * head_dim * sizeof(float),
                                           cache.length * head_dim * sizeof(float), planes, cudaMemcpyDeviceToDevice,
                                           stream));
      }
      SWARM_CUDA_CHECK(cudaStreamSynchronize(stream));  // before the old buffers are freed
    }
    cache.k = std::move(k);
    cache.v = std::move(v);
    cache.capacity = capacity;
  }

  void run(SessionId session, int first_block, int last_block, float* x, int batch, int tokens, cudaStream_t stream) {
    SWARM_CUBLAS_CHECK(cublasSetStream(cublas_.get(), stream));
    Session& state = sessions_.get(session, batch, span_.size());
    for (int block = first_block; block < last_block; ++block) {
      DeviceKv& cache = state.blocks[static_cast<std::size_t>(block - span_.start)];
      reserve(cache, session, batch, cache.length + tokens, stream);
      run_block(blocks_[static_cast<std::size_t>(block - span_.start)], cache, x, batch, tokens, stream);
    }
  }

  // y[rows, out] = x[rows, in] W^T (+ bias). Row-major y^T = W x^T, i.e. in cuBLAS's
  // column-major view y = op(W) x with W stored as an [in, out] column-major matrix, op = T.
  void linear(const float* x, int rows, int in, const DeviceBuffer& weight, int out, const DeviceBuffer* bias, float* y,
              cudaStream_t stream) {
    const float one = 1.0F, zero = 0.0F;
    SWARM_CUBLAS_CHECK(cublasSgemm(cublas_.get(), CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, weight.get(), in, x,
                                   in, &zero, y, out));
    if (bias != nullptr && bias->count() > 0) SWARM_CUDA_CHECK(cuda::add_bias(y, bias->get(), rows, out, stream));
  }

  void run_block(const DeviceBlock& w, DeviceKv& cache, float* x, int batch, int tokens, cudaStream_t stream) {
    const ModelConfig& c = config_;
    const int h = c.hidden_size, inter = c.intermediate_size;
    const auto q_dim = static_cast<int>(c.q_dim()), kv_dim = static_cast<int>(c.kv_dim());
    const int rows = batch * tokens;
    const auto eps = static_cast<float>(c.rms_norm_eps);
    const auto n = static_cast<std::size_t>(rows);
    ensure(ws_.norm, n * h, stream);
    ensure(ws_.q, n * q_dim, stream);
    ensure(ws_.k, n * kv_dim, stream);
    ensure(ws_.v, n * kv_dim, stream);
    ensure(ws_.attn, n * q_dim, stream);
    ensure(ws_.delta, n * h, stream);
    ensure(ws_.gate, n * inter, stream);
    ensure(ws_.up, n * inter, stream);

    // Attention: h = x + o_proj(attn(rmsnorm(x)))
    SWARM_CUDA_CHECK(cuda::rms_norm(x, w.input_norm.get(), ws_.norm.get(), rows, h, eps, stream));
    linear(ws_.norm.get(), rows, h, w.q, q_dim, &w.q_bias, ws_.q.get(), stream);
    linear(ws_.norm.get(), rows, h, w.k, kv_dim, &w.k_bias, ws_.k.get(), stream);
    linear(ws_.norm.get(), rows, h, w.v, kv_dim, &w.v_bias, ws_.v.get(), stream);
    SWARM_CUDA_CHECK(cuda::rope_and_cache(ws_.q.get(), ws_.k.get(), ws_.v.get(), inv_freq_.get(), cache.k.get(),
                                          cache.v.get(), batch, tokens, c.num_attention_heads, c.num_key_value_heads,
                                          c.head_dim, cache.length, cache.capacity, stream));
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(c.head_dim)));  // head_dim**-0.5
    SWARM_CUDA_CHECK(cuda::attention(ws_.q.get(), cache.k.get(), cache.v.get(), ws_.attn.get(), batch, tokens,
                                     c.num_attention_heads, c.num_key_value_heads, c.head_dim, cache.length,
                                     cache.capacity, scale, stream));
    cache.length += tokens;
    linear(ws_.attn.get(), rows, q_dim, w.o, h, nullptr, ws_.delta.get(), stream);
    SWARM_CUDA_CHECK(cuda::residual_add(x, ws_.delta.get(), w.o_bias.get(), rows, h, stream));

    // MLP: out = h + down(silu(gate(n)) * up(n)), n = rmsnorm(h)
    SWARM_CUDA_CHECK(cuda::rms_norm(x, w.post_norm.get(), ws_.norm.get(), rows, h, eps, stream));
    linear(ws_.norm.get(), rows, h, w.gate, inter, &w.gate_bias, ws_.gate.get(), stream);
    linear(ws_.norm.get(), rows, h, w.up, inter, &w.up_bias, ws_.up.get(), stream);
    SWARM_CUDA_CHECK(cuda::swiglu(ws_.gate.get(), ws_.up.get(), static_cast<long long>(n) * inter, stream));
    linear(ws_.gate.get(), rows, inter, w.down, h, nullptr, ws_.delta.get(), stream);
    SWARM_CUDA_CHECK(cuda::residual_add(x, ws_.delta.get(), w.down_bias.get(), rows, h, stream));
  }

  ExecutorOptions options_;
  int device_;
  Stream stream_;
  CublasHandle cublas_;
  ModelConfig config_;
  Span span_;
  bool loaded_ = false;
  std::vector<DeviceBlock> blocks_;
  DeviceBuffer inv_freq_;
  detail::SessionTable<DeviceKv> sessions_;
  Workspace ws_;
};

}  // namespace

std::unique_ptr<SpanExecutor> make_cuda_executor(const ExecutorOptions& options) {
  return std::make_unique<CudaExecutor>(options);
}

}  // namespace swarm::model::detail
