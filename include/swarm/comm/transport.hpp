#pragma once
// The activation transport: one interface, an MPI implementation (host buffers; any build) and
// an NCCL one (device buffers; CUDA builds with a GPU per rank). Callers never see CUDA or NCCL
// headers: make_transport() picks the implementation. Design and deadlock argument: docs/comm.md.
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "swarm/comm/buffer.hpp"
#include "swarm/comm/layout.hpp"
#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/transport_kind.hpp"

namespace swarm::comm {

/// What a transport does when a transfer fails or times out.
enum class OnFailure {
  abort_job,    // print "swarm_pipe: rank R: <what>" and MPI_Abort: the job's default
  throw_error,  // throw TimeoutError / TransferError (tests; callers that add context first).
                // The failed transfer is retired; the memory of a failed MPI send may still be
                // read if the peer matches it later, so keep it alive or end the job.
};

struct TransportOptions {
  /// A transfer not complete this long after it was posted fails, naming the peer and size.
  Seconds timeout = kDefaultTimeout;
  OnFailure on_failure = OnFailure::abort_job;
  /// MPI counts are int: larger messages travel as several messages of at most this many
  /// elements (both sides split alike). Only tests lower it, to exercise the split cheaply.
  std::size_t max_message_elements = static_cast<std::size_t>(INT_MAX);
};

/// Traffic with one peer since the last reset. Seconds are summed per transfer, each from its
/// post to the moment its completion was seen (MPI) or between CUDA events around it on the
/// stream (NCCL); both include waiting for the peer, which is what a link looks like to the job.
struct LinkCounters {
  std::uint64_t bytes_sent = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t sends = 0;
  std::uint64_t recvs = 0;
  double send_seconds = 0.0;
  double recv_seconds = 0.0;

  [[nodiscard]] constexpr std::uint64_t bytes() const noexcept { return bytes_sent + bytes_received; }
  [[nodiscard]] constexpr double seconds() const noexcept { return send_seconds + recv_seconds; }
  /// Bytes per second over the time spent in transfers; 0 when nothing moved.
  [[nodiscard]] constexpr double bytes_per_second() const noexcept {
    return seconds() > 0.0 ? static_cast<double>(bytes()) / seconds() : 0.0;
  }
  LinkCounters& operator+=(const LinkCounters& o) noexcept;
};

/// Which half of a transfer this rank does.
enum class Direction { send, recv };

/// Handle of a posted transfer; test() or wait() retires it.
struct Ticket {
  std::uint64_t id = 0;
};

class Transport {
 public:
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;
  virtual ~Transport() = default;

  [[nodiscard]] virtual std::string_view name() const noexcept = 0;

  /// Starts sending `data` to `peer` / receiving into `data` from `peer`; returns at once. The
  /// memory must stay valid and untouched until the ticket completes. Both sides must post the
  /// same number of elements, and transfers between two ranks match in posting order.
  [[nodiscard]] virtual Ticket post_send(int peer, ConstBuffer data) = 0;
  [[nodiscard]] virtual Ticket post_recv(int peer, Buffer data) = 0;
  /// True (and the ticket retired, counters updated) when the transfer completed; false while it
  /// runs. Past the deadline, or on an error, it fails per TransportOptions::on_failure.
  [[nodiscard]] virtual bool test(Ticket ticket) = 0;
  /// Whether a transfer with `peer` in `direction` may be posted now without risking a deadlock:
  /// always for MPI (its matching does not depend on order across peers); for NCCL only when
  /// nothing is in flight on the communicator that carries it (docs/comm.md, "Deadlock").
  [[nodiscard]] virtual bool ready_for(int peer, Direction direction) const = 0;
  /// Posted transfers not yet retired.
  [[nodiscard]] virtual std::size_t in_flight() const noexcept = 0;

  /// Polls test() until the ticket completes (the deadline still applies).
  void wait(Ticket ticket);
  /// Polls all tickets until all complete; post both halves of an exchange (A->B and B->A at
  /// once) and then wait_all, since a blocking send() on both sides would wait for each other.
  void wait_all(std::span<const Ticket> tickets);
  /// Blocking conveniences: post + wait.
  void send(int peer, ConstBuffer data) { wait(post_send(peer, data)); }
  void recv(int peer, Buffer data) { wait(post_recv(peer, data)); }

  /// Traffic with `peer` (this rank's own entry stays zero); UsageError outside the world.
  [[nodiscard]] const LinkCounters& counters(int peer) const;
  /// Indexed by rank (this rank's own entry stays zero).
  [[nodiscard]] std::span<const LinkCounters> all_counters() const noexcept { return counters_; }
  void reset_counters() noexcept;
  [[nodiscard]] int rank() const noexcept { return rank_; }
  [[nodiscard]] int size() const noexcept { return static_cast<int>(counters_.size()); }

 protected:
  Transport(int rank, int size);
  void record_send(int peer, std::size_t bytes, double seconds) noexcept;
  void record_recv(int peer, std::size_t bytes, double seconds) noexcept;
  /// Throws UsageError unless `peer` is another rank of the world.
  void check_peer(int peer) const;

 private:
  int rank_;
  std::vector<LinkCounters> counters_;
};

/// True when this build has the NCCL transport and this process sees at least one GPU. Never
/// crashes without a driver: cudaGetDeviceCount's error simply means false.
[[nodiscard]] bool nccl_available() noexcept;

/// The transport to use when a node shows `devices` GPUs: NCCL when every rank of the node has
/// its own GPU and the build has NCCL, else MPI.
[[nodiscard]] TransportKind default_transport_kind(const WorldLayout& layout, int devices) noexcept;

/// Builds a transport over (a duplicate of) `comm`. Collective over `comm`. For NCCL, `device`
/// is the GPU this rank binds to (see WorldLayout::device_for); MPI ignores it. Throws
/// UsageError when the kind is not available in this build or on this machine.
[[nodiscard]] std::unique_ptr<Transport> make_transport(TransportKind kind, const Communicator& comm, int device,
                                                        TransportOptions options = {});

}  // namespace swarm::comm
