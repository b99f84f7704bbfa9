// main() of the MPI test programs (see mpi_test_main.hpp).
#include "mpi_test_main.hpp"

#include <gtest/gtest.h>

#include <cstdio>

#include "swarm/comm/control.hpp"

namespace swarm::comm::testing {
namespace {

MpiWorld* the_world = nullptr;  // set once in main, before any test runs

/// On ranks other than 0: one line per failed assertion, naming the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, result.file_name() ? result.file_name() : "?",
                 result.line_number(), result.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::fprintf(stderr, "[rank %d] FAILED %s.%s\n", rank_, info.test_suite_name(), info.name());
  }

 private:
  int rank_;
};

}  // namespace

MpiWorld& world() { return *the_world; }

}  // namespace swarm::comm::testing

int main(int argc, char** argv) {
  swarm::comm::MpiWorld world(argc, argv);
  world.set_timeout(swarm::comm::Seconds(20.0));
  swarm::comm::testing::the_world = &world;
  ::testing::InitGoogleTest(&argc, argv);
  if (world.comm().rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new swarm::comm::testing::RankFailurePrinter(world.comm().rank()));
  }
  const int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  const std::vector<int> all = swarm::comm::allgather_values(world.comm(), failed);
  int any = 0;
  for (int f : all) any |= f;
  if (any && world.comm().rank() == 0) std::fprintf(stderr, "swarm comm tests: some rank failed\n");
  return any;
}
