// The MPI fabric: the job's asynchronous data plane over MPI (headers) and the activation
// transport (rows), and its boundary collectives over MPI.
//
// A packet travels as a header message (the row count, then the job's header) on its own
// communicator, followed, when it has rows, by one transfer on the transport. Receivers keep a
// ring of header receives posted ahead (MPI_ANY_SOURCE, the largest header's size), so a header
// is taken as soon as it arrives; the receive of its rows is posted at once (NCCL: as soon as
// the transport's discipline allows) into a pooled buffer. Senders post the row transfer first
// and the header after it, so a receiver never waits for a transfer that was not posted yet.
// Order per peer: MPI does not let messages of one source and tag overtake each other, the
// ring is consumed in posting order, and the transport matches transfers of a pair in posting
// order; rows are received, and packets delivered, in header order per source.
// Design and the deadlock argument with NCCL: docs/comm.md, "The fabric".
#include <algorithm>
#include <deque>
#include <thread>

#include "swarm/comm/control.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/fabric.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/tags.hpp"
#include "swarm/comm/transport.hpp"
#include "wait.hpp"
#include "swarm/util/clock.hpp"

namespace swarm::comm {
namespace {

constexpr std::size_t kPrefix = sizeof(std::uint64_t);  // the row count before the job's header
constexpr int kRing = 16;                                // header receives posted ahead

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

class MpiFabric final : public Fabric {
 public:
  MpiFabric(const Communicator& comm, std::unique_ptr<Transport> transport, FabricOptions options)
      : headers_(comm.duplicate()),
        control_(comm.duplicate()),
        transport_(std::move(transport)),
        options_(options),
        pool_(options.rows),
        expected_(static_cast<std::size_t>(comm.size())),
        waiting_(static_cast<std::size_t>(comm.size())) {
    headers_.set_timeout(options.timeout);
    control_.set_timeout(options.timeout);
    for (int i = 0; i < kRing; ++i) post_header_receive();
  }

  ~MpiFabric() override {
    // Receives posted ahead are cancelled; sends still in flight belong to a job that is ending
    // (normally every rank drained them at its last boundary).
    for (Slot& slot : ring_) {
      MPI_Cancel(&slot.request);
      MPI_Wait(&slot.request, MPI_STATUS_IGNORE);
    }
    for (Sending& s : sending_) {
      if (s.header_request != MPI_REQUEST_NULL) MPI_Request_free(&s.header_request);
    }
  }

  [[nodiscard]] int rank() const noexcept override { return headers_.rank(); }
  [[nodiscard]] int size() const noexcept override { return headers_.size(); }
  [[nodiscard]] Seconds timeout() const noexcept override { return options_.timeout; }

  void post(Packet packet) override {
    const int peer = packet.peer;
    if (peer < 0 || peer >= size()) {
      throw UsageError(detail::rank_prefix() + "packet to rank " + std::to_string(peer) + " outside the " +
                       std::to_string(size()) + "-rank world");
    }
    if (packet.header.size() > options_.max_header_bytes) {
      throw UsageError(detail::rank_prefix() + "a header of " + std::to_string(packet.header.size()) +
                       " bytes exceeds the fabric's limit of " + std::to_string(options_.max_header_bytes));
    }
    if (peer == rank()) {
      packet.peer = rank();
      local_.push_back(std::move(packet));
      return;
    }
    waiting_[static_cast<std::size_t>(peer)].push_back(std::move(packet));
    ++queued_;
    start_sends(peer);
  }

  [[nodiscard]] std::optional<Packet> poll() override {
    const auto began = Clock::now();
    const bool receiving = receives_posted_ > 0;
    progress();
    if (receiving) stats_.transfer_seconds += since(began);
    if (!arrived_.empty()) {
      Packet p = std::move(arrived_.front());
      arrived_.pop_front();
      idle_since_.reset();
      return p;
    }
    if (!local_.empty()) {
      Packet p = std::move(local_.front());
      local_.pop_front();
      idle_since_.reset();
      return p;
    }
    return std::nullopt;
  }

  void wait(Seconds max) override {
    const auto began = Clock::now();
    pause(max);
    stats_.wait_seconds += since(began);
  }

  void pause(Seconds max) {
    // Spin for a moment (the next packet of a busy pipeline comes within microseconds), then
    // yield (ranks sharing cores), then sleep (ranks idle for long: many oversubscribed ranks).
    if (!idle_since_) idle_since_ = Clock::now();
    const double idle = since(*idle_since_);
    if (idle < 200e-6) return;
    if (idle < 20e-3) {
      std::this_thread::yield();
      return;
    }
    std::this_thread::sleep_for(std::min<Seconds>(max, std::chrono::microseconds(500)));
  }

  [[nodiscard]] std::size_t in_flight() const noexcept override { return queued_ + sending_.size(); }
  [[nodiscard]] std::vector<int> in_flight_peers() const override {
    std::vector<int> peers;
    for (int peer = 0; peer < size(); ++peer) {
      if (!waiting_[static_cast<std::size_t>(peer)].empty()) peers.push_back(peer);
    }
    for (const Sending& s : sending_) peers.push_back(s.peer);
    std::sort(peers.begin(), peers.end());
    peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
    return peers;
  }
  [[nodiscard]] ActivationPool& pool() noexcept override { return pool_; }
  [[nodiscard]] FabricStats take_stats() override { return std::exchange(stats_, {}); }

  [[nodiscard]] std::vector<std::byte> allgather(std::span<const std::byte> mine) override {
    std::vector<std::byte> all(mine.size() * static_cast<std::size_t>(size()));
    detail::allgather_bytes(control_, mine, all);
    return all;
  }

  void broadcast(std::span<std::byte> bytes, int root) override { detail::bcast_bytes(control_, bytes, root); }

  [[nodiscard]] bool agree(std::optional<std::string> my_error) override { return comm::agree(control_, std::move(my_error)); }

  [[noreturn]] void abort(std::string_view message, int code) override { abort_job(control_, message, code); }

 private:
  struct Slot {  // a header receive posted ahead
    std::vector<std::byte> bytes;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  struct Expected {  // a packet whose header arrived, waiting for its rows or for earlier packets
    std::vector<std::byte> header;
    std::size_t floats = 0;
    Activations rows;
    std::optional<Ticket> ticket;  // set once the receive is posted
  };
  struct Sending {  // a packet whose header (and rows) are on their way
    int peer = -1;
    std::vector<std::byte> message;  // kept alive until the header send completes
    Activations rows;
    MPI_Request header_request = MPI_REQUEST_NULL;
    std::optional<Ticket> ticket;
    Clock::time_point posted;
  };

  // Posts a header receive into `slot`'s buffer (allocated once: re-zeroing 64 KiB per packet
  // cost as much as a small transfer) and puts it at the back of the ring.
  void post_header_receive() { post_header_receive(Slot{}); }
  void post_header_receive(Slot slot) {
    if (slot.bytes.empty()) slot.bytes.resize(kPrefix + options_.max_header_bytes);
    SWARM_MPI_CHECK(MPI_Irecv(slot.bytes.data(), static_cast<int>(slot.bytes.size()), MPI_BYTE, MPI_ANY_SOURCE,
                              to_mpi(Tag::header), headers_.get(), &slot.request));
    ring_.push_back(std::move(slot));
  }

  // The packets waiting for `peer` go out in order; with rows, as soon as the transport may post
  // the transfer (NCCL: its channel for that direction is free), the header right after it.
  void start_sends(int peer) {
    auto& queue = waiting_[static_cast<std::size_t>(peer)];
    while (!queue.empty()) {
      Packet& p = queue.front();
      const bool has_rows = !p.rows.empty();
      if (has_rows && !transport_->ready_for(peer, Direction::send)) return;
      Sending s;
      s.peer = peer;
      s.posted = Clock::now();
      const std::uint64_t floats = p.rows.size();
      if (!spare_messages_.empty()) {
        s.message = std::move(spare_messages_.back());
        spare_messages_.pop_back();
      }
      s.message.resize(kPrefix + p.header.size());
      std::memcpy(s.message.data(), &floats, kPrefix);
      std::copy(p.header.begin(), p.header.end(), s.message.begin() + kPrefix);
      s.rows = std::move(p.rows);
      if (has_rows) s.ticket = transport_->post_send(peer, std::as_const(s.rows).buffer());
      SWARM_MPI_CHECK(MPI_Isend(s.message.data(), static_cast<int>(s.message.size()), MPI_BYTE, peer,
                                to_mpi(Tag::header), headers_.get(), &s.header_request));
      sending_.push_back(std::move(s));
      queue.pop_front();
      --queued_;
    }
  }

  void progress() {
    // Headers, in the order they were matched.
    for (;;) {
      Slot& head = ring_.front();
      int done = 0;
      MPI_Status status;
      SWARM_MPI_CHECK(MPI_Test(&head.request, &done, &status));
      if (!done) break;
      int count = 0;
      SWARM_MPI_CHECK(MPI_Get_count(&status, MPI_BYTE, &count));
      if (count < static_cast<int>(kPrefix)) {
        throw TransferError(detail::rank_prefix() + "a header of " + std::to_string(count) + " bytes from rank " +
                            std::to_string(status.MPI_SOURCE) + " is shorter than its row count");
      }
      Expected e;
      std::memcpy(&e.floats, head.bytes.data(), kPrefix);
      e.header.assign(head.bytes.begin() + kPrefix, head.bytes.begin() + count);
      const int source = status.MPI_SOURCE;
      Slot used = std::move(ring_.front());
      ring_.pop_front();
      post_header_receive(std::move(used));
      // Even a packet without rows waits behind the earlier packets of its source.
      expected_[static_cast<std::size_t>(source)].push_back(std::move(e));
    }
    // Rows: receives posted in header order per source, packets delivered in that order.
    for (int source = 0; source < size(); ++source) {
      auto& queue = expected_[static_cast<std::size_t>(source)];
      for (Expected& e : queue) {
        if (e.ticket || e.floats == 0) continue;
        if (!transport_->ready_for(source, Direction::recv)) break;
        e.rows = pool_.take(e.floats);
        e.ticket = transport_->post_recv(source, e.rows.buffer());
        ++receives_posted_;
      }
      while (!queue.empty()) {
        Expected& front = queue.front();
        if (front.floats > 0) {
          if (!front.ticket || !transport_->test(*front.ticket)) break;
          --receives_posted_;
          stats_.bytes_received += front.floats * sizeof(float);
        }
        deliver(source, std::move(front));
        queue.pop_front();
      }
    }
    // Sends: retire what completed, then start what the transport now allows.
    for (auto it = sending_.begin(); it != sending_.end();) {
      if (it->ticket && transport_->test(*it->ticket)) it->ticket.reset();
      if (it->header_request != MPI_REQUEST_NULL) {
        int done = 0;
        SWARM_MPI_CHECK(MPI_Test(&it->header_request, &done, MPI_STATUS_IGNORE));
        if (!done && since(it->posted) > options_.timeout.count()) {
          abort_job(control_, detail::rank_prefix() + "the header of a packet to rank " + std::to_string(it->peer) +
                                  " was not taken within " + detail::format_seconds(options_.timeout) +
                                  " (the peer failed or hangs)", 1);
        }
      }
      if (!it->ticket && it->header_request == MPI_REQUEST_NULL) {
        if (spare_messages_.size() < 64) spare_messages_.push_back(std::move(it->message));
        it = sending_.erase(it);
      } else {
        ++it;
      }
    }
    if (queued_ > 0) {
      for (int peer = 0; peer < size(); ++peer) {
        if (!waiting_[static_cast<std::size_t>(peer)].empty()) start_sends(peer);
      }
    }
  }

  void deliver(int source, Expected e) {
    Packet p;
    p.peer = source;
    p.header = std::move(e.header);
    p.rows = std::move(e.rows);
    ++stats_.packets_received;
    arrived_.push_back(std::move(p));
  }

  Communicator headers_;
  Communicator control_;
  std::unique_ptr<Transport> transport_;
  FabricOptions options_;
  ActivationPool pool_;
  std::deque<Slot> ring_;
  std::vector<std::deque<Expected>> expected_;  // per source
  std::vector<std::deque<Packet>> waiting_;     // per destination, not started
  std::size_t queued_ = 0;                      // packets in waiting_
  std::deque<Sending> sending_;
  std::vector<std::vector<std::byte>> spare_messages_;  // header send buffers, reused
  std::deque<Packet> arrived_, local_;
  std::size_t receives_posted_ = 0;
  FabricStats stats_;
  std::optional<Clock::time_point> idle_since_;
};

}  // namespace

std::unique_ptr<Fabric> make_mpi_fabric(const Communicator& comm, std::unique_ptr<Transport> transport,
                                        FabricOptions options) {
  if (!transport) throw UsageError(detail::rank_prefix() + "make_mpi_fabric: no transport");
  return std::make_unique<MpiFabric>(comm, std::move(transport), options);
}

}  // namespace swarm::comm
