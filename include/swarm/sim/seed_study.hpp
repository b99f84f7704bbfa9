#pragma once
// swarm_sim --run.seeds LIST: the study once per seed, spread over the MPI ranks when the
// program runs under mpirun/srun, one trace written by rank 0 (docs/simulator.md, "Seeds").
//
// Seed i of the list runs on rank i mod N; its strategies stay together because they share the
// bound lane's optimal placement, the dominant cost of a run. Every rank keeps its finished
// runs (packed) until all are done, then rank 0 receives them in list order and writes them, so
// the trace is the same for any N. A rank whose run throws tells the others, which stop at the
// end of their current period; rank 0 prints the one message, and no trace is left behind.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "swarm/sim/simulator.hpp"
#include "swarm/trace/sim_trace.hpp"

namespace swarm::sim {

/// The MPI world as the study sees it; size 1 without MPI.
struct StudyWorld {
  int rank = 0;
  int size = 1;
  bool mpi = false;
};

struct SeedStudy {
  SimConfig config;                 // its seed is replaced by each of `seeds`
  std::vector<std::uint64_t> seeds;
  std::string seeds_text;           // as given, for the trace
  RunMetadata meta;
  std::string trace_path;           // written by rank 0 only
  bool quiet = false;
  std::function<bool()> stop;       // SIGTERM/SIGINT on this rank
};

/// Runs the study; returns the exit status (0, 1 a run failed, 3 stopped by a signal with the
/// seeds that finished in the trace). `trace` is rank 0's open trace file (null elsewhere).
[[nodiscard]] int run_seed_study(const SeedStudy& study, const StudyWorld& world, trace::File* trace);

}  // namespace swarm::sim
