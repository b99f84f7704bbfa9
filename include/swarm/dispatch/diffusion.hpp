#pragma once
// Diffusion load balancing on a graph of workers: first order (Cybenko, JPDC 1989) and second
// order (Ghosh, Muthukrishnan & Schultz, SPAA 1996). The graph and one diffusion step as pure
// functions; the dispatch policy (diffusion1, diffusion2) applies the flows to real queues.
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "swarm/dispatch/types.hpp"
#include "swarm/util/random.hpp"
#include "swarm/balance/swarm.hpp"

namespace swarm::dispatch {

/// An undirected simple graph over nodes 0..n-1 (workers). Edges are stored once, u < v, sorted.
class Graph {
 public:
  struct Edge {
    WorkerId u;
    WorkerId v;
    friend bool operator==(const Edge&, const Edge&) = default;
  };

  Graph() = default;
  /// Throws std::invalid_argument on a self loop or a node >= nodes; duplicates are merged.
  Graph(std::size_t nodes, std::vector<Edge> edges);

  [[nodiscard]] std::size_t nodes() const { return incident_.size(); }
  [[nodiscard]] bool empty() const { return incident_.empty(); }
  [[nodiscard]] std::span<const Edge> edges() const { return edges_; }
  /// Indices into edges() of the edges at `node`.
  [[nodiscard]] std::span<const std::size_t> incident(WorkerId node) const { return incident_[node]; }
  [[nodiscard]] std::size_t degree(WorkerId node) const { return incident_[node].size(); }
  [[nodiscard]] std::size_t max_degree() const;
  [[nodiscard]] bool connected() const;
  /// The other end of edge `e` seen from `node`.
  [[nodiscard]] WorkerId other(std::size_t e, WorkerId node) const {
    return edges_[e].u == node ? edges_[e].v : edges_[e].u;
  }

 private:
  std::vector<Edge> edges_;
  std::vector<std::vector<std::size_t>> incident_;
};

/// Cycle 0-1-...-(n-1)-0 (a path for n = 2, no edge for n < 2).
[[nodiscard]] Graph ring_graph(std::size_t n);
/// A connected random graph: a random spanning tree (each node i >= 1 linked to a uniform
/// earlier node after a shuffle) plus `extra_edges` uniform random edges.
[[nodiscard]] Graph random_graph(std::size_t n, std::size_t extra_edges, Rng& rng);
/// Routes (chains of server ids) are neighbours when they share a server: work moved between
/// them keeps part of its path.
[[nodiscard]] Graph graph_from_routes(std::span<const std::vector<std::string>> routes);
/// Servers of a swarm (in its id order) are neighbours when they hold some of the same blocks,
/// i.e. when their spans overlap: the servers that can stand in for each other.
[[nodiscard]] Graph graph_from_swarm(const Swarm& swarm);

/// 1 / (max degree + 1): the largest alpha for which first-order diffusion keeps every node's
/// own share non-negative (the step matrix stays stochastic), the usual safe choice.
[[nodiscard]] double default_alpha(const Graph& graph);

/// Ghosh et al.'s optimal beta = 2 / (1 + sqrt(1 - gamma^2)), gamma the second largest
/// eigenvalue modulus of the first-order step matrix M = I - alpha L. Requires 0 <= gamma < 1.
[[nodiscard]] double optimal_beta(double gamma);

/// The flows of one diffusion step, one per edge of `graph` (positive: from edge.u to edge.v).
///
/// Loads are normalised by speed, h_i = load_i / s_i (time to drain), and each edge carries
///   first order  (Cybenko 1989):          y_e = alpha * c_e * (h_u - h_v)
///   second order (Ghosh et al. 1996):     y_e = (beta - 1) * y_e_prev + beta * alpha * c_e * (h_u - h_v)
/// with c_e = min(s_u, s_v). With equal speeds s = 1 this is the textbook w' = M w for first
/// order and w' = beta M w + (1 - beta) w_prev for second order. The second-order form is used
/// when `previous_flow` is non-empty (one entry per edge); the first step of a second-order run
/// is first order. `speed` empty means all speeds are 1.
[[nodiscard]] std::vector<double> diffusion_flows(const Graph& graph, std::span<const double> load,
                                                  std::span<const double> speed, double alpha,
                                                  double beta, std::span<const double> previous_flow);

/// load[u] -= y_e and load[v] += y_e for every edge: conserves the total exactly up to rounding.
void apply_flows(const Graph& graph, std::span<const double> flow, std::span<double> load);

}  // namespace swarm::dispatch
