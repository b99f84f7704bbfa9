#pragma once
// GoogleTest under mpiexec: every rank runs every test; the MPI world is created once by main
// (mpi_test_main.cpp) and reached through world(). Only rank 0 prints the usual report; other
// ranks print their failures with their rank. The exit code is non-zero when any rank failed.
#include "swarm/comm/mpi_world.hpp"

namespace swarm::comm::testing {

/// The process's world (valid for the whole test run). Its communicators time out after 20 s,
/// so a test that breaks the collective order fails instead of hanging ctest.
[[nodiscard]] MpiWorld& world();

}  // namespace swarm::comm::testing
