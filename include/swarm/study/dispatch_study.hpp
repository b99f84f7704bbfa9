#pragma once
// `swarm_sim dispatch --job FILE.ini --trace OUT.h5`: request-dispatch studies
// (docs/dispatch-study.md). Every policy of the study runs on the same workers (routes derived
// from a modelled swarm with churn and changing speeds) and the same sessions.
//
// The pure part (the study's config, the swarm-to-routes model and the sessions) is declared
// here so that it can be tested without files; the job file, the trace and the table live in
// src/study.
#include <boost/program_options.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "swarm/dispatch/engine.hpp"
#include "swarm/dispatch/policy.hpp"
#include "swarm/sim/simulator.hpp"
#include "swarm/balance/strategy.hpp"

namespace swarm {

/// Runs a dispatch study from command-line arguments (those after "dispatch"); returns the
/// process exit code (0 ok, 2 bad input, 1 failure, 3 stopped by a signal).
int run_dispatch_study(const std::vector<std::string>& args);

/// The dispatch study's job keys (swarm_sim dispatch --help lists them).
[[nodiscard]] boost::program_options::options_description dispatch_job_schema();

}  // namespace swarm

namespace swarm::study {

/// A kind of server ([class.NAME]): the simulator's device class (sim::DeviceClass: share,
/// span, block_rps, bandwidth_mbps, relay_fraction, load_seconds_per_block, compute_jitter)
/// plus how its speed changes over time.
struct ServerClass {
  sim::DeviceClass device;
  /// Sigma of a mean-one lognormal factor on the server's speed, redrawn at every change
  /// (other loads on a volunteer's machine). 0: the speed never changes.
  double speed_sigma = 0.0;
  /// Mean seconds between changes (exponential gaps).
  double speed_interval_s = 60.0;
};

/// How diffusion's neighbour graph is built over the workers (routes).
enum class DiffusionGraphKind {
  ring,    // the policy's own ring over the live workers (DiffusionOptions::neighbours empty)
  routes,  // graph_from_routes: routes sharing a server are neighbours
  random,  // random_graph over all worker ids, with as many extra edges as workers
};

struct StudyConfig {
  std::uint64_t seed = 1;
  /// Churn and speed changes are drawn on [0, horizon_s]; after it the swarm stays as it is.
  double horizon_s = 3600.0;

  // [model]
  int blocks = 80;
  int hidden_size = 8192;

  // [swarm]
  StrategyKind placement = StrategyKind::new_only;  // none or new_only (rule 1) for joiners
  double min_route_speed = 1.0;                     // tokens/s; thinner chains are not formed

  // [churn]
  int initial_servers = 0;      // online at t = 0 (already loaded)
  double arrival_rate = 0.0;    // Poisson server joins per second on (0, horizon]
  double mean_lifetime = 0.0;   // exponential lifetime of random servers; 0 = forever
  std::vector<sim::ScheduledJoin> joins;
  std::vector<sim::ScheduledLeave> leaves;
  std::vector<ServerClass> classes;

  // [workload]
  std::size_t sessions = 1000;
  double session_rate = 0.0;  // Poisson sessions per second; 0 = one batch at t = 0
  int prompt_tokens_min = 128;
  int prompt_tokens_max = 1024;
  int new_tokens_min = 32;
  int new_tokens_max = 256;
  double prompt_weight = 1.0;  // cost of a prompt token in units of a generated token

  // [engine], [dispatch]
  dispatch::EngineOptions engine;
  std::vector<dispatch::PolicyKind> policies;
  dispatch::DispatchOptions dispatch;  // diffusion.neighbours is built from diffusion_graph
  DiffusionGraphKind diffusion_graph = DiffusionGraphKind::ring;
};

/// The simulator's SimConfig for sim::plan_servers (the churn trace) of this study.
[[nodiscard]] sim::SimConfig churn_config(const StudyConfig& config);

/// One server of the run: its plan, the span it chose when it joined, when it came online, and
/// its speed factor over time (1 when it comes online: it announced what it measured then).
struct ServerRecord {
  sim::ServerPlan plan;
  Span span;
  double online_time = std::numeric_limits<double>::infinity();  // inf: left while loading
  std::vector<dispatch::SpeedChange> factor;                       // (time, factor), ascending
};

/// A route: a chain of servers covering blocks 0..L, one worker of the dispatch study. Every
/// hop reserves `allocation` tokens/s of its announced throughput for it; its real speed at t
/// is allocation * min over hops of their speed factor at t.
struct Route {
  std::vector<std::uint32_t> hops;  // indices into SwarmModel::servers, in block order
  double allocation = 0.0;          // tokens/s reserved on every hop (= announced speed)
  dispatch::WorkerSpec worker;      // name, speeds, join and leave time for the engine
};

struct SwarmModel {
  std::vector<ServerRecord> servers;
  std::vector<Route> routes;              // worker i of the engine is routes[i]
  double swarm_throughput_at_start = 0;   // min over blocks of the online servers' throughput
  double route_capacity_at_start = 0;     // sum of the allocations of the routes at t = 0
  std::size_t routes_at_start = 0;
  std::size_t routes_broken = 0;          // routes ended because a hop left
};

/// Places the servers (rule 1 for joiners, in join order), then derives routes: after every
/// instant at which servers come online or leave, chains are formed greedily from the
/// capacity not yet reserved, each time the widest one (largest bottleneck; ties: fewer hops,
/// then lower server indices), until no chain reaches min_route_speed. A server leaving ends
/// every route through it and frees the other hops' reservations. Deterministic in the seed.
[[nodiscard]] SwarmModel build_swarm(const StudyConfig& config);

/// The sessions: prompt and new tokens uniform in their ranges, work = prompt_weight * prompt
/// + new (tokens), random 64-bit session ids, arrivals all at 0 or Poisson.
struct Sessions {
  std::vector<dispatch::Task> tasks;
  std::vector<std::int32_t> prompt_tokens;
  std::vector<std::int32_t> new_tokens;
};
[[nodiscard]] Sessions make_sessions(const StudyConfig& config);

/// The diffusion options for this swarm (neighbours built per config.diffusion_graph).
[[nodiscard]] dispatch::DispatchOptions dispatch_options(const StudyConfig& config, const SwarmModel& swarm);

}  // namespace swarm::study
