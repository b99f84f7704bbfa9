// model.compute_dtype = bf16 on the CPU: matrix products with bf16 operands and fp32
// accumulation through oneDNN's matmul, which runs on the processor's bf16 dot-product
// instructions (AVX512_BF16, AMX) where it has them.
//
// Why oneDNN: OpenBLAS 0.3.21 (Debian 12) has no bf16 GEMM; oneDNN 2.6 (Debian's libdnnl-dev)
// has one, measured here at 3.7x OpenBLAS sgemm at 512 x 2048 x 5632 on one core of this AMD
// EPYC (docs/model.md). Its matmul takes bf16 activations only (weight-only bf16 arrived in
// oneDNN 3), so this path rounds the activations to bf16 before each product, as a bf16 model
// in transformers does; model.compute_dtype = f32 keeps them fp32 (cpu_gemm16.cpp).
#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.hpp>

#include <map>
#include <tuple>
#include <vector>

#include "block_weights.hpp"
#include "cpu_ops.hpp"
#include "safetensors.hpp"
#include "swarm/model/errors.hpp"

namespace swarm::model::detail {
namespace {

using Key = std::tuple<std::int64_t, int, int>;  // rows, in, out

struct Dnnl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, dnnl::matmul> primitives;  // by shape: batches repeat a few row counts
  std::vector<std::uint16_t> activations;
  int threads = 0;
};

Dnnl& dnnl_state() {
  thread_local Dnnl state;  // one caller thread per executor; primitives are per thread
  return state;
}

dnnl::matmul& primitive(Dnnl& d, std::int64_t rows, int in, int out) {
  const Key key{rows, in, out};
  if (const auto it = d.primitives.find(key); it != d.primitives.end()) return it->second;
  if (d.primitives.size() >= 512) d.primitives.clear();  // bounded: prefill chunks vary in length
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc src({rows, in}, dt::bf16, tag::ab);
  const dnnl::memory::desc weights({in, out}, dt::bf16, tag::ba);  // W [out, in] row-major
  const dnnl::memory::desc dst({rows, out}, dt::f32, tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst), d.engine);
  return d.primitives.emplace(key, dnnl::matmul(pd)).first->second;
}

}  // namespace

Bf16Threads::Bf16Threads() : budget_(openblas_get_num_threads()) {
  // oneDNN runs on OpenMP threads, whose count is per calling thread: the executor's budget.
  Dnnl& d = dnnl_state();
  if (budget_ != d.threads) {
    omp_set_num_threads(budget_);
    d.threads = budget_;
  }
  if (budget_ > 1) openblas_set_num_threads(1);
}

Bf16Threads::~Bf16Threads() {
  if (budget_ > 1) openblas_set_num_threads(budget_);
}

bool bf16_compute_available() { return true; }

bool bf16_compute_native() {
  const auto isa = dnnl::get_effective_cpu_isa();
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

void linear_bf16(const float* x, std::int64_t rows, int in, const Matrix& weight, int out, const float* bias,
                 float* y) {
  if (weight.dtype != DType::bf16) throw UsageError("linear_bf16() needs bf16 weights");
  if (rows == 0) return;
  Dnnl& d = dnnl_state();
  const std::size_t n = static_cast<std::size_t>(rows) * in;
  d.activations.resize(n);
  for (std::size_t i = 0; i < n; ++i) d.activations[i] = f32_to_bf16(x[i]);
  dnnl::matmul& mm = primitive(d, rows, in, out);
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  // oneDNN memory objects take void*; the weights are only read.
  dnnl::memory src({{rows, in}, dt::bf16, tag::ab}, d.engine, d.activations.data());
  dnnl::memory w({{in, out}, dt::bf16, tag::ba}, d.engine, const_cast<std::uint16_t*>(weight.bits.data()));
  dnnl::memory dst({{rows, out}, dt::f32, tag::ab}, d.engine, y);
  mm.execute(d.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}});
  d.stream.wait();
  if (bias == nullptr) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < out; ++j) y[r * out + j] += bias[j];
  }
}

}  // namespace swarm::model::detail
