#pragma once
// One wording for rejected parameters, used by every part of the library:
//   "dispatch option <name> = <value> is invalid: <why>"
#include <sstream>
#include <stdexcept>
#include <string_view>

namespace swarm::dispatch::detail {

template <typename T>
[[noreturn]] void reject_option(std::string_view name, const T& value, std::string_view why) {
  std::ostringstream os;
  os << "dispatch option " << name << " = " << value << " is invalid: " << why;
  throw std::invalid_argument(os.str());
}

}  // namespace swarm::dispatch::detail
