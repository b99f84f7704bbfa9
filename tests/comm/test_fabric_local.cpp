// The in-process fabrics (ranks as threads): the cases every fabric must pass, and what only a
// process of threads needs: abort and timeouts unwind every rank.
#include <atomic>
#include <thread>

#include "fabric_cases.hpp"
#include "swarm/comm/device.hpp"

namespace swarm::comm {
namespace {

// Runs `body(fabric)` on `ranks` threads and joins them.
template <typename F>
void on_ranks(int ranks, F body, FabricOptions options = {}) {
  auto fabrics = make_local_fabrics(ranks, options);
  std::vector<std::thread> threads;
  for (auto& f : fabrics) threads.emplace_back([&body, fabric = f.get()] { body(*fabric); });
  for (auto& t : threads) t.join();
}

TEST(LocalFabric, EveryPairInOrder) {
  for (int ranks : {1, 2, 4}) on_ranks(ranks, [](Fabric& f) { cases::every_pair_in_order(f, 24); });
}

TEST(LocalFabric, Collectives) {
  on_ranks(3, [](Fabric& f) { cases::collectives(f); });
}

TEST(LocalFabric, HeaderLimit) {
  FabricOptions options;
  options.max_header_bytes = 100;
  on_ranks(2, [](Fabric& f) { cases::header_limit(f, 100); }, options);
}

TEST(LocalFabric, PoolReuse) {
  on_ranks(2, [](Fabric& f) { cases::pool_reuse(f); });
}

// One rank aborts while the others wait in a collective: every rank unwinds with AbortedError
// carrying the message and code.
TEST(LocalFabric, AbortUnwindsEveryRank) {
  std::atomic<int> aborted{0};
  on_ranks(3, [&](Fabric& f) {
    try {
      if (f.rank() == 1) f.abort("rank 1 gives up", 7);
      (void)f.allgather_values(f.rank());
    } catch (const AbortedError& e) {
      EXPECT_EQ(e.code(), 7);
      EXPECT_NE(std::string(e.what()).find("rank 1: rank 1 gives up"), std::string::npos) << e.what();
      ++aborted;
    }
  });
  EXPECT_EQ(aborted.load(), 3);
}

// A rank that never reaches a collective: the others time out naming it as a collective.
TEST(LocalFabric, ACollectiveNobodyCompletesTimesOut) {
  FabricOptions options;
  options.timeout = Seconds(0.2);
  std::atomic<int> timed_out{0};
  on_ranks(2, [&](Fabric& f) {
    if (f.rank() == 1) return;
    try {
      (void)f.allgather_values(1);
    } catch (const TimeoutError& e) {
      EXPECT_NE(std::string(e.what()).find("allgather"), std::string::npos) << e.what();
      ++timed_out;
    }
  }, options);
  EXPECT_EQ(timed_out.load(), 1);
}

TEST(ActivationPool, BuffersGoBackToThePool) {
  ActivationPool pool(MemoryLocation::host);
  {
    Activations a = pool.take(1000), b = pool.take(3000);
    EXPECT_EQ(a.size(), 1000u);
    EXPECT_EQ(a.location(), MemoryLocation::host);
    EXPECT_EQ(pool.stats().allocations, 2u);
  }
  Activations c = pool.take(900);  // the 1024-float class again
  Activations d = pool.take(2500);  // and the 4096 one
  EXPECT_EQ(pool.stats().allocations, 2u);
  EXPECT_EQ(pool.stats().bytes, (1024u + 4096u) * sizeof(float));
  Activations moved = std::move(c);
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(moved.size(), 900u);
  EXPECT_TRUE(pool.take(0).empty());
}

TEST(ActivationPool, DeviceRowsNeedCuda) {
  if (device_count() > 0) GTEST_SKIP() << "a GPU is present";
  ActivationPool pool(MemoryLocation::device);
  EXPECT_THROW((void)pool.take(10), DeviceError);
}

}  // namespace
}  // namespace swarm::comm
