#pragma once
// Control collectives: small POD structs and strings over MPI. Typed, so no byte counts appear
// at call sites; every wait has the communicator's deadline (a TimeoutError names the
// collective), so a failed rank never hangs the others. Point-to-point traffic of the job goes
// through the Fabric (fabric.hpp), not through these helpers.
//
// Collectives are MPI's non-blocking ones (MPI_Ibcast, MPI_Iallgather, ...) completed by a
// polling loop: that is what lets them time out. Like any collective, every rank of the
// communicator must call them in the same order.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "swarm/comm/errors.hpp"
#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/pod.hpp"
#include "swarm/comm/tags.hpp"

namespace swarm::comm {

namespace detail {
void bcast_bytes(const Communicator& comm, std::span<std::byte> bytes, int root);
void allgather_bytes(const Communicator& comm, std::span<const std::byte> mine, std::span<std::byte> all);

template <Pod T>
[[nodiscard]] std::span<const std::byte> bytes_of(const T& value) noexcept {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}
template <Pod T>
[[nodiscard]] std::span<std::byte> bytes_of(T& value) noexcept {
  return std::as_writable_bytes(std::span<T, 1>(&value, 1));
}
}  // namespace detail

/// Every rank returns root's value.
template <Pod T>
[[nodiscard]] T bcast_value(const Communicator& comm, T value, int root = 0) {
  detail::bcast_bytes(comm, detail::bytes_of(value), root);
  return value;
}

/// Every rank returns all values, indexed by rank.
template <Pod T>
[[nodiscard]] std::vector<T> allgather_values(const Communicator& comm, const T& mine) {
  std::vector<T> all(static_cast<std::size_t>(comm.size()));
  detail::allgather_bytes(comm, detail::bytes_of(mine), std::as_writable_bytes(std::span<T>(all)));
  return all;
}

/// Root returns every rank's string, indexed by rank; the other ranks return an empty vector.
[[nodiscard]] std::vector<std::string> gather_strings(const Communicator& comm, std::string_view mine, int root = 0);

/// All ranks wait for each other (with the deadline).
void barrier(const Communicator& comm);

}  // namespace swarm::comm
