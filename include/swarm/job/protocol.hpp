#pragma once
// What travels between the ranks of swarm_pipe: the header of every data-plane packet (encoded
// to bytes for the fabric; any route length), and the plain structs of the epoch boundary
// (copied byte for byte: one build on every rank).
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "swarm/balance/swarm.hpp"
#include "swarm/job/routing.hpp"
#include "swarm/model/executor.hpp"

namespace swarm::job {

/// The rank that is the client (sessions, embeddings, LM head) and the coordinator (balancing,
/// trace) besides a server.
inline constexpr int kClientRank = 0;

enum class PacketKind : std::uint8_t {
  batch = 1,      ///< activations of a batch for hop `hop` of its route (hop == hops: the client)
  probe = 2,      ///< a batch a rank runs through one block and returns: re-measures an idle rank
  drop = 3,       ///< the segments' sessions ended or moved: free their caches (no rows)
  end_epoch = 4,  ///< rank 0 to every rank: nothing is in flight any more, the boundary follows
  stop = 5,       ///< a rank to rank 0: it got SIGTERM or SIGINT
  heartbeat = 6,  ///< sent when nothing else went to that peer for a while: rank 0 to a server
                  ///< (the coordinator is alive), a server to rank 0 (rank 0 can name a silent rank)
  epoch_done = 7,  ///< a server to rank 0 after end_epoch: it has nothing left of the epoch
};

/// The header of a packet. A batch carries its whole route, so that every server knows the next
/// hop without asking rank 0; its rows are the segments' rows in order.
struct Header {
  PacketKind kind = PacketKind::batch;
  std::uint64_t batch = 0;  ///< the client's id of the batch (probes and batches)
  std::int32_t hop = 0;     ///< index of the hop receiving it; == route.size(): the client
  std::vector<Hop> route;
  std::vector<model::Segment> segments;

  [[nodiscard]] std::int64_t rows() const { return model::batch_rows(segments); }
  /// Where the batch goes once hop `hop` has run: the next hop's rank, or the client.
  [[nodiscard]] int next_peer() const;
  bool operator==(const Header&) const = default;
};

[[nodiscard]] std::vector<std::byte> encode(const Header& header);
/// Throws std::runtime_error naming `source` for bytes that are not a header of this build.
[[nodiscard]] Header decode(std::span<const std::byte> bytes, int source);
/// "rank 2", "ranks 2 and 5", "ranks 1, 2 and 5": the ranks a message blames.
[[nodiscard]] std::string name_ranks(std::span<const int> ranks);
/// The largest encoded header of a route of up to `hops` hops and up to `segments` segments.
[[nodiscard]] std::size_t max_header_bytes(int hops, int segments);


/// What each rank reports at an epoch boundary (allgathered).
struct Measurement {
  std::int32_t rank = 0;
  std::int32_t span_start = 0;
  std::int32_t span_end = 0;
  ServerState state = ServerState::offline;
  bool stop = false;                    // this rank got SIGTERM or SIGINT
  std::int32_t forwards = 0;            // batches run in this epoch
  double block_tokens_per_s = 0;        // compute: tokens/s through one block, as the server now runs
  double network_tokens_per_s = 0;      // link: tokens/s of received activations (0 = unknown)
  double compute_seconds = 0;           // in this epoch (emulated device time included)
  double block_tokens = 0;              // tokens x blocks computed in this epoch
  double bytes_received = 0;            // activation bytes in this epoch
  double link_seconds = 0;              // time those took (transfers + emulated link)
  double client_seconds = 0;            // rank 0: time spent as the client (embeddings, head)
  double wait_seconds = 0;              // time with nothing to do (waiting for packets)
  double reload_seconds = 0;            // spent loading a new span at the last boundary
  double memory_bytes = 0;              // weights + KV caches held now
};

/// Rank 0's decision for one rank, broadcast at every boundary.
struct Assignment {
  std::int32_t span_start = 0;
  std::int32_t span_end = 0;
  ServerState state = ServerState::offline;  // for the next epoch
  bool reload = false;                        // load span_start..span_end (moved or joined)
};

/// What follows a boundary.
enum class Command : std::int32_t { run = 0, stop = 1, finish = 2 };

}  // namespace swarm::job
