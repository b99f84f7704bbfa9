#pragma once
// The offline swarm simulator: modelled servers join and leave in simulated time, and every
// strategy of the study runs on the same churn (same seed, same joins and leaves), in lockstep
// period by period so that the optimal placement can use every strategy's spans as hints.
// Pure: no I/O; results go to a SimObserver (the trace writer, a test).
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "swarm/balance/strategy.hpp"

namespace swarm::sim {

/// A kind of server: GPU, memory and link (the job file's [class.NAME] tables).
struct DeviceClass {
  std::string name;
  double share = 1.0;                 // relative frequency among random servers
  int span = 1;                       // blocks it holds (fixed by its memory)
  double block_rps = 1000.0;          // compute: tokens/s through one block
  double bandwidth_mbps = 1000.0;     // min(download, upload)
  double relay_fraction = 0.0;        // share of these servers reachable only through a relay
  double load_seconds_per_block = 1;  // time to load one block's weights
  double compute_jitter = 0.0;        // sigma of a mean-one lognormal factor on block_rps
  double speed_drift = 0.0;           // sigma per sqrt(hour) of each server's compute random walk
  double leave_at = std::numeric_limits<double>::infinity();  // the whole class leaves then
};


struct ScheduledJoin {
  double time;
  std::string device_class;
};
struct ScheduledLeave {
  double time;
  std::string server_id;
};
/// `count` random servers joining at U(time, time + window): a flash crowd.
struct FlashCrowd {
  double time = 0;
  int count = 0;
  double window = 0;
};

struct SimConfig {
  int blocks = 80;
  int hidden_size = 8192;
  double duration = 3600;  // simulated seconds
  double period = 60;      // balancing period; metrics are sampled at every boundary
  std::uint64_t seed = 1;
  std::vector<std::uint64_t> seeds;  // --run.seeds: the study once per seed (empty: one run with `seed`)
  std::vector<StrategyKind> strategies{StrategyKind::none, StrategyKind::new_only, StrategyKind::full,
                                       StrategyKind::upper_bound, StrategyKind::move_aware};
  double balance_quality = 0.75;
  CheckMode check = CheckMode::every_boundary;
  double mean_check_period = 60;
  double placement_time_limit = 1.0;  // seconds per period for the optimal placement
  bool placement_reproducible = true; // ... counted in work, so the same seed gives the same trace
  double move_horizon = 1800;         // move_aware: seconds over which a move's gain is counted
  double move_min_interval = 600;     // move_aware: seconds a server that moved stays put
  double move_min_gain = 0;           // move_aware: least relative gain a plan must promise
  int initial_servers = 0;
  double initial_join_window = 0;     // initial servers join at U(0, window)
  double arrival_rate = 0;            // Poisson joins per second
  double mean_lifetime = 0;           // exponential lifetime of random servers; 0 = forever
  std::vector<DeviceClass> classes;
  std::vector<ScheduledJoin> joins;
  std::vector<ScheduledLeave> leaves;
  FlashCrowd flash_crowd;
};

/// One server of the run, decided before any strategy acts (the churn trace).
struct ServerPlan {
  std::string id;
  std::size_t device_class = 0;
  int span = 1;
  double throughput = 0;  // announced at its join
  /// With speed drift: the announced throughput from boundary p on (index p - 1); empty: fixed.
  std::vector<double> drifted;
  double load_time = 0;   // seconds to load its span
  double compute_rps = 0; // tokens/s through one block (after jitter)
  bool relay = false;
  double join_time = 0;
  double leave_time = std::numeric_limits<double>::infinity();
};

/// Draws the churn trace; the same config and seed always give the same plans, sorted by join
/// time, with ids s00000, s00001, ... in that order.
[[nodiscard]] std::vector<ServerPlan> plan_servers(const SimConfig& config);

/// Server state in the per-period records (0 = not in the swarm).
enum class Presence : std::uint8_t { absent = 0, offline = 1, joining = 2, online = 3 };

struct PeriodRecord {
  int period = 0;
  double time = 0;
  // What clients got: min over blocks of the online servers' throughput, averaged over the
  // period (a mover is offline for exactly its reload time, a joiner until it has loaded).
  double swarm_throughput = 0;
  double swarm_throughput_sampled = 0;  // the same at the boundary, after the strategy acted
  double upper_bound = 0;               // best placement found for the servers present at the boundary
  double upper_bound_certified = 0;     // proven: no placement of them does better
  int moves = 0;                        // servers that changed span in the period or at its boundary
  double reload_downtime = 0;           // server-seconds of reloading those moves cost
  // move_aware: the swarm throughput (joining servers counted at their new spans) it planned for
  // at the boundary, and what its moves there were to add to it; what the swarm then got is
  // the next period's swarm_throughput.
  double planned_throughput = 0;
  double expected_gain = 0;
  double disjoint_time = 0;             // seconds of the period in which some block had no online server
  bool disjoint = false;                // disjoint at the boundary, after the strategy acted
  int online = 0;
  int present = 0;
  std::vector<double> block_throughput;  // online, per block
  std::vector<std::int32_t> span_start;  // per plan index; -1 when absent
  std::vector<std::int32_t> span_end;
  std::vector<std::uint8_t> presence;    // Presence per plan index
};

struct StrategySummary {
  StrategyKind kind;
  int periods = 0;
  double mean_throughput = 0;
  double mean_ratio = 0;         // mean of swarm_throughput / upper_bound over periods with a bound > 0
  double disjoint_fraction = 0;  // share of the run's time with a disjoint swarm
  long moves = 0;
  double reload_downtime = 0;    // server-seconds
  double mean_bound_gap = 0;     // mean (certified - found) / certified of the upper bound
};

class SimObserver {
 public:
  virtual ~SimObserver() = default;
  virtual void on_start(const SimConfig&, const std::vector<ServerPlan>&) {}
  virtual void on_period(StrategyKind, const PeriodRecord&) = 0;
  /// All strategies have recorded this period (the trace flushes here).
  virtual void on_period_end(int /*period*/) {}
};

struct SimResult {
  std::vector<StrategySummary> summaries;
  int periods_run = 0;
  bool stopped_early = false;
};

/// Runs every strategy of the config period by period. `stop` is polled at each boundary
/// (SIGTERM); when it returns true the run ends there with every record so far delivered.
[[nodiscard]] SimResult run(const SimConfig& config, SimObserver& observer,
                            const std::function<bool()>& stop = {});

}  // namespace swarm::sim
