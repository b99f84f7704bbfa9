#include "swarm/balance/swarm.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace swarm {

std::string_view to_string(ServerState state) {
  switch (state) {
    case ServerState::offline: return "offline";
    case ServerState::joining: return "joining";
    case ServerState::online: return "online";
  }
  return "?";
}

std::optional<ServerState> parse_server_state(std::string_view text) {
  if (text == "offline") return ServerState::offline;
  if (text == "joining") return ServerState::joining;
  if (text == "online") return ServerState::online;
  return std::nullopt;
}

Swarm::Swarm(int total_blocks) : total_blocks_(total_blocks) {
  if (total_blocks < 1) {
    throw SwarmError("total_blocks", "total_blocks must be >= 1, got " + std::to_string(total_blocks));
  }
}

Swarm::Swarm(int total_blocks, std::vector<Server> servers) : Swarm(total_blocks) {
  for (std::size_t i = 0; i < servers.size(); ++i) {
    validate(servers[i], "servers[" + std::to_string(i) + "]");
  }
  std::stable_sort(servers.begin(), servers.end(),
                   [](const Server& a, const Server& b) { return a.id < b.id; });
  for (std::size_t i = 1; i < servers.size(); ++i) {
    if (servers[i].id == servers[i - 1].id) {
      throw SwarmError("id", "duplicate server id '" + servers[i].id + "'");
    }
  }
  servers_ = std::move(servers);
}

void Swarm::validate(const Server& s, const std::string& where) const {
  const auto fail = [&](const std::string& field, const std::string& what) {
    throw SwarmError(field, where + " (id '" + s.id + "'): " + what);
  };
  if (s.span.start < 0 || s.span.start > total_blocks_) {
    fail("start", "start " + std::to_string(s.span.start) + " is outside the model's 0.." +
                      std::to_string(total_blocks_) + " blocks");
  }
  if (s.span.end < s.span.start || s.span.end > total_blocks_) {
    fail("end", "end " + std::to_string(s.span.end) + " is not in start.." +
                    std::to_string(total_blocks_) + " (start " + std::to_string(s.span.start) + ")");
  }
  if (!std::isfinite(s.throughput) || s.throughput < 0.0) {
    std::ostringstream v;
    v << s.throughput;
    fail("throughput", "throughput must be finite and >= 0, got " + v.str());
  }
}

std::optional<std::size_t> Swarm::find(std::string_view id) const {
  const auto it = std::lower_bound(servers_.begin(), servers_.end(), id,
                                   [](const Server& s, std::string_view key) { return s.id < key; });
  if (it == servers_.end() || it->id != id) return std::nullopt;
  return static_cast<std::size_t>(it - servers_.begin());
}

std::size_t Swarm::add(Server server) {
  validate(server, "server");
  const auto it = std::lower_bound(servers_.begin(), servers_.end(), server.id,
                                   [](const Server& s, const std::string& key) { return s.id < key; });
  if (it != servers_.end() && it->id == server.id) {
    throw SwarmError("id", "duplicate server id '" + server.id + "'");
  }
  const auto pos = static_cast<std::size_t>(it - servers_.begin());
  servers_.insert(it, std::move(server));
  return pos;
}

void Swarm::remove(std::size_t index) { servers_.erase(servers_.begin() + static_cast<long>(index)); }

void Swarm::set_span(std::size_t index, Span span) {
  Server copy = servers_.at(index);
  copy.span = span;
  validate(copy, "server");
  servers_[index].span = span;
}

void Swarm::set_state(std::size_t index, ServerState state) { servers_.at(index).state = state; }

void Swarm::set_throughput(std::size_t index, double throughput) {
  Server copy = servers_.at(index);
  copy.throughput = throughput;
  validate(copy, "server");
  servers_[index].throughput = throughput;
}

}  // namespace swarm
