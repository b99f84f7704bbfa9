#include "swarm/sim/sim_job.hpp"

#include "swarm/sim/seeds.hpp"

#include <cmath>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace swarm::sim {
namespace {

DeviceClass device_class(const JobFile& job, const Table& t, int blocks) {
  DeviceClass d;
  d.name = t.name;
  for (const auto& [field, raw] : t.values) {
    if (!parse_device_key(job, t.name, field, raw, blocks, d)) {
      job.fail("class." + t.name + "." + field, raw, std::string("unknown key (a class has ") + kDeviceKeys + ")");
    }
  }
  if (!t.values.count("span")) job.fail("class." + t.name + ".span", "", "missing: every class needs a span");
  return d;
}

}  // namespace

std::vector<std::pair<double, std::string>> parse_schedule(const JobFile& job, const std::string& key, double limit,
                                                           const std::string& limit_key) {
  std::vector<std::pair<double, std::string>> out;
  for (const auto& item : split_list(job.get<std::string>(key))) {
    std::istringstream in(item);
    std::string time, name, extra;
    in >> time >> name >> extra;
    if (name.empty() || !extra.empty()) job.fail(key, item, "each item must be 'TIME NAME'");
    const double t = parse_number(job, key, time);
    if (!(t >= 0 && t <= limit)) job.fail(key, item, "time must be in [0, " + limit_key + "]");
    out.emplace_back(t, name);
  }
  return out;
}

bool parse_device_key(const JobFile& job, const std::string& name, const std::string& field, const std::string& raw,
                      int blocks, DeviceClass& d) {
  const std::string key = "class." + name + "." + field;
  const auto number = [&] { return parse_number(job, key, raw); };
  const auto need = [&](double v, bool ok, const std::string& why) {
    if (!ok || !std::isfinite(v)) job.fail(key, raw, why);
    return v;
  };
  if (field == "share") {
    const double v = number();
    d.share = need(v, v >= 0, "must be >= 0");
  } else if (field == "span") {
    const double v = number();
    need(v, v >= 1 && v <= blocks && v == std::floor(v),
         "must be a whole number of blocks in 1.." + std::to_string(blocks) + " (model.blocks)");
    d.span = static_cast<int>(v);
  } else if (field == "block_rps") {
    const double v = number();
    d.block_rps = need(v, v > 0, "must be > 0 (tokens/s through one block)");
  } else if (field == "bandwidth_mbps") {
    const double v = number();
    d.bandwidth_mbps = need(v, v > 0, "must be > 0");
  } else if (field == "relay_fraction") {
    const double v = number();
    d.relay_fraction = need(v, v >= 0 && v <= 1, "must be in [0, 1]");
  } else if (field == "load_seconds_per_block") {
    const double v = number();
    d.load_seconds_per_block = need(v, v >= 0, "must be >= 0");
  } else if (field == "compute_jitter") {
    const double v = number();
    d.compute_jitter = need(v, v >= 0 && v <= 2, "must be in [0, 2] (lognormal sigma)");
  } else if (field == "speed_drift") {
    const double v = number();
    d.speed_drift = need(v, v >= 0 && v <= 5, "must be in [0, 5] (sigma of the compute random walk per sqrt(hour))");
  } else if (field == "leave_at") {
    const double v = number();
    d.leave_at = need(v, v >= 0, "must be >= 0 (simulated seconds)");
  } else {
    return false;
  }
  return true;
}

po::options_description job_schema() {
  po::options_description d("Job keys (job file sections [model], [run], [churn], [class.NAME]; "
                            "any key can be overridden on the command line as --section.key VALUE)");
  d.add_options()
      ("model.blocks", po::value<long>()->default_value(80), "transformer blocks of the model (L)")
      ("model.hidden_size", po::value<long>()->default_value(8192), "hidden size: one token's activations are hidden_size * 16 bits")
      ("run.duration", po::value<double>()->default_value(3600), "simulated seconds")
      ("run.period", po::value<double>()->default_value(60), "balancing period in seconds; metrics are sampled at every boundary")
      ("run.seed", po::value<std::uint64_t>()->default_value(1), "seed of the churn trace and of every strategy's random stream")
      ("run.seeds", po::value<std::string>()->default_value(""), "run the study once per seed, e.g. 1-16 or 3,7,9-12 (run.seed is then not used); under mpirun/srun the seeds are spread over the ranks")
      ("run.strategies", po::value<std::string>()->default_value("none,new_only,full,upper_bound,move_aware"), "strategies to compare (none, new_only, full, upper_bound, move_aware)")
      ("run.balance_quality", po::value<double>()->default_value(0.75), "rule 2 threshold of `full` (paper: 0.99 for p = 1%)")
      ("run.check", po::value<std::string>()->default_value("every_period"), "when `full` servers check rule 2: every_period, or random (each waits U(0, 2*mean_check_period))")
      ("run.mean_check_period", po::value<double>()->default_value(60), "mean seconds between checks for check = random")
      ("run.placement_time_limit", po::value<double>()->default_value(1.0), "seconds per period for the optimal placement (exact search, CBC, tabu search)")
      ("run.placement_reproducible", po::value<bool>()->default_value(true), "count that limit in work (search nodes, tabu moves; CBC's root only), so the same seed gives the same trace; false: by the clock")
      ("run.move_horizon", po::value<double>()->default_value(1800), "move_aware: seconds over which a move's gain in swarm throughput is counted against its reload downtime (throughput x load time)")
      ("run.move_min_interval", po::value<double>()->default_value(600), "move_aware: seconds a server that moved stays where it is (no flapping)")
      ("run.move_min_gain", po::value<double>()->default_value(0.0), "move_aware: least relative gain in swarm throughput a plan must promise (0: any gain that pays for its reloads)")
      ("churn.initial_servers", po::value<long>()->default_value(0), "servers present from the start (classes drawn by share)")
      ("churn.initial_join_window", po::value<double>()->default_value(0), "initial servers join at U(0, window) seconds")
      ("churn.arrival_rate", po::value<double>()->default_value(0), "Poisson joins per second after the start")
      ("churn.mean_lifetime", po::value<double>()->default_value(0), "mean exponential lifetime of random servers in seconds (0: they never leave)")
      ("churn.joins", po::value<std::string>()->default_value(""), "scheduled joins 'TIME CLASS, ...' (never leave unless listed in churn.leaves)")
      ("churn.leaves", po::value<std::string>()->default_value(""), "scheduled leaves 'TIME SERVER_ID, ...' (ids s00000.. in join order)")
      ("churn.flash_crowd", po::value<std::string>()->default_value(""), "'TIME COUNT WINDOW': COUNT random servers (classes by share, lifetimes as churn.mean_lifetime) join at U(TIME, TIME + WINDOW); those after run.duration never join");
  return d;
}

// Swarms of up to this many servers in a run: far beyond the paper's hundreds, and what a
// period's rule-2 checks and per-server trace rows can hold in memory and time.
constexpr long kMaxServers = 100'000;

SimConfig load_config(const JobFile& job) {
  SimConfig c;
  c.blocks = static_cast<int>(job.integer("model.blocks", 1, 100000));
  c.hidden_size = static_cast<int>(job.integer("model.hidden_size", 1, 1 << 20));
  c.duration = job.positive("run.duration");
  c.period = job.positive("run.period");
  if (c.period > c.duration) {
    job.fail("run.period", format_number(c.period), "longer than run.duration (" + format_number(c.duration) + " s): no period would end");
  }
  if (c.duration / c.period > 1e6) {
    // Blamed on the one of the two the command line changed, if only one was.
    if (job.where("run.duration") != job.where("run.period") && job.where("run.duration") == "command line") {
      job.fail("run.duration", format_number(c.duration),
               "more than a million periods of run.period = " + format_number(c.period) + " s");
    }
    job.fail("run.period", format_number(c.period), "more than a million periods in run.duration");
  }
  c.seed = job.seed("run.seed");
  const std::string seeds = job.get<std::string>("run.seeds");
  if (!seeds.empty()) {
    try {
      c.seeds = parse_seeds(seeds);
    } catch (const std::invalid_argument& e) {
      job.fail("run.seeds", seeds, e.what());
    }
  }
  c.strategies.clear();
  std::set<StrategyKind> seen;
  const std::string names = job.get<std::string>("run.strategies");
  for (const auto& name : split_list(names)) {
    const auto k = parse_strategy(name);
    if (!k) job.fail("run.strategies", names, "unknown strategy '" + name + "' (none, new_only, full, upper_bound, move_aware)");
    if (!seen.insert(*k).second) job.fail("run.strategies", names, "strategy '" + name + "' listed twice");
    c.strategies.push_back(*k);
  }
  if (c.strategies.empty()) job.fail("run.strategies", names, "no strategy to run");
  c.balance_quality = job.non_negative("run.balance_quality");
  const std::string check = job.get<std::string>("run.check");
  if (check == "every_period") {
    c.check = CheckMode::every_boundary;
  } else if (check == "random") {
    c.check = CheckMode::random;
  } else {
    job.fail("run.check", check, "must be every_period or random");
  }
  c.mean_check_period = job.positive("run.mean_check_period");
  if (c.check == CheckMode::random && c.period / c.mean_check_period > 1000) {
    job.fail("run.mean_check_period", format_number(c.mean_check_period),
             "more than 1,000 rule-2 checks per server per period (run.period = " + format_number(c.period) + " s)");
  }
  c.placement_time_limit = job.in_range("run.placement_time_limit", 0, 3600);
  c.placement_reproducible = job.get<bool>("run.placement_reproducible");
  c.move_horizon = job.in_range("run.move_horizon", 0, 1e9);
  c.move_min_interval = job.in_range("run.move_min_interval", 0, 1e9);
  c.move_min_gain = job.in_range("run.move_min_gain", 0, 10);
  c.initial_servers = static_cast<int>(job.integer("churn.initial_servers", 0, kMaxServers));
  c.initial_join_window = job.non_negative("churn.initial_join_window");
  c.arrival_rate = job.non_negative("churn.arrival_rate");
  // Bounded before the servers are drawn: a rate of 1e20 would exhaust memory in the drawing.
  if (c.initial_servers + c.arrival_rate * c.duration > kMaxServers) {
    job.fail("churn.arrival_rate", format_number(c.arrival_rate),
             "churn.initial_servers + arrival_rate * run.duration would be more than " + std::to_string(kMaxServers) +
                 " servers");
  }
  c.mean_lifetime = job.non_negative("churn.mean_lifetime");

  for (const auto& t : job.tables("class")) c.classes.push_back(device_class(job, t, c.blocks));
  if (c.classes.empty()) job.fail("class", "", "no [class.NAME] section: at least one device class is needed");
  double shares = 0;
  for (const auto& d : c.classes) shares += d.share;
  if (!(shares > 0)) job.fail("class.*.share", "0", "the shares of the classes add up to 0");

  for (const auto& [t, name] : parse_schedule(job, "churn.joins", c.duration, "run.duration")) {
    const bool known = std::any_of(c.classes.begin(), c.classes.end(), [&](const DeviceClass& d) { return d.name == name; });
    if (!known) job.fail("churn.joins", name, "no [class." + name + "] section");
    c.joins.push_back({t, name});
  }
  for (const auto& [t, id] : parse_schedule(job, "churn.leaves", c.duration, "run.duration")) c.leaves.push_back({t, id});
  if (const std::string flash = job.get<std::string>("churn.flash_crowd"); !flash.empty()) {
    std::istringstream in(flash);
    std::string time, count, window, extra;
    in >> time >> count >> window >> extra;
    if (window.empty() || !extra.empty()) job.fail("churn.flash_crowd", flash, "must be 'TIME COUNT WINDOW'");
    c.flash_crowd.time = parse_number(job, "churn.flash_crowd", time);
    const double n = parse_number(job, "churn.flash_crowd", count);
    c.flash_crowd.window = parse_number(job, "churn.flash_crowd", window);
    if (!(c.flash_crowd.time >= 0 && std::isfinite(c.flash_crowd.time))) job.fail("churn.flash_crowd", flash, "TIME must be >= 0 seconds");
    if (!(n >= 1 && n <= kMaxServers && n == std::floor(n))) job.fail("churn.flash_crowd", flash, "COUNT must be a whole number in 1.." + std::to_string(kMaxServers));
    if (!(c.flash_crowd.window >= 0 && std::isfinite(c.flash_crowd.window))) job.fail("churn.flash_crowd", flash, "WINDOW must be >= 0 seconds");
    c.flash_crowd.count = static_cast<int>(n);
  }
  // Every source of servers together, before any is drawn.
  const double servers = c.initial_servers + c.arrival_rate * c.duration + c.flash_crowd.count +
                         static_cast<double>(c.joins.size());
  if (servers > kMaxServers) {
    const bool flash = c.flash_crowd.count > 0;
    job.fail(flash ? "churn.flash_crowd" : "churn.joins",
             flash ? job.get<std::string>("churn.flash_crowd") : std::to_string(c.joins.size()) + " joins",
             "with churn.initial_servers, churn.arrival_rate * run.duration" + std::string(flash ? " and churn.joins" : "") +
                 " the run would have " + format_number(servers) + " servers, more than " +
                 std::to_string(kMaxServers));
  }
  if (c.initial_servers == 0 && c.arrival_rate == 0 && c.joins.empty() && c.flash_crowd.count == 0) {
    job.fail("churn.initial_servers", "0", "no servers: set churn.initial_servers, churn.arrival_rate or churn.joins");
  }
  // Leaves must name servers that exist; checked against the drawn plan of every seed.
  std::vector<std::uint64_t> all = c.seeds.empty() ? std::vector<std::uint64_t>{c.seed} : c.seeds;
  for (std::uint64_t seed : all) {
    SimConfig one = c;
    one.seed = seed;
    try {
      (void)plan_servers(one);
    } catch (const std::invalid_argument& e) {
      job.fail("churn.leaves", job.get<std::string>("churn.leaves"),
               std::string(e.what()) + (c.seeds.empty() ? "" : " (seed " + std::to_string(seed) + ")"));
    }
  }
  return c;
}

}  // namespace swarm::sim
