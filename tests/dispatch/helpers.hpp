#pragma once
// Small builders for the dispatch tests (designated initialisers of WorkerSpec trip GCC 12's
// -Wmissing-field-initializers, and "literal" + std::to_string its -Wrestrict).
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "swarm/dispatch/engine.hpp"

namespace swarm::dispatch::test {

inline WorkerSpec worker(double speed, double leave_time = std::numeric_limits<double>::infinity(),
                         std::vector<SpeedChange> changes = {}) {
  WorkerSpec w;
  w.speed = speed;
  w.leave_time = leave_time;
  w.speed_changes = std::move(changes);
  return w;
}

inline std::string numbered(std::string_view prefix, std::size_t i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

}  // namespace swarm::dispatch::test
