#include "swarm/dispatch_study.hpp"

#include <iostream>

namespace swarm {

int run_dispatch_study(const std::vector<std::string>&) {
  std::cerr << "swarm_sim dispatch: not built yet\n";
  return 1;
}

}  // namespace swarm
