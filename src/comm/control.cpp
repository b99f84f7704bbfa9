// Control messages and collectives over MPI, each bounded by the communicator's deadline.
//
// Every operation works on heap scratch memory that it owns. When a deadline passes, MPI may
// still write into (or read from) that memory later, and a collective request can be neither
// cancelled nor freed (MPI 3.1, 5.12); so the scratch is deliberately leaked before the
// TimeoutError is thrown, and a late completion cannot corrupt the caller's stack. The job
// aborts after such an error anyway; the leak is bounded by one small message per failure.
#include "swarm/comm/control.hpp"

#include <climits>
#include <cstdint>
#include <memory>
#include <numeric>

#include "wait.hpp"

namespace swarm::comm {
namespace {

struct Scratch {
  std::vector<std::byte> send;
  std::vector<std::byte> recv;
  std::vector<int> counts;
  std::vector<int> displacements;
  std::vector<std::uint64_t> sizes;
};

[[nodiscard]] int checked_count(std::size_t count, std::string_view what) {
  if (count > static_cast<std::size_t>(INT_MAX))
    throw UsageError(detail::rank_prefix() + std::string(what) + " of " + detail::format_bytes(count) +
                     " is too large for a control message (use the transport)");
  return static_cast<int>(count);
}

/// Completes a collective or a send started on `scratch`; on timeout leaks the scratch (see the
/// file comment) and throws TimeoutError saying what did not complete.
void finish(const Communicator& comm, MPI_Request request, std::unique_ptr<Scratch>& scratch, const std::string& what) {
  if (detail::test_all_until({&request, 1}, detail::deadline_after(comm.timeout()))) return;
  (void)scratch.release();  // deliberate leak: MPI may still touch it
  throw TimeoutError(detail::rank_prefix() + what + " did not complete within " +
                     detail::format_seconds(comm.timeout()) +
                     ": a rank failed or has not reached the matching call");
}

[[nodiscard]] std::string source_name(int source) {
  return source == MPI_ANY_SOURCE ? std::string("any rank") : "rank " + std::to_string(source);
}

/// Probes (source, tag) until a message is there or the deadline passes.
[[nodiscard]] std::optional<std::pair<MPI_Message, MPI_Status>> probe_until(const Communicator& comm, int source, Tag tag,
                                                                            detail::Clock::time_point deadline) {
  detail::Backoff backoff;
  for (;;) {
    int found = 0;
    MPI_Message message = MPI_MESSAGE_NULL;
    MPI_Status status;
    SWARM_MPI_CHECK(MPI_Improbe(source, to_mpi(tag), comm.get(), &found, &message, &status));
    if (found) return std::make_pair(message, status);
    if (detail::Clock::now() >= deadline) return std::nullopt;
    backoff.pause();
  }
}

/// Receives a probed message of any size (it has arrived, so the receive does not wait on a peer
/// that is gone; a large one may still stream in, from a sender that is alive).
[[nodiscard]] std::vector<std::byte> receive_probed(MPI_Message message, MPI_Status status) {
  int count = 0;
  SWARM_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
  std::vector<std::byte> bytes(static_cast<std::size_t>(count));
  SWARM_MPI_CHECK(MPI_Mrecv(bytes.data(), count, MPI_BYTE, &message, MPI_STATUS_IGNORE));
  return bytes;
}

}  // namespace

namespace detail {

void throw_size_mismatch(int source, Tag tag, std::size_t expected, std::size_t got) {
  throw TransferError(rank_prefix() + "a " + std::string(to_string(tag)) + " message from " + source_name(source) +
                      " has " + std::to_string(got) + " bytes, expected " + std::to_string(expected) +
                      " (the ranks disagree on the message type: different builds?)");
}

void send_bytes(const Communicator& comm, int dest, Tag tag, std::span<const std::byte> bytes) {
  auto scratch = std::make_unique<Scratch>();
  scratch->send.assign(bytes.begin(), bytes.end());
  MPI_Request request = MPI_REQUEST_NULL;
  SWARM_MPI_CHECK(MPI_Isend(scratch->send.data(), checked_count(bytes.size(), "a send"), MPI_BYTE, dest, to_mpi(tag),
                            comm.get(), &request));
  finish(comm, request, scratch,
         "send of a " + std::string(to_string(tag)) + " message (" + format_bytes(bytes.size()) + ") to rank " +
             std::to_string(dest));
}

std::vector<std::byte> recv_any_size(const Communicator& comm, int source, Tag tag) {
  auto probed = probe_until(comm, source, tag, deadline_after(comm.timeout()));
  if (!probed)
    throw TimeoutError(rank_prefix() + "no " + std::string(to_string(tag)) + " message from " + source_name(source) +
                       " within " + format_seconds(comm.timeout()) + ": the peer failed or never sent it");
  return receive_probed(probed->first, probed->second);
}

void recv_bytes(const Communicator& comm, int source, Tag tag, std::span<std::byte> bytes) {
  const std::vector<std::byte> got = recv_any_size(comm, source, tag);
  if (got.size() != bytes.size()) throw_size_mismatch(source, tag, bytes.size(), got.size());
  std::copy(got.begin(), got.end(), bytes.begin());
}

void bcast_bytes(const Communicator& comm, std::span<std::byte> bytes, int root) {
  auto scratch = std::make_unique<Scratch>();
  scratch->send.assign(bytes.begin(), bytes.end());
  MPI_Request request = MPI_REQUEST_NULL;
  SWARM_MPI_CHECK(MPI_Ibcast(scratch->send.data(), checked_count(bytes.size(), "a broadcast"), MPI_BYTE, root,
                             comm.get(), &request));
  finish(comm, request, scratch, "MPI_Ibcast of " + format_bytes(bytes.size()) + " from rank " + std::to_string(root));
  std::copy(scratch->send.begin(), scratch->send.end(), bytes.begin());
}

void allgather_bytes(const Communicator& comm, std::span<const std::byte> mine, std::span<std::byte> all) {
  auto scratch = std::make_unique<Scratch>();
  scratch->send.assign(mine.begin(), mine.end());
  scratch->recv.resize(all.size());
  MPI_Request request = MPI_REQUEST_NULL;
  SWARM_MPI_CHECK(MPI_Iallgather(scratch->send.data(), checked_count(mine.size(), "an allgather"), MPI_BYTE,
                                 scratch->recv.data(), static_cast<int>(mine.size()), MPI_BYTE, comm.get(), &request));
  finish(comm, request, scratch, "MPI_Iallgather of " + format_bytes(mine.size()) + " per rank");
  std::copy(scratch->recv.begin(), scratch->recv.end(), all.begin());
}

}  // namespace detail

void send_string(const Communicator& comm, int dest, Tag tag, std::string_view text) {
  detail::send_bytes(comm, dest, tag, std::as_bytes(std::span<const char>(text.data(), text.size())));
}

std::string recv_string(const Communicator& comm, int source, Tag tag) {
  const std::vector<std::byte> bytes = detail::recv_any_size(comm, source, tag);
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::string bcast_string(const Communicator& comm, std::string value, int root) {
  const auto size = bcast_value<std::uint64_t>(comm, value.size(), root);
  value.resize(size);
  detail::bcast_bytes(comm, std::as_writable_bytes(std::span<char>(value.data(), value.size())), root);
  return value;
}

std::vector<std::string> gather_strings(const Communicator& comm, std::string_view mine, int root) {
  const bool is_root = comm.rank() == root;
  auto scratch = std::make_unique<Scratch>();
  // Sizes first, so that root can lay out the variable-size gather.
  scratch->sizes.resize(static_cast<std::size_t>(comm.size()));
  scratch->send.resize(sizeof(std::uint64_t));
  const std::uint64_t my_size = mine.size();
  std::memcpy(scratch->send.data(), &my_size, sizeof my_size);
  MPI_Request request = MPI_REQUEST_NULL;
  SWARM_MPI_CHECK(MPI_Igather(scratch->send.data(), 1, MPI_UINT64_T, scratch->sizes.data(), 1, MPI_UINT64_T, root,
                              comm.get(), &request));
  finish(comm, request, scratch, "MPI_Igather of string sizes to rank " + std::to_string(root));

  scratch->send.assign(reinterpret_cast<const std::byte*>(mine.data()),
                       reinterpret_cast<const std::byte*>(mine.data()) + mine.size());
  if (is_root) {
    scratch->counts.resize(scratch->sizes.size());
    scratch->displacements.resize(scratch->sizes.size());
    std::size_t total = 0;
    for (std::size_t r = 0; r < scratch->sizes.size(); ++r) {
      scratch->counts[r] = checked_count(scratch->sizes[r], "a gathered string");
      scratch->displacements[r] = checked_count(total, "the gathered strings");
      total += scratch->sizes[r];
    }
    scratch->recv.resize(checked_count(total, "the gathered strings"));
  }
  SWARM_MPI_CHECK(MPI_Igatherv(scratch->send.data(), checked_count(mine.size(), "a gathered string"), MPI_BYTE,
                               scratch->recv.data(), scratch->counts.data(), scratch->displacements.data(), MPI_BYTE,
                               root, comm.get(), &request));
  finish(comm, request, scratch, "MPI_Igatherv of strings to rank " + std::to_string(root));

  std::vector<std::string> all;
  if (!is_root) return all;
  all.reserve(scratch->sizes.size());
  for (std::size_t r = 0; r < scratch->sizes.size(); ++r)
    all.emplace_back(reinterpret_cast<const char*>(scratch->recv.data()) + scratch->displacements[r], scratch->sizes[r]);
  return all;
}

void barrier(const Communicator& comm) {
  auto scratch = std::make_unique<Scratch>();
  MPI_Request request = MPI_REQUEST_NULL;
  SWARM_MPI_CHECK(MPI_Ibarrier(comm.get(), &request));
  finish(comm, request, scratch, "MPI_Ibarrier");
}

std::optional<Message> poll_any(const Communicator& comm, std::span<const Tag> tags, Seconds timeout) {
  const auto deadline = detail::deadline_after(timeout);
  detail::Backoff backoff;
  for (;;) {
    // Tags in the caller's order: earlier ones take priority when several messages wait.
    for (Tag tag : tags) {
      int found = 0;
      MPI_Message message = MPI_MESSAGE_NULL;
      MPI_Status status;
      SWARM_MPI_CHECK(MPI_Improbe(MPI_ANY_SOURCE, to_mpi(tag), comm.get(), &found, &message, &status));
      if (found) return Message{status.MPI_SOURCE, tag, receive_probed(message, status)};
    }
    if (detail::Clock::now() >= deadline) return std::nullopt;
    backoff.pause();
  }
}

}  // namespace swarm::comm
