#pragma once
// Routes: the chain of servers a session's hidden states pass through, block 0 to block L.
// Pure. Like Petals' client, the route minimises estimated latency over online servers
// (Dijkstra over block boundaries), here with a queueing term so that concurrent sessions
// spread over servers that hold the same blocks.
#include <optional>
#include <string>
#include <span>
#include <vector>

#include "swarm/balance/swarm.hpp"

namespace swarm::job {

/// One hop: `rank` runs blocks [first, last) of the session.
struct Hop {
  int rank = 0;
  int first = 0;
  int last = 0;
  friend bool operator==(const Hop&, const Hop&) = default;
};

/// What the client knows about a server when routing.
struct RouteServer {
  int rank = 0;
  Span span;
  bool online = false;
  double block_tokens_per_s = 0;    // measured compute: tokens/s through one block
  double network_tokens_per_s = 0;  // measured link, in tokens/s (0: unknown, treated as free)
  double latency_s = 0;             // per transfer
  int sessions = 0;                 // sessions currently routed through it
};

/// Seconds one step of `tokens` tokens spends on `s` for `blocks` blocks, including the transfer
/// into it and a queueing factor (1 + sessions already there).
[[nodiscard]] double hop_seconds(const RouteServer& s, int blocks, int tokens);

/// The cheapest chain covering [0, total_blocks) through online servers, each hop running from
/// where the previous one ended to the end of its server's span (fewest transfers). Empty when
/// no chain exists (the swarm is disjoint for clients). Ties go to the lower rank.
[[nodiscard]] std::optional<std::vector<Hop>> shortest_route(int total_blocks, std::span<const RouteServer> servers,
                                                             int tokens);

/// A route and the rate it was given when the swarm's capacity was split into routes.
struct RouteShare {
  std::vector<Hop> hops;
  double speed = 0;  // tokens/s of sessions through the whole route
  [[nodiscard]] std::string key() const;  // "r0[0,4)-r3[4,8)": the chain's stable name (hashing key)
};

/// Splits the online servers' capacity into routes, the workers of request dispatch: each time
/// the widest chain (largest bottleneck of capacity not yet reserved; a hop running b blocks on
/// a server of one-block rate R offers R / b tokens/s, and no more than its measured link),
/// reserving its bottleneck on every hop,
/// until a chain would be narrower than `min_fraction` of the first or `max_routes` exist.
[[nodiscard]] std::vector<RouteShare> capacity_routes(int total_blocks, std::span<const RouteServer> servers,
                                                      int max_routes, double min_fraction = 0.05);

/// What the swarm passes when every server is busy all the time: the sum of the chains
/// capacity_routes() finds until no capacity is left (the job's prediction, docs/job.md).
[[nodiscard]] double route_capacity(int total_blocks, std::span<const RouteServer> servers);

}  // namespace swarm::job
