// The transport interface's shared part (waiting, counters) and the factory.
#include "swarm/comm/transport.hpp"

#include "nccl_factory.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/mpi_transport.hpp"
#include "wait.hpp"

namespace swarm::comm {

LinkCounters& LinkCounters::operator+=(const LinkCounters& o) noexcept {
  bytes_sent += o.bytes_sent;
  bytes_received += o.bytes_received;
  sends += o.sends;
  recvs += o.recvs;
  send_seconds += o.send_seconds;
  recv_seconds += o.recv_seconds;
  return *this;
}

Transport::Transport(int rank, int size) : rank_(rank), counters_(static_cast<std::size_t>(size)) {}

void Transport::wait(Ticket ticket) {
  detail::Backoff backoff;
  while (!test(ticket)) backoff.pause();  // test() enforces the deadline
}

void Transport::wait_all(std::span<const Ticket> tickets) {
  std::vector<Ticket> open(tickets.begin(), tickets.end());
  detail::Backoff backoff;
  while (!open.empty()) {
    // Test every open ticket each round: both halves of an exchange must progress together.
    std::erase_if(open, [this](Ticket t) { return test(t); });
    if (!open.empty()) backoff.pause();
  }
}

const LinkCounters& Transport::counters(int peer) const {
  if (peer < 0 || peer >= size())
    throw UsageError(detail::rank_prefix() + "no counters for rank " + std::to_string(peer) + " in a " +
                     std::to_string(size()) + "-rank world");
  return counters_[static_cast<std::size_t>(peer)];
}

void Transport::reset_counters() noexcept {
  for (LinkCounters& c : counters_) c = {};
}

void Transport::record_send(int peer, std::size_t bytes, double seconds) noexcept {
  LinkCounters& c = counters_[static_cast<std::size_t>(peer)];
  c.bytes_sent += bytes;
  c.send_seconds += seconds;
  ++c.sends;
}

void Transport::record_recv(int peer, std::size_t bytes, double seconds) noexcept {
  LinkCounters& c = counters_[static_cast<std::size_t>(peer)];
  c.bytes_received += bytes;
  c.recv_seconds += seconds;
  ++c.recvs;
}

void Transport::check_peer(int peer) const {
  if (peer < 0 || peer >= size())
    throw UsageError(detail::rank_prefix() + "peer " + std::to_string(peer) + " is not a rank of this " +
                     std::to_string(size()) + "-rank world");
  if (peer == rank_)
    throw UsageError(detail::rank_prefix() + "a transfer to itself: a server hands activations to its own next "
                     "span without the transport");
}

bool nccl_available() noexcept { return detail::nccl_built() && device_count() > 0; }

TransportKind default_transport_kind(const WorldLayout& layout, int devices) noexcept {
  return detail::nccl_built() && devices > 0 && !layout.gpus_shared(devices) ? TransportKind::nccl
                                                                             : TransportKind::mpi;
}

std::unique_ptr<Transport> make_transport(TransportKind kind, const Communicator& comm, int device,
                                          TransportOptions options) {
  if (kind == TransportKind::mpi) return std::make_unique<MpiTransport>(comm, options);
  if (!detail::nccl_built())
    throw UsageError(detail::rank_prefix() + "the NCCL transport was asked for, but this build has no CUDA "
                     "(configure with SWARM_CUDA=ON on a machine with the CUDA toolkit and NCCL)");
  return detail::make_nccl_transport(comm, device, options);
}

}  // namespace swarm::comm
