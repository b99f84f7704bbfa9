#include "swarm/job/routing.hpp"

#include <algorithm>
#include <limits>
#include <queue>

namespace swarm::job {

double hop_seconds(const RouteServer& s, int blocks, int tokens) {
  const double compute = s.block_tokens_per_s > 0 ? static_cast<double>(blocks) * tokens / s.block_tokens_per_s : 1e9;
  const double transfer = s.network_tokens_per_s > 0 ? tokens / s.network_tokens_per_s : 0.0;
  return (compute + transfer + s.latency_s) * (1.0 + s.sessions);
}

std::optional<std::vector<Hop>> shortest_route(int total_blocks, std::span<const RouteServer> servers, int tokens) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> cost(static_cast<std::size_t>(total_blocks) + 1, inf);
  std::vector<Hop> via(static_cast<std::size_t>(total_blocks) + 1);
  using Item = std::pair<double, int>;  // (cost, block boundary)
  std::priority_queue<Item, std::vector<Item>, std::greater<>> queue;
  cost[0] = 0;
  queue.push({0.0, 0});
  while (!queue.empty()) {
    const auto [c, b] = queue.top();
    queue.pop();
    if (c > cost[static_cast<std::size_t>(b)]) continue;
    if (b == total_blocks) break;
    for (const RouteServer& s : servers) {
      if (!s.online || !(s.span.start <= b && b < s.span.end)) continue;
      const int end = s.span.end;
      const double next = c + hop_seconds(s, end - b, tokens);
      auto& best = cost[static_cast<std::size_t>(end)];
      if (next < best || (next == best && s.rank < via[static_cast<std::size_t>(end)].rank)) {
        best = next;
        via[static_cast<std::size_t>(end)] = {s.rank, b, end};
        queue.push({next, end});
      }
    }
  }
  if (cost[static_cast<std::size_t>(total_blocks)] == inf) return std::nullopt;
  std::vector<Hop> route;
  for (int b = total_blocks; b > 0;) {
    const Hop h = via[static_cast<std::size_t>(b)];
    route.push_back(h);
    b = h.first;
  }
  return std::vector<Hop>(route.rbegin(), route.rend());
}

std::string RouteShare::key() const {
  std::string k;
  for (const Hop& h : hops) {
    k += (k.empty() ? "r" : "-r") + std::to_string(h.rank) + "[" + std::to_string(h.first) + "," +
         std::to_string(h.last) + ")";
  }
  return k;
}

std::vector<RouteShare> capacity_routes(int total_blocks, std::span<const RouteServer> servers, int max_routes,
                                        double min_fraction) {
  std::vector<double> left(servers.size(), 1.0);  // share of each server's time not yet reserved
  std::vector<RouteShare> routes;
  double first = 0;
  // A hop of `blocks` blocks passes R / blocks tokens/s, and no more than its measured link.
  const auto rate = [&](std::size_t s, int blocks) {
    const double compute = servers[s].block_tokens_per_s / blocks;
    const double link = servers[s].network_tokens_per_s;
    return link > 0 ? std::min(compute, link) : compute;
  };
  while (static_cast<int>(routes.size()) < max_routes) {
    // Widest chain: block boundaries in increasing order, each hop from where the last ended to
    // the end of the server's span.
    std::vector<double> width(static_cast<std::size_t>(total_blocks) + 1, 0.0);
    std::vector<std::pair<int, std::size_t>> from(static_cast<std::size_t>(total_blocks) + 1, {-1, 0});
    width[0] = std::numeric_limits<double>::infinity();
    for (int b = 0; b < total_blocks; ++b) {
      if (width[static_cast<std::size_t>(b)] <= 0) continue;
      for (std::size_t s = 0; s < servers.size(); ++s) {
        const RouteServer& v = servers[s];
        if (!v.online || v.block_tokens_per_s <= 0 || !(v.span.start <= b && b < v.span.end)) continue;
        const double w = std::min(width[static_cast<std::size_t>(b)], left[s] * rate(s, v.span.end - b));
        if (w > width[static_cast<std::size_t>(v.span.end)]) {
          width[static_cast<std::size_t>(v.span.end)] = w;
          from[static_cast<std::size_t>(v.span.end)] = {b, s};
        }
      }
    }
    const double w = width[static_cast<std::size_t>(total_blocks)];
    if (w <= 0 || (first > 0 && w < min_fraction * first)) break;
    if (first == 0) first = w;
    RouteShare route;
    route.speed = w;
    for (int b = total_blocks; b > 0;) {
      const auto [prev, s] = from[static_cast<std::size_t>(b)];
      route.hops.push_back({servers[s].rank, prev, b});
      left[s] -= w / rate(s, b - prev);  // the share of its time this route takes
      b = prev;
    }
    std::reverse(route.hops.begin(), route.hops.end());
    routes.push_back(std::move(route));
  }
  return routes;
}

double route_capacity(int total_blocks, std::span<const RouteServer> servers) {
  // Each split exhausts the server of its narrowest hop, so twice the servers bounds the count
  // with room for rounding.
  double total = 0;
  for (const RouteShare& r : capacity_routes(total_blocks, servers, 2 * static_cast<int>(servers.size()) + 2, 1e-9)) {
    total += r.speed;
  }
  return total;
}

}  // namespace swarm::job
