// Header encoding: a fixed prefix, then the route's hops and the segments as arrays of plain
// structs (every rank runs the same build, so no field-by-field serialisation is needed).
#include "swarm/job/protocol.hpp"

#include <cstring>
#include <stdexcept>
#include <string>

namespace swarm::job {
namespace {

constexpr std::uint32_t kMagic = 0x53504831;  // "SPH1": refuses bytes that are not a header

struct Prefix {
  std::uint32_t magic = kMagic;
  std::uint8_t kind = 0;
  std::uint8_t pad[3] = {};
  std::uint64_t batch = 0;
  std::int32_t hop = 0;
  std::uint32_t hops = 0;
  std::uint32_t segments = 0;
  std::uint32_t pad2 = 0;
};

// Copies `count` T's to `out` at `offset`; returns the offset after them.
template <typename T>
std::size_t put(std::vector<std::byte>& out, std::size_t offset, const T* data, std::size_t count) {
  if (count > 0) std::memcpy(out.data() + offset, data, count * sizeof(T));
  return offset + count * sizeof(T);
}

}  // namespace

int Header::next_peer() const {
  const auto next = static_cast<std::size_t>(hop) + 1;
  return next < route.size() ? route[next].rank : kClientRank;
}

std::vector<std::byte> encode(const Header& h) {
  Prefix p;
  p.kind = static_cast<std::uint8_t>(h.kind);
  p.batch = h.batch;
  p.hop = h.hop;
  p.hops = static_cast<std::uint32_t>(h.route.size());
  p.segments = static_cast<std::uint32_t>(h.segments.size());
  std::vector<std::byte> out(sizeof(Prefix) + h.route.size() * sizeof(Hop) + h.segments.size() * sizeof(model::Segment));
  std::size_t offset = put(out, 0, &p, 1);
  offset = put(out, offset, h.route.data(), h.route.size());
  (void)put(out, offset, h.segments.data(), h.segments.size());
  return out;
}

Header decode(std::span<const std::byte> bytes, int source) {
  const auto bad = [&](const std::string& why) {
    return std::runtime_error("a packet from rank " + std::to_string(source) + " is not a header of this build (" +
                              why + ")");
  };
  Prefix p;
  if (bytes.size() < sizeof(Prefix)) throw bad(std::to_string(bytes.size()) + " bytes");
  std::memcpy(&p, bytes.data(), sizeof(Prefix));
  if (p.magic != kMagic) throw bad("wrong magic");
  if (p.kind < 1 || p.kind > static_cast<std::uint8_t>(PacketKind::epoch_done)) throw bad("unknown kind " + std::to_string(p.kind));
  const std::size_t expected = sizeof(Prefix) + std::size_t{p.hops} * sizeof(Hop) +
                               std::size_t{p.segments} * sizeof(model::Segment);
  if (bytes.size() != expected) throw bad(std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expected));
  if (p.hop < 0 || static_cast<std::uint32_t>(p.hop) > p.hops) throw bad("hop " + std::to_string(p.hop));
  Header h;
  h.kind = static_cast<PacketKind>(p.kind);
  h.batch = p.batch;
  h.hop = p.hop;
  h.route.resize(p.hops);
  h.segments.resize(p.segments);
  std::memcpy(h.route.data(), bytes.data() + sizeof(Prefix), h.route.size() * sizeof(Hop));
  std::memcpy(h.segments.data(), bytes.data() + sizeof(Prefix) + h.route.size() * sizeof(Hop),
              h.segments.size() * sizeof(model::Segment));
  return h;
}

std::size_t max_header_bytes(int hops, int segments) {
  return sizeof(Prefix) + static_cast<std::size_t>(hops) * sizeof(Hop) +
         static_cast<std::size_t>(segments) * sizeof(model::Segment);
}

std::string name_ranks(std::span<const int> ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) out.append(i + 1 == ranks.size() ? " and " : ", ");
    out.append(std::to_string(ranks[i]));
  }
  return out;
}

}  // namespace swarm::job
