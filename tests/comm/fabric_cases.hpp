#pragma once
// What every Fabric must do, written once and run on both implementations: the in-process one
// (test_fabric_local.cpp, ranks as threads) and the MPI one (test_fabric_mpi.cpp, under mpiexec).
// Each case is called on every rank with that rank's fabric.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "swarm/comm/fabric.hpp"

namespace swarm::comm::cases {

/// A header naming the packet: (source, destination, sequence number), plus `extra` bytes.
inline std::vector<std::byte> header_of(int from, int to, int n, std::size_t extra = 0) {
  std::vector<std::byte> h(3 * sizeof(int) + extra, std::byte{0x5a});
  const int fields[3] = {from, to, n};
  std::memcpy(h.data(), fields, sizeof fields);
  return h;
}

inline float value(int from, int n, std::size_t i) {
  return static_cast<float>((from * 1000003 + n * 7919 + static_cast<int>(i)) & 0xFFFFF);  // exact in fp32
}

/// Rows of packet n from `from`: some packets have none, sizes vary around MPI's eager limit.
inline std::size_t rows_of(int n) {
  const std::size_t sizes[] = {0, 1, 64, 1023, 0, 4096, 20000, 3};
  return sizes[n % 8];
}

/// Polls until `pred` or the deadline (seconds); returns whether `pred` became true.
template <typename F>
bool poll_until(Fabric& fabric, F&& pred, double seconds, std::vector<Packet>& got) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (!pred()) {
    if (std::optional<Packet> p = fabric.poll()) {
      got.push_back(std::move(*p));
      continue;
    }
    if (std::chrono::steady_clock::now() > deadline) return false;
    fabric.wait(std::chrono::microseconds(200));
  }
  return true;
}

/// Every rank sends `count` packets to every rank (itself included) at once, without waiting:
/// all arrive whole, and those of one source in the order it posted them.
inline void every_pair_in_order(Fabric& fabric, int count) {
  const int me = fabric.rank(), n = fabric.size();
  for (int k = 0; k < count; ++k) {
    for (int to = 0; to < n; ++to) {
      Packet p;
      p.peer = to;
      p.header = header_of(me, to, k, static_cast<std::size_t>(k % 5) * 100);
      p.rows = fabric.pool().take(rows_of(k));
      for (std::size_t i = 0; i < p.rows.size(); ++i) p.rows.data()[i] = value(me, k, i);
      fabric.post(std::move(p));
    }
  }
  std::vector<Packet> got;
  const auto expected = static_cast<std::size_t>(count * n);
  ASSERT_TRUE(poll_until(fabric, [&] { return got.size() == expected && fabric.in_flight() == 0; }, 30, got))
      << "rank " << me << " got " << got.size() << " of " << expected << " packets, " << fabric.in_flight()
      << " of its own in flight";
  std::vector<int> next(static_cast<std::size_t>(n), 0);
  for (const Packet& p : got) {
    int fields[3];
    ASSERT_GE(p.header.size(), sizeof fields);
    std::memcpy(fields, p.header.data(), sizeof fields);
    EXPECT_EQ(fields[0], p.peer) << "the source";
    EXPECT_EQ(fields[1], me);
    EXPECT_EQ(fields[2], next[static_cast<std::size_t>(p.peer)]++) << "from rank " << p.peer << ": out of order";
    EXPECT_EQ(p.header.size(), 3 * sizeof(int) + static_cast<std::size_t>(fields[2] % 5) * 100);
    ASSERT_EQ(p.rows.size(), rows_of(fields[2]));
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < p.rows.size(); ++i) wrong += p.rows.data()[i] != value(p.peer, fields[2], i);
    EXPECT_EQ(wrong, 0u) << "rows from rank " << p.peer << ", packet " << fields[2];
  }
  const FabricStats stats = fabric.take_stats();
  std::uint64_t bytes = 0;
  for (int k = 0; k < count; ++k) bytes += rows_of(k) * sizeof(float) * static_cast<std::uint64_t>(n - 1);
  EXPECT_EQ(stats.bytes_received, bytes) << "rows from the other ranks";
  EXPECT_EQ(stats.packets_received, static_cast<std::uint64_t>(count * (n - 1)));
}

/// Collectives: allgather in rank order, broadcast from a root, agree.
inline void collectives(Fabric& fabric) {
  const int me = fabric.rank(), n = fabric.size();
  const auto all = fabric.allgather_values(static_cast<std::int64_t>(me * 10 + 1));
  ASSERT_EQ(all.size(), static_cast<std::size_t>(n));
  for (int r = 0; r < n; ++r) EXPECT_EQ(all[static_cast<std::size_t>(r)], r * 10 + 1);
  std::vector<std::int32_t> values(5, me == n - 1 ? 7 : -1);
  values = fabric.broadcast_values(std::move(values), n - 1);
  EXPECT_EQ(values, std::vector<std::int32_t>(5, 7));
  EXPECT_TRUE(fabric.agree(std::nullopt));
  EXPECT_FALSE(fabric.agree(me == n - 1 ? std::optional<std::string>("expected failure of the last rank")
                                        : std::nullopt));
}

/// A header longer than the fabric's limit is refused at post; one of exactly the limit travels.
inline void header_limit(Fabric& fabric, std::size_t limit) {
  const int me = fabric.rank(), n = fabric.size();
  const int to = (me + 1) % n;
  Packet too_long{to, std::vector<std::byte>(limit + 1), {}};
  EXPECT_THROW(fabric.post(std::move(too_long)), UsageError);
  fabric.post({to, std::vector<std::byte>(limit, std::byte{1}), {}});
  std::vector<Packet> got;
  ASSERT_TRUE(poll_until(fabric, [&] { return got.size() == 1 && fabric.in_flight() == 0; }, 30, got));
  EXPECT_EQ(got[0].header.size(), limit);
  EXPECT_EQ(got[0].peer, (me + n - 1) % n);
  (void)fabric.take_stats();
}

/// Rows come from the pool: a steady stream of packets reuses its buffers.
inline void pool_reuse(Fabric& fabric) {
  const int me = fabric.rank(), n = fabric.size();
  const std::size_t before = fabric.pool().stats().allocations;
  std::vector<Packet> got;
  std::size_t received = 0;  // a neighbour may be a round ahead: count them all
  for (int round = 0; round < 50; ++round) {
    Packet p{(me + 1) % n, header_of(me, (me + 1) % n, round), fabric.pool().take(1000 + 37 * (round % 4))};
    fabric.post(std::move(p));
    ASSERT_TRUE(poll_until(fabric, [&] { return received + got.size() > static_cast<std::size_t>(round) &&
                                                 fabric.in_flight() == 0; }, 30, got));
    received += got.size();
    got.clear();  // their rows go back to the pool
  }
  // 50 packets sent and 50 received would be 100 buffers without the pool.
  EXPECT_LE(fabric.pool().stats().allocations - before, 8u) << "a handful of buffers";
  (void)fabric.take_stats();
}

}  // namespace swarm::comm::cases
