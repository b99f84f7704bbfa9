#pragma once
// A span of blocks: the one range type of the balancing core, the simulator, the job and the
// executors.

namespace swarm {

/// A half-open range of blocks [start, end).
struct Span {
  int start = 0;
  int end = 0;
  [[nodiscard]] constexpr int length() const { return end - start; }
  [[nodiscard]] constexpr bool contains(int block) const { return start <= block && block < end; }
  /// Whether `inner` (itself well formed: start <= end) lies within this span.
  [[nodiscard]] constexpr bool contains(Span inner) const {
    return start <= inner.start && inner.start <= inner.end && inner.end <= end;
  }
  friend constexpr bool operator==(const Span&, const Span&) = default;
};

}  // namespace swarm
