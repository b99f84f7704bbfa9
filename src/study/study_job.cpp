#include "study_job.hpp"
#include "swarm/sim/sim_job.hpp"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

namespace po = boost::program_options;

namespace swarm::study {
namespace {

ServerClass server_class(const JobFile& job, const Table& t, int blocks) {
  ServerClass k;
  k.device.name = t.name;
  for (const auto& [field, raw] : t.values) {
    if (sim::parse_device_key(job, t.name, field, raw, blocks, k.device)) continue;
    // The study's own keys: how the device's speed changes.
    const std::string key = "class." + t.name + "." + field;
    if (field == "speed_sigma") {
      const double v = parse_number(job, key, raw);
      if (!(v >= 0 && v <= 2)) job.fail(key, raw, "must be in [0, 2] (lognormal sigma)");
      k.speed_sigma = v;
    } else if (field == "speed_interval_s") {
      const double v = parse_number(job, key, raw);
      if (!(v > 0) || !std::isfinite(v)) job.fail(key, raw, "must be > 0 (mean seconds between speed changes)");
      k.speed_interval_s = v;
    } else {
      job.fail(key, raw, std::string("unknown key (a class has ") + sim::kDeviceKeys + ", speed_sigma, speed_interval_s)");
    }
  }
  if (!t.values.count("span")) job.fail("class." + t.name + ".span", "", "missing: every class needs a span");
  return k;
}

// The [dispatch] keys: one line per DispatchOptions field, so that the schema, the reading and
// the error messages cannot drift apart. `option` is the name validate() uses.
struct DispatchKey {
  const char* option;
  enum { real, count, flag } type;
};
constexpr DispatchKey kDispatchKeys[] = {
    {"message_latency_s", DispatchKey::real},   {"speed_smoothing", DispatchKey::real},
    {"hash.virtual_nodes", DispatchKey::count}, {"hash.eps", DispatchKey::real},
    {"self.chunk", DispatchKey::count},         {"self.min_chunk", DispatchKey::count},
    {"self.tapering_alpha", DispatchKey::real}, {"stealing.steal_half", DispatchKey::flag},
    {"stealing.owner_lifo", DispatchKey::flag}, {"stealing.backoff_s", DispatchKey::real},
    {"stealing.backoff_max_s", DispatchKey::real}, {"diffusion.period_s", DispatchKey::real},
    {"diffusion.beta", DispatchKey::real},      {"choices.choices", DispatchKey::count},
};

constexpr long kMaxVirtualNodes = 10'000;

}  // namespace

const char* class_help() {
  return "Server classes: one [class.NAME] section each (on the command line: --class.NAME.key VALUE):\n"
         "  share (1)                   relative frequency among random servers\n"
         "  span (required)             blocks a server of this class holds\n"
         "  block_rps (1000)            tokens/s through one block (compute)\n"
         "  bandwidth_mbps (1000)       min(download, upload) in Mbit/s\n"
         "  relay_fraction (0)          share reachable only through a relay (network / 5)\n"
         "  load_seconds_per_block (1)  a joiner loads its span for span * this before serving\n"
         "  compute_jitter (0)          sigma of a mean-one lognormal factor on block_rps, drawn\n"
         "                              once per server (fixed heterogeneity within the class)\n"
         "  speed_sigma (0)             sigma of a mean-one lognormal factor on the server's real\n"
         "                              speed, redrawn after every exponential gap (changing speeds)\n"
         "  speed_interval_s (60)       mean seconds between those redraws\n"
         "A server announces min(compute, network) throughput as in Petals (swarm/balance/announce.hpp).\n";
}

// A default shown as written ("0.005", "true"), not as the double or bool prints.
template <typename T>
po::typed_value<T>* value(T v) {
  std::ostringstream s;
  if constexpr (std::is_same_v<T, bool>) {
    s << (v ? "true" : "false");
  } else {
    s << v;
  }
  return po::value<T>()->default_value(v, s.str());
}

po::options_description job_schema() {
  po::options_description d(
      "Job keys (sections [run], [model], [swarm], [churn], [workload], [engine], [dispatch], "
      "[class.NAME]; any key can be overridden on the command line as --section.key VALUE)");
  std::string all;
  for (dispatch::PolicyKind k : dispatch::all_policies()) {
    if (!all.empty()) all += ',';
    all += to_string(k);
  }
  const dispatch::DispatchOptions o;
  d.add_options()
      ("run.seed", po::value<std::uint64_t>()->default_value(1), "seed of the churn, the speeds, the sessions and every policy's random stream")
      ("run.horizon", po::value<double>()->default_value(3600), "seconds over which churn and speed changes are drawn; after it the swarm stays as it is")
      ("model.blocks", po::value<long>()->default_value(80), "transformer blocks of the model (L)")
      ("model.hidden_size", po::value<long>()->default_value(8192), "hidden size: one token's activations are hidden_size * 16 bits")
      ("swarm.placement", po::value<std::string>()->default_value("new_only"), "how a joiner chooses its span: new_only (Petals rule 1) or none (uniformly random); servers never move afterwards")
      ("swarm.min_route_speed", po::value<double>()->default_value(1.0), "tokens/s: chains whose bottleneck is thinner are not formed into routes")
      ("churn.initial_servers", po::value<long>()->default_value(0), "servers online at t = 0, already loaded (classes drawn by share)")
      ("churn.arrival_rate", po::value<double>()->default_value(0), "Poisson server joins per second on (0, run.horizon]; joiners load their span first")
      ("churn.mean_lifetime", po::value<double>()->default_value(0), "mean exponential lifetime of random servers in seconds (0: they never leave)")
      ("churn.joins", po::value<std::string>()->default_value(""), "scheduled joins 'TIME CLASS, ...' (they never leave unless listed in churn.leaves)")
      ("churn.leaves", po::value<std::string>()->default_value(""), "scheduled leaves 'TIME SERVER_ID, ...' (ids s00000.. in join order)")
      ("workload.sessions", po::value<long>()->default_value(1000), "sessions (N)")
      ("workload.arrival_rate", po::value<double>()->default_value(0), "Poisson sessions per second; 0: one batch at t = 0")
      ("workload.prompt_tokens_min", po::value<long>()->default_value(128), "prompt tokens, uniform in [min, max]")
      ("workload.prompt_tokens_max", po::value<long>()->default_value(1024), "")
      ("workload.new_tokens_min", po::value<long>()->default_value(32), "generated tokens, uniform in [min, max] (min >= 1)")
      ("workload.new_tokens_max", po::value<long>()->default_value(256), "")
      ("workload.prompt_weight", po::value<double>()->default_value(1.0), "cost of a prompt token in generated tokens: work = prompt_weight * prompt + new")
      ("engine.rebuild_fraction", po::value<double>()->default_value(1.0), "share of an interrupted session's processed tokens recomputed to rebuild its KV cache, in [0, 1]")
      ("engine.max_events", po::value<long>()->default_value(200000000), "guard against a policy that never lets a run end")
      ("dispatch.policies", po::value<std::string>()->default_value(all), "policies to compare, in this order")
      ("dispatch.message_latency_s", value<double>(o.message_latency_s), "one-way latency of a control message (s)")
      ("dispatch.speed_smoothing", value<double>(o.speed_smoothing), "weight of the newest speed measurement, in (0, 1]")
      ("dispatch.hash.virtual_nodes", po::value<long>()->default_value(o.hash.virtual_nodes), "points per route on the consistent-hashing ring")
      ("dispatch.hash.eps", value<double>(o.hash.eps), "bounded_hash: cap = ceil((1 + eps) m / n), eps > 0")
      ("dispatch.self.chunk", po::value<long>()->default_value(static_cast<long>(o.self.chunk)), "self_fixed: sessions per chunk K (>= 1)")
      ("dispatch.self.min_chunk", po::value<long>()->default_value(static_cast<long>(o.self.min_chunk)), "smallest chunk of gss, factoring, weighted factoring, tapering (>= 1)")
      ("dispatch.self.tapering_alpha", value<double>(o.self.tapering_alpha), "self_tapering: standard deviations of slack (>= 0)")
      ("dispatch.stealing.steal_half", value<bool>(o.stealing.steal_half), "work_stealing: take half the victim's queue instead of one session")
      ("dispatch.stealing.owner_lifo", value<bool>(o.stealing.owner_lifo), "work_stealing: the owner serves its newest session first")
      ("dispatch.stealing.backoff_s", value<double>(o.stealing.backoff_s), "work_stealing: wait after the first failed steal, doubling (> 0)")
      ("dispatch.stealing.backoff_max_s", value<double>(o.stealing.backoff_max_s), "work_stealing: cap of that wait (>= backoff_s)")
      ("dispatch.diffusion.period_s", value<double>(o.diffusion.period_s), "diffusion1/2: seconds between load-exchange rounds")
      ("dispatch.diffusion.alpha", po::value<std::string>()->default_value("auto"), "diffusion1/2: alpha in (0, 1]; auto: 1 / (max degree + 1)")
      ("dispatch.diffusion.beta", value<double>(o.diffusion.beta), "diffusion2: beta in (0, 2)")
      ("dispatch.diffusion.graph", po::value<std::string>()->default_value("ring"), "diffusion neighbours: ring (over the live routes), routes (routes sharing a server), random (a spanning tree plus one random edge per route)")
      ("dispatch.choices.choices", po::value<long>()->default_value(static_cast<long>(o.choices.choices)), "power_of_two: routes probed per session d (>= 1)");
  return d;
}

StudyConfig load_config(const JobFile& job) {
  StudyConfig c;
  c.seed = job.seed("run.seed");
  c.horizon_s = job.positive("run.horizon");
  c.blocks = static_cast<int>(job.integer("model.blocks", 1, 100000));
  c.hidden_size = static_cast<int>(job.integer("model.hidden_size", 1, 1 << 20));

  const std::string placement = job.get<std::string>("swarm.placement");
  const auto kind = parse_strategy(placement);
  if (!kind || (*kind != StrategyKind::none && *kind != StrategyKind::new_only)) {
    job.fail("swarm.placement", placement,
             "must be new_only or none (full and upper_bound move servers, which this study does not model)");
  }
  c.placement = *kind;
  c.min_route_speed = job.positive("swarm.min_route_speed");

  c.initial_servers = static_cast<int>(job.integer("churn.initial_servers", 0, 1000000));
  c.arrival_rate = job.non_negative("churn.arrival_rate");
  c.mean_lifetime = job.non_negative("churn.mean_lifetime");
  if (c.arrival_rate * c.horizon_s > 1e6) {
    job.fail("churn.arrival_rate", format_number(c.arrival_rate), "more than a million joins within run.horizon");
  }
  for (const auto& t : job.tables("class")) {
    c.classes.push_back(server_class(job, t, c.blocks));
    const ServerClass& k = c.classes.back();
    // Each server draws horizon / interval speed changes up front.
    if (k.speed_sigma > 0 && c.horizon_s / k.speed_interval_s > 1e4) {
      job.fail("class." + t.name + ".speed_interval_s", format_number(k.speed_interval_s),
               "more than 10,000 speed changes per server within run.horizon (" + format_number(c.horizon_s) + " s)");
    }
  }
  if (c.classes.empty()) job.fail("class", "", "no [class.NAME] section: at least one server class is needed");
  double shares = 0;
  for (const auto& k : c.classes) shares += k.device.share;
  if (!(shares > 0)) job.fail("class.*.share", "0", "the shares of the classes add up to 0");
  for (const auto& [t, name] : sim::parse_schedule(job, "churn.joins", c.horizon_s, "run.horizon")) {
    const bool known = std::any_of(c.classes.begin(), c.classes.end(),
                                   [&](const ServerClass& k) { return k.device.name == name; });
    if (!known) job.fail("churn.joins", name, "no [class." + name + "] section");
    c.joins.push_back({t, name});
  }
  for (const auto& [t, id] : sim::parse_schedule(job, "churn.leaves", c.horizon_s, "run.horizon")) c.leaves.push_back({t, id});
  if (c.initial_servers == 0 && c.arrival_rate == 0 && c.joins.empty()) {
    job.fail("churn.initial_servers", "0", "no servers: set churn.initial_servers, churn.arrival_rate or churn.joins");
  }
  try {
    (void)sim::plan_servers(churn_config(c));  // leaves must name servers that exist
  } catch (const std::invalid_argument& e) {
    job.fail("churn.leaves", job.get<std::string>("churn.leaves"), e.what());
  }

  c.sessions = static_cast<std::size_t>(job.integer("workload.sessions", 1, 10000000));
  c.session_rate = job.non_negative("workload.arrival_rate");
  // The last session would arrive after sessions / rate seconds; past ~3 years of simulated time
  // (a rate of 1e-300 put it at 1e300 s) periodic policies spin until engine.max_events.
  if (c.session_rate > 0 && static_cast<double>(c.sessions) / c.session_rate > 1e8) {
    job.fail("workload.arrival_rate", format_number(c.session_rate),
             "workload.sessions / arrival_rate is more than 1e8 s of arrivals");
  }
  c.prompt_tokens_min = static_cast<int>(job.integer("workload.prompt_tokens_min", 0, 10000000));
  c.prompt_tokens_max = static_cast<int>(job.integer("workload.prompt_tokens_max", 0, 10000000));
  if (c.prompt_tokens_max < c.prompt_tokens_min) {
    job.fail("workload.prompt_tokens_max", std::to_string(c.prompt_tokens_max), "below workload.prompt_tokens_min");
  }
  c.new_tokens_min = static_cast<int>(job.integer("workload.new_tokens_min", 1, 10000000));
  c.new_tokens_max = static_cast<int>(job.integer("workload.new_tokens_max", 1, 10000000));
  if (c.new_tokens_max < c.new_tokens_min) {
    job.fail("workload.new_tokens_max", std::to_string(c.new_tokens_max), "below workload.new_tokens_min");
  }
  c.prompt_weight = job.in_range("workload.prompt_weight", 0, 1e6);

  c.engine.rebuild_fraction = job.in_range("engine.rebuild_fraction", 0.0, 1.0);
  c.engine.max_events = static_cast<std::uint64_t>(job.integer("engine.max_events", 1, 1'000'000'000'000L));

  const std::string names = job.get<std::string>("dispatch.policies");
  std::set<dispatch::PolicyKind> seen;
  for (const auto& name : split_list(names)) {
    dispatch::PolicyKind k{};
    try {
      k = dispatch::parse_policy_or_throw(name);
    } catch (const std::invalid_argument& e) {
      job.fail("dispatch.policies", names, e.what());
    }
    if (!seen.insert(k).second) job.fail("dispatch.policies", names, "policy '" + name + "' listed twice");
    c.policies.push_back(k);
  }
  if (c.policies.empty()) job.fail("dispatch.policies", names, "no policy to run");

  // DispatchOptions, field by field; validate() then judges them with the library's own rules.
  dispatch::DispatchOptions& o = c.dispatch;
  std::map<std::string, std::string> raw;  // option name -> value as the user wrote it
  for (const DispatchKey& k : kDispatchKeys) {
    const std::string key = std::string("dispatch.") + k.option;
    const std::string name = k.option;
    double real = 0;
    long count = 0;
    bool flag = false;
    if (k.type == DispatchKey::real) {
      real = job.get<double>(key);
      raw[name] = format_number(real);
      // Simulated time still costs events: a latency of 1e300 s or a diffusion round every 1e-300 s
      // only runs into engine.max_events. validate() judges the rest.
      if (name == "message_latency_s" && std::isfinite(real) && real > 3600) job.fail(key, raw[name], "must be at most 3600 s");
      if (name == "diffusion.period_s" && real > 0 && real < 1e-3) job.fail(key, raw[name], "must be at least 0.001 s");
    } else if (k.type == DispatchKey::count) {
      count = std::max(0L, job.get<long>(key));  // negative: reported as written below
      raw[name] = std::to_string(job.get<long>(key));
    } else {
      flag = job.get<bool>(key);
      raw[name] = flag ? "true" : "false";
    }
    if (name == "message_latency_s") o.message_latency_s = real;
    else if (name == "speed_smoothing") o.speed_smoothing = real;
    else if (name == "hash.virtual_nodes") o.hash.virtual_nodes = static_cast<int>(std::min(count, kMaxVirtualNodes + 1));
    else if (name == "hash.eps") o.hash.eps = real;
    else if (name == "self.chunk") o.self.chunk = static_cast<std::size_t>(count);
    else if (name == "self.min_chunk") o.self.min_chunk = static_cast<std::size_t>(count);
    else if (name == "self.tapering_alpha") o.self.tapering_alpha = real;
    else if (name == "stealing.steal_half") o.stealing.steal_half = flag;
    else if (name == "stealing.owner_lifo") o.stealing.owner_lifo = flag;
    else if (name == "stealing.backoff_s") o.stealing.backoff_s = real;
    else if (name == "stealing.backoff_max_s") o.stealing.backoff_max_s = real;
    else if (name == "diffusion.period_s") o.diffusion.period_s = real;
    else if (name == "diffusion.beta") o.diffusion.beta = real;
    else if (name == "choices.choices") o.choices.choices = static_cast<std::size_t>(count);
  }
  if (job.get<long>("dispatch.hash.virtual_nodes") > kMaxVirtualNodes) {
    // The ring holds routes x virtual_nodes points: 10^6 each took 5.7 GB on a churning swarm.
    job.fail("dispatch.hash.virtual_nodes", std::to_string(job.get<long>("dispatch.hash.virtual_nodes")),
             "must be at most " + std::to_string(kMaxVirtualNodes));
  }
  const std::string alpha = job.get<std::string>("dispatch.diffusion.alpha");
  raw["diffusion.alpha"] = alpha;
  if (alpha != "auto") o.diffusion.alpha = parse_number(job, "dispatch.diffusion.alpha", alpha);
  try {
    dispatch::validate(o);
  } catch (const std::invalid_argument& e) {
    // "dispatch option <name> = <value> is invalid: <why>" -> the job key and the user's value.
    const std::string what = e.what();
    const std::string head = "dispatch option ";
    const auto eq = what.find(" = ");
    const auto why = what.find("is invalid: ");
    if (what.rfind(head, 0) == 0 && eq != std::string::npos && why != std::string::npos) {
      const std::string name = what.substr(head.size(), eq - head.size());
      job.fail("dispatch." + name, raw.count(name) ? raw[name] : what.substr(eq + 3, why - eq - 4),
               what.substr(why + 12));
    }
    throw ConfigError(job.where() + ": " + what);
  }
  const std::string graph = job.get<std::string>("dispatch.diffusion.graph");
  if (graph == "ring") {
    c.diffusion_graph = DiffusionGraphKind::ring;
  } else if (graph == "routes") {
    c.diffusion_graph = DiffusionGraphKind::routes;
  } else if (graph == "random") {
    c.diffusion_graph = DiffusionGraphKind::random;
  } else {
    job.fail("dispatch.diffusion.graph", graph, "must be ring, routes or random");
  }
  return c;
}

}  // namespace swarm::study
