#pragma once
// The swarm as the balancing rules see it: a model of `total_blocks` blocks and servers that each
// hold one contiguous span and announce a throughput. A pure value type: no I/O.
#include <cstddef>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/util/span.hpp"

namespace swarm {

/// Petals' ServerState; the numeric order matters (rules count states >= joining).
enum class ServerState : unsigned char { offline = 0, joining = 1, online = 2 };

[[nodiscard]] std::string_view to_string(ServerState state);
[[nodiscard]] std::optional<ServerState> parse_server_state(std::string_view text);


struct Server {
  std::string id;
  Span span;
  double throughput = 0.0;  // tokens/s the server announces (finite, >= 0)
  ServerState state = ServerState::offline;

  /// Whether the balancing rules count this server (joining or online, non-empty span).
  [[nodiscard]] bool counted() const { return state != ServerState::offline && span.length() > 0; }
};

/// Thrown for an invalid swarm; `field` names what is wrong (e.g. "servers[3].end").
class SwarmError : public std::invalid_argument {
 public:
  SwarmError(std::string field, const std::string& message)
      : std::invalid_argument(message), field_(std::move(field)) {}
  [[nodiscard]] const std::string& field() const { return field_; }

 private:
  std::string field_;
};

/// Servers kept in ascending id order (ids compare as strings): every loop over servers runs in
/// this order so that every party rounds the same way.
class Swarm {
 public:
  explicit Swarm(int total_blocks);
  /// Validates and sorts; throws SwarmError naming the offending field.
  Swarm(int total_blocks, std::vector<Server> servers);

  [[nodiscard]] int total_blocks() const { return total_blocks_; }
  [[nodiscard]] std::span<const Server> servers() const { return servers_; }
  [[nodiscard]] std::size_t size() const { return servers_.size(); }
  [[nodiscard]] const Server& operator[](std::size_t i) const { return servers_[i]; }

  /// Index of the server with this id, if present (binary search).
  [[nodiscard]] std::optional<std::size_t> find(std::string_view id) const;

  /// Inserts in id order and returns the index; throws SwarmError on a duplicate or bad server.
  std::size_t add(Server server);
  void remove(std::size_t index);
  void set_span(std::size_t index, Span span);
  void set_state(std::size_t index, ServerState state);
  void set_throughput(std::size_t index, double throughput);

 private:
  void validate(const Server& server, const std::string& where) const;

  int total_blocks_;
  std::vector<Server> servers_;
};

}  // namespace swarm
