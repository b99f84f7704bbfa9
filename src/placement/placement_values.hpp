#pragma once
// Internal to placement.cpp: the values a block's coverage can take. The optimum is one of them,
// so bounds round down to one and the search's targets step through them.
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "placement_search.hpp"

namespace swarm::detail {

/// The largest g > 0 of which every positive throughput is a whole multiple, where the
/// throughputs have at most six decimal places; 0 when they do not (or none is positive).
[[nodiscard]] double throughput_grid(std::span<const SearchClass> classes);

/// The sorted sums sum_c t_c * m_c (0 <= m_c <= count_c) up to `upper`; nothing when there would
/// be more than `cap` (many distinct throughputs: targets and bounds then stay continuous).
[[nodiscard]] std::optional<std::vector<double>> coverage_values(std::span<const SearchClass> classes, double upper,
                                                                 std::size_t cap = std::size_t{1} << 21);

}  // namespace swarm::detail
