#pragma once
// `swarm_sim dispatch --job FILE.ini --trace OUT.h5`: request-dispatch studies (docs/dispatch.md).
#include <string>
#include <vector>

namespace swarm {

/// Runs a dispatch study from command-line arguments (those after "dispatch"); returns the
/// process exit code (0 ok, 2 bad input, 1 failure, 3 stopped by a signal).
int run_dispatch_study(const std::vector<std::string>& args);

}  // namespace swarm
