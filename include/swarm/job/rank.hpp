#pragma once
// One rank of swarm_pipe over a fabric (MPI in the job, in-process threads in tests): set-up,
// then epochs of traffic and boundaries. docs/job.md.
#include <atomic>
#include <string>

#include "swarm/comm/fabric.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/record.hpp"
#include "swarm/config/job_file.hpp"
#include "swarm/model/executor.hpp"

namespace swarm::job {

struct RankOptions {
  model::Backend backend = model::Backend::cpu;
  int device = 0;                               ///< CUDA device of this rank
  comm::TransportKind transport = comm::TransportKind::mpi;  ///< for the trace's metadata
  const std::atomic<bool>* terminate = nullptr;  ///< set when this rank got SIGTERM or SIGINT
  std::vector<EpochRecord>* records = nullptr;   ///< rank 0: filled with every epoch's record
};

/// Runs the job on this rank; every rank of the fabric calls it. Returns the exit status: 0 done,
/// 2 bad input (one message from rank 0, every rank out), 3 stopped early by a signal with a
/// complete trace, 4 the epochs ran out before every prompt was answered. A failure during the
/// run ends every rank through Fabric::abort.
int run_rank(comm::Fabric& fabric, const JobConfig& config, const JobFile& file, const RankOptions& options);

/// The largest packet header a job of `ranks` ranks sends (the fabric's receive size).
[[nodiscard]] std::size_t job_header_bytes(const JobConfig& config, int ranks);

}  // namespace swarm::job
