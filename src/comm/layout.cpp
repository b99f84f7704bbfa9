// Pure helpers of the rank layout (no MPI): SLURM_LOCALID parsing and node numbering.
#include <algorithm>
#include <charconv>
#include <vector>

#include "swarm/comm/layout.hpp"

namespace swarm::comm {

std::optional<int> parse_local_id(std::optional<std::string_view> text) noexcept {
  if (!text || text->empty()) return std::nullopt;
  int value = -1;
  const char* end = text->data() + text->size();
  auto [ptr, ec] = std::from_chars(text->data(), end, value);
  if (ec != std::errc{} || ptr != end || value < 0) return std::nullopt;
  return value;
}

int choose_local_rank(int split_rank, std::span<const std::optional<int>> local_ids_of_node) {
  const auto n = local_ids_of_node.size();
  if (split_rank < 0 || static_cast<std::size_t>(split_rank) >= n)
    throw std::invalid_argument("choose_local_rank: split rank outside the node");
  std::vector<bool> seen(n, false);
  for (const std::optional<int>& id : local_ids_of_node) {
    if (!id || static_cast<std::size_t>(*id) >= n || seen[static_cast<std::size_t>(*id)]) return split_rank;
    seen[static_cast<std::size_t>(*id)] = true;
  }
  return *local_ids_of_node[static_cast<std::size_t>(split_rank)];
}

NodeIndex node_index(int rank, std::span<const int> leader_of_rank) {
  if (rank < 0 || static_cast<std::size_t>(rank) >= leader_of_rank.size())
    throw std::invalid_argument("node_index: rank outside the world");
  std::vector<int> leaders(leader_of_rank.begin(), leader_of_rank.end());
  std::sort(leaders.begin(), leaders.end());
  leaders.erase(std::unique(leaders.begin(), leaders.end()), leaders.end());
  const auto mine = std::lower_bound(leaders.begin(), leaders.end(), leader_of_rank[static_cast<std::size_t>(rank)]);
  return {static_cast<int>(mine - leaders.begin()), static_cast<int>(leaders.size())};
}

}  // namespace swarm::comm
