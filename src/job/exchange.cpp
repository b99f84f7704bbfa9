#include "exchange.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>

#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"

namespace swarm::job {
namespace {

using Clock = std::chrono::steady_clock;

// Completes a non-blocking collective, or fails naming it after the communicator's timeout
// (a dead or stuck rank must not hang the allocation).
void complete(MPI_Request& request, const comm::Communicator& comm, const char* what) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(comm.timeout());
  for (int polls = 0;; ++polls) {
    int done = 0;
    SWARM_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    if (done) return;
    if (Clock::now() > deadline) {
      throw comm::TimeoutError(std::string("rank ") + std::to_string(comm.rank()) + ": " + what +
                               " did not complete within " + std::to_string(comm.timeout().count()) +
                               " s (a rank died or hangs)");
    }
    if (polls > 1000) std::this_thread::yield();  // oversubscribed ranks share cores
  }
}

}  // namespace

TickControl agree_tick(const comm::Communicator& comm, TickControl mine) {
  TickControl all;
  MPI_Request request;
  SWARM_MPI_CHECK(MPI_Iallreduce(&mine, &all, 3, MPI_INT32_T, MPI_MAX, comm.get(), &request));
  complete(request, comm, "the tick's MPI_Iallreduce");
  return all;
}

Exchange::Exchange(const comm::Communicator& comm, comm::Transport& transport, int hidden_size, bool staging)
    : comm_(comm), transport_(transport), hidden_(hidden_size), staging_(staging) {}

std::vector<Message> Exchange::run(std::vector<Message> outgoing) {
  const int n = comm_.size();
  const int me = comm_.rank();
  std::vector<Message> incoming;
  std::vector<Message> out;
  for (auto& m : outgoing) {
    if (m.peer == me) {
      incoming.push_back(std::move(m));  // to itself: no transfer
    } else {
      out.push_back(std::move(m));
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const Message& a, const Message& b) { return a.peer < b.peer; });

  // Headers: counts first, then the headers themselves.
  std::vector<int> send_counts(static_cast<std::size_t>(n), 0), recv_counts(static_cast<std::size_t>(n), 0);
  for (const auto& m : out) ++send_counts[static_cast<std::size_t>(m.peer)];
  MPI_Request request;
  SWARM_MPI_CHECK(MPI_Ialltoall(send_counts.data(), 1, MPI_INT, recv_counts.data(), 1, MPI_INT, comm_.get(), &request));
  complete(request, comm_, "the tick's MPI_Ialltoall of message counts");

  const int size = static_cast<int>(sizeof(StepHeader));
  std::vector<int> send_bytes(static_cast<std::size_t>(n)), recv_bytes(static_cast<std::size_t>(n));
  std::vector<int> send_offsets(static_cast<std::size_t>(n)), recv_offsets(static_cast<std::size_t>(n));
  int total_out = 0, total_in = 0;
  for (int r = 0; r < n; ++r) {
    send_bytes[r] = send_counts[r] * size;
    recv_bytes[r] = recv_counts[r] * size;
    send_offsets[r] = total_out;
    recv_offsets[r] = total_in;
    total_out += send_bytes[r];
    total_in += recv_bytes[r];
  }
  std::vector<std::byte> headers_out(static_cast<std::size_t>(total_out)), headers_in(static_cast<std::size_t>(total_in));
  for (std::size_t i = 0; i < out.size(); ++i) std::memcpy(&headers_out[i * sizeof(StepHeader)], &out[i].header, sizeof(StepHeader));
  SWARM_MPI_CHECK(MPI_Ialltoallv(headers_out.data(), send_bytes.data(), send_offsets.data(), MPI_BYTE,
                                 headers_in.data(), recv_bytes.data(), recv_offsets.data(), MPI_BYTE, comm_.get(),
                                 &request));
  complete(request, comm_, "the tick's MPI_Ialltoallv of headers");

  std::vector<Message> in;
  for (int r = 0; r < n; ++r) {
    for (int i = 0; i < recv_counts[r]; ++i) {
      Message m;
      m.peer = r;
      std::memcpy(&m.header, &headers_in[static_cast<std::size_t>(recv_offsets[r] + i * size)], sizeof(StepHeader));
      m.payload.resize(m.header.payload_floats(hidden_));
      in.push_back(std::move(m));
    }
  }
  transfer(out, in);
  for (auto& m : in) incoming.push_back(std::move(m));
  return incoming;
}

// Payloads. MPI: post everything, then wait (its matching never deadlocks). NCCL: one transfer
// at a time in a global order (source rank, destination rank, posting order): the smallest
// transfer not yet done always has both ranks waiting on it, so nothing deadlocks although each
// NCCL stream serialises its operations (docs/comm.md).
void Exchange::transfer(std::vector<Message>& out, std::vector<Message>& in) {
  const auto began = Clock::now();
  const int me = comm_.rank();
  last_bytes_ = 0;
  if (!staging_) {
    std::vector<comm::Ticket> tickets;
    for (auto& m : in) {
      if (!m.payload.empty()) tickets.push_back(transport_.post_recv(m.peer, comm::Buffer::host(m.payload)));
    }
    for (auto& m : out) {
      if (!m.payload.empty()) tickets.push_back(transport_.post_send(m.peer, comm::ConstBuffer::host(m.payload)));
    }
    transport_.wait_all(tickets);
  } else {
    struct Item {
      int source, dest, index;
      Message* message;
    };
    std::vector<Item> items;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (!out[i].payload.empty()) items.push_back({me, out[i].peer, static_cast<int>(i), &out[i]});
    }
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (!in[i].payload.empty()) items.push_back({in[i].peer, me, static_cast<int>(i), &in[i]});
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
      return std::tie(a.source, a.dest, a.index) < std::tie(b.source, b.dest, b.index);
    });
    for (const Item& item : items) {
      comm::DeviceBuffer device(item.message->payload.size());
      if (item.source == me) {
        device.copy_from_host(item.message->payload);
        transport_.wait(transport_.post_send(item.dest, device.buffer()));
      } else {
        transport_.wait(transport_.post_recv(item.source, device.buffer()));
        device.copy_to_host(item.message->payload);
      }
    }
  }
  for (const auto& m : in) last_bytes_ += static_cast<double>(m.payload.size() * sizeof(float));
  last_seconds_ = std::chrono::duration<double>(Clock::now() - began).count();
}

}  // namespace swarm::job
