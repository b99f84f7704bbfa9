// The CUDA kernels (src/model/cuda/kernels_device.cuh) run under a host emulation of CUDA
// threads (cuda_emulation.hpp) and compared with the CPU backend's operations. Covers indexing,
// barriers, block reductions and the chunked online softmax on machines without a GPU; the
// real-device comparison is test_model_cuda.
// clang-format off
#include "cuda_emulation.hpp"
#include "cuda/kernels_device.cuh"
// clang-format on

#include <limits>
#include <span>

#include "cpu_ops.hpp"
#include "model_test_util.hpp"
#include "safetensors.hpp"

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

// One session's rows in a test batch (Segment without the id).
struct TestSegment {
  int batch, tokens, position;
};

// The rows' metadata as the executor lays a batch out: the segments' rows one after another,
// each segment sequence-major (sequence b, token t at b * tokens + t), at position + t.
std::vector<cuda::RowInfo> row_info_of(std::span<const TestSegment> segments) {
  std::vector<cuda::RowInfo> rows;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    for (int b = 0; b < segments[i].batch; ++b) {
      for (int t = 0; t < segments[i].tokens; ++t) rows.push_back({int(i), b, segments[i].position + t});
    }
  }
  return rows;
}

// One cache per segment, [batch][kv_heads][capacity][head_dim], each with its own capacity.
struct TestCaches {
  std::vector<std::vector<float>> k, v;
  std::vector<int> capacity;
  std::vector<cuda::CacheView> views;

  TestCaches(std::span<const TestSegment> segments, int kv_heads, int head_dim, float fill) {
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const int cap = segments[i].position + segments[i].tokens + 3 + int(i);  // slack differs per segment
      const auto count = std::size_t(segments[i].batch) * kv_heads * cap * head_dim;
      capacity.push_back(cap);
      k.emplace_back(count, fill);
      v.emplace_back(count, fill);
    }
    for (std::size_t i = 0; i < segments.size(); ++i) views.push_back({k[i].data(), v[i].data(), capacity[i]});
  }

  [[nodiscard]] std::size_t slot(std::size_t segment, int b, int kv_heads, int head, int position, int head_dim) const {
    return ((std::size_t(b) * kv_heads + head) * capacity[segment] + position) * head_dim;
  }
};

// rope_and_cache_kernel over a batch of segments against the CPU ops, bitwise: q and k rotated
// at each row's position, k and v stored at that position of the row's own sequence's cache, and
// no other cache slot written (sentinel scan).
void expect_rope_and_cache_match_cpu(std::span<const TestSegment> segments, int q_heads, int kv_heads, int head_dim) {
  const auto rows = row_info_of(segments);
  const int n = int(rows.size()), q_dim = q_heads * head_dim, kv_dim = kv_heads * head_dim;
  auto q = random_hidden(n, q_dim, 3), k_new = random_hidden(n, kv_dim, 4);
  const auto v = random_hidden(n, kv_dim, 5);
  const auto inv_freq = detail::rope_inv_freq(head_dim, 500000.0);
  const float sentinel = -1234.5F;
  TestCaches caches(segments, kv_heads, head_dim, sentinel);
  auto q_cpu = q, k_cpu = k_new;
  emu::launch({unsigned(n)}, k::kThreads, sizeof(float) * head_dim, [&] {
    k::rope_and_cache_kernel(q.data(), k_new.data(), v.data(), inv_freq.data(), rows.data(), caches.views.data(),
                             q_heads, kv_heads, head_dim);
  });
  std::vector<float> cos(head_dim / 2), sin(head_dim / 2);
  for (int row = 0; row < n; ++row) {
    const auto [segment, b, position] = rows[std::size_t(row)];
    detail::rope_cos_sin(position, inv_freq, cos.data(), sin.data());
    detail::apply_rope(q_cpu.data() + row * q_dim, q_heads, head_dim / 2, cos.data(), sin.data());
    detail::apply_rope(k_cpu.data() + row * kv_dim, kv_heads, head_dim / 2, cos.data(), sin.data());
    for (int h = 0; h < kv_heads; ++h) {
      const std::size_t base = caches.slot(std::size_t(segment), b, kv_heads, h, position, head_dim);
      for (int d = 0; d < head_dim; ++d) {
        float& k_slot = caches.k[std::size_t(segment)][base + d];
        float& v_slot = caches.v[std::size_t(segment)][base + d];
        EXPECT_EQ(k_slot, k_cpu[row * kv_dim + h * head_dim + d]) << "row " << row;
        EXPECT_EQ(v_slot, v[row * kv_dim + h * head_dim + d]) << "row " << row;
        k_slot = v_slot = sentinel;  // checked: restore for the untouched-slot scan
      }
    }
  }
  EXPECT_EQ(q, q_cpu);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto untouched = [&](float f) { return f == sentinel; };
    EXPECT_TRUE(std::all_of(caches.k[i].begin(), caches.k[i].end(), untouched)) << "segment " << i;
    EXPECT_TRUE(std::all_of(caches.v[i].begin(), caches.v[i].end(), untouched)) << "segment " << i;
  }
}

TEST(EmulatedKernels, RopeAndCacheMatchCpuBitwise) {
  const TestSegment one[] = {{2, 3, 5}};  // batch 2, 3 tokens after 5 cached
  expect_rope_and_cache_match_cpu(one, 4, 2, 16);
}

// Every kind of segment in one launch: a new session's prefill of 4, a decode, a batch-of-2
// decode and an append of 3, each at its own position in its own cache.
constexpr TestSegment kMixed[] = {{1, 4, 0}, {1, 1, 7}, {2, 1, 3}, {1, 3, 9}};

TEST(EmulatedKernels, RopeAndCacheOfMixedSegmentsMatchCpuBitwise) {
  expect_rope_and_cache_match_cpu(kMixed, 4, 2, 16);
  expect_rope_and_cache_match_cpu(kMixed, 3, 3, 64);  // more dims than threads per head row
}

// attention_kernel over a batch of segments against a direct double-precision evaluation of
// softmax(q k^T * scale, causal) v, row by row over its own sequence's keys 0..position. Slots
// past a segment's new tokens hold NaN, so reading beyond the causal window shows. Returns the
// largest absolute error (infinity when any output is NaN or unwritten).
float attention_error(std::span<const TestSegment> segments, int q_heads, int kv_heads, int head_dim) {
  const auto rows = row_info_of(segments);
  const int n = int(rows.size()), q_dim = q_heads * head_dim;
  const auto q = random_hidden(n, q_dim, 6);
  TestCaches caches(segments, kv_heads, head_dim, std::nanf(""));
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto keys = random_hidden(std::int64_t{segments[i].batch} * kv_heads * caches.capacity[i], head_dim,
                                    7 + unsigned(i));
    const auto values = random_hidden(std::int64_t{segments[i].batch} * kv_heads * caches.capacity[i], head_dim,
                                      70 + unsigned(i));
    for (int b = 0; b < segments[i].batch; ++b) {
      for (int h = 0; h < kv_heads; ++h) {
        const std::size_t first = caches.slot(i, b, kv_heads, h, 0, head_dim);
        const std::size_t end = caches.slot(i, b, kv_heads, h, segments[i].position + segments[i].tokens, head_dim);
        std::copy(keys.data() + first, keys.data() + end, caches.k[i].data() + first);
        std::copy(values.data() + first, values.data() + end, caches.v[i].data() + first);
      }
    }
  }
  const float scale = 1.0F / std::sqrt(float(head_dim));
  std::vector<float> out(q.size(), std::nanf(""));
  const std::size_t shared = sizeof(float) * (head_dim + k::kAttentionThreads + 32);
  emu::launch({unsigned(n), unsigned(q_heads)}, k::kAttentionThreads, shared, [&] {
    k::attention_kernel(q.data(), rows.data(), caches.views.data(), out.data(), q_heads, kv_heads, head_dim, scale);
  });
  const int group = q_heads / kv_heads;
  float worst = 0.0F;
  for (int row = 0; row < n; ++row) {
    const auto [segment, b, position] = rows[std::size_t(row)];
    for (int h = 0; h < q_heads; ++h) {
      const float* qr = q.data() + std::size_t(row) * q_dim + h * head_dim;
      const std::size_t base = caches.slot(std::size_t(segment), b, kv_heads, h / group, 0, head_dim);
      const float* keys = caches.k[std::size_t(segment)].data() + base;
      const float* values = caches.v[std::size_t(segment)].data() + base;
      const int count = position + 1;
      std::vector<double> p(static_cast<std::size_t>(count));
      double peak = -1e300, sum = 0;
      for (int j = 0; j < count; ++j) {
        double dot = 0;
        for (int d = 0; d < head_dim; ++d) dot += double(qr[d]) * keys[std::size_t(j) * head_dim + d];
        p[std::size_t(j)] = dot * scale;
        peak = std::max(peak, p[std::size_t(j)]);
      }
      for (auto& x : p) sum += (x = std::exp(x - peak));
      for (int d = 0; d < head_dim; ++d) {
        double o = 0;
        for (int j = 0; j < count; ++j) o += p[std::size_t(j)] / sum * values[std::size_t(j) * head_dim + d];
        const float error = float(std::abs(out[std::size_t(row) * q_dim + h * head_dim + d] - o));
        worst = std::isnan(error) ? std::numeric_limits<float>::infinity() : std::max(worst, error);
      }
    }
  }
  return worst;
}

struct AttentionCase {
  int batch, tokens, past, q_heads, kv_heads, head_dim;
};

void PrintTo(const AttentionCase& c, std::ostream* os) {
  *os << "batch " << c.batch << " tokens " << c.tokens << " past " << c.past << " heads " << c.q_heads << "/"
      << c.kv_heads << " head_dim " << c.head_dim;
}

class EmulatedAttention : public ::testing::TestWithParam<AttentionCase> {};

// One segment of each shape.
TEST_P(EmulatedAttention, MatchesDirectEvaluation) {
  const auto [batch, tokens, past, q_heads, kv_heads, head_dim] = GetParam();
  const TestSegment one[] = {{batch, tokens, past}};
  EXPECT_LE(attention_error(one, q_heads, kv_heads, head_dim), 1e-5F);
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmulatedAttention,
                         ::testing::Values(AttentionCase{2, 5, 0, 4, 2, 8},        // prefill, GQA
                                           AttentionCase{1, 2, 200, 2, 1, 64},     // > 1 chunk of 128 keys
                                           AttentionCase{1, 1, 130, 2, 2, 256},    // 2 dims per thread
                                           AttentionCase{2, 1, 20, 3, 1, 320}));  // 3 dims per thread, MQA

struct HeadShape {
  int q_heads, kv_heads, head_dim;
};

void PrintTo(const HeadShape& c, std::ostream* os) {
  *os << "heads " << c.q_heads << "/" << c.kv_heads << " head_dim " << c.head_dim;
}

class EmulatedMixedAttention : public ::testing::TestWithParam<HeadShape> {};

// Mixed segments in one launch, one of them decoding past the first chunk of 128 keys: each row
// sees exactly its own sequence's keys up to its own position.
TEST_P(EmulatedMixedAttention, EachRowMatchesDirectEvaluation) {
  const auto [q_heads, kv_heads, head_dim] = GetParam();
  const TestSegment mixed[] = {{1, 4, 0}, {1, 1, 150}, {2, 1, 3}, {1, 3, 9}};
  EXPECT_LE(attention_error(mixed, q_heads, kv_heads, head_dim), 1e-5F);
}

INSTANTIATE_TEST_SUITE_P(Shapes, EmulatedMixedAttention,
                         ::testing::Values(HeadShape{4, 2, 8}, HeadShape{2, 1, 64}, HeadShape{3, 1, 320}));

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

// The operands of the CUDA backend's bf16 products are rounded as the CPU rounds them: bit for
// bit, ties to even, NaN kept, infinities and overflow to infinity included.
TEST(EmulatedKernels, Bf16RoundingMatchesCpuBitwise) {
  std::vector<float> x = random_hidden(3, 700, 15);
  const float inf = std::numeric_limits<float>::infinity();
  for (const float special : {0.0F, -0.0F, inf, -inf, std::numeric_limits<float>::quiet_NaN(),
                              std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                              std::bit_cast<float>(0x3F808000U), std::bit_cast<float>(0x3F818000U)}) {
    x.push_back(special);  // the last two are ties: one rounds down to even, one up
  }
  std::vector<std::uint16_t> out(x.size(), 0);
  const auto n = static_cast<long long>(x.size());
  emu::launch({2}, k::kThreads, 0, [&] { k::to_bf16_kernel(x.data(), out.data(), n); });
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(out[i], detail::f32_to_bf16(x[i])) << "element " << i;
  EXPECT_EQ(out[out.size() - 2], 0x3F80U) << "a tie rounds to even (down)";
  EXPECT_EQ(out[out.size() - 1], 0x3F82U) << "a tie rounds to even (up)";
}

}  // namespace
}  // namespace swarm::model::test
