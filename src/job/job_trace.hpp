#pragma once
// swarm_pipe's HDF5 trace (rank 0), in the simulator's conventions (docs/trace.md): one row per
// epoch in /epochs, per-rank and per-block 2-D datasets, run metadata as root attributes.
#include <string>
#include <vector>

#include "swarm/job/protocol.hpp"
#include "swarm/job/record.hpp"
#include "swarm/trace/trace.hpp"

namespace swarm::job {

struct JobMetadata {
  std::string job_file, job_text, effective, model, backend, transport, strategy;
  std::uint64_t seed = 0;
  int ranks = 0, blocks = 0, hidden_size = 0;
};

class JobTrace {
 public:
  JobTrace(trace::File& file, const JobMetadata& meta);
  void append(const EpochRecord& r);
  void finish(int epochs_run, bool stopped_early);

 private:
  trace::File& file_;
  trace::Group epochs_;
  std::vector<std::pair<std::string, trace::Series>> scalars_;
  trace::Series span_start_, span_end_, assigned_start_, assigned_end_, state_, throughput_, compute_, network_, compute_seconds_, client_seconds_, wait_seconds_, forwards_, reload_,
      memory_, block_throughput_;
  int rows_ = 0;
};

}  // namespace swarm::job
