// Graphs of workers and the diffusion step (pure functions).
#include "swarm/dispatch/diffusion.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <stdexcept>
#include <string>

namespace swarm::dispatch {

Graph::Graph(std::size_t nodes, std::vector<Edge> edges) : incident_(nodes) {
  for (Edge& e : edges) {
    if (e.u == e.v) throw std::invalid_argument("Graph: self loop at node " + std::to_string(e.u));
    if (e.u >= nodes || e.v >= nodes) {
      throw std::invalid_argument("Graph: edge (" + std::to_string(e.u) + ", " + std::to_string(e.v) +
                                  ") names a node >= " + std::to_string(nodes));
    }
    if (e.u > e.v) std::swap(e.u, e.v);
  }
  std::sort(edges.begin(), edges.end(),
            [](const Edge& a, const Edge& b) { return a.u != b.u ? a.u < b.u : a.v < b.v; });
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  edges_ = std::move(edges);
  for (std::size_t e = 0; e < edges_.size(); ++e) {
    incident_[edges_[e].u].push_back(e);
    incident_[edges_[e].v].push_back(e);
  }
}

std::size_t Graph::max_degree() const {
  std::size_t d = 0;
  for (const auto& inc : incident_) d = std::max(d, inc.size());
  return d;
}

bool Graph::connected() const {
  if (incident_.empty()) return true;
  std::vector<char> seen(incident_.size(), 0);
  std::vector<WorkerId> stack{0};
  seen[0] = 1;
  std::size_t count = 1;
  while (!stack.empty()) {
    const WorkerId n = stack.back();
    stack.pop_back();
    for (std::size_t e : incident_[n]) {
      const WorkerId m = other(e, n);
      if (!seen[m]) {
        seen[m] = 1;
        ++count;
        stack.push_back(m);
      }
    }
  }
  return count == incident_.size();
}

Graph ring_graph(std::size_t n) {
  std::vector<Graph::Edge> edges;
  for (std::size_t i = 0; n >= 2 && i < n; ++i) {
    edges.push_back({static_cast<WorkerId>(i), static_cast<WorkerId>((i + 1) % n)});
  }
  return Graph(n, std::move(edges));  // n = 2 gives the edge twice: merged
}

Graph random_graph(std::size_t n, std::size_t extra_edges, Rng& rng) {
  std::vector<WorkerId> order(n);
  std::iota(order.begin(), order.end(), WorkerId{0});
  shuffle(std::span<WorkerId>(order), rng);
  std::vector<Graph::Edge> edges;
  for (std::size_t i = 1; i < n; ++i) {
    edges.push_back({order[i], order[uniform_index(rng, i)]});
  }
  for (std::size_t k = 0; n >= 2 && k < extra_edges; ++k) {
    const auto u = static_cast<WorkerId>(uniform_index(rng, n));
    auto v = static_cast<WorkerId>(uniform_index(rng, n - 1));
    if (v >= u) ++v;  // uniform over the other nodes
    edges.push_back({u, v});
  }
  return Graph(n, std::move(edges));
}

Graph graph_from_routes(std::span<const std::vector<std::string>> routes) {
  std::map<std::string, std::vector<WorkerId>> users;  // server -> routes through it
  for (std::size_t r = 0; r < routes.size(); ++r) {
    for (const std::string& server : routes[r]) users[server].push_back(static_cast<WorkerId>(r));
  }
  std::vector<Graph::Edge> edges;
  for (auto& [server, rs] : users) {
    std::sort(rs.begin(), rs.end());
    rs.erase(std::unique(rs.begin(), rs.end()), rs.end());
    for (std::size_t i = 0; i < rs.size(); ++i) {
      for (std::size_t j = i + 1; j < rs.size(); ++j) edges.push_back({rs[i], rs[j]});
    }
  }
  return Graph(routes.size(), std::move(edges));
}

Graph graph_from_swarm(const Swarm& swarm) {
  std::vector<Graph::Edge> edges;
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    const Span a = swarm[i].span;
    for (std::size_t j = i + 1; j < swarm.size(); ++j) {
      const Span b = swarm[j].span;
      const bool overlap = a.length() > 0 && b.length() > 0 && a.start < b.end && b.start < a.end;
      if (overlap) edges.push_back({static_cast<WorkerId>(i), static_cast<WorkerId>(j)});
    }
  }
  return Graph(swarm.size(), std::move(edges));
}

double default_alpha(const Graph& graph) {
  return 1.0 / static_cast<double>(graph.max_degree() + 1);
}

double optimal_beta(double gamma) {
  if (!(gamma >= 0.0 && gamma < 1.0)) {
    throw std::invalid_argument("optimal_beta: gamma = " + std::to_string(gamma) +
                                " must be in [0, 1)");
  }
  return 2.0 / (1.0 + std::sqrt(1.0 - gamma * gamma));
}

std::vector<double> diffusion_flows(const Graph& graph, std::span<const double> load,
                                    std::span<const double> speed, double alpha, double beta,
                                    std::span<const double> previous_flow) {
  if (load.size() != graph.nodes() || (!speed.empty() && speed.size() != graph.nodes()) ||
      (!previous_flow.empty() && previous_flow.size() != graph.edges().size())) {
    throw std::invalid_argument("diffusion_flows: sizes do not match the graph");
  }
  const auto s = [&](WorkerId i) { return speed.empty() ? 1.0 : speed[i]; };
  std::vector<double> flow(graph.edges().size());
  for (std::size_t e = 0; e < flow.size(); ++e) {
    const auto [u, v] = graph.edges()[e];
    const double c = std::min(s(u), s(v));
    const double gradient = alpha * c * (load[u] / s(u) - load[v] / s(v));
    flow[e] = previous_flow.empty() ? gradient : (beta - 1.0) * previous_flow[e] + beta * gradient;
  }
  return flow;
}

void apply_flows(const Graph& graph, std::span<const double> flow, std::span<double> load) {
  for (std::size_t e = 0; e < flow.size(); ++e) {
    load[graph.edges()[e].u] -= flow[e];
    load[graph.edges()[e].v] += flow[e];
  }
}

}  // namespace swarm::dispatch
