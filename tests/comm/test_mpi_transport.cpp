// The MPI transport across every pair of ranks (run under mpiexec with 2-4 ranks): exact data in
// every direction, simultaneous exchanges, sizes from 1 float to more than 16 MiB, chunking,
// counters, wrong sizes, refused device memory and timeouts that name the peer.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "mpi_test_main.hpp"
#include "swarm/comm/control.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/mpi_transport.hpp"

namespace swarm::comm {
namespace {

using testing::world;

[[nodiscard]] const Communicator& comm() { return world().comm(); }

[[nodiscard]] TransportOptions test_options() {
  TransportOptions options;
  options.timeout = Seconds(20.0);
  options.on_failure = OnFailure::throw_error;
  return options;
}

/// An exactly representable value that differs per (sender, receiver, index, round).
[[nodiscard]] float pattern(int from, int to, std::size_t i, int round) {
  const std::uint32_t v = static_cast<std::uint32_t>(from * 7919 + to * 104729 + round * 13) + static_cast<std::uint32_t>(i) * 2654435761u;
  return static_cast<float>(v & 0xFFFFFFu);  // 24 bits: exact in fp32
}

[[nodiscard]] std::vector<float> make_data(int from, int to, std::size_t n, int round) {
  std::vector<float> data(n);
  for (std::size_t i = 0; i < n; ++i) data[i] = pattern(from, to, i, round);
  return data;
}

/// Number of elements that differ from what `from` sent to `to`.
[[nodiscard]] std::size_t wrong(const std::vector<float>& got, int from, int to, int round) {
  std::size_t bad = 0;
  for (std::size_t i = 0; i < got.size(); ++i) bad += got[i] != pattern(from, to, i, round);
  return bad;
}

// 1 float, odd sizes around the eager/rendezvous switch, and 16 MiB + 12 bytes.
const std::vector<std::size_t> kSizes = {1, 7, 1023, 4096, 65537, (std::size_t{16} << 20) / sizeof(float) + 3};

TEST(MpiTransport, EveryOrderedPairOneAtATime) {
  MpiTransport transport(comm(), test_options());
  const int me = comm().rank();
  int round = 0;
  for (std::size_t n : kSizes) {
    for (int from = 0; from < comm().size(); ++from) {
      for (int to = 0; to < comm().size(); ++to) {
        ++round;
        if (from == to) continue;
        if (me == from) transport.send(to, ConstBuffer::host(make_data(from, to, n, round)));
        if (me == to) {
          std::vector<float> got(n, -1.0f);
          transport.recv(from, Buffer::host(got));
          EXPECT_EQ(wrong(got, from, to, round), 0u) << from << "->" << to << ", " << n << " floats";
        }
      }
    }
  }
  EXPECT_EQ(transport.in_flight(), 0u);
}

TEST(MpiTransport, AllPeersBothDirectionsAtOnce) {
  // Every rank sends to and receives from every other rank at the same time: A->B and B->A
  // overlap on every pair, and a blocking implementation would deadlock here.
  MpiTransport transport(comm(), test_options());
  const int me = comm().rank();
  for (std::size_t n : kSizes) {
    std::vector<std::vector<float>> out(static_cast<std::size_t>(comm().size()));
    std::vector<std::vector<float>> in(static_cast<std::size_t>(comm().size()));
    std::vector<Ticket> tickets;
    for (int peer = 0; peer < comm().size(); ++peer) {
      if (peer == me) continue;
      auto p = static_cast<std::size_t>(peer);
      out[p] = make_data(me, peer, n, 0);
      in[p].assign(n, -1.0f);
      tickets.push_back(transport.post_recv(peer, Buffer::host(in[p])));
      tickets.push_back(transport.post_send(peer, ConstBuffer::host(out[p])));
    }
    EXPECT_EQ(transport.in_flight(), tickets.size());
    transport.wait_all(tickets);
    for (int peer = 0; peer < comm().size(); ++peer) {
      if (peer == me) continue;
      EXPECT_EQ(wrong(in[static_cast<std::size_t>(peer)], peer, me, 0), 0u) << peer << "->" << me << ", " << n;
    }
  }
  EXPECT_EQ(transport.in_flight(), 0u);
}

TEST(MpiTransport, CountsBytesAndTimePerPeer) {
  MpiTransport transport(comm(), test_options());
  const int me = comm().rank();
  const std::size_t n = 1000;
  std::vector<float> out(n, 1.0f), in(n);
  std::vector<Ticket> tickets;
  for (int round = 0; round < 3; ++round) {
    for (int peer = 0; peer < comm().size(); ++peer) {
      if (peer == me) continue;
      tickets = {transport.post_recv(peer, Buffer::host(in)), transport.post_send(peer, ConstBuffer::host(out))};
      transport.wait_all(tickets);
    }
  }
  for (int peer = 0; peer < comm().size(); ++peer) {
    const LinkCounters& c = transport.counters(peer);
    if (peer == me) {
      EXPECT_EQ(c.bytes(), 0u);
      continue;
    }
    EXPECT_EQ(c.bytes_sent, 3 * n * sizeof(float));
    EXPECT_EQ(c.bytes_received, 3 * n * sizeof(float));
    EXPECT_EQ(c.sends, 3u);
    EXPECT_EQ(c.recvs, 3u);
    EXPECT_GT(c.seconds(), 0.0);
    EXPECT_GT(c.bytes_per_second(), 0.0);
  }
  EXPECT_EQ(transport.all_counters().size(), static_cast<std::size_t>(comm().size()));
  transport.reset_counters();
  for (const LinkCounters& c : transport.all_counters()) EXPECT_EQ(c.bytes(), 0u);
}

TEST(MpiTransport, SplitsMessagesAboveTheMaximumCount) {
  // Production splits above INT_MAX floats (8 GiB); a small maximum exercises the same code.
  TransportOptions options = test_options();
  options.max_message_elements = 1000;
  MpiTransport transport(comm(), options);
  if (comm().rank() > 1) return;
  const int peer = 1 - comm().rank();
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{999}, std::size_t{1000}, std::size_t{1001},
                        std::size_t{25000}}) {
    const std::vector<float> out = make_data(comm().rank(), peer, n, 5);
    std::vector<float> in(n, -1.0f);
    const Ticket tickets[] = {transport.post_recv(peer, Buffer::host(in)), transport.post_send(peer, ConstBuffer::host(out))};
    transport.wait_all(tickets);
    EXPECT_EQ(wrong(in, peer, comm().rank(), 5), 0u) << n << " floats in chunks of 1000";
  }
  EXPECT_EQ(transport.counters(peer).bytes_received, (1 + 999 + 1000 + 1001 + 25000) * sizeof(float));
}

TEST(MpiTransport, ASenderPostingFewerElementsIsAnError) {
  MpiTransport transport(comm(), test_options());
  if (comm().rank() == 1) transport.send(0, ConstBuffer::host(std::vector<float>(10, 1.0f)));
  if (comm().rank() == 0) {
    std::vector<float> in(20);
    try {
      transport.recv(1, Buffer::host(in));
      ADD_FAILURE() << "a short message was accepted";
    } catch (const TransferError& e) {
      EXPECT_NE(std::string(e.what()).find("recv of 20 floats, 80 bytes, from rank 1 got only 10 floats"),
                std::string::npos)
          << e.what();
    }
  }
  barrier(comm());
}

TEST(MpiTransport, RejectsDeviceMemoryWhenNotCudaAware) {
  if (mpi_cuda_aware()) GTEST_SKIP() << "this MPI is CUDA-aware";
  MpiTransport transport(comm(), test_options());
  float fake = 0.0f;  // never dereferenced: the check comes first
  const int peer = (comm().rank() + 1) % comm().size();
  EXPECT_THROW((void)transport.post_send(peer, ConstBuffer::device(&fake, 1)), UsageError);
  EXPECT_THROW((void)transport.post_recv(peer, Buffer::device(&fake, 1)), UsageError);
  EXPECT_EQ(transport.in_flight(), 0u);
}

TEST(MpiTransport, RejectsPeersOutsideTheWorldAndItself) {
  MpiTransport transport(comm(), test_options());
  std::vector<float> data(4);
  EXPECT_THROW((void)transport.post_send(comm().size(), ConstBuffer::host(data)), UsageError);
  EXPECT_THROW((void)transport.post_recv(-1, Buffer::host(data)), UsageError);
  EXPECT_THROW((void)transport.post_send(comm().rank(), ConstBuffer::host(data)), UsageError);
  EXPECT_THROW((void)transport.test(Ticket{12345}), UsageError);
  EXPECT_TRUE(transport.ready_for((comm().rank() + 1) % comm().size(), Direction::send));
}

TEST(MpiTransport, ReceiveFromASilentPeerTimesOutNamingPeerAndSize) {
  TransportOptions options = test_options();
  options.timeout = Seconds(2.0);
  MpiTransport transport(comm(), options);
  if (comm().rank() == 0) {
    std::vector<float> in(1000);
    const auto start = std::chrono::steady_clock::now();
    try {
      transport.recv(1, Buffer::host(in));
      ADD_FAILURE() << "no timeout";
    } catch (const TimeoutError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("rank 0: MPI transport: recv of 1000 floats, 4000 bytes (3.9 KiB), from rank 1 did "
                          "not complete within 2.0 s"),
                std::string::npos)
          << what;
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_GE(elapsed, 2.0);
    EXPECT_LT(elapsed, 5.0);
    EXPECT_EQ(transport.in_flight(), 0u);  // the failed receive was cancelled and retired
  }
  barrier(comm());
}

TEST(MpiTransport, SendToAPeerThatDoesNotReceiveTimesOut) {
  TransportOptions options = test_options();
  options.timeout = Seconds(2.0);
  MpiTransport transport(comm(), options);
  // 16 MiB: far above the eager limit, so the send cannot complete without the receiver.
  const std::size_t n = (std::size_t{16} << 20) / sizeof(float);
  const std::vector<float> out = make_data(0, 1, n, 9);
  if (comm().rank() == 0) {
    try {
      transport.send(1, ConstBuffer::host(out));
      ADD_FAILURE() << "no timeout";
    } catch (const TimeoutError& e) {
      EXPECT_NE(std::string(e.what()).find("send of 4194304 floats, 16777216 bytes (16.0 MiB), to rank 1 did "
                                           "not complete within 2.0 s"),
                std::string::npos)
          << e.what();
    }
  }
  barrier(comm());
  // Rank 1 now drains the abandoned send, which keeps MPI clean for the next tests; `out` is
  // still alive on rank 0 until the barrier below.
  if (comm().rank() == 1) {
    std::vector<float> in(n);
    transport.recv(0, Buffer::host(in));
    EXPECT_EQ(wrong(in, 0, 1, 9), 0u);
  }
  barrier(comm());
}

}  // namespace
}  // namespace swarm::comm
