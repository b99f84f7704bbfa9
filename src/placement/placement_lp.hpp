#pragma once
// Internal to the exact placement search: the linear relaxation of "can the unused servers
// still fill what the blocks ahead lack?", whose dual gives the search pruning weights.
#include <memory>
#include <span>
#include <vector>

#include "placement_search.hpp"

class ClpSimplex;

namespace swarm::detail {

class ResidualLp {
 public:
  /// One programme over every (class, start); each question only changes its bounds, so the
  /// solver starts from the last basis (tens of microseconds a question, not a fresh solve).
  ResidualLp(int total_blocks, std::span<const SearchClass> classes, double target);
  ~ResidualLp();
  ResidualLp(const ResidualLp&) = delete;
  ResidualLp& operator=(const ResidualLp&) = delete;

  /// Blocks from `block` on lack `deficit` (index 0 is `block`); `unused` servers of each class
  /// may start at `block` or later. When even fractional servers cannot fill the deficits,
  /// returns true with `weights` (>= 0, one per block ahead): the relaxation's dual, for which
  /// sum_x w_x d_x exceeds what the unused servers bring to it. The caller checks the weights
  /// itself, so a solver's rounding can cost a prune but never a wrong one.
  bool infeasible(int block, std::span<const double> deficit, std::span<const int> unused,
                  std::vector<double>& weights);
  /// The last question's simplex iterations (what it cost: deterministic, unlike its time).
  [[nodiscard]] long last_iterations() const { return last_iterations_; }
  [[nodiscard]] long columns() const { return static_cast<long>(column_start_.size()); }

 private:
  int total_;
  int classes_;
  std::vector<int> column_start_;  // per (class, start) column: the start
  std::unique_ptr<ClpSimplex> lp_;
  long last_iterations_ = 0;
};

}  // namespace swarm::detail
