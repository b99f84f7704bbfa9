#pragma once
// One epoch of swarm_pipe as rank 0 records it: the trace's row (docs/trace.md), the summary's
// line, and what tests and benchmarks read back.
#include <cstdint>
#include <vector>

#include "swarm/job/protocol.hpp"

namespace swarm::job {

/// Rank 0's view of an epoch boundary, in seconds.
struct BoundaryTimes {
  double total = 0;      // from the end of the epoch's traffic to the start of the next one
  double gather = 0;     // the allgather of the measurements
  double decide = 0;     // churn and the strategy (the balancing rules, a placement)
  double broadcast = 0;  // the decision to every rank
  double trace = 0;      // writing the epoch's row of the trace and the progress line
  double reload = 0;     // rank 0's own reload and its client's reroutes
};

struct EpochRecord {
  int epoch = 0;
  double time = 0;               // s since the start, end of the epoch's traffic
  double traffic_seconds = 0;
  BoundaryTimes boundary;        // the boundary before this epoch
  double swarm_throughput = 0;   // announced (Petals' formula), min over blocks (online)
  double predicted = 0;          // what the job should realise (Balancer::predicted)
  double tokens_per_s = 0;       // realised: tokens through the whole pipeline per second
  double generated_per_s = 0;
  long batches = 0;              // micro-batches the client sent
  int moves = 0, joined = 0, left = 0;
  long sessions_started = 0, sessions_completed = 0, sessions_rerouted = 0, sessions_active = 0;
  double replay_tokens = 0;
  long cache_waits = 0, sessions_waiting_for_cache = 0;  // KV-cache admission (servers.max_cache_mb)
  double step_p50 = 0, step_p95 = 0, step_p99 = 0, session_p50 = 0, session_p99 = 0;
  double upper_bound = 0;        // upper_bound strategy: the placement's value (else 0)
  double makespan = -1;          // batch workload: set in the epoch the batch finished
  double dispatch_messages = 0, migrations = 0, route_imbalance = 0, routes = 0;  // dispatch policy
  std::vector<Measurement> ranks;                   // what every rank reported (allgathered)
  std::vector<std::int32_t> assigned_start, assigned_end;  // rank 0's assignment (broadcast)
  std::vector<double> announced, compute, network;  // per rank, tokens/s
  std::vector<double> block_throughput;             // per block, announced, online
};

}  // namespace swarm::job
