#pragma once
// Every MPI tag of the job. Tags live ONLY here: add a new enumerator when the job needs one,
// never pass an integer literal as a tag to MPI (two literals that happen to be equal make
// messages of different kinds match each other, which is a silent, timing-dependent bug).
#include <string_view>

namespace swarm::comm {

enum class Tag : int {
  header = 1,        // a request header: session, step, block range, sizes, next hop
  activation = 2,    // hidden states on the MPI transport (its own communicator)
  test = 900,        // tests only
  bench = 901,       // benchmarks only (raw MPI reference traffic)
};

[[nodiscard]] constexpr int to_mpi(Tag tag) noexcept { return static_cast<int>(tag); }

[[nodiscard]] constexpr std::string_view to_string(Tag tag) noexcept {
  switch (tag) {
    case Tag::header: return "header";
    case Tag::activation: return "activation";
    case Tag::test: return "test";
    case Tag::bench: return "bench";
  }
  return "unknown";
}

}  // namespace swarm::comm
