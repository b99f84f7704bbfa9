// swarm_pipe: a Petals-style swarm as an MPI job. Thin main; the job lives in src/job.
#include "swarm/job/pipeline.hpp"

int main(int argc, char** argv) { return swarm::job::run_swarm_pipe(argc, argv); }
