#include "swarm/job/admission.hpp"

#include <map>
#include <stdexcept>
#include <string>

namespace swarm::job {

CacheLedger::CacheLedger(std::uint64_t budget_bytes, int ranks)
    : budget_(budget_bytes), reserved_(static_cast<std::size_t>(ranks > 0 ? ranks : 0), 0) {}

std::size_t CacheLedger::index(int rank) const {
  if (rank < 0 || rank >= static_cast<int>(reserved_.size())) {
    throw std::out_of_range("cache ledger: rank " + std::to_string(rank) + " outside 0.." +
                            std::to_string(reserved_.size() - 1));
  }
  return static_cast<std::size_t>(rank);
}

std::uint64_t CacheLedger::reserved(int rank) const { return reserved_[index(rank)]; }

bool CacheLedger::fits(int rank, std::uint64_t bytes) const {
  if (!limited()) return true;
  const std::uint64_t used = reserved(rank);
  return used <= budget_ && bytes <= budget_ - used;
}

bool CacheLedger::reserve(std::span<const Hop> route, std::uint64_t bytes_per_block) {
  // A rank can appear on several hops of one route: sum per rank before checking.
  std::map<int, std::uint64_t> wanted;
  for (const Hop& h : route) wanted[h.rank] += bytes_per_block * static_cast<std::uint64_t>(h.last - h.first);
  for (const auto& [rank, bytes] : wanted) {
    if (!fits(rank, bytes)) return false;
  }
  for (const auto& [rank, bytes] : wanted) reserved_[index(rank)] += bytes;
  return true;
}

void CacheLedger::release(std::span<const Hop> route, std::uint64_t bytes_per_block) {
  std::map<int, std::uint64_t> held;
  for (const Hop& h : route) held[h.rank] += bytes_per_block * static_cast<std::uint64_t>(h.last - h.first);
  for (const auto& [rank, bytes] : held) {
    if (reserved(rank) < bytes) {
      throw std::logic_error("cache ledger: releasing " + std::to_string(bytes) + " bytes on rank " +
                             std::to_string(rank) + ", which holds " + std::to_string(reserved(rank)));
    }
  }
  for (const auto& [rank, bytes] : held) reserved_[index(rank)] -= bytes;
}

}  // namespace swarm::job
