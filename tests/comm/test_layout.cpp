// Pure parts of the comm layer, without MPI: the rank layout, local-rank and node resolution,
// agreement messages, counters, buffer views, transport kinds and tags.
#include <gtest/gtest.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "swarm/comm/buffer.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/layout.hpp"
#include "swarm/comm/tags.hpp"
#include "swarm/comm/transport.hpp"

namespace swarm::comm {
namespace {

// The layout is usable in constant expressions: the queries are constexpr.
constexpr WorldLayout kFourOnTwoNodes{3, 4, 1, 2, 1, 2};
static_assert(kFourOnTwoNodes.device_for(2) == 1);
static_assert(!kFourOnTwoNodes.is_node_leader());
static_assert(WorldLayout{}.is_node_leader() && WorldLayout{}.size() == 1);

TEST(WorldLayout, DefaultIsASingleProcess) {
  constexpr WorldLayout single;
  EXPECT_EQ(single.rank(), 0);
  EXPECT_EQ(single.size(), 1);
  EXPECT_EQ(single.local_rank(), 0);
  EXPECT_EQ(single.local_size(), 1);
  EXPECT_EQ(single.node(), 0);
  EXPECT_EQ(single.nodes(), 1);
  EXPECT_EQ(single.peer_count(), 0);
  EXPECT_TRUE(single.is_node_leader());
}

TEST(WorldLayout, NodeLeaderIsLocalRankZero) {
  for (int rank = 0; rank < 8; ++rank) {
    const WorldLayout layout(rank, 8, rank % 4, 4, rank / 4, 2);
    EXPECT_EQ(layout.is_node_leader(), rank % 4 == 0);
    EXPECT_EQ(layout.peer_count(), 7);
  }
}

TEST(WorldLayout, DeviceIsLocalRankModuloDevices) {
  for (int local = 0; local < 8; ++local) {
    const WorldLayout layout(local, 8, local, 8, 0, 1);
    EXPECT_EQ(layout.device_for(1), 0);
    EXPECT_EQ(layout.device_for(4), local % 4);
    EXPECT_EQ(layout.device_for(8), local);
    EXPECT_EQ(layout.device_for(16), local);
  }
  EXPECT_THROW((void)WorldLayout{}.device_for(0), std::invalid_argument);
  EXPECT_THROW((void)WorldLayout{}.device_for(-1), std::invalid_argument);
}

TEST(WorldLayout, GpusSharedWhenMoreLocalRanksThanDevices) {
  const WorldLayout layout(0, 4, 0, 4, 0, 1);
  EXPECT_TRUE(layout.gpus_shared(1));
  EXPECT_TRUE(layout.gpus_shared(3));
  EXPECT_FALSE(layout.gpus_shared(4));
  EXPECT_FALSE(layout.gpus_shared(8));
}

TEST(WorldLayout, ContainsExactlyTheRanksOfTheWorld) {
  const WorldLayout layout(1, 3, 1, 3, 0, 1);
  EXPECT_FALSE(layout.contains(-1));
  EXPECT_TRUE(layout.contains(0));
  EXPECT_TRUE(layout.contains(2));
  EXPECT_FALSE(layout.contains(3));
}

TEST(WorldLayout, RejectsContradictions) {
  EXPECT_THROW(WorldLayout(0, 0, 0, 1, 0, 1), std::invalid_argument);   // empty world
  EXPECT_THROW(WorldLayout(4, 4, 0, 1, 0, 1), std::invalid_argument);   // rank == size
  EXPECT_THROW(WorldLayout(-1, 4, 0, 1, 0, 1), std::invalid_argument);  // negative rank
  EXPECT_THROW(WorldLayout(0, 4, 2, 2, 0, 1), std::invalid_argument);   // local rank == local size
  EXPECT_THROW(WorldLayout(0, 4, 0, 5, 0, 1), std::invalid_argument);   // local size > size
  EXPECT_THROW(WorldLayout(0, 4, 0, 1, 2, 2), std::invalid_argument);   // node == nodes
  EXPECT_THROW(WorldLayout(0, 4, 0, 1, 0, 5), std::invalid_argument);   // more nodes than ranks
  EXPECT_NO_THROW(WorldLayout(3, 4, 0, 1, 3, 4));                      // one rank per node
}

TEST(WorldLayout, EqualityIsMemberwise) {
  EXPECT_EQ(WorldLayout(1, 2, 1, 2, 0, 1), WorldLayout(1, 2, 1, 2, 0, 1));
  EXPECT_NE(WorldLayout(1, 2, 1, 2, 0, 1), WorldLayout(1, 2, 0, 1, 1, 2));
}

TEST(LocalRank, ParsesOnlyNonNegativeIntegers) {
  EXPECT_EQ(parse_local_id(std::nullopt), std::nullopt);
  EXPECT_EQ(parse_local_id(""), std::nullopt);
  EXPECT_EQ(parse_local_id("0"), 0);
  EXPECT_EQ(parse_local_id("17"), 17);
  EXPECT_EQ(parse_local_id("-1"), std::nullopt);
  EXPECT_EQ(parse_local_id("3x"), std::nullopt);
  EXPECT_EQ(parse_local_id(" 3"), std::nullopt);
}

TEST(LocalRank, SlurmIdsWinWhenTheyArePermutationOfTheNode) {
  const std::vector<std::optional<int>> ids = {2, 0, 1};
  EXPECT_EQ(choose_local_rank(0, ids), 2);
  EXPECT_EQ(choose_local_rank(1, ids), 0);
  EXPECT_EQ(choose_local_rank(2, ids), 1);
}

TEST(LocalRank, InheritedOrPartialSlurmIdsFallBackToTheSplit) {
  // mpirun inside sbatch: every rank inherits the batch step's SLURM_LOCALID=0.
  const std::vector<std::optional<int>> inherited = {0, 0, 0};
  const std::vector<std::optional<int>> partial = {0, std::nullopt, 2};
  const std::vector<std::optional<int>> out_of_range = {0, 5};
  const std::vector<std::optional<int>> absent = {std::nullopt, std::nullopt};
  for (int r = 0; r < 3; ++r) EXPECT_EQ(choose_local_rank(r, inherited), r);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(choose_local_rank(r, partial), r);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(choose_local_rank(r, out_of_range), r);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(choose_local_rank(r, absent), r);
  EXPECT_THROW((void)choose_local_rank(3, inherited), std::invalid_argument);
}

TEST(NodeIndex, NodesAreNumberedByTheirLeadersRanks) {
  // Ranks 0,2,4 on the node led by 0; 1,5 led by 1; 3 alone.
  const std::array<int, 6> leaders = {0, 1, 0, 3, 0, 1};
  const std::array<int, 6> expected_node = {0, 1, 0, 2, 0, 1};
  for (int r = 0; r < 6; ++r) {
    const NodeIndex index = node_index(r, leaders);
    EXPECT_EQ(index.node, expected_node[static_cast<std::size_t>(r)]) << "rank " << r;
    EXPECT_EQ(index.nodes, 3);
  }
  EXPECT_THROW((void)node_index(6, leaders), std::invalid_argument);
}

TEST(FailureLines, OneLinePerDistinctErrorNamingTheRanks) {
  const std::vector<std::optional<std::string>> errors = {
      std::nullopt, "bad job file: no 'model' key", "cannot open weights.safetensors", "bad job file: no 'model' key",
      std::nullopt};
  const std::vector<std::string> lines = failure_lines(errors);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "swarm_pipe: ranks 1,3: bad job file: no 'model' key");
  EXPECT_EQ(lines[1], "swarm_pipe: rank 2: cannot open weights.safetensors");
}

TEST(FailureLines, NoneWhenEveryRankSucceeded) {
  const std::vector<std::optional<std::string>> errors(4);
  EXPECT_TRUE(failure_lines(errors).empty());
}

TEST(FailureLines, AnEmptyMessageStillNamesTheRank) {
  const std::vector<std::optional<std::string>> errors = {std::nullopt, std::string()};
  const std::vector<std::string> lines = failure_lines(errors);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "swarm_pipe: rank 1: ");
}

TEST(LinkCounters, ThroughputIsBytesOverTransferTime) {
  LinkCounters c;
  EXPECT_EQ(c.bytes_per_second(), 0.0);
  c.bytes_sent = 3000;
  c.bytes_received = 1000;
  c.send_seconds = 1.5;
  c.recv_seconds = 0.5;
  EXPECT_EQ(c.bytes(), 4000u);
  EXPECT_DOUBLE_EQ(c.seconds(), 2.0);
  EXPECT_DOUBLE_EQ(c.bytes_per_second(), 2000.0);
  LinkCounters sum;
  sum += c;
  sum += c;
  EXPECT_EQ(sum.bytes(), 8000u);
  EXPECT_DOUBLE_EQ(sum.bytes_per_second(), 2000.0);
}

TEST(Buffers, ViewsCarrySizeAndLocation) {
  std::vector<float> data(10);
  const Buffer host = Buffer::host(data);
  EXPECT_EQ(host.size(), 10u);
  EXPECT_EQ(host.size_bytes(), 40u);
  EXPECT_EQ(host.location, MemoryLocation::host);
  const ConstBuffer as_const = host;  // a receive target can be sent on
  EXPECT_EQ(as_const.data.data(), data.data());
  EXPECT_EQ(as_const.location, MemoryLocation::host);
  const ConstBuffer device = ConstBuffer::device(data.data(), 3);
  EXPECT_EQ(device.location, MemoryLocation::device);
  EXPECT_EQ(to_string(MemoryLocation::device), "device");
}

TEST(TransportKind, ParsesAndPrints) {
  EXPECT_EQ(parse_transport_kind("mpi"), TransportKind::mpi);
  EXPECT_EQ(parse_transport_kind("nccl"), TransportKind::nccl);
  EXPECT_EQ(parse_transport_kind("NCCL"), std::nullopt);
  EXPECT_EQ(to_string(TransportKind::nccl), "nccl");
}

TEST(TransportKind, MpiWhenGpusAreMissingOrShared) {
  const WorldLayout two_on_a_node(1, 2, 1, 2, 0, 1);
  EXPECT_EQ(default_transport_kind(two_on_a_node, 0), TransportKind::mpi);
  EXPECT_EQ(default_transport_kind(two_on_a_node, 1), TransportKind::mpi);  // two ranks, one GPU
  // One GPU per rank: NCCL exactly when the build has it (it does not ask the driver).
  EXPECT_EQ(default_transport_kind(two_on_a_node, 2), cuda_built() ? TransportKind::nccl : TransportKind::mpi);
}

TEST(Tags, AreDistinct) {
  const std::array tags = {Tag::header, Tag::activation, Tag::test, Tag::bench};
  for (std::size_t i = 0; i < tags.size(); ++i)
    for (std::size_t j = i + 1; j < tags.size(); ++j) EXPECT_NE(to_mpi(tags[i]), to_mpi(tags[j]));
  EXPECT_EQ(to_string(Tag::activation), "activation");
}

}  // namespace
}  // namespace swarm::comm
