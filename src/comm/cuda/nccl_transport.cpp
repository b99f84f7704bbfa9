// NCCL point-to-point activation transport (CUDA builds only).
//
// Two communicators over the same ranks, each with its own CUDA stream: `up` carries only
// transfers from a lower to a higher rank, `down` only from a higher to a lower one. NCCL runs
// the operations of one stream in order and a send blocks its stream until the peer's receive
// runs, so on a single communicator/stream A->B and B->A at once can wait for each other forever.
// Split by direction, every wait on a communicator points the same way in rank order and cannot
// close a cycle (docs/comm.md, "Deadlock", states the discipline that argument needs).
//
// Nothing blocks blindly: communicators are non-blocking (config.blocking = 0) so that init,
// connection and finalize are polled with a deadline; transfers complete through a CUDA event
// polled together with ncclCommGetAsyncError; on an error or past the deadline both
// communicators are aborted (ncclCommAbort) and the job is ended with a message naming rank,
// peer, size and NCCL's error string (or the error is thrown, per TransportOptions).
#include <cuda_runtime_api.h>
#include <nccl.h>

#include <array>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../nccl_factory.hpp"
#include "../wait.hpp"
#include "check.hpp"
#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/util/cuda.hpp"

namespace swarm::comm::detail {
namespace {

using Stream = ::swarm::cuda::Stream<raise_cuda_error>;
using Event = ::swarm::cuda::Event<raise_cuda_error>;  // cudaEventDefault: it times the transfer on the stream

/// Owns an ncclComm_t: finalize + destroy when healthy, ncclCommAbort otherwise (a finalize
/// with a dead peer would wait forever).
class NcclComm {
 public:
  NcclComm() = default;
  NcclComm(const NcclComm&) = delete;
  NcclComm& operator=(const NcclComm&) = delete;
  ~NcclComm() { close(kDefaultTimeout); }

  /// Starts a non-blocking ncclCommInitRankConfig; ready() tells when it finished.
  void start_init(const ncclUniqueId& id, int size, int rank) {
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    SWARM_NCCL_CHECK(ncclCommInitRankConfig(&comm_, size, id, rank, &config));
  }
  [[nodiscard]] ncclComm_t get() const noexcept { return comm_; }
  /// The communicator's state: ncclSuccess, ncclInProgress or an (asynchronous) error.
  [[nodiscard]] ncclResult_t state() const noexcept {
    if (!comm_) return ncclInvalidUsage;
    ncclResult_t async = ncclSuccess;
    const ncclResult_t query = ncclCommGetAsyncError(comm_, &async);
    return query != ncclSuccess ? query : async;
  }
  void abort() noexcept {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
  }
  /// Flushes and destroys within `timeout`, else aborts.
  void close(Seconds timeout) noexcept {
    if (!comm_) return;
    if (ncclCommFinalize(comm_) == ncclSuccess || state() == ncclInProgress) {
      const auto deadline = deadline_after(timeout);
      Backoff backoff;
      while (state() == ncclInProgress && Clock::now() < deadline) backoff.pause();
      if (state() == ncclSuccess) {
        ncclCommDestroy(comm_);
        comm_ = nullptr;
        return;
      }
    }
    abort();
  }

 private:
  ncclComm_t comm_ = nullptr;
};

/// One direction: a communicator, its stream, and how many transfers it has in flight.
struct Channel {
  const char* name;
  NcclComm comm;
  std::optional<Stream> stream;
  std::size_t in_flight = 0;
};

class NcclTransport final : public Transport {
 public:
  NcclTransport(const Communicator& comm, int device, const TransportOptions& options)
      : Transport(comm.rank(), comm.size()), mpi_(comm.duplicate()), device_(device), options_(options) {
    bind_device();
    const std::array<ncclUniqueId, 2> ids = make_ids();
    init_channels(ids);
    connect_all();
  }

  ~NcclTransport() override {
    // Abandoned transfers (a failing job): the communicators cannot be finalized under them.
    if (!pending_.empty()) abort_channels();
    up_.comm.close(options_.timeout);
    down_.comm.close(options_.timeout);
  }

  [[nodiscard]] std::string_view name() const noexcept override { return "nccl"; }

  [[nodiscard]] Ticket post_send(int peer, ConstBuffer data) override {
    return post(peer, true, const_cast<float*>(data.data.data()), data.size(), data.location);
  }
  [[nodiscard]] Ticket post_recv(int peer, Buffer data) override {
    return post(peer, false, data.data.data(), data.size(), data.location);
  }

  [[nodiscard]] bool test(Ticket ticket) override {
    auto it = pending_.find(ticket.id);
    if (it == pending_.end())
      throw UsageError(device_prefix() + "NCCL transport: ticket " + std::to_string(ticket.id) +
                       " is unknown or already completed");
    Pending& p = it->second;
    const ncclResult_t state = p.channel->comm.state();
    if (state != ncclSuccess && state != ncclInProgress)
      fail(p, false, std::string("failed: ") + ncclGetErrorString(state) + " (" + nccl_last_error() + ")");
    const cudaError_t query = cudaEventQuery(p.end.get());
    if (query == cudaErrorNotReady) {
      if (Clock::now() - p.posted > options_.timeout)
        fail(p, true, "did not complete within " + format_seconds(options_.timeout) +
                          " (the peer failed, or never posted the matching transfer)");
      return false;
    }
    if (query != cudaSuccess) {
      (void)cudaGetLastError();
      fail(p, false, std::string("failed on the GPU: ") + cudaGetErrorString(query));
    }
    float milliseconds = 0.0f;
    SWARM_CUDA_CHECK(cudaEventElapsedTime(&milliseconds, p.start.get(), p.end.get()));
    const std::size_t bytes = p.elements * sizeof(float);
    if (p.is_send)
      record_send(p.peer, bytes, milliseconds * 1e-3);
    else
      record_recv(p.peer, bytes, milliseconds * 1e-3);
    --p.channel->in_flight;
    spare_events_.push_back(std::move(p.start));
    spare_events_.push_back(std::move(p.end));
    pending_.erase(it);
    return true;
  }

  [[nodiscard]] bool ready_for(int peer, Direction direction) const override {
    check_peer(peer);
    return channel_for(peer, direction == Direction::send).in_flight == 0;
  }

  [[nodiscard]] std::size_t in_flight() const noexcept override { return pending_.size(); }

 private:
  struct Pending {
    int peer = -1;
    bool is_send = false;
    std::size_t elements = 0;
    Channel* channel = nullptr;
    Event start;
    Event end;
    Clock::time_point posted;
  };

  /// up: lower rank -> higher rank; down: higher -> lower.
  [[nodiscard]] const Channel& channel_for(int peer, bool is_send) const noexcept {
    const int sender = is_send ? rank() : peer;
    const int receiver = is_send ? peer : rank();
    return sender < receiver ? up_ : down_;
  }
  [[nodiscard]] Channel& channel_for(int peer, bool is_send) noexcept {
    return const_cast<Channel&>(std::as_const(*this).channel_for(peer, is_send));
  }

  /// Every rank binds its GPU, or all fail together (no rank left waiting in NCCL init).
  void bind_device() {
    std::optional<std::string> error;
    try {
      if (device_count() == 0) throw DeviceError(device_prefix() + "no GPU visible (cudaGetDeviceCount)");
      set_device(device_);
      up_.stream.emplace();
      down_.stream.emplace();
    } catch (const CommError& e) {
      error = std::string("NCCL transport: ") + e.what();
    }
    if (!agree(mpi_, error))
      throw DeviceError(device_prefix() + "NCCL transport: not every rank could bind its GPU (rank 0 printed why)");
  }

  /// Rank 0 creates the two unique ids; MPI broadcasts them.
  [[nodiscard]] std::array<ncclUniqueId, 2> make_ids() {
    std::array<ncclUniqueId, 2> ids{};
    std::optional<std::string> error;
    if (rank() == 0) {
      try {
        SWARM_NCCL_CHECK(ncclGetUniqueId(&ids[0]));
        SWARM_NCCL_CHECK(ncclGetUniqueId(&ids[1]));
      } catch (const CommError& e) {
        error = e.what();
      }
    }
    if (!agree(mpi_, error)) throw TransferError(device_prefix() + "NCCL transport: ncclGetUniqueId failed on rank 0");
    return bcast_value(mpi_, ids, 0);
  }

  /// Both communicators initialise concurrently (non-blocking), polled to a deadline; then all
  /// ranks agree, so a rank whose init failed does not leave the others in NCCL.
  void init_channels(const std::array<ncclUniqueId, 2>& ids) {
    std::optional<std::string> error;
    try {
      up_.comm.start_init(ids[0], size(), rank());
      down_.comm.start_init(ids[1], size(), rank());
      wait_ready("ncclCommInitRankConfig");
    } catch (const CommError& e) {
      error = e.what();
    }
    if (!agree(mpi_, error)) {
      abort_channels();
      throw TransferError(device_prefix() + "NCCL transport: communicator initialisation failed (rank 0 printed why)");
    }
  }

  /// Waits until neither communicator is in progress; throws on an error or past the deadline.
  void wait_ready(const char* what) {
    const auto deadline = deadline_after(options_.timeout);
    Backoff backoff;
    for (Channel* c : {&up_, &down_}) {
      for (;;) {
        const ncclResult_t state = c->comm.state();
        if (state == ncclSuccess) break;
        if (state != ncclInProgress)
          throw TransferError(device_prefix() + what + " on the '" + c->name + "' communicator failed: " +
                              ncclGetErrorString(state) + " (" + nccl_last_error() + ")");
        if (Clock::now() >= deadline)
          throw TimeoutError(device_prefix() + what + " on the '" + c->name + "' communicator did not finish within " +
                             format_seconds(options_.timeout) + ": a rank did not join or failed");
        backoff.pause();
      }
    }
  }

  /// NCCL connects a pair lazily, at its first transfer, and that setup needs both ranks: the
  /// first send could then hold the host thread until the peer happens to transfer on the same
  /// communicator. One grouped exchange of a float with every peer, on both communicators, at
  /// construction (where every rank is known to be present) makes later posts non-blocking.
  void connect_all() {
    std::optional<std::string> error;
    try {
      DeviceBuffer scratch(2 * static_cast<std::size_t>(size()));
      scratch.fill_zero();
      for (Channel* c : {&up_, &down_}) {
        SWARM_NCCL_CHECK(ncclGroupStart());
        for (int peer = 0; peer < size(); ++peer) {
          if (peer == rank()) continue;
          float* slot = scratch.data() + 2 * peer;
          const bool upward = c == &up_;
          // On `up` a rank sends to every higher rank and receives from every lower one.
          if ((peer > rank()) == upward)
            SWARM_NCCL_CHECK(ncclSend(slot, 1, ncclFloat32, peer, c->comm.get(), c->stream->get()));
          else
            SWARM_NCCL_CHECK(ncclRecv(slot + 1, 1, ncclFloat32, peer, c->comm.get(), c->stream->get()));
        }
        SWARM_NCCL_CHECK(ncclGroupEnd());
      }
      wait_ready("connecting every pair");
      for (Channel* c : {&up_, &down_}) wait_stream(*c);
    } catch (const CommError& e) {
      error = e.what();
    }
    if (!agree(mpi_, error)) {
      abort_channels();
      throw TransferError(device_prefix() + "NCCL transport: connecting the ranks failed (rank 0 printed why)");
    }
  }

  void wait_stream(const Channel& c) {
    const auto deadline = deadline_after(options_.timeout);
    Backoff backoff;
    for (;;) {
      const cudaError_t query = cudaStreamQuery(c.stream->get());
      if (query == cudaSuccess) return;
      if (query != cudaErrorNotReady) SWARM_CUDA_CHECK(query);
      const ncclResult_t state = c.comm.state();
      if (state != ncclSuccess && state != ncclInProgress)
        throw TransferError(device_prefix() + "NCCL '" + c.name + "' communicator: " + ncclGetErrorString(state));
      if (Clock::now() >= deadline)
        throw TimeoutError(device_prefix() + "NCCL '" + c.name + "' stream did not drain within " +
                           format_seconds(options_.timeout));
      backoff.pause();
    }
  }

  [[nodiscard]] Event take_event() {
    if (spare_events_.empty()) return Event{};
    Event e = std::move(spare_events_.back());
    spare_events_.pop_back();
    return e;
  }

  void check_device_memory(const float* data, std::size_t elements, bool is_send, int peer) const {
    const std::string what = std::string(is_send ? "send to rank " : "receive from rank ") + std::to_string(peer);
    if (elements == 0) return;
    cudaPointerAttributes attributes{};
    if (cudaPointerGetAttributes(&attributes, data) != cudaSuccess) (void)cudaGetLastError();
    if (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)
      throw UsageError(device_prefix() + "NCCL transport: the buffer of a " + what +
                       " is labelled device memory but is not (cudaPointerGetAttributes)");
  }

  [[nodiscard]] Ticket post(int peer, bool is_send, float* data, std::size_t elements, MemoryLocation location) {
    check_peer(peer);
    if (location != MemoryLocation::device)
      throw UsageError(device_prefix() + "NCCL transport: a host buffer given to " +
                       (is_send ? "send to rank " : "receive from rank ") + std::to_string(peer) +
                       ": NCCL moves device memory only (copy to a DeviceBuffer, or use the MPI transport)");
    check_device_memory(data, elements, is_send, peer);
    Channel& c = channel_for(peer, is_send);
    Pending p{peer, is_send, elements, &c, take_event(), take_event(), Clock::now()};
    SWARM_CUDA_CHECK(cudaEventRecord(p.start.get(), c.stream->get()));
    if (is_send)
      SWARM_NCCL_CHECK(ncclSend(data, elements, ncclFloat32, peer, c.comm.get(), c.stream->get()));
    else
      SWARM_NCCL_CHECK(ncclRecv(data, elements, ncclFloat32, peer, c.comm.get(), c.stream->get()));
    // A non-blocking communicator may still be enqueuing: the next call on it must wait for that.
    Backoff backoff;
    while (c.comm.state() == ncclInProgress) {
      if (Clock::now() - p.posted > options_.timeout) fail(p, true, "could not be enqueued within the deadline");
      backoff.pause();
    }
    SWARM_CUDA_CHECK(cudaEventRecord(p.end.get(), c.stream->get()));
    ++c.in_flight;
    const Ticket ticket{next_id_++};
    pending_.emplace(ticket.id, std::move(p));
    return ticket;
  }

  void abort_channels() noexcept {
    up_.comm.abort();
    down_.comm.abort();
  }

  [[noreturn]] void fail(const Pending& p, bool timed_out, const std::string& reason) {
    const std::string message = device_prefix() + "NCCL transport ('" + p.channel->name + "' communicator): " +
                                (p.is_send ? "send of " : "recv of ") + std::to_string(p.elements) + " floats, " +
                                format_bytes(p.elements * sizeof(float)) + (p.is_send ? ", to rank " : ", from rank ") +
                                std::to_string(p.peer) + " " + reason;
    // Abort first: it unblocks the GPU and the peers' NCCL calls, so every rank reaches its own
    // error path instead of waiting on us.
    abort_channels();
    if (options_.on_failure == OnFailure::abort_job) abort_job(mpi_, message, 1);
    pending_.clear();
    if (timed_out) throw TimeoutError(message);
    throw TransferError(message);
  }

  Communicator mpi_;
  int device_;
  TransportOptions options_;
  Channel up_{"up", {}, std::nullopt, 0};
  Channel down_{"down", {}, std::nullopt, 0};
  std::vector<Event> spare_events_;
  std::unordered_map<std::uint64_t, Pending> pending_;
  std::uint64_t next_id_ = 1;
};

}  // namespace

bool nccl_built() noexcept { return true; }

std::unique_ptr<Transport> make_nccl_transport(const Communicator& comm, int device, const TransportOptions& options) {
  return std::make_unique<NcclTransport>(comm, device, options);
}

}  // namespace swarm::comm::detail
