#pragma once
// swarm_pipe's entry point: MPI world, options, the epoch loop (docs/job.md).

namespace swarm::job {

/// Runs the job on every rank; returns the process exit status: 0 done, 2 bad input (one
/// message from rank 0, every rank out), 3 stopped early by SIGTERM/SIGINT with a complete
/// trace. Failures during the run abort the job with a message (MPI_Abort).
int run_swarm_pipe(int argc, char** argv);

}  // namespace swarm::job
