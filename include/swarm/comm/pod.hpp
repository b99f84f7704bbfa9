#pragma once
// What may travel between ranks byte for byte (one build on every rank).
#include <type_traits>

namespace swarm::comm {

template <typename T>
concept Pod = std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>;

}  // namespace swarm::comm
