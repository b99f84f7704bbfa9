#pragma once
// Chunk rules of self-scheduling from a central queue (the CS 294-8 lecture's "variations on
// self-scheduling"): how many tasks an idle worker takes per request. Pure and stateful only
// where the rule is (factoring's batches), so that the exact sequences can be tested.
#include <cstddef>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace swarm::dispatch {

enum class ChunkRuleKind { fixed, guided, factoring, weighted_factoring, tapering };

[[nodiscard]] std::string_view to_string(ChunkRuleKind kind);

struct SelfSchedulingOptions {
  std::size_t chunk = 4;        // K of `fixed` (>= 1)
  std::size_t min_chunk = 1;    // floor of the shrinking rules (GSS(k), factoring, tapering; >= 1)
  double tapering_alpha = 1.3;  // tapering's alpha: standard deviations of slack (>= 0)
};

/// What the central queue knows when a worker asks for work.
struct ChunkRequest {
  std::size_t remaining = 0;   // R: tasks still in the central queue
  std::size_t workers = 1;     // p: live workers
  double weight_share = 0.0;   // w_i / sum_j w_j of the requester (weighted factoring)
  double task_time_cv = 0.0;   // sigma/mu of measured task times (tapering)
};

/// One chunk rule with its state (factoring's current batch).
class ChunkRule {
 public:
  /// Throws std::invalid_argument naming the bad option (e.g. "self.chunk = 0").
  ChunkRule(ChunkRuleKind kind, const SelfSchedulingOptions& options);

  [[nodiscard]] ChunkRuleKind kind() const { return kind_; }

  /// The size of the next chunk, in [1, remaining] (0 only when remaining is 0).
  [[nodiscard]] std::size_t next(const ChunkRequest& request);

 private:
  [[nodiscard]] std::size_t raw(const ChunkRequest& request);

  ChunkRuleKind kind_;
  SelfSchedulingOptions options_;
  std::size_t batch_left_ = 0;       // chunks still to hand out in factoring's current batch
  std::size_t batch_remaining_ = 0;  // R_j at the start of the batch
};

/// The chunks that `workers` workers requesting in turn (0, 1, ..., p-1, 0, ...) take from a
/// queue of `total` tasks. `weights` (one per worker, > 0) give the weight shares of weighted
/// factoring; empty means equal. `task_time_cv` is held constant (tapering).
[[nodiscard]] std::vector<std::size_t> chunk_sequence(ChunkRuleKind kind,
                                                      const SelfSchedulingOptions& options,
                                                      std::size_t total, std::size_t workers,
                                                      std::span<const double> weights = {},
                                                      double task_time_cv = 0.0);

/// Tapering's chunk before clamping (Lucco 1992): see chunking.cpp for the derivation.
[[nodiscard]] double tapering_chunk(double remaining, double workers, double min_chunk, double v);

}  // namespace swarm::dispatch
