// Chunk rules of self-scheduling. Each rule is written once, here, with its source.
#include "swarm/dispatch/chunking.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "option_error.hpp"

namespace swarm::dispatch {

namespace {

[[nodiscard]] std::size_t ceil_div(std::size_t a, std::size_t b) { return (a + b - 1) / b; }

// ceil() of a product of doubles that should be an integer when the inputs are "round"
// (500 * 0.3 is 150.00000000000003): a relative tolerance far below one task.
[[nodiscard]] std::size_t ceil_tolerant(double x) {
  if (!(x > 0.0)) return 0;
  return static_cast<std::size_t>(std::ceil(x - 1e-9 * std::max(1.0, x)));
}

void check_options(const SelfSchedulingOptions& o) {
  if (o.chunk < 1) detail::reject_option("self.chunk", o.chunk, "a chunk holds at least one task");
  if (o.min_chunk < 1) detail::reject_option("self.min_chunk", o.min_chunk, "a chunk holds at least one task");
  if (!(o.tapering_alpha >= 0.0) || !std::isfinite(o.tapering_alpha)) {
    detail::reject_option("self.tapering_alpha", o.tapering_alpha, "it must be finite and >= 0");
  }
}

}  // namespace

std::string_view to_string(ChunkRuleKind kind) {
  switch (kind) {
    case ChunkRuleKind::fixed: return "fixed";
    case ChunkRuleKind::guided: return "guided";
    case ChunkRuleKind::factoring: return "factoring";
    case ChunkRuleKind::weighted_factoring: return "weighted_factoring";
    case ChunkRuleKind::tapering: return "tapering";
  }
  return "?";
}

// Tapering (S. Lucco, "A dynamic scheduling method for irregular parallel programs", PLDI 1992;
// PhD thesis UCB/CSD-95-864, 1994), in the form the dynamic-loop-scheduling literature uses:
//   x = R/p + K_min/2,   v = alpha * sigma/mu,
//   K = max(K_min, ceil(x + v^2/2 - v * sqrt(2x + v^2/4))).
// Why it shrinks with variance: K is the smaller root of (x - K)^2 = v^2 (x + K), i.e.
//   x - K = v * sqrt(x + K):
// the GSS-like share x gives up alpha standard deviations of the time of n = x + K tasks,
// measured in tasks: n task times sum to n*mu on average with standard deviation sqrt(n)*sigma,
// i.e. sqrt(n)*sigma/mu tasks' worth of time, and alpha of those is v*sqrt(n). A chunk sized so
// is unlikely to finish after the others even when its tasks are slow. v = 0 (equal task times)
// gives x, about GSS's R/p; a large v gives small chunks.
double tapering_chunk(double remaining, double workers, double min_chunk, double v) {
  const double x = remaining / workers + min_chunk / 2.0;
  return x + v * v / 2.0 - v * std::sqrt(2.0 * x + v * v / 4.0);
}

ChunkRule::ChunkRule(ChunkRuleKind kind, const SelfSchedulingOptions& options)
    : kind_(kind), options_(options) {
  check_options(options);
}

std::size_t ChunkRule::raw(const ChunkRequest& r) {
  const std::size_t p = std::max<std::size_t>(r.workers, 1);
  const std::size_t k_min = options_.min_chunk;
  switch (kind_) {
    case ChunkRuleKind::fixed:
      // Fixed chunk K (Kruskal & Weiss, IEEE TSE 1985): K trades queue accesses for balance.
      return options_.chunk;
    case ChunkRuleKind::guided:
      // Guided self-scheduling (Polychronopoulos & Kuck, IEEE Trans. Computers 36(12), 1987):
      //   K_i = ceil(R_i / p); with a floor k (GSS(k)) so the tail does not degrade to 1s.
      return std::max(ceil_div(r.remaining, p), k_min);
    case ChunkRuleKind::factoring:
    case ChunkRuleKind::weighted_factoring: {
      // Factoring (Hummel, Schonberg & Flynn, CACM 35(8), 1992): work is handed out in batches;
      // batch j splits half of what remains, R_j / 2, into p equal chunks
      //   K_j = ceil(R_j / (2p)),
      // so each batch leaves enough behind to even out the variance of the previous one.
      // Weighted factoring (Hummel, Schmidt, Uma & Wein, SPAA 1996): in heterogeneous systems
      // the batch is shared in proportion to the workers' speeds w_i:
      //   K_ij = ceil((R_j / 2) * w_i / sum_k w_k).
      if (batch_left_ == 0) {
        batch_left_ = p;
        batch_remaining_ = r.remaining;
      }
      --batch_left_;
      if (kind_ == ChunkRuleKind::factoring) return std::max(ceil_div(batch_remaining_, 2 * p), k_min);
      const double share = r.weight_share > 0.0 ? r.weight_share : 1.0 / static_cast<double>(p);
      return std::max(ceil_tolerant(static_cast<double>(batch_remaining_) / 2.0 * share), k_min);
    }
    case ChunkRuleKind::tapering: {
      const double v = options_.tapering_alpha * r.task_time_cv;
      const double k = tapering_chunk(static_cast<double>(r.remaining), static_cast<double>(p),
                                      static_cast<double>(k_min), v);
      return std::max(ceil_tolerant(k), k_min);
    }
  }
  return 1;
}

std::size_t ChunkRule::next(const ChunkRequest& request) {
  if (request.remaining == 0) return 0;
  return std::clamp<std::size_t>(raw(request), 1, request.remaining);
}

std::vector<std::size_t> chunk_sequence(ChunkRuleKind kind, const SelfSchedulingOptions& options,
                                        std::size_t total, std::size_t workers,
                                        std::span<const double> weights, double task_time_cv) {
  if (workers == 0) throw std::invalid_argument("chunk_sequence: workers = 0");
  if (!weights.empty() && weights.size() != workers) {
    throw std::invalid_argument("chunk_sequence: " + std::to_string(weights.size()) +
                                " weights for " + std::to_string(workers) + " workers");
  }
  double weight_sum = 0.0;
  for (double w : weights) weight_sum += w;
  ChunkRule rule(kind, options);
  std::vector<std::size_t> chunks;
  std::size_t remaining = total;
  for (std::size_t i = 0; remaining > 0; ++i) {
    const std::size_t w = i % workers;
    const double share = weights.empty() ? 1.0 / static_cast<double>(workers) : weights[w] / weight_sum;
    const std::size_t k = rule.next({remaining, workers, share, task_time_cv});
    chunks.push_back(k);
    remaining -= k;
  }
  return chunks;
}

}  // namespace swarm::dispatch
