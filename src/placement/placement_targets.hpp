#pragma once
// Internal to placement.cpp: which target the exact search decides next, between the best
// placement found and the certified bound. A pure policy (no search, no clock), so that its
// soundness and what it does with time are tested on modelled outcomes.
#include <optional>
#include <span>

namespace swarm::detail {

class TargetSchedule {
 public:
  struct Probe {
    double target;
    bool top;        // galloping down from the bound (else up from the best placement)
    bool walk;       // a top probe below targets that timed out: as likely reached as refuted
    double seconds;  // the most this probe may take
  };

  /// `values`: the sorted coverage values (the optimum is one of them), or empty, and then
  /// targets are continuous, `unit` apart at the finest. `top_slice`: the seconds a top probe
  /// of the highest target gets first.
  TargetSchedule(std::span<const double> values, double unit, double best, double bound, double top_slice);

  [[nodiscard]] double best() const { return best_; }
  [[nodiscard]] double bound() const { return bound_; }

  /// The next probe, given the search time left; none when nothing is left to try (the best
  /// placement is proven optimal, or what is open timed out).
  [[nodiscard]] std::optional<Probe> next(double time_left);

  /// The last probe's outcome. `wide`: its branching turned wide (many classes).
  void timed_out(bool wide);
  void unreachable();
  void reached(double value);  // a placement worth `value` (at least the target)

 private:
  void stop_waiting();  // the top tries its highest target again, with twice the slice

  std::span<const double> values_;
  double unit_;
  double best_;
  double bound_;
  double top_slice_;
  Probe last_{};
  double unknown_;  // bottom targets from here on timed out
  long step_ = 1;   // the bottom's gallop
  long top_step_ = 1;
  bool top_jumped_ = false;  // the last top probe was below the highest target
  long top_walk_ = 0;         // steps below the highest target, each after a time-out above
  bool top_at_floor_ = false;  // the last top probe was the lowest the top may try
  bool top_waits_ = false;
  bool top_waited_wide_ = false;
};

}  // namespace swarm::detail
