#pragma once
// Benchmark swarms: n servers on L blocks with spans of L/20..L/4 blocks and throughputs of a few
// GPU classes: n + n/10 joined one by one with rule 1 (as Petals servers do), then n/10 left,
// leaving n servers in a realistic, slightly unbalanced swarm on which rule 2 has work to do.
#include <string>

#include "swarm/balance/rules.hpp"

namespace swarm::bench {

inline Swarm petals_like_swarm(int servers, int blocks, std::uint64_t seed = 42) {
  Rng rng(seed);
  Swarm swarm(blocks);
  const double classes[] = {6000, 3800, 2300, 1500, 760};
  const int lo = std::max(1, blocks / 20), hi = std::max(lo, blocks / 4);
  const int width = servers >= 100000 ? 7 : 5;
  const int leaving = servers / 10;
  for (int i = 0; i < servers + leaving; ++i) {
    const int k = lo + static_cast<int>(uniform_index(rng, static_cast<std::uint64_t>(hi - lo + 1)));
    const double t = classes[uniform_index(rng, 5)];
    const Span span = choose_best_blocks(swarm, k);
    std::string id = std::to_string(i);
    id = "s" + std::string(static_cast<std::size_t>(width) - std::min<std::size_t>(id.size(), width), '0') + id;
    swarm.add({id, span, t, ServerState::online});
  }
  for (int i = 0; i < leaving; ++i) swarm.remove(uniform_index(rng, swarm.size()));
  return swarm;
}

}  // namespace swarm::bench
