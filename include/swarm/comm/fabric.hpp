#pragma once
// The one rank-to-rank interface of the job: an asynchronous data plane of packets (a header
// of the job's bytes and optional activation rows, point-to-point, in order per peer) and the
// few collectives of an epoch boundary. Two implementations:
//   - make_mpi_fabric: headers over MPI point-to-point (receives posted ahead), rows over the
//     activation transport (NCCL between GPUs, MPI otherwise), collectives over MPI;
//   - make_local_fabrics: ranks as threads of one process, for tests without mpirun.
// No MPI, CUDA or NCCL header is needed to use it. Design and deadlock argument: docs/comm.md.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/comm/activations.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/pod.hpp"

namespace swarm::comm {

using Seconds = std::chrono::duration<double>;

/// A message of the data plane.
struct Packet {
  int peer = -1;                  ///< destination when posted, source when received
  std::vector<std::byte> header;  ///< the job's bytes, at most FabricOptions::max_header_bytes
  Activations rows;               ///< may be empty
};

/// Data-plane counters since the last take_stats().
struct FabricStats {
  std::uint64_t packets_received = 0;  ///< from other ranks
  std::uint64_t bytes_received = 0;    ///< activation bytes from other ranks
  /// Time the transfers of those rows took: wall time in which at least one of them was in
  /// flight while this rank was in the fabric (so not the wait for a peer to send, which starts
  /// only once its header arrived, nor time spent computing).
  double transfer_seconds = 0;
  /// Time spent in wait(): the rank had nothing to do.
  double wait_seconds = 0;
};

struct FabricOptions {
  /// Largest header a packet carries (receives of this size are posted ahead).
  std::size_t max_header_bytes = 64 * 1024;
  /// Deadline of every wait: a transfer, a collective, a packet that never comes.
  Seconds timeout{120.0};
  /// Where this rank's rows live (received rows are put there): device with NCCL.
  MemoryLocation rows = MemoryLocation::host;
};

class Fabric {
 public:
  Fabric(const Fabric&) = delete;
  Fabric& operator=(const Fabric&) = delete;
  virtual ~Fabric() = default;

  [[nodiscard]] virtual int rank() const noexcept = 0;
  [[nodiscard]] virtual int size() const noexcept = 0;
  [[nodiscard]] virtual Seconds timeout() const noexcept = 0;

  /// Hands `packet` over for delivery to packet.peer (this rank itself included: delivered
  /// without a transfer) and returns at once. Its rows must already hold their values (device
  /// work that wrote them has finished). Packets to one peer arrive in the order posted.
  virtual void post(Packet packet) = 0;
  /// Progresses the transfers in flight and returns the next packet that arrived whole, if any.
  [[nodiscard]] virtual std::optional<Packet> poll() = 0;
  /// Nothing to do: waits until a packet may have arrived, at most `max` (an idle rank's pause,
  /// which spins briefly, then yields the core, then sleeps, so that ranks sharing cores and
  /// ranks idle for long do not starve the busy ones). Call poll() afterwards.
  virtual void wait(Seconds max) = 0;
  /// Packets posted to other ranks whose transfer has not completed yet.
  [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;
  /// The peers of those packets, ascending (for a message naming the ranks that do not take them).
  [[nodiscard]] virtual std::vector<int> in_flight_peers() const = 0;
  /// Rows for this rank's packets (from the pool received rows also come from).
  [[nodiscard]] virtual ActivationPool& pool() noexcept = 0;
  /// Counters since the last call.
  [[nodiscard]] virtual FabricStats take_stats() = 0;

  // Collectives: every rank calls them in the same order; each waits at most timeout().
  /// Every rank's `mine` (all of one size), concatenated in rank order.
  [[nodiscard]] virtual std::vector<std::byte> allgather(std::span<const std::byte> mine) = 0;
  /// Root's bytes to every rank (all pass a span of one size).
  virtual void broadcast(std::span<std::byte> bytes, int root) = 0;
  /// Whether no rank failed; otherwise rank 0 prints one line per distinct error (naming the
  /// ranks) and every rank returns false (see comm::agree).
  [[nodiscard]] virtual bool agree(std::optional<std::string> my_error) = 0;
  /// Ends every rank of the job with `message` printed by this rank; not collective.
  [[noreturn]] virtual void abort(std::string_view message, int code) = 0;

  template <Pod T>
  [[nodiscard]] std::vector<T> allgather_values(const T& mine) {
    const std::vector<std::byte> all = allgather(std::as_bytes(std::span(&mine, 1)));
    std::vector<T> out(static_cast<std::size_t>(size()));
    std::memcpy(out.data(), all.data(), all.size());
    return out;
  }
  /// Root's `values` to every rank (every rank passes as many).
  template <Pod T>
  [[nodiscard]] std::vector<T> broadcast_values(std::vector<T> values, int root) {
    broadcast(std::as_writable_bytes(std::span(values)), root);
    return values;
  }

 protected:
  Fabric() = default;
};

/// Thrown by every blocking call of the local fabrics once a rank called abort(), and by that
/// abort() itself: in-process ranks cannot be killed, so they unwind.
class AbortedError : public CommError {
 public:
  AbortedError(std::string message, int code) : CommError(std::move(message)), code_(code) {}
  [[nodiscard]] int code() const noexcept { return code_; }

 private:
  int code_;
};

class Communicator;
class Transport;

/// The fabric of an MPI job over (duplicates of) `comm`: headers on MPI point-to-point with
/// receives posted ahead, rows over `transport` (its kind decides where rows live: device for
/// NCCL, host for MPI). Collective over `comm`.
[[nodiscard]] std::unique_ptr<Fabric> make_mpi_fabric(const Communicator& comm, std::unique_ptr<Transport> transport,
                                                      FabricOptions options = {});

/// `ranks` fabrics joined in one process, one per thread: packets move between in-memory
/// queues (host rows only; transfer time 0), collectives meet at a barrier.
[[nodiscard]] std::vector<std::unique_ptr<Fabric>> make_local_fabrics(int ranks, FabricOptions options = {});

}  // namespace swarm::comm
