// Targets for the exact search (see placement_targets.hpp).
//
// Bottom probes gallop up from the best placement: the next target above it, then 2, 4, ...
// targets up while reached (reached targets near the best are found fast, and a reached target
// often brings a placement well above it). An unreachable one lowers the bound and the gallop
// restarts; one that runs out of its time (half of what is left) caps the later ones. The
// lowest open target, when it is the only one, gets all the time left (also just after a
// reach, whose gallop would ask for the next but one): its unreachability is the proof.
//
// Top probes gallop down from the bound: the highest open target, then 2, 4, ... targets below
// it while refuted (in steps of a sixteenth of the open range where more than 16 values are
// open). Targets well above the optimum are refuted fast, so they bring the bound down cheaply
// while the bottom's target may take long either way. The highest target gets a slice of
// the search time, a jump below it a quarter of that; a jump that times out restarts the gallop
// at the bound. When the highest target times out, the top walks down: the next step below it,
// with the same slice, and so on while they time out. Below a target that timed out the next is
// often decided fast: reached if it is the optimum (reaching is fastest near the optimum, where
// the target prunes most), or refuted, which refutes the ones above too. Asking the same target
// again with more time instead left a six-class swarm 100 below a target reached in 0.2 s. At
// the lowest target the top may try, it waits until a bottom probe has timed out too (or the
// bottom has nothing left below the targets it timed out on), and then walks again from the
// highest with twice the slice, as it does after a walk's reach (what is open above timed out).
// A wide search that times out waits at once: there the search rarely decides, and the time is
// better left to the integer programme and the tabu rounds.
#include "placement_targets.hpp"

#include <algorithm>
#include <limits>

namespace swarm::detail {
namespace {
constexpr double kSame = 1e-12;  // relative: sums in another order round a hair differently
// The top's steps are at least a fraction of the open range, of coverage values or (continuous
// targets) of units: one value a step never reaches the optimum where values are dense
// (docs/placement.md, "Tuned constants").
constexpr long kTopChunksOfValues = 16;
constexpr long kTopChunksOfUnits = 64;
long top_chunk(long open, long chunks) { return std::max<long>(1, open / chunks); }
}

TargetSchedule::TargetSchedule(std::span<const double> values, double unit, double best, double bound,
                               double top_slice)
    : values_(values),
      unit_(unit),
      best_(best),
      bound_(bound),
      top_slice_(top_slice),
      unknown_(std::numeric_limits<double>::infinity()) {}

std::optional<TargetSchedule::Probe> TargetSchedule::next(double time_left) {
  if (time_left <= 0) return std::nullopt;
  double target = 0.0;
  bool top = false, top_open = false;
  bool lowest = false;  // the bottom's target is the lowest open one
  top_jumped_ = false;
  if (!values_.empty()) {
    const auto lo = std::upper_bound(values_.begin(), values_.end(), best_ * (1 + kSame));
    const auto hi = std::upper_bound(values_.begin(), values_.end(), bound_ * (1 + kSame));
    const auto bottom_hi = std::min(hi, std::lower_bound(values_.begin(), values_.end(), unknown_ * (1 - kSame)));
    if (lo >= hi) {
      bound_ = std::min(bound_, best_);  // no coverage value above the best placement is left
      return std::nullopt;
    }
    // The lowest open target is the bottom's, unless the bottom timed out on it.
    const auto top_lo = lo < bottom_hi ? std::next(lo) : lo;
    top_open = top_lo < hi;
    if (lo >= bottom_hi) stop_waiting();
    top = !top_waits_ && top_open;
    if (top) {
      const long open = hi - top_lo;
      const long down = std::min<long>((top_step_ + top_walk_) * top_chunk(open, kTopChunksOfValues), open);
      target = *(hi - down);
      top_jumped_ = top_step_ > 1 && down > 1;
      top_at_floor_ = down == open;
    } else {
      if (lo >= bottom_hi) return std::nullopt;  // what is left timed out
      const long up = std::min<long>(step_, bottom_hi - lo);
      target = *(lo + up - 1);
      lowest = up == 1;
    }
  } else {
    const double top_lo = best_ + 2 * unit_;
    top_open = bound_ - unit_ > top_lo;
    if (best_ + unit_ >= std::min(bound_, unknown_)) stop_waiting();
    top = !top_waits_ && top_open;
    if (top) {
      const double units = unit_ > 0 ? std::min((bound_ - best_) / unit_, 1e15) : 0.0;
      const double chunk = unit_ * static_cast<double>(top_chunk(static_cast<long>(units), kTopChunksOfUnits));
      target = std::max(bound_ - static_cast<double>(top_step_ + top_walk_) * chunk, top_lo);
      top_jumped_ = top_step_ > 1;
      top_at_floor_ = target <= top_lo;
    } else {
      const double cap = std::min(bound_, unknown_);
      if (best_ + unit_ >= cap) return std::nullopt;
      target = std::min(best_ + static_cast<double>(step_) * unit_, 0.5 * (best_ + cap));
      target = std::max(target, best_ + unit_);
      lowest = target <= best_ + unit_;
    }
  }
  const double seconds = top ? std::min((top_jumped_ ? 0.25 : 1.0) * top_slice_, time_left)
                             : (lowest && !top_open ? 1.0 : 0.5) * time_left;
  last_ = {target, top, top && top_walk_ > 0, seconds};
  return last_;
}

void TargetSchedule::timed_out(bool wide) {
  if (last_.top && top_jumped_) {
    top_step_ = 1;
  } else if (last_.top && !top_at_floor_ && !wide) {
    ++top_walk_;  // the next one down, with the same slice
  } else if (last_.top) {
    top_waits_ = true;
    top_waited_wide_ = wide;
    top_walk_ = 0;
  } else {
    unknown_ = std::min(unknown_, last_.target);
    step_ = 1;
    stop_waiting();
  }
}

void TargetSchedule::stop_waiting() {
  if (top_waits_ && !top_waited_wide_) {
    top_waits_ = false;
    top_slice_ *= 2;
  }
}

void TargetSchedule::unreachable() {
  // The optimum is below the target: at most the coverage value just below it when targets
  // are coverage values.
  double below = last_.target;
  if (!values_.empty()) {
    const auto at = std::lower_bound(values_.begin(), values_.end(), last_.target * (1 - kSame));
    below = at == values_.begin() ? 0.0 : *std::prev(at);
  }
  bound_ = std::min(bound_, std::max(below, best_));
  if (last_.top) {
    top_step_ *= 2;
    top_walk_ = 0;  // the target was the highest open one, or a walk's: the gallop goes on below it
  } else {
    step_ = 1;
  }
}

void TargetSchedule::reached(double value) {
  best_ = std::max(best_, value);
  bound_ = std::max(bound_, best_);
  if (last_.top) {
    top_step_ = 1;
    // A walk's targets above this one all timed out with this slice: they get twice the slice.
    if (top_walk_ > 0) top_slice_ *= 2;
    top_walk_ = 0;
  } else {
    step_ *= 2;
  }
}

}  // namespace swarm::detail
