// The residual relaxation: for every block x ahead, the servers covering x bring at least its
// deficit d_x, with y[c][s] >= 0 servers of class c starting at s (fractions allowed) and at
// most unused_c of each class. Infeasibility is measured, not tested: an elastic shortage
// e_x >= 0 per block is minimised, so the programme always has a solution and its row duals
// w_x in [0, 1] are the weights of Farkas' lemma whenever the shortage is positive:
//   sum_x w_x d_x - sum_c unused_c * max_s t_c * sum_{x in [s, s + k_c)} w_x > 0.
#include "placement_lp.hpp"

#include <ClpSimplex.hpp>  // pkg-config cbc: -I.../include/coin

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace swarm::detail {

ResidualLp::ResidualLp(int total_blocks, std::span<const SearchClass> classes, double target)
    : total_(total_blocks), classes_(static_cast<int>(classes.size())), lp_(std::make_unique<ClpSimplex>()) {
  const int rows = total_ + classes_;  // coverage of each block, then servers of each class
  std::vector<int> col_start{0}, row_index;
  std::vector<double> value, col_lo, col_hi, obj;
  const auto end_column = [&](double cost) {  // every column is >= 0, unbounded above
    col_start.push_back(static_cast<int>(row_index.size()));
    col_lo.push_back(0.0);
    col_hi.push_back(COIN_DBL_MAX);
    obj.push_back(cost);
  };
  for (int c = 0; c < classes_; ++c) {
    const SearchClass& k = classes[static_cast<std::size_t>(c)];
    for (int s = 0; s + k.num_blocks <= total_; ++s) {
      for (int x = s; x < s + k.num_blocks; ++x) {
        row_index.push_back(x);
        value.push_back(k.throughput);
      }
      row_index.push_back(total_ + c);
      value.push_back(1.0);
      end_column(0.0);
      column_start_.push_back(s);
    }
  }
  for (int x = 0; x < total_; ++x) {  // the shortages, in units of the target
    row_index.push_back(x);
    value.push_back(1.0);
    end_column(target > 0 ? 1.0 / target : 1.0);
  }
  std::vector<double> row_lo(static_cast<std::size_t>(rows), 0.0), row_hi(static_cast<std::size_t>(rows), COIN_DBL_MAX);
  for (int c = 0; c < classes_; ++c) {
    row_lo[static_cast<std::size_t>(total_ + c)] = -COIN_DBL_MAX;
    row_hi[static_cast<std::size_t>(total_ + c)] = classes[static_cast<std::size_t>(c)].count;
  }
  lp_->setLogLevel(0);
  lp_->loadProblem(static_cast<int>(col_lo.size()), rows, col_start.data(), row_index.data(), value.data(),
                   col_lo.data(), col_hi.data(), obj.data(), row_lo.data(), row_hi.data());
}

ResidualLp::~ResidualLp() = default;

bool ResidualLp::infeasible(int block, std::span<const double> deficit, std::span<const int> unused,
                            std::vector<double>& weights) {
  ClpSimplex& lp = *lp_;
  for (std::size_t j = 0; j < column_start_.size(); ++j) {
    lp.setColumnUpper(static_cast<int>(j), column_start_[j] >= block ? COIN_DBL_MAX : 0.0);
  }
  for (int x = 0; x < total_; ++x) lp.setRowLower(x, x >= block ? deficit[static_cast<std::size_t>(x - block)] : 0.0);
  for (int c = 0; c < classes_; ++c) lp.setRowUpper(total_ + c, unused[static_cast<std::size_t>(c)]);
  // 7: keep the factorisation and work areas between questions (only bounds change).
  lp.dual(0, 7);
  last_iterations_ = lp.numberIterations();
  if (lp.status() != 0 || lp.objectiveValue() <= 1e-9) return false;
  const double* dual = lp.dualRowSolution();
  weights.assign(static_cast<std::size_t>(total_ - block), 0.0);
  for (int x = block; x < total_; ++x) weights[static_cast<std::size_t>(x - block)] = std::abs(dual[x]);
  return true;
}

}  // namespace swarm::detail
