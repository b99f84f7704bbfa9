#pragma once
// Seeded randomness for the whole project.
//
// std::mt19937_64 is specified bit for bit by the standard, but the std:: distributions are not
// (libstdc++ and libc++ give different numbers for the same engine). Every draw goes through the
// helpers below so that a seed means the same trace on every platform.
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string_view>
#include <utility>

namespace swarm {

using Rng = std::mt19937_64;

/// Uniform double in [0, 1) from the top 53 bits of one draw.
inline double uniform01(Rng& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

/// Uniform double in [lo, hi).
inline double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * uniform01(rng); }

/// Uniform integer in [0, n) without modulo bias (rejection sampling). n must be > 0.
inline std::uint64_t uniform_index(Rng& rng, std::uint64_t n) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t x;
  do {
    x = rng();
  } while (x >= limit);
  return x % n;
}

/// Exponential with the given mean (inverse transform; 1 - u is in (0, 1]).
inline double exponential(Rng& rng, double mean) { return -mean * std::log(1.0 - uniform01(rng)); }

/// Standard normal (Box-Muller; one value per call, the second is discarded for simplicity).
inline double standard_normal(Rng& rng) {
  const double u1 = 1.0 - uniform01(rng);
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
}

/// Fisher-Yates shuffle (std::shuffle's draws are implementation-defined).
template <typename T>
void shuffle(std::span<T> items, Rng& rng) {
  for (std::size_t i = items.size(); i > 1; --i) {
    const std::size_t j = uniform_index(rng, i);
    std::swap(items[i - 1], items[j]);
  }
}

/// A seed for an independent stream, derived from a base seed and a name (FNV-1a then
/// SplitMix64), so that e.g. each strategy of a study draws its own numbers.
inline std::uint64_t derive_seed(std::uint64_t base, std::string_view name) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  std::uint64_t z = base + 0x9E3779B97F4A7C15ULL * (h | 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace swarm
