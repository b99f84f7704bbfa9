#pragma once
// Control messages: small POD structs and strings over MPI, point-to-point and collective.
// Typed, so no byte counts appear at call sites; every wait has the communicator's deadline
// (a TimeoutError names the peer or the collective), so a failed rank never hangs the others.
//
// Collectives are MPI's non-blocking ones (MPI_Ibcast, MPI_Iallgather, ...) completed by a
// polling loop: that is what lets them time out. Like any collective, every rank of the
// communicator must call them in the same order.
#include <cstddef>
#include <cstring>
#include <optional>
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
void send_bytes(const Communicator& comm, int dest, Tag tag, std::span<const std::byte> bytes);
void recv_bytes(const Communicator& comm, int source, Tag tag, std::span<std::byte> bytes);
[[nodiscard]] std::vector<std::byte> recv_any_size(const Communicator& comm, int source, Tag tag);
void bcast_bytes(const Communicator& comm, std::span<std::byte> bytes, int root);
void allgather_bytes(const Communicator& comm, std::span<const std::byte> mine, std::span<std::byte> all);
[[noreturn]] void throw_size_mismatch(int source, Tag tag, std::size_t expected, std::size_t got);

template <Pod T>
[[nodiscard]] std::span<const std::byte> bytes_of(const T& value) noexcept {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}
template <Pod T>
[[nodiscard]] std::span<std::byte> bytes_of(T& value) noexcept {
  return std::as_writable_bytes(std::span<T, 1>(&value, 1));
}
}  // namespace detail

/// One received control message of any kind (what poll_any returns).
struct Message {
  int source = -1;
  Tag tag = Tag::header;
  std::vector<std::byte> bytes;

  /// The payload as a T; throws TransferError when its size is not sizeof(T).
  template <Pod T>
  [[nodiscard]] T as() const {
    if (bytes.size() != sizeof(T)) detail::throw_size_mismatch(source, tag, sizeof(T), bytes.size());
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
  }
  [[nodiscard]] std::string text() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
};

/// One received control message of a known type (what poll<T> returns).
template <Pod T>
struct Envelope {
  int source = -1;
  Tag tag = Tag::header;
  T value{};
};

template <Pod T>
void send_value(const Communicator& comm, int dest, Tag tag, const T& value) {
  detail::send_bytes(comm, dest, tag, detail::bytes_of(value));
}

/// Receives a T from `source` (MPI_ANY_SOURCE allowed); a message of another size is an error.
template <Pod T>
[[nodiscard]] T recv_value(const Communicator& comm, int source, Tag tag) {
  T value;
  detail::recv_bytes(comm, source, tag, detail::bytes_of(value));
  return value;
}

void send_string(const Communicator& comm, int dest, Tag tag, std::string_view text);
[[nodiscard]] std::string recv_string(const Communicator& comm, int source, Tag tag);

/// Every rank returns root's value.
template <Pod T>
[[nodiscard]] T bcast_value(const Communicator& comm, T value, int root = 0) {
  detail::bcast_bytes(comm, detail::bytes_of(value), root);
  return value;
}

/// Every rank returns root's string (the others' arguments are ignored).
[[nodiscard]] std::string bcast_string(const Communicator& comm, std::string value, int root = 0);

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

/// Waits up to `timeout` for a message with one of `tags` from any source and receives it;
/// nullopt when none came. Never blocks longer than `timeout` (a zero timeout is one probe), so
/// the job's event loop can interleave it with transfer polling and its own deadlines.
[[nodiscard]] std::optional<Message> poll_any(const Communicator& comm, std::span<const Tag> tags, Seconds timeout);

/// poll_any for one tag whose payload is a T.
template <Pod T>
[[nodiscard]] std::optional<Envelope<T>> poll(const Communicator& comm, Tag tag, Seconds timeout) {
  const Tag tags[] = {tag};
  std::optional<Message> message = poll_any(comm, tags, timeout);
  if (!message) return std::nullopt;
  return Envelope<T>{message->source, message->tag, message->as<T>()};
}

}  // namespace swarm::comm
