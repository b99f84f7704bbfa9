// Matrix products with bf16/f16 weights and fp32 activations on the CPU,
// accumulating in fp32.
//
// A 16-bit weight widens to fp32 exactly, so these products compute what the
// fp32 path computes on the widened weights (up to summation order) while
// reading half the bytes. Decode-sized batches (a few rows) are memory-bound: a
// direct kernel widens each weight vector in registers and multiplies every row
// with it, reading each weight once. Larger batches are compute-bound: the
// weights are widened a panel at a time into a cache-resident buffer and
// multiplied by OpenBLAS sgemm, so they run at sgemm's rate and never exist
// whole in fp32.
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "block_weights.hpp"
#include "cpu_ops.hpp"
#include "safetensors.hpp"

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 warns inside its own AVX-512 headers (the undefined source vector of the unmasked
// forms: GCC bug 105593); nothing in this file reads an uninitialised value.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#define SWARM_GEMM16_X86 1
#define SWARM_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#endif

namespace swarm::model::detail {
namespace {

// Batches of at most this many rows take the direct kernel; beyond it the
// weights are widened once per panel and shared by more rows than the direct
// kernel can keep in registers.
constexpr std::int64_t kDirectRows = 8;
// fp32 elements of one widened panel: 256 KiB, resident in L2 while sgemm reads
// it.
constexpr std::int64_t kPanelElements = 1024 * 1024;

void widen_scalar(const std::uint16_t* w, DType dtype, std::int64_t n, float* out) {
  if (dtype == DType::bf16) {
    for (std::int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(w[i]);
  } else {
    for (std::int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(w[i]);
  }
}

// y[r, j] for j in [j0, j1) and every row r < rows, portable.
void direct_scalar(const float* x, std::int64_t rows, int in, const std::uint16_t* w, DType dtype, int j0, int j1,
                   int out, float* y) {
  std::vector<float> row(static_cast<std::size_t>(in));
  for (int j = j0; j < j1; ++j) {
    widen_scalar(w + static_cast<std::int64_t>(j) * in, dtype, in, row.data());
    for (std::int64_t r = 0; r < rows; ++r) {
      float acc = 0.0F;
      const float* xr = x + r * in;
      for (int k = 0; k < in; ++k) acc += xr[k] * row[static_cast<std::size_t>(k)];
      y[r * out + j] = acc;
    }
  }
}

#ifdef SWARM_GEMM16_X86
SWARM_AVX512 inline __m512 widen16(const std::uint16_t* p, DType dtype, __mmask16 mask) {
  const __m256i h = _mm256_maskz_loadu_epi16(mask, p);
  if (dtype == DType::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  return _mm512_cvtph_ps(h);
}

SWARM_AVX512 void widen_avx512(const std::uint16_t* w, DType dtype, std::int64_t n, float* out) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, widen16(w + i, dtype, 0xFFFF));
  if (i < n) {
    const auto mask = static_cast<__mmask16>((1U << (n - i)) - 1U);
    _mm512_mask_storeu_ps(out + i, mask, widen16(w + i, dtype, mask));
  }
}

// R rows by J outputs per pass: R*J accumulators stay in registers, each weight
// vector is widened once and multiplied with all R rows.
template <int R, int J>
SWARM_AVX512 inline void direct_step(const float* x, int in, const std::uint16_t* w, DType dtype, int j, int k,
                                     __mmask16 mask, __m512 (&acc)[R][J]) {
  __m512 wv[J];
  for (int c = 0; c < J; ++c) wv[c] = widen16(w + static_cast<std::int64_t>(j + c) * in + k, dtype, mask);
  for (int r = 0; r < R; ++r) {
    const __m512 xv = _mm512_maskz_loadu_ps(mask, x + static_cast<std::int64_t>(r) * in + k);
    for (int c = 0; c < J; ++c) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
  }
}

// R rows by J outputs per pass: R*J accumulators stay in registers, each weight
// vector is widened once and multiplied with all R rows.
template <int R, int J>
SWARM_AVX512 void direct_tile(const float* x, int in, const std::uint16_t* w, DType dtype, int j, int out, float* y) {
  __m512 acc[R][J];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < J; ++c) acc[r][c] = _mm512_setzero_ps();
  }
  int k = 0;
  for (; k + 16 <= in; k += 16) direct_step<R, J>(x, in, w, dtype, j, k, 0xFFFF, acc);
  if (k < in) direct_step<R, J>(x, in, w, dtype, j, k, static_cast<__mmask16>((1U << (in - k)) - 1U), acc);
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < J; ++c) y[static_cast<std::int64_t>(r) * out + j + c] = _mm512_reduce_add_ps(acc[r][c]);
  }
}

template <int R>
SWARM_AVX512 void direct_rows(const float* x, int in, const std::uint16_t* w, DType dtype, int j0, int j1, int out,
                              float* y) {
  constexpr int J = R <= 4 ? 4 : 2;  // R * J <= 16 accumulators of the 32 registers
  int j = j0;
  for (; j + J <= j1; j += J) direct_tile<R, J>(x, in, w, dtype, j, out, y);
  for (; j < j1; ++j) direct_tile<R, 1>(x, in, w, dtype, j, out, y);
}

SWARM_AVX512 void direct_avx512(const float* x, std::int64_t rows, int in, const std::uint16_t* w, DType dtype, int j0,
                                int j1, int out, float* y) {
  std::int64_t r = 0;
  for (; r + 8 <= rows; r += 8) direct_rows<8>(x + r * in, in, w, dtype, j0, j1, out, y + r * out);
  const std::int64_t left = rows - r;
  const float* xr = x + r * in;
  float* yr = y + r * out;
  switch (left) {
    case 7: direct_rows<7>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 6: direct_rows<6>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 5: direct_rows<5>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 4: direct_rows<4>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 3: direct_rows<3>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 2: direct_rows<2>(xr, in, w, dtype, j0, j1, out, yr); break;
    case 1: direct_rows<1>(xr, in, w, dtype, j0, j1, out, yr); break;
    default: break;
  }
}

std::atomic<bool> portable_only{false};

bool have_avx512() {
  static const bool yes =
      __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return yes && !portable_only.load(std::memory_order_relaxed);
}
#endif

void widen_any(const std::uint16_t* w, DType dtype, std::int64_t n, float* out) {
#ifdef SWARM_GEMM16_X86
  if (have_avx512()) return widen_avx512(w, dtype, n, out);
#endif
  widen_scalar(w, dtype, n, out);
}

void direct(const float* x, std::int64_t rows, int in, const std::uint16_t* w, DType dtype, int j0, int j1, int out,
            float* y) {
#ifdef SWARM_GEMM16_X86
  if (have_avx512()) return direct_avx512(x, rows, in, w, dtype, j0, j1, out, y);
#endif
  direct_scalar(x, rows, in, w, dtype, j0, j1, out, y);
}

// The direct kernel over output columns split among the threads OpenBLAS is
// allowed (the executor's thread budget): decode reads the weights at the
// memory bandwidth of every core.
void direct_parallel(const float* x, std::int64_t rows, int in, const std::uint16_t* w, DType dtype, int out,
                     float* y) {
  const int threads = std::clamp(openblas_get_num_threads(), 1, std::max(1, out / 64));
  if (threads == 1) return direct(x, rows, in, w, dtype, 0, out, out, y);
  const auto part = [=](int t) { return static_cast<int>(static_cast<std::int64_t>(out) * t / threads); };
  std::vector<std::jthread> workers;  // joined before `part` and the arguments go
  for (int t = 1; t < threads; ++t) {
    workers.emplace_back([=] { direct(x, rows, in, w, dtype, part(t), part(t + 1), out, y); });
  }
  direct(x, rows, in, w, dtype, 0, part(1), out, y);
}

}  // namespace

void use_portable_gemm16(bool portable) {
#ifdef SWARM_GEMM16_X86
  portable_only.store(portable, std::memory_order_relaxed);
#else
  (void)portable;
#endif
}

std::vector<float> Matrix::to_f32() const {
  if (dtype == DType::f32) return f32;
  std::vector<float> values(bits.size());
  widen_any(bits.data(), dtype, static_cast<std::int64_t>(bits.size()), values.data());
  return values;
}

void Matrix::widen_into(std::size_t first, std::size_t count, float* out) const {
  if (dtype == DType::f32) {
    std::copy_n(f32.data() + first, count, out);
  } else {
    widen_any(bits.data() + first, dtype, static_cast<std::int64_t>(count), out);
  }
}

void Matrix::widen() {
  if (dtype == DType::f32) return;
  f32 = to_f32();
  bits = {};
  dtype = DType::f32;
}

void Matrix::round_to_bf16() {
  if (dtype == DType::bf16) return;
  const std::vector<float> values = to_f32();
  bits.resize(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) bits[i] = f32_to_bf16(values[i]);
  f32 = {};
  dtype = DType::bf16;
}

void BlockWeights::widen() {
  for (Matrix* m : {&q, &k, &v, &o, &gate, &up, &down}) m->widen();
}

void BlockWeights::round_to_bf16() {
  for (Matrix* m : {&q, &k, &v, &o, &gate, &up, &down}) m->round_to_bf16();
}

#ifndef SWARM_MODEL_HAVE_DNNL
Bf16Threads::Bf16Threads() = default;
Bf16Threads::~Bf16Threads() = default;
bool bf16_compute_available() { return false; }
bool bf16_compute_native() { return false; }
void linear_bf16(const float* x, std::int64_t rows, int in, const Matrix& weight, int out, const float* bias,
                 float* y) {
  linear(x, rows, in, weight, out, bias, y);
}
#endif

void linear(const float* x, std::int64_t rows, int in, const Matrix& weight, int out, const float* bias, float* y) {
  if (weight.dtype == DType::f32) return linear(x, rows, in, weight.f32.data(), out, bias, y);
  if (rows == 0) return;
  const std::uint16_t* w = weight.bits.data();
  if (rows <= kDirectRows) {
    direct_parallel(x, rows, in, w, weight.dtype, out, y);
  } else {
    thread_local std::vector<float> panel;
    const int width = static_cast<int>(std::clamp<std::int64_t>(kPanelElements / in, 16, out));
    panel.resize(static_cast<std::size_t>(width) * in);
    for (int j0 = 0; j0 < out; j0 += width) {
      const int n = std::min(width, out - j0);
      widen_any(w + static_cast<std::int64_t>(j0) * in, weight.dtype, static_cast<std::int64_t>(n) * in, panel.data());
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), n, in, 1.0F, x, in, panel.data(), in,
                  0.0F, y + j0, out);
    }
  }
  if (bias == nullptr) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < out; ++j) y[r * out + j] += bias[j];
  }
}

}  // namespace swarm::model::detail
