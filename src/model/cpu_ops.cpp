#include "cpu_ops.hpp"

#include <cblas.h>

#include <cmath>
#include <limits>

namespace swarm::model::detail {

void rms_norm(const float* x, const float* weight, float* out, std::int64_t rows, int dim, float eps) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * dim;
    float* o = out + r * dim;
    double sum = 0.0;  // double accumulation: as close to the exact mean as fp32 results allow
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(in[i]) * in[i];
    const auto variance = static_cast<float>(sum / dim);
    const float scale = 1.0F / std::sqrt(variance + eps);
    for (int i = 0; i < dim; ++i) o[i] = weight[i] * (in[i] * scale);
  }
}

void linear(const float* x, std::int64_t rows, int in, const float* weight, int out, const float* bias, float* y) {
  if (rows == 0) return;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), out, in, 1.0F, x, in, weight, in, 0.0F,
              y, out);
  if (bias == nullptr) return;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < out; ++j) y[r * out + j] += bias[j];
  }
}

std::vector<float> rope_inv_freq(int head_dim, double theta) {
  std::vector<float> inv(static_cast<std::size_t>(head_dim / 2));
  const auto base = static_cast<float>(theta);
  for (std::size_t i = 0; i < inv.size(); ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);  // fp32 like torch
    const auto power = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
    inv[i] = 1.0F / power;
  }
  return inv;
}

std::vector<float> rope_inv_freq(const ModelConfig& config) {
  std::vector<float> inv = rope_inv_freq(config.head_dim, config.rope_theta);
  const RopeScaling& s = config.rope_scaling;
  if (!s.llama3) return inv;
  // transformers: wavelen = 2 pi / inv_freq; long wavelengths are divided by factor, short ones
  // kept, and those between interpolated by a smooth factor. Tensors are fp32 and Python scalars
  // are rounded to fp32 where they meet one; `scalar / tensor` is torch's reciprocal() * scalar.
  const auto factor = static_cast<float>(s.factor);
  const auto low = static_cast<float>(s.low_freq_factor);
  const double old_len = s.original_max_position_embeddings;
  const auto low_wavelen = static_cast<float>(old_len / s.low_freq_factor);
  const auto high_wavelen = static_cast<float>(old_len / s.high_freq_factor);
  const auto span = static_cast<float>(s.high_freq_factor - s.low_freq_factor);
  constexpr auto kTwoPi = static_cast<float>(2.0 * 3.14159265358979323846);
  for (float& f : inv) {
    const float wavelen = (1.0F / f) * kTwoPi;
    const float scaled = wavelen > low_wavelen ? f / factor : f;
    if (wavelen < high_wavelen || wavelen > low_wavelen) {
      f = scaled;
      continue;
    }
    const float smooth = ((1.0F / wavelen) * static_cast<float>(old_len) - low) / span;
    f = (1.0F - smooth) * scaled / factor + smooth * scaled;
  }
  return inv;
}

void rope_cos_sin(std::int64_t position, std::span<const float> inv_freq, float* cos, float* sin) {
  const auto pos = static_cast<float>(position);
  for (std::size_t i = 0; i < inv_freq.size(); ++i) {
    const double angle = pos * inv_freq[i];  // the product is rounded to fp32 first, as in torch
    cos[i] = static_cast<float>(std::cos(static_cast<double>(static_cast<float>(angle))));
    sin[i] = static_cast<float>(std::sin(static_cast<double>(static_cast<float>(angle))));
  }
}

void apply_rope(float* row, int heads, int half, const float* cos, const float* sin) {
  for (int h = 0; h < heads; ++h) {
    float* x1 = row + static_cast<std::int64_t>(h) * 2 * half;
    float* x2 = x1 + half;
    for (int i = 0; i < half; ++i) {
      const float a = x1[i];
      const float b = x2[i];
      x1[i] = a * cos[i] + (-b) * sin[i];
      x2[i] = b * cos[i] + a * sin[i];
    }
  }
}

void swiglu(float* gate, const float* up, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0F + std::exp(-g)) * up[i];
  }
}

void residual_add(float* x, const float* delta, const float* bias, std::int64_t rows, int dim) {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int j = 0; j < dim; ++j) {
      const float d = bias != nullptr ? delta[r * dim + j] + bias[j] : delta[r * dim + j];
      x[r * dim + j] += d;
    }
  }
}

void masked_softmax(float* scores, int rows, int cols, std::span<const int> valid) {
  for (int r = 0; r < rows; ++r) {
    float* s = scores + static_cast<std::int64_t>(r) * cols;
    const int n = valid[static_cast<std::size_t>(r)];
    float peak = -std::numeric_limits<float>::infinity();
    for (int j = 0; j < n; ++j) peak = std::max(peak, s[j]);
    float sum = 0.0F;
    for (int j = 0; j < n; ++j) {
      s[j] = std::exp(s[j] - peak);
      sum += s[j];
    }
    for (int j = 0; j < n; ++j) s[j] /= sum;  // division, as torch.softmax
    for (int j = n; j < cols; ++j) s[j] = 0.0F;
  }
}

int argmax(std::span<const float> values) {
  int best = 0;
  for (std::size_t i = 1; i < values.size(); ++i) {
    if (values[i] > values[static_cast<std::size_t>(best)]) best = static_cast<int>(i);
  }
  return best;
}

}  // namespace swarm::model::detail
