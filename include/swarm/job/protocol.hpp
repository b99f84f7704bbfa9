#pragma once
// What travels between the ranks of swarm_pipe. Plain structs copied byte for byte (one build
// on every rank); tags live in swarm/comm/tags.hpp.
#include <array>
#include <cstdint>

namespace swarm::job {

/// Longest route a step can take (a header carries the whole route, so that every server knows
/// the next hop without asking rank 0).
inline constexpr int kMaxHops = 64;

enum class MessageKind : std::int32_t {
  forward = 0,  // activations for hop `hop` of the route (hop == hops: back to the client)
  drop = 1,     // the session ended or moved: free its KV caches (no payload)
};

/// The header of one message of a tick; the payload (if any) is batch * tokens * hidden floats.
struct StepHeader {
  std::uint64_t session = 0;
  MessageKind kind = MessageKind::forward;
  std::int32_t batch = 0;
  std::int32_t tokens = 0;  // per sequence, this step
  std::int32_t hop = 0;     // hop that receives this message; == hops: the client
  std::int32_t hops = 0;
  std::int32_t step = 0;
  std::array<std::int32_t, kMaxHops> rank{};
  std::array<std::int16_t, kMaxHops> first{};
  std::array<std::int16_t, kMaxHops> last{};

  [[nodiscard]] std::size_t payload_floats(int hidden) const {
    return kind == MessageKind::forward ? static_cast<std::size_t>(batch) * tokens * hidden : 0;
  }
};

/// Per tick, every rank contributes one of these to an MPI_Allreduce(MAX).
struct TickControl {
  std::int32_t command = 0;    // rank 0: 0 run, 1 end of epoch
  std::int32_t terminate = 0;  // any rank that got SIGTERM/SIGINT
  std::int32_t finish = 0;     // rank 0: the job's work is done (batch workload): last epoch
};

/// Server state as the job tracks it (numbers match swarm::ServerState).
enum class RankState : std::int32_t { offline = 0, joining = 1, online = 2 };

/// What each rank reports at an epoch boundary (MPI_Allgather).
struct Measurement {
  std::int32_t rank = 0;
  std::int32_t span_start = 0;
  std::int32_t span_end = 0;
  std::int32_t state = 0;               // RankState
  double block_tokens_per_s = 0;        // compute: tokens/s through one block (measured)
  double network_tokens_per_s = 0;      // link: tokens/s (measured or the class cap; 0 = unknown)
  double compute_seconds = 0;           // in this epoch
  double block_tokens = 0;              // tokens x blocks computed in this epoch
  double bytes_received = 0;            // activation bytes in this epoch
  double link_seconds = 0;              // time those took (incl. emulated caps)
  double reload_seconds = 0;            // spent loading a new span at the last boundary
  double memory_bytes = 0;              // weights + KV caches held now
};

/// Rank 0's decision for one rank, broadcast at every boundary.
struct Assignment {
  std::int32_t span_start = 0;
  std::int32_t span_end = 0;
  std::int32_t state = 0;    // RankState for the next epoch
  std::int32_t reload = 0;   // 1: load span_start..span_end (moved or joined)
};

}  // namespace swarm::job
