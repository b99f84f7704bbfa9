// MPI point-to-point activation transport: Isend/Irecv + MPI_Testall polling with a deadline.
#include "swarm/comm/mpi_transport.hpp"

#include <algorithm>

#include "swarm/comm/errors.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/tags.hpp"
#include "wait.hpp"

#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI: MPIX_CUDA_AWARE_SUPPORT, MPIX_Query_cuda_support
#endif

namespace swarm::comm {

bool mpi_cuda_aware() noexcept {
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return false;  // not built CUDA-aware (Debian's Open MPI), or an MPI that cannot say
#endif
}

MpiTransport::MpiTransport(const Communicator& comm, TransportOptions options)
    : Transport(comm.rank(), comm.size()),
      comm_(comm.duplicate()),  // own matching space: a job's probe can never take an activation
      options_(options),
      cuda_aware_(mpi_cuda_aware()) {
  if (options_.max_message_elements == 0 || options_.max_message_elements > static_cast<std::size_t>(INT_MAX))
    throw UsageError(detail::rank_prefix() + "MpiTransport: max_message_elements must be in [1, INT_MAX]");
}

MpiTransport::~MpiTransport() {
  // Transfers still posted at destruction were abandoned by a failing job: receives can be
  // cancelled; sends are released to MPI (their memory belongs to the caller, who is leaving).
  for (auto& [id, pending] : pending_) {
    for (MPI_Request& request : pending.requests) {
      if (request == MPI_REQUEST_NULL) continue;
      if (!pending.is_send) {
        MPI_Cancel(&request);
        MPI_Wait(&request, MPI_STATUS_IGNORE);
      } else {
        MPI_Request_free(&request);
      }
    }
  }
}

Ticket MpiTransport::post_send(int peer, ConstBuffer data) {
  // MPI only reads a send buffer; its C API is not const-correct before MPI 3.
  return post(peer, true, const_cast<float*>(data.data.data()), data.size(), data.location);
}

Ticket MpiTransport::post_recv(int peer, Buffer data) {
  return post(peer, false, data.data.data(), data.size(), data.location);
}

Ticket MpiTransport::post(int peer, bool is_send, float* data, std::size_t elements, MemoryLocation location) {
  check_peer(peer);
  if (location == MemoryLocation::device && !cuda_aware_)
    throw UsageError(detail::rank_prefix() + "MPI transport: a device buffer given to " +
                     (is_send ? "send to rank " : "receive from rank ") + std::to_string(peer) +
                     ", but this MPI library is not CUDA-aware: stage through host memory or use NCCL");
  Pending pending{peer, is_send, elements, {}, Clock::now()};
  // Chunks of at most max_message_elements: MPI counts are int. The receiver splits alike, and
  // MPI's non-overtaking rule keeps the chunks of one transfer in order.
  const std::size_t chunk = options_.max_message_elements;
  const std::size_t chunks = std::max<std::size_t>(1, (elements + chunk - 1) / chunk);
  pending.requests.assign(chunks, MPI_REQUEST_NULL);
  for (std::size_t i = 0; i < chunks; ++i) {
    const std::size_t offset = i * chunk;
    const int count = static_cast<int>(std::min(chunk, elements - std::min(elements, offset)));
    float* start = data + offset;
    if (is_send)
      SWARM_MPI_CHECK(MPI_Isend(start, count, MPI_FLOAT, peer, to_mpi(Tag::activation), comm_.get(), &pending.requests[i]));
    else
      SWARM_MPI_CHECK(MPI_Irecv(start, count, MPI_FLOAT, peer, to_mpi(Tag::activation), comm_.get(), &pending.requests[i]));
  }
  const Ticket ticket{next_id_++};
  pending_.emplace(ticket.id, std::move(pending));
  return ticket;
}

bool MpiTransport::test(Ticket ticket) {
  auto it = pending_.find(ticket.id);
  if (it == pending_.end())
    throw UsageError(detail::rank_prefix() + "MPI transport: ticket " + std::to_string(ticket.id) +
                     " is unknown or already completed");
  Pending& pending = it->second;
  if (!poll_requests(pending)) {
    // The clock every 32 polls only: reading it on every poll cost ~9% of a 4 KiB ping-pong.
    if (++pending.polls % 32 == 0 && Clock::now() - pending.posted > options_.timeout)
      fail(pending, true, "did not complete within " + detail::format_seconds(options_.timeout) +
                              " (the peer failed, or never posted the matching transfer)");
    return false;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - pending.posted).count();
  const std::size_t bytes = pending.elements * sizeof(float);
  if (pending.is_send)
    record_send(pending.peer, bytes, seconds);
  else
    record_recv(pending.peer, bytes, seconds);
  pending_.erase(it);
  return true;
}

bool MpiTransport::poll_requests(Pending& pending) {
  std::vector<MPI_Status>& statuses = statuses_;  // reused: this runs in the polling loop
  statuses.resize(pending.requests.size());
  int done = 0;
  const int code = MPI_Testall(static_cast<int>(pending.requests.size()), pending.requests.data(), &done, statuses.data());
  if (code == MPI_ERR_IN_STATUS) {
    // Typically MPI_ERR_TRUNCATE: the sender posted more elements than this receive.
    for (const MPI_Status& status : statuses) {
      if (status.MPI_ERROR == MPI_SUCCESS || status.MPI_ERROR == MPI_ERR_PENDING) continue;
      char text[MPI_MAX_ERROR_STRING] = {};
      int length = 0;
      MPI_Error_string(status.MPI_ERROR, text, &length);
      fail(pending, false, std::string("failed: ") + text + " (do both sides post the same number of elements?)");
    }
  }
  SWARM_MPI_CHECK(code);
  if (done && !pending.is_send) {
    if (const std::size_t got = received_elements(statuses); got != pending.elements)
      fail(pending, false, "got only " + std::to_string(got) +
                               " floats: the sender posted fewer elements than this receive");
  }
  return done != 0;
}

std::size_t MpiTransport::received_elements(const std::vector<MPI_Status>& statuses) {
  std::size_t received = 0;
  for (const MPI_Status& status : statuses) {
    int count = 0;
    SWARM_MPI_CHECK(MPI_Get_count(&status, MPI_FLOAT, &count));
    received += static_cast<std::size_t>(count);
  }
  return received;
}

std::string MpiTransport::describe(const Pending& pending) const {
  return std::string("MPI transport: ") + (pending.is_send ? "send of " : "recv of ") +
         std::to_string(pending.elements) + " floats, " + detail::format_bytes(pending.elements * sizeof(float)) +
         (pending.is_send ? ", to rank " : ", from rank ") + std::to_string(pending.peer);
}

void MpiTransport::fail(Pending& pending, bool timed_out, const std::string& reason) {
  const std::string message = detail::rank_prefix() + describe(pending) + " " + reason;
  if (options_.on_failure == OnFailure::abort_job) abort_job(comm_, message, 1);
  // Leave MPI clean enough for the caller to go on (tests do): cancel the receive chunks; send
  // chunks cannot be cancelled portably, so they are released and complete if the peer ever
  // matches them (the caller's memory must then still be valid: see TransportOptions).
  for (MPI_Request& request : pending.requests) {
    if (request == MPI_REQUEST_NULL) continue;
    if (!pending.is_send) {
      MPI_Cancel(&request);
      MPI_Wait(&request, MPI_STATUS_IGNORE);
    } else {
      MPI_Request_free(&request);
    }
  }
  for (auto it = pending_.begin(); it != pending_.end(); ++it) {
    if (&it->second == &pending) {
      pending_.erase(it);
      break;
    }
  }
  if (timed_out) throw TimeoutError(message);
  throw TransferError(message);
}

bool MpiTransport::ready_for(int peer, Direction) const {
  check_peer(peer);
  return true;  // MPI matches per (source, tag): no cross-peer ordering can deadlock it
}

}  // namespace swarm::comm
