// The CUDA kernels (src/model/cuda/kernels_device.cuh) run under a host emulation of CUDA
// threads (cuda_emulation.hpp) and compared with the CPU backend's operations. Covers indexing,
// barriers, block reductions and the chunked online softmax on machines without a GPU; the
// real-device comparison is test_model_cuda.
// clang-format off
#include "cuda_emulation.hpp"
#include "cuda/kernels_device.cuh"
// clang-format on

#include "cpu_ops.hpp"
#include "model_test_util.hpp"

namespace swarm::model::test {
namespace {

namespace k = swarm::model::cuda::kernels;

TEST(EmulatedKernels, RmsNormMatchesCpu) {
  const int rows = 5, dim = 300;  // more elements than threads per row
  const auto x = random_hidden(rows, dim, 1);
  const auto w = random_hidden(1, dim, 2);
  std::vector<float> gpu(x.size()), cpu(x.size());
  emu::launch({rows}, k::kThreads, 0, [&] { k::rms_norm_kernel(x.data(), w.data(), gpu.data(), dim, 1e-5F); });
  detail::rms_norm(x.data(), w.data(), cpu.data(), rows, dim, 1e-5F);
  EXPECT_LE(max_abs_diff(gpu, cpu), 1e-6F * max_abs(cpu));
}

TEST(EmulatedKernels, RopeAndCacheMatchCpuBitwise) {
  const int batch = 2, tokens = 3, past = 5, q_heads = 4, kv_heads = 2, head_dim = 16, capacity = 12;
  const int q_dim = q_heads * head_dim, kv_dim = kv_heads * head_dim, rows = batch * tokens;
  auto q = random_hidden(rows, q_dim, 3), k_new = random_hidden(rows, kv_dim, 4);
  const auto v = random_hidden(rows, kv_dim, 5);
  const auto inv_freq = detail::rope_inv_freq(head_dim, 500000.0);
  const float sentinel = -1234.5F;
  std::vector<float> k_cache(static_cast<std::size_t>(batch) * kv_heads * capacity * head_dim, sentinel);
  std::vector<float> v_cache = k_cache;
  auto q_cpu = q, k_cpu = k_new;
  emu::launch({static_cast<unsigned>(rows)}, k::kThreads, sizeof(float) * head_dim, [&] {
    k::rope_and_cache_kernel(q.data(), k_new.data(), v.data(), inv_freq.data(), k_cache.data(), v_cache.data(),
                             tokens, q_heads, kv_heads, head_dim, past, capacity);
  });
  std::vector<float> cos(head_dim / 2), sin(head_dim / 2);
  for (int row = 0; row < rows; ++row) {
    const int b = row / tokens, position = past + row % tokens;
    detail::rope_cos_sin(position, inv_freq, cos.data(), sin.data());
    detail::apply_rope(q_cpu.data() + row * q_dim, q_heads, head_dim / 2, cos.data(), sin.data());
    detail::apply_rope(k_cpu.data() + row * kv_dim, kv_heads, head_dim / 2, cos.data(), sin.data());
    for (int h = 0; h < kv_heads; ++h) {
      for (int d = 0; d < head_dim; ++d) {
        const std::size_t slot = ((std::size_t(b) * kv_heads + h) * capacity + position) * head_dim + d;
        EXPECT_EQ(k_cache[slot], k_cpu[row * kv_dim + h * head_dim + d]);
        EXPECT_EQ(v_cache[slot], v[row * kv_dim + h * head_dim + d]);
        k_cache[slot] = v_cache[slot] = sentinel;  // checked: restore for the untouched-slot scan
      }
    }
  }
  EXPECT_EQ(q, q_cpu);
  EXPECT_TRUE(std::all_of(k_cache.begin(), k_cache.end(), [&](float f) { return f == sentinel; }));
  EXPECT_TRUE(std::all_of(v_cache.begin(), v_cache.end(), [&](float f) { return f == sentinel; }));
}

struct AttentionCase {
  int batch, tokens, past, q_heads, kv_heads, head_dim;
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << "batch " << c.batch << " tokens " << c.tokens << " past " << c.past << " heads " << c.q_heads << "/"
      << c.kv_heads << " head_dim " << c.head_dim;
}

class EmulatedAttention : public ::testing::TestWithParam<AttentionCase> {};

// Against a direct double-precision evaluation of softmax(q k^T * scale, causal) v.
TEST_P(EmulatedAttention, MatchesDirectEvaluation) {
  const auto [batch, tokens, past, q_heads, kv_heads, head_dim] = GetParam();
  const int capacity = past + tokens + 3, q_dim = q_heads * head_dim, rows = batch * tokens;
  const auto q = random_hidden(rows, q_dim, 6);
  const auto k_cache = random_hidden(std::int64_t{batch} * kv_heads * capacity, head_dim, 7);
  const auto v_cache = random_hidden(std::int64_t{batch} * kv_heads * capacity, head_dim, 8);
  const float scale = 1.0F / std::sqrt(float(head_dim));
  std::vector<float> out(q.size(), std::nanf(""));
  const std::size_t shared = sizeof(float) * (head_dim + k::kAttentionThreads + 32);
  emu::launch({unsigned(tokens), unsigned(q_heads), unsigned(batch)}, k::kAttentionThreads, shared, [&] {
    k::attention_kernel(q.data(), k_cache.data(), v_cache.data(), out.data(), tokens, q_heads, kv_heads, head_dim,
                        past, capacity, scale);
  });
  const int group = q_heads / kv_heads;
  float worst = 0.0F;
  for (int b = 0; b < batch; ++b) {
    for (int t = 0; t < tokens; ++t) {
      for (int h = 0; h < q_heads; ++h) {
        const float* qr = q.data() + (std::size_t(b) * tokens + t) * q_dim + h * head_dim;
        const std::size_t base = (std::size_t(b) * kv_heads + h / group) * capacity * head_dim;
        const int keys = past + t + 1;
        std::vector<double> p(keys);
        double peak = -1e300, sum = 0;
        for (int j = 0; j < keys; ++j) {
          double dot = 0;
          for (int d = 0; d < head_dim; ++d) dot += double(qr[d]) * k_cache[base + std::size_t(j) * head_dim + d];
          p[j] = dot * scale;
          peak = std::max(peak, p[j]);
        }
        for (auto& x : p) sum += (x = std::exp(x - peak));
        for (int d = 0; d < head_dim; ++d) {
          double o = 0;
          for (int j = 0; j < keys; ++j) o += p[j] / sum * v_cache[base + std::size_t(j) * head_dim + d];
          const float got = out[(std::size_t(b) * tokens + t) * q_dim + h * head_dim + d];
          worst = std::max(worst, float(std::abs(got - o)));
        }
      }
    }
  }
  EXPECT_LE(worst, 1e-5F);
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmulatedAttention,
                         ::testing::Values(AttentionCase{2, 5, 0, 4, 2, 8},        // prefill, GQA
                                           AttentionCase{1, 2, 200, 2, 1, 64},     // > 1 chunk of 128 keys
                                           AttentionCase{1, 1, 130, 2, 2, 256},    // 2 dims per thread
                                           AttentionCase{2, 1, 20, 3, 1, 320}));  // 3 dims per thread, MQA

TEST(EmulatedKernels, ElementwiseKernelsMatchCpu) {
  const int rows = 3, dim = 700;  // n > one block of threads: exercises the grid-stride loops
  const long long n = rows * dim;
  auto gate = random_hidden(rows, dim, 9);
  const auto up = random_hidden(rows, dim, 10);
  const auto delta = random_hidden(rows, dim, 11);
  const auto bias = random_hidden(1, dim, 12);
  auto gate_cpu = gate;
  emu::launch({2}, k::kThreads, 0, [&] { k::swiglu_kernel(gate.data(), up.data(), n); });
  detail::swiglu(gate_cpu.data(), up.data(), n);
  EXPECT_EQ(gate, gate_cpu);

  auto x = random_hidden(rows, dim, 13), x_cpu = x;
  emu::launch({3}, k::kThreads, 0, [&] { k::residual_add_kernel(x.data(), delta.data(), bias.data(), n, dim); });
  detail::residual_add(x_cpu.data(), delta.data(), bias.data(), rows, dim);
  EXPECT_EQ(x, x_cpu);
  emu::launch({1}, k::kThreads, 0, [&] { k::residual_add_kernel(x.data(), delta.data(), nullptr, n, dim); });
  detail::residual_add(x_cpu.data(), delta.data(), nullptr, rows, dim);
  EXPECT_EQ(x, x_cpu);

  auto y = random_hidden(rows, dim, 14), y_cpu = y;
  emu::launch({2}, k::kThreads, 0, [&] { k::add_bias_kernel(y.data(), bias.data(), n, dim); });
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < dim; ++c) y_cpu[r * dim + c] += bias[c];
  }
  EXPECT_EQ(y, y_cpu);
}

}  // namespace
}  // namespace swarm::model::test
