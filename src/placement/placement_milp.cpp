// CBC's integer programme over server classes: see placement_milp.hpp.
#include "placement_milp.hpp"

#include <Cbc_C_Interface.h>  // pkg-config cbc: -I.../include/coin

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <utility>

namespace swarm::detail {
namespace {

struct CbcDeleter {
  void operator()(Cbc_Model* m) const { Cbc_deleteModel(m); }
};

}  // namespace

std::vector<ServerClass> classify(std::span<const PlacementServer> servers) {
  std::map<std::pair<double, int>, std::size_t> index;
  std::vector<ServerClass> classes;
  for (std::size_t i = 0; i < servers.size(); ++i) {
    const auto key = std::make_pair(servers[i].throughput, servers[i].num_blocks);
    auto [it, fresh] = index.emplace(key, classes.size());
    if (fresh) classes.push_back({key.first, key.second, {}});
    classes[it->second].members.push_back(i);
  }
  return classes;
}

std::vector<int> server_starts(std::size_t num_servers, const std::vector<ServerClass>& classes,
                               const std::vector<std::vector<int>>& class_starts) {
  std::vector<int> starts(num_servers);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (std::size_t m = 0; m < classes[c].members.size(); ++m) starts[classes[c].members[m]] = class_starts[c][m];
  }
  return starts;
}

double solve_milp(int total_blocks, std::span<const PlacementServer> servers,
                  const std::vector<ServerClass>& classes, double time_limit_s, int max_nodes,
                  double relative_gap, double upper, bool warm, Candidate& best, bool may_leave_out) {
  const int nblocks = total_blocks;
  std::vector<int> first_col(classes.size());
  int ncols = 0;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    first_col[c] = ncols;
    ncols += nblocks - classes[c].num_blocks + 1;
  }
  const int tau = ncols++;
  const int nrows = nblocks + static_cast<int>(classes.size());

  // Column-major (CSC) matrix.
  std::vector<CoinBigIndex> col_start{0};
  std::vector<int> row_index;
  std::vector<double> value;
  std::vector<double> col_lo(ncols, 0.0), col_hi(ncols), obj(ncols, 0.0);
  for (std::size_t c = 0; c < classes.size(); ++c) {
    const int k = classes[c].num_blocks;
    for (int s = 0; s + k <= nblocks; ++s) {
      for (int b = s; b < s + k; ++b) {
        row_index.push_back(b);
        value.push_back(classes[c].throughput);
      }
      row_index.push_back(nblocks + static_cast<int>(c));
      value.push_back(1.0);
      col_start.push_back(static_cast<CoinBigIndex>(row_index.size()));
      col_hi[first_col[c] + s] = static_cast<double>(classes[c].members.size());
    }
  }
  for (int b = 0; b < nblocks; ++b) {
    row_index.push_back(b);
    value.push_back(-1.0);
  }
  col_start.push_back(static_cast<CoinBigIndex>(row_index.size()));
  col_hi[tau] = upper;
  obj[tau] = -1.0;  // CBC minimises: minimise -tau

  std::vector<double> row_lo(nrows, 0.0), row_hi(nrows, std::numeric_limits<double>::max());
  for (std::size_t c = 0; c < classes.size(); ++c) {
    row_lo[nblocks + c] = may_leave_out ? 0.0 : static_cast<double>(classes[c].members.size());
    row_hi[nblocks + c] = static_cast<double>(classes[c].members.size());
  }

  std::unique_ptr<Cbc_Model, CbcDeleter> model(Cbc_newModel());
  Cbc_loadProblem(model.get(), ncols, nrows, col_start.data(), row_index.data(), value.data(),
                  col_lo.data(), col_hi.data(), obj.data(), row_lo.data(), row_hi.data());
  for (int j = 0; j < tau; ++j) Cbc_setInteger(model.get(), j);
  Cbc_setLogLevel(model.get(), 0);
  Cbc_setMaximumSeconds(model.get(), time_limit_s);
  if (max_nodes >= 0) Cbc_setMaximumNodes(model.get(), max_nodes);
  Cbc_setAllowableFractionGap(model.get(), relative_gap);

  // Warm start with the best heuristic placement.
  if (warm) {
    std::vector<int> start_idx(ncols);
    std::vector<double> start_val(ncols, 0.0);
    std::iota(start_idx.begin(), start_idx.end(), 0);
    for (std::size_t c = 0; c < classes.size(); ++c) {
      for (std::size_t i : classes[c].members) start_val[first_col[c] + best.starts[i]] += 1.0;
    }
    start_val[tau] = best.value;
    Cbc_setMIPStartI(model.get(), ncols, start_idx.data(), start_val.data());
  }

  Cbc_solve(model.get());

  // A proven optimum is its own bound (CBC leaves the best-possible value stale when the
  // cutoff from the warm start makes the relaxation infeasible).
  double bound = Cbc_isProvenOptimal(model.get()) ? -Cbc_getObjValue(model.get())
                                                  : -Cbc_getBestPossibleObjValue(model.get());
  if (!std::isfinite(bound) || bound > upper) bound = upper;
  const double* x = Cbc_getColSolution(model.get());
  if (x != nullptr && Cbc_getObjValue(model.get()) < 1e300) {
    std::vector<int> starts(servers.size(), -1);
    bool complete = true;
    for (std::size_t c = 0; c < classes.size() && complete; ++c) {
      std::size_t m = 0;
      const int k = classes[c].num_blocks;
      for (int s = 0; s + k <= nblocks; ++s) {
        const long count = std::lround(x[first_col[c] + s]);
        for (long r = 0; r < count && m < classes[c].members.size(); ++r) {
          starts[classes[c].members[m++]] = s;
        }
      }
      complete = m == classes[c].members.size();
    }
    if (complete) {
      const double v = placement_value(total_blocks, servers, starts);
      if (v > best.value) best = {std::move(starts), v, "milp"};
    }
  }
  return bound;
}

}  // namespace swarm::detail
