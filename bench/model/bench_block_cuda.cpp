// bench_model_block_cuda (CUDA builds): FLOP/s of one decoder block forward on the GPU (the
// CUDA backend, device rows), next to cuBLAS on the block's own seven projection GEMMs (q, k, v,
// o, gate, up, down) measured in the same run with the same operand types: cublasSgemm for
// compute f32, cublasGemmEx bf16 x bf16 -> fp32 (CUBLAS_COMPUTE_32F, tensor cores) for bf16.
//
// A forward here is one decode step of --batch sessions (one new token each after a --context
// long KV cache), the shape of a pipeline stage serving many sessions at once. "ratio" is the
// block's rate over the GEMMs' rate: how close the whole block (attention over the caches,
// norms, RoPE, SwiGLU, the bf16 rounding of the activations included) gets to the GEMMs it is
// built on. Device time from CUDA events (the executor's last_forward_seconds), best of --reps.
// The goal line checks bf16 at batch >= 64: ratio >= 0.5 (a figure, not a test).
//
//   bench_model_block_cuda [--sizes small,1b,7b] [--batches 1,64,256] [--context 512] [--reps 5]
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "block_shapes.hpp"
#include "swarm/model/model.hpp"

using namespace swarm::model;

namespace {

void check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string(what) + ": " + cublasGetStatusString(status));
}

// Device memory for the baseline, freed on every way out.
struct DeviceBytes {
  void* data = nullptr;
  explicit DeviceBytes(std::size_t bytes) { check(cudaMalloc(&data, std::max<std::size_t>(bytes, 1)), "cudaMalloc"); }
  ~DeviceBytes() { (void)cudaFree(data); }
  DeviceBytes(const DeviceBytes&) = delete;
  DeviceBytes& operator=(const DeviceBytes&) = delete;
};

// Best-of-reps device time of the seven projection GEMMs for `rows` rows; returns FLOP/s.
double cublas_rate(const ModelConfig& c, int rows, bool bf16, int reps) {
  const int h = c.hidden_size, i = c.intermediate_size;
  const int q = static_cast<int>(c.q_dim()), kv = static_cast<int>(c.kv_dim());
  struct Shape {
    int out, in;
  };
  const Shape shapes[] = {{q, h}, {kv, h}, {kv, h}, {h, q}, {i, h}, {i, h}, {h, i}};
  const std::size_t operand = bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
  std::size_t most_in = 0, most_out = 0;
  double flops = 0;
  for (const Shape& s : shapes) {
    most_in = std::max(most_in, static_cast<std::size_t>(s.in));
    most_out = std::max(most_out, static_cast<std::size_t>(s.out));
    flops += 2.0 * rows * s.out * s.in;
  }
  std::vector<std::unique_ptr<DeviceBytes>> weights;
  for (const Shape& s : shapes) {
    weights.push_back(std::make_unique<DeviceBytes>(static_cast<std::size_t>(s.out) * s.in * operand));
    check(cudaMemset(weights.back()->data, 0, static_cast<std::size_t>(s.out) * s.in * operand), "cudaMemset");
  }
  DeviceBytes x(static_cast<std::size_t>(rows) * most_in * operand), y(static_cast<std::size_t>(rows) * most_out * 4);
  check(cudaMemset(x.data, 0, static_cast<std::size_t>(rows) * most_in * operand), "cudaMemset");
  cublasHandle_t handle = nullptr;
  check(cublasCreate(&handle), "cublasCreate");
  cudaEvent_t start = nullptr, end = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&end), "cudaEventCreate");
  const float one = 1.0F, zero = 0.0F;
  float best = 1e30F;
  for (int r = 0; r < reps + 1; ++r) {  // the first round warms up (cuBLAS picks its kernels)
    check(cudaEventRecord(start, nullptr), "cudaEventRecord");
    for (std::size_t k = 0; k < std::size(shapes); ++k) {
      const Shape& s = shapes[k];
      if (bf16) {
        check(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, s.out, rows, s.in, &one, weights[k]->data, CUDA_R_16BF,
                           s.in, x.data, CUDA_R_16BF, s.in, &zero, y.data, CUDA_R_32F, s.out, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
      } else {
        check(cublasSgemm(handle, CUBLAS_OP_T, CUBLAS_OP_N, s.out, rows, s.in, &one,
                          static_cast<const float*>(weights[k]->data), s.in, static_cast<const float*>(x.data), s.in,
                          &zero, static_cast<float*>(y.data), s.out),
              "cublasSgemm");
      }
    }
    check(cudaEventRecord(end, nullptr), "cudaEventRecord");
    check(cudaEventSynchronize(end), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, end), "cudaEventElapsedTime");
    if (r > 0) best = std::min(best, ms);
  }
  (void)cudaEventDestroy(start);
  (void)cudaEventDestroy(end);
  (void)cublasDestroy(handle);
  return flops / (static_cast<double>(best) * 1e-3);
}

struct Result {
  double block_seconds = 0, block_rate = 0, gemm_rate = 0;
};

// One decode step of `batch` sessions after `context` cached tokens each, device rows.
Result bench(ModelConfig c, DType compute, int batch, int context, int reps) {
  c.weights_dtype = compute == DType::bf16 ? DType::bf16 : DType::f32;
  const RandomWeights weights(c, 1);
  ExecutorOptions options;
  options.compute = compute;
  auto executor = make_executor(Backend::cuda, options);
  executor->load(weights, {0, 1});
  const auto h = static_cast<std::size_t>(c.hidden_size);
  // Prefill each session's context (host rows, one session a forward: not timed).
  const auto prompt = swarm::bench::random_values(static_cast<std::size_t>(context) * h, 3);
  for (int s = 0; s < batch; ++s) {
    auto x = prompt;
    executor->forward(static_cast<SessionId>(s + 1), 0, 1, x.data(), 1, context, context + reps + 1);
  }
  DeviceBytes rows(static_cast<std::size_t>(batch) * h * sizeof(float));
  const auto step = swarm::bench::random_values(static_cast<std::size_t>(batch) * h, 4);
  double best = 1e300;
  for (int r = 0; r < reps + 1; ++r) {
    std::vector<Segment> segments;
    for (int s = 0; s < batch; ++s) {
      segments.push_back({static_cast<SessionId>(s + 1), 1, 1, context + r, context + reps + 1});
    }
    check(cudaMemcpy(rows.data, step.data(), step.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    executor->forward(segments, 0, 1, static_cast<float*>(rows.data), Memory::device);
    executor->synchronize();
    if (r > 0) best = std::min(best, executor->last_forward_seconds());
  }
  const double flops = static_cast<double>(batch) * c.block_flops(1, context);
  return {best, flops / best, cublas_rate(c, batch, compute == DType::bf16, reps)};
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream list(text);
  for (std::string item; std::getline(list, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string selected = "small,1b", batches = "1,64,256";
  int context = 512, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--sizes")) selected = argv[i + 1];
    else if (!std::strcmp(argv[i], "--batches")) batches = argv[i + 1];
    else if (!std::strcmp(argv[i], "--context")) context = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--reps")) reps = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: %s [--sizes small,1b,7b] [--batches 1,64,256] [--context 512] [--reps 5]\n", argv[0]);
      return 2;
    }
  }
  if (!cuda_available()) {
    std::fprintf(stderr, "bench_model_block_cuda: no CUDA device usable here\n");
    return 1;
  }
  std::printf("block decode step on the GPU (device rows) vs cuBLAS on the same projection GEMMs; context %d\n",
              context);
  std::printf("%-6s %-5s %6s %11s %12s %12s %7s\n", "model", "dtype", "batch", "block_ms", "block_GF/s", "cublas_GF/s",
              "ratio");
  bool goal = true, measured = false;
  try {
    for (const std::string& name : split(selected)) {
      const auto it = swarm::bench::block_sizes().find(name);
      if (it == swarm::bench::block_sizes().end()) {
        std::fprintf(stderr, "unknown size '%s' (small, 1b, 7b)\n", name.c_str());
        return 2;
      }
      for (const std::string& b : split(batches)) {
        const int batch = std::stoi(b);
        for (const DType compute : {DType::f32, DType::bf16}) {
          const Result r = bench(it->second, compute, batch, context, reps);
          const double ratio = r.block_rate / r.gemm_rate;
          std::printf("%-6s %-5s %6d %11.3f %12.1f %12.1f %7.2f\n", name.c_str(), std::string(to_string(compute)).c_str(),
                      batch, r.block_seconds * 1e3, r.block_rate * 1e-9, r.gemm_rate * 1e-9, ratio);
          if (compute == DType::bf16 && batch >= 64) {
            measured = true;
            goal = goal && ratio >= 0.5;
          }
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model_block_cuda: %s\n", e.what());
    return 1;
  }
  if (measured) {
    std::printf("# goal: bf16 block forward >= 0.5 of cuBLAS's bf16 GEMM rate at batch >= 64: %s\n",
                goal ? "met" : "missed");
  }
  return 0;
}
