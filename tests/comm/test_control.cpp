// The MPI world and the control collectives across 2 and 4 ranks (run under mpiexec): the
// layout vs MPI, communicator ownership, allgather/bcast_value/gather_strings reaching every
// rank, a collective that one rank never joins timing out, and agree.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "mpi_test_main.hpp"
#include "swarm/comm/control.hpp"
#include "swarm/comm/failure.hpp"

namespace swarm::comm {
namespace {

using testing::world;

struct Header {  // the shape of a job header: a few integers and a double
  std::uint64_t session;
  std::int32_t step;
  std::int32_t first_block;
  std::int32_t last_block;
  std::int32_t next_hop;
  double sent_at;
};

[[nodiscard]] const Communicator& comm() { return world().comm(); }

TEST(MpiWorld, LayoutMatchesMpi) {
  const WorldLayout& layout = world().layout();
  int rank = -1, size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(layout.rank(), rank);
  EXPECT_EQ(layout.size(), size);
  EXPECT_EQ(comm().rank(), rank);
  EXPECT_EQ(comm().size(), size);
  // One machine: one node holding every rank; local ranks are a permutation of the node.
  EXPECT_EQ(layout.nodes(), 1);
  EXPECT_EQ(layout.node(), 0);
  EXPECT_EQ(layout.local_size(), size);
  const std::vector<int> locals = allgather_values(comm(), layout.local_rank());
  std::vector<bool> seen(locals.size(), false);
  for (int l : locals) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, size);
    EXPECT_FALSE(seen[static_cast<std::size_t>(l)]);
    seen[static_cast<std::size_t>(l)] = true;
  }
}

TEST(Communicator, DuplicatesAreMoveOnlyOwners) {
  Communicator a = comm().duplicate();
  ASSERT_TRUE(a.valid());
  EXPECT_EQ(a.rank(), comm().rank());
  EXPECT_EQ(a.timeout(), comm().timeout());
  Communicator b = std::move(a);
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_TRUE(b.valid());
  int result = MPI_UNEQUAL;
  MPI_Comm_compare(b.get(), comm().get(), &result);
  EXPECT_EQ(result, MPI_CONGRUENT);  // same group, separate matching space
  static_assert(!std::is_copy_constructible_v<Communicator>);
}

TEST(Control, AllgatherReachesEveryRankInRankOrder) {
  const Header mine{1000u + static_cast<std::uint64_t>(comm().rank()), comm().rank(), 2 * comm().rank(), 0, -1,
                    0.5 * comm().rank()};
  const std::vector<Header> all = allgather_values(comm(), mine);
  ASSERT_EQ(all.size(), static_cast<std::size_t>(comm().size()));
  for (int r = 0; r < comm().size(); ++r) {
    EXPECT_EQ(all[static_cast<std::size_t>(r)].session, 1000u + static_cast<std::uint64_t>(r));
    EXPECT_EQ(all[static_cast<std::size_t>(r)].first_block, 2 * r);
    EXPECT_EQ(all[static_cast<std::size_t>(r)].sent_at, 0.5 * r);
  }
}

TEST(Control, BcastValueFromAnyRoot) {
  for (int root = 0; root < comm().size(); ++root) {
    const Header h = bcast_value(comm(), Header{7u, comm().rank(), 0, 0, root, 1.25}, root);
    EXPECT_EQ(h.step, root);  // root's own rank, not ours
    EXPECT_EQ(h.next_hop, root);
  }
}

TEST(Control, GatherStringsToRankZero) {
  // Rank r sends r copies of 'a'+r: lengths differ, rank 0's is empty.
  const std::string mine(static_cast<std::size_t>(comm().rank()), static_cast<char>('a' + comm().rank()));
  const std::vector<std::string> all = gather_strings(comm(), mine);
  if (comm().rank() != 0) {
    EXPECT_TRUE(all.empty());
    return;
  }
  ASSERT_EQ(all.size(), static_cast<std::size_t>(comm().size()));
  for (int r = 0; r < comm().size(); ++r)
    EXPECT_EQ(all[static_cast<std::size_t>(r)], std::string(static_cast<std::size_t>(r), static_cast<char>('a' + r)));
}

TEST(Control, ACollectiveSomeRankNeverJoinsTimesOut) {
  Communicator side = comm().duplicate();  // its own matching space for the broken collective
  if (comm().rank() == 0) {
    side.set_timeout(Seconds(0.3));
    EXPECT_THROW(barrier(side), TimeoutError);
  }
  barrier(comm());
  // The others join now, so rank 0's abandoned request completes and `side` can be freed.
  if (comm().rank() != 0) barrier(side);
  barrier(comm());
}

TEST(Agree, TrueWhenNoRankFailed) {
  EXPECT_TRUE(agree(comm(), std::nullopt));
}

TEST(Agree, FalseOnEveryRankWhenOneFailed) {
  const int failing = comm().size() - 1;
  const bool ok = agree(comm(), comm().rank() == failing ? std::optional<std::string>("(expected) test failure")
                                                          : std::nullopt);
  EXPECT_FALSE(ok);
  const std::vector<int> all = allgather_values(comm(), ok ? 1 : 0);
  for (int v : all) EXPECT_EQ(v, 0);
}

}  // namespace
}  // namespace swarm::comm
