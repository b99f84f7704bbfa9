// Control collectives over MPI, each bounded by the communicator's deadline.
//
// Every operation works on heap scratch memory that it owns. When a deadline passes, MPI may
// still write into (or read from) that memory later, and a collective request can be neither
// cancelled nor freed (MPI 3.1, 5.12); so the scratch is deliberately leaked before the
// TimeoutError is thrown, and a late completion cannot corrupt the caller's stack. The job
// aborts after such an error anyway; the leak is bounded by one small message per failure.
#include "swarm/comm/control.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>

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

/// Completes a collective started on `scratch`; on timeout leaks the scratch (see the
/// file comment) and throws TimeoutError saying what did not complete.
void finish(const Communicator& comm, MPI_Request request, std::unique_ptr<Scratch>& scratch, const std::string& what) {
  if (detail::test_all_until({&request, 1}, detail::deadline_after(comm.timeout()))) return;
  (void)scratch.release();  // deliberate leak: MPI may still touch it
  throw TimeoutError(detail::rank_prefix() + what + " did not complete within " +
                     detail::format_seconds(comm.timeout()) +
                     ": a rank failed or has not reached the matching call");
}

}  // namespace

namespace detail {

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

}  // namespace swarm::comm
