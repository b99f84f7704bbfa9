// A small MPI program whose behaviour the ctest scripts check from outside (exit code, stderr,
// time): agreement on errors and aborting a job whose other ranks are blocked.
//   comm_probe agree-one       the last rank fails; every rank must return false
//   comm_probe agree-several   ranks 1 and 3 fail alike, rank 2 differently
//   comm_probe agree-none      nobody fails
//   comm_probe abort           rank 1 aborts while the others wait in a barrier that never ends
// Exit code: 0 when agree() returned what was expected on every rank (agree-*), 3 otherwise.
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "swarm/comm/control.hpp"
#include "swarm/comm/failure.hpp"

namespace {

using swarm::comm::Communicator;

[[nodiscard]] int expect_agreement(const Communicator& comm, std::optional<std::string> error, bool expected) {
  const bool ok = swarm::comm::agree(comm, std::move(error));
  std::printf("rank %d: agree returned %s\n", comm.rank(), ok ? "true" : "false");
  std::fflush(stdout);
  const std::vector<int> all = swarm::comm::allgather_values(comm, ok == expected ? 1 : 0);
  for (int v : all)
    if (!v) return 3;
  return 0;
}

[[nodiscard]] int run(const Communicator& comm, std::string_view mode) {
  const int rank = comm.rank();
  const int last = comm.size() - 1;
  if (mode == "agree-one")
    return expect_agreement(comm, rank == last ? std::optional<std::string>("cannot read job file 'x.job': no such file")
                                               : std::nullopt,
                            false);
  if (mode == "agree-several") {
    std::optional<std::string> error;
    if (rank == 1 || rank == 3) error = "blocks 0-7 do not fit: 9.1 GiB needed, 8.0 GiB free";
    if (rank == 2) error = "weights.safetensors: tensor 'layers.3.mlp' missing";
    return expect_agreement(comm, error, false);
  }
  if (mode == "agree-none") return expect_agreement(comm, std::nullopt, true);
  if (mode == "abort") {
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the others are blocked by now
      swarm::comm::abort_job(comm, "peer 3 stopped answering (test abort)", 7);
    }
    MPI_Barrier(MPI_COMM_WORLD);  // blocks for ever without the abort: rank 1 never joins
    return 0;
  }
  if (rank == 0) std::fprintf(stderr, "comm_probe: unknown mode '%.*s'\n", static_cast<int>(mode.size()), mode.data());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  swarm::comm::MpiWorld world(argc, argv);
  world.set_timeout(swarm::comm::Seconds(20.0));
  return run(world.comm(), argc > 1 ? argv[1] : "");
}
