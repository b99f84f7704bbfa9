#pragma once
// `swarm_sim what-if`: operators (and the reference checker) ask what the Petals rules would
// do on a given swarm. JSON Lines in, one JSON line of answers per input line out, in order.
// Format: docs/what-if.md.
#include <iosfwd>

namespace swarm {

/// Answers every line of `in` on `out`. At the first malformed line it writes a message naming
/// the line number and the field to `err` and returns 2 (the answers before it stay written);
/// returns 0 when every line was answered. Blank lines are skipped.
int run_what_if(std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace swarm
