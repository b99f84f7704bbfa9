#pragma once
// Where this process sits in the job: a pure value type, built once by MpiWorld from MPI (or by
// hand in tests) and queried everywhere else, so no rank arithmetic is pasted into other files.
#include <optional>
#include <span>
#include <stdexcept>
#include <string_view>

namespace swarm::comm {

class WorldLayout {
 public:
  /// A single process (rank 0 of 1, one node): what a test or a non-MPI tool runs as.
  constexpr WorldLayout() noexcept = default;

  /// Throws std::invalid_argument when the numbers contradict each other (rank outside
  /// [0, size), local rank outside [0, local_size), node outside [0, nodes), ...).
  constexpr WorldLayout(int rank, int size, int local_rank, int local_size, int node, int nodes)
      : rank_(rank), size_(size), local_rank_(local_rank), local_size_(local_size), node_(node),
        nodes_(nodes) {
    if (size < 1 || rank < 0 || rank >= size) throw std::invalid_argument("WorldLayout: rank outside [0, size)");
    if (local_size < 1 || local_size > size || local_rank < 0 || local_rank >= local_size)
      throw std::invalid_argument("WorldLayout: local rank outside [0, local_size) or local_size > size");
    if (nodes < 1 || nodes > size || node < 0 || node >= nodes)
      throw std::invalid_argument("WorldLayout: node outside [0, nodes) or nodes > size");
  }

  [[nodiscard]] constexpr int rank() const noexcept { return rank_; }
  [[nodiscard]] constexpr int size() const noexcept { return size_; }
  [[nodiscard]] constexpr int local_rank() const noexcept { return local_rank_; }
  [[nodiscard]] constexpr int local_size() const noexcept { return local_size_; }
  [[nodiscard]] constexpr int node() const noexcept { return node_; }
  [[nodiscard]] constexpr int nodes() const noexcept { return nodes_; }

  /// The first rank of its node (e.g. the one that prints node-level information).
  [[nodiscard]] constexpr bool is_node_leader() const noexcept { return local_rank_ == 0; }
  [[nodiscard]] constexpr bool contains(int rank) const noexcept { return rank >= 0 && rank < size_; }
  /// Every other rank: the peers this rank may exchange activations with.
  [[nodiscard]] constexpr int peer_count() const noexcept { return size_ - 1; }

  /// The GPU this rank binds to when its node shows `devices` GPUs: local_rank % devices, so
  /// ranks of a node spread over its GPUs. Throws std::invalid_argument for devices < 1.
  [[nodiscard]] constexpr int device_for(int devices) const {
    if (devices < 1) throw std::invalid_argument("WorldLayout::device_for: no devices");
    return local_rank_ % devices;
  }
  /// True when more ranks share this node than it has GPUs: NCCL refuses two ranks on one GPU
  /// in one communicator, so such a job must use the MPI transport.
  [[nodiscard]] constexpr bool gpus_shared(int devices) const noexcept { return local_size_ > devices; }

  friend constexpr bool operator==(const WorldLayout&, const WorldLayout&) = default;

 private:
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  int node_ = 0;
  int nodes_ = 1;
};

/// SLURM_LOCALID's value as a local rank: nullopt when unset or not a non-negative integer
/// (Slurm never sets garbage; a value we cannot read is treated as absent, not guessed at).
[[nodiscard]] std::optional<int> parse_local_id(std::optional<std::string_view> text) noexcept;

/// The local rank of the rank at `split_rank` in its node's shared-memory communicator, given
/// every node rank's SLURM_LOCALID (indexed by split rank, nullopt when absent). Slurm's ids win
/// when they are a permutation of [0, node size): srun launched each rank. Otherwise the split
/// rank is used for the whole node: e.g. mpirun inside an sbatch script, whose ranks all
/// inherit the batch step's SLURM_LOCALID=0 and would all pick GPU 0.
[[nodiscard]] int choose_local_rank(int split_rank, std::span<const std::optional<int>> local_ids_of_node);

/// Node index of every rank from the world rank of each rank's node leader (rank 0 of its
/// shared-memory communicator): nodes are numbered by their leaders' ranks, in increasing order.
/// Returns {node of `rank`, number of nodes}. Pure, so it is tested without MPI.
struct NodeIndex {
  int node = 0;
  int nodes = 1;
};
[[nodiscard]] NodeIndex node_index(int rank, std::span<const int> leader_of_rank);

}  // namespace swarm::comm
