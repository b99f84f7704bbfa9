// Control messages, collectives, polling and agreement across 4 ranks (run under mpiexec).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
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
  EXPECT_EQ(layout.is_client(), rank == 0);
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

TEST(Control, BcastStringOfAnySize) {
  const std::string long_text(100000, 'x');
  const int root = comm().size() - 1;
  const std::string got = bcast_string(comm(), comm().rank() == root ? long_text + "!" : std::string("ignored"), root);
  EXPECT_EQ(got.size(), long_text.size() + 1);
  EXPECT_EQ(got.back(), '!');
  EXPECT_EQ(bcast_string(comm(), comm().rank() == 0 ? "" : "ignored", 0), "");
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

TEST(Control, SendAndReceiveValuesAroundARing) {
  const int next = (comm().rank() + 1) % comm().size();
  const int prev = (comm().rank() + comm().size() - 1) % comm().size();
  send_value(comm(), next, Tag::test, Header{42u, comm().rank(), 1, 2, next, 3.0});
  const Header got = recv_value<Header>(comm(), prev, Tag::test);
  EXPECT_EQ(got.step, prev);
  EXPECT_EQ(got.next_hop, comm().rank());
  send_string(comm(), next, Tag::test, "from " + std::to_string(comm().rank()));
  EXPECT_EQ(recv_string(comm(), prev, Tag::test), "from " + std::to_string(prev));
  barrier(comm());
}

TEST(Control, PollReceivesHeadersFromAnySource) {
  // Every rank sends a header to rank 0; rank 0 polls until it has one from each other rank.
  if (comm().rank() != 0) {
    send_value(comm(), 0, Tag::header, Header{9u, comm().rank(), 0, 0, 0, 0.0});
  } else {
    std::vector<bool> seen(static_cast<std::size_t>(comm().size()), false);
    for (int received = 0; received < comm().size() - 1;) {
      const auto envelope = poll<Header>(comm(), Tag::header, Seconds(5.0));
      ASSERT_TRUE(envelope.has_value()) << "a header did not arrive within 5 s";
      EXPECT_EQ(envelope->tag, Tag::header);
      EXPECT_EQ(envelope->value.step, envelope->source);
      EXPECT_FALSE(seen[static_cast<std::size_t>(envelope->source)]);
      seen[static_cast<std::size_t>(envelope->source)] = true;
      ++received;
    }
  }
  barrier(comm());
}

TEST(Control, PollAnyTakesTagsInPriorityOrder) {
  if (comm().rank() == 1) {
    send_value(comm(), 0, Tag::header, Header{});
    send_string(comm(), 0, Tag::shutdown, "stop");
  }
  barrier(comm());  // both messages are in flight or arrived before rank 0 polls
  if (comm().rank() == 0) {
    const Tag tags[] = {Tag::shutdown, Tag::header};
    auto first = poll_any(comm(), tags, Seconds(5.0));
    ASSERT_TRUE(first.has_value());
    // Eager messages are there after the barrier; shutdown is asked for first.
    EXPECT_EQ(first->tag, Tag::shutdown);
    EXPECT_EQ(first->text(), "stop");
    auto second = poll_any(comm(), tags, Seconds(5.0));
    ASSERT_TRUE(second.has_value());
    EXPECT_EQ(second->tag, Tag::header);
    EXPECT_NO_THROW((void)second->as<Header>());
  }
  barrier(comm());
}

TEST(Control, PollReturnsNothingAfterItsTimeout) {
  const auto start = std::chrono::steady_clock::now();
  const auto envelope = poll<Header>(comm(), Tag::command, Seconds(0.2));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_FALSE(envelope.has_value());
  EXPECT_GE(elapsed, 0.2);
  EXPECT_LT(elapsed, 2.0);
  barrier(comm());
}

TEST(Control, AMessageOfTheWrongSizeIsAnError) {
  if (comm().rank() == 1) send_string(comm(), 0, Tag::test, "abc");
  if (comm().rank() == 0) {
    try {
      (void)recv_value<Header>(comm(), 1, Tag::test);
      ADD_FAILURE() << "no error for a 3-byte message read as a Header";
    } catch (const TransferError& e) {
      EXPECT_NE(std::string(e.what()).find("from rank 1 has 3 bytes, expected 32"), std::string::npos) << e.what();
    }
  }
  barrier(comm());
}

TEST(Control, ReceiveFromASilentPeerTimesOutNamingIt) {
  Communicator quick = comm().duplicate();  // collective: every rank
  if (comm().rank() == 0) {
    quick.set_timeout(Seconds(0.3));
    try {
      (void)recv_value<Header>(quick, 1, Tag::test);
      ADD_FAILURE() << "no timeout";
    } catch (const TimeoutError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("rank 0: no test message from rank 1 within 0.3 s"), std::string::npos) << what;
    }
  }
  barrier(comm());
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
