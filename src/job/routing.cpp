#include "swarm/job/routing.hpp"

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

}  // namespace swarm::job
