// `swarm_sim dispatch`: every dispatch policy of the job on the same routes and the same
// sessions, one trace group and one table row per policy. A thin driver: options into a const
// config, the swarm and the workload built once, then simulate() per policy.
#include "swarm/study/dispatch_study.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <optional>
#include <sstream>

#include "study_job.hpp"
#include "study_trace.hpp"
#include "swarm/sim/sim_job.hpp"
#include "swarm/version.hpp"

namespace po = boost::program_options;

namespace swarm {
namespace {

std::atomic<bool> g_stop{false};
// As swarm_sim's: the first signal stops after the current policy, a second one at once.
extern "C" void on_dispatch_signal(int) {
  g_stop = true;
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
}

std::string commented(const std::string& lines) {
  std::istringstream in(lines);
  std::string out, line;
  while (std::getline(in, line)) out += "#   " + line + "\n";
  return out;
}

void print_header() {
  std::printf("#\n# %-24s %8s %10s %12s %10s %6s %9s %9s %10s %12s %11s\n", "policy", "done", "makespan",
              "tokens/s", "imbalance", "util", "p50", "p99", "migrations", "rebuild", "messages");
  std::printf("# %-24s %8s %10s %12s %10s %6s %9s %9s %10s %12s %11s\n", "", "(count)", "(s)", "(tokens/s)",
              "(max/mean)", "(%)", "(s)", "(s)", "(count)", "(tokens)", "(count)");
}

void print_row(dispatch::PolicyKind kind, const dispatch::Metrics& m) {
  std::printf("  %-24s %8zu %10.3f %12.1f %10.3f %6.1f %9.3f %9.3f %10llu %12.0f %11llu\n",
              std::string(to_string(kind)).c_str(), m.completed, m.makespan_s, m.tokens_per_s, m.imbalance_busy,
              100.0 * m.utilization, m.latency_p50_s, m.latency_p99_s,
              static_cast<unsigned long long>(m.migrations), m.rebuild_tokens,
              static_cast<unsigned long long>(m.control_messages));
}

}  // namespace

po::options_description dispatch_job_schema() { return study::job_schema(); }

int run_dispatch_study(const std::vector<std::string>& args) {
  po::options_description program(
      "swarm_sim " + std::string(kVersion) +
      " dispatch: which route serves which session, every policy on the same swarm and sessions\n"
      "usage: swarm_sim dispatch --job FILE.ini --trace OUT.h5 [--section.key VALUE ...]\n"
      "(docs/dispatch-study.md; policies: docs/dispatch.md)\n"
      "Options");
  program.add_options()("help,h", "print this help and every job key with its default")(
      "job", po::value<std::string>(), "job file (INI)")("trace", po::value<std::string>(),
                                                         "HDF5 trace to write (overwritten)")(
      "quiet", "no config or progress lines (the table is still printed)");
  const po::options_description schema = study::job_schema();
  po::options_description all;
  all.add(program).add(schema);

  try {
    const std::string tables[] = {"class"};
    const po::variables_map pre = swarm::preview_command_line(args, all, tables);
    if (pre.count("help")) {
      std::cout << all << "\n" << study::class_help();
      return 0;
    }
    if (pre.count("job") && pre["job"].as<std::string>().empty()) {
      std::cerr << "swarm_sim dispatch: command line: --job is empty\n";
      return 2;
    }
    if (!pre.count("job") || !pre.count("trace")) {
      std::cerr << "swarm_sim dispatch: --job and --trace are required (see --help)\n";
      return 2;
    }
    const std::string path = pre["job"].as<std::string>();
    const OtherJobKind others[] = {{sim::job_schema(), "a simulator job", "swarm_sim --job FILE --trace OUT.h5 (without 'dispatch')"}};
    const JobFile job = read_job_file(path, all, tables, args, others);
    const study::StudyConfig config = study::load_config(job);
    const std::string trace_path = pre["trace"].as<std::string>();
    job.refuse_as_output(trace_path, "--trace");
    const bool quiet = pre.count("quiet") > 0;

    // Everything that can reject the input runs before the trace exists.
    const auto t0 = std::chrono::steady_clock::now();
    const study::SwarmModel swarm = study::build_swarm(config);
    if (swarm.routes.empty()) {
      std::ostringstream speed;
      speed << config.min_route_speed;
      job.fail("churn.initial_servers", std::to_string(config.initial_servers),
               "no chain of servers ever covers all " + std::to_string(config.blocks) +
                   " blocks with swarm.min_route_speed = " + speed.str() +
                   " tokens/s: no route to dispatch to (add servers or lower swarm.min_route_speed)");
    }
    const study::Sessions sessions = study::make_sessions(config);
    const dispatch::DispatchOptions options = study::dispatch_options(config, swarm);
    for (dispatch::PolicyKind k : config.policies) (void)dispatch::make_policy(k, options, config.seed);
    std::vector<dispatch::WorkerSpec> workers;
    workers.reserve(swarm.routes.size());
    for (const auto& r : swarm.routes) workers.push_back(r.worker);
    const double model_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (!quiet) {
      std::printf("# swarm_sim %s dispatch\n# effective config:\n%s", kVersion, commented(job.effective()).c_str());
      std::size_t servers_at_start = 0;
      for (const auto& s : swarm.servers) servers_at_start += s.online_time == 0.0;
      const double work = std::accumulate(sessions.tasks.begin(), sessions.tasks.end(), 0.0,
                                          [](double a, const dispatch::Task& t) { return a + t.work; });
      std::printf("# swarm: %zu servers (%zu at t = 0), swarm throughput at t = 0: %.1f tokens/s\n",
                  swarm.servers.size(), servers_at_start, swarm.swarm_throughput_at_start);
      std::printf("# routes (workers): %zu (%zu at t = 0 reserving %.1f tokens/s), %zu ended by a leave\n",
                  swarm.routes.size(), swarm.routes_at_start, swarm.route_capacity_at_start, swarm.routes_broken);
      std::printf("# sessions: %zu, %.0f tokens of work; model built in %.2f s\n", sessions.tasks.size(), work,
                  model_s);
      std::fflush(stdout);
    }

    std::signal(SIGTERM, on_dispatch_signal);
    std::signal(SIGINT, on_dispatch_signal);

    trace::File file = [&] {  // an unusable path is bad input, like a bad key
      try {
        return trace::File::create(trace_path);
      } catch (const trace::TraceError& e) {
        throw ConfigError(std::string("command line: --trace: ") + e.what());
      }
    }();
    study::StudyTrace trace(file, {"swarm_sim dispatch", job.path().string(), job.text(), job.effective()}, config,
                            swarm, sessions);
    std::vector<std::pair<dispatch::PolicyKind, dispatch::Metrics>> rows;
    std::vector<std::string> past_horizon;
    bool stopped = false;
    for (std::size_t i = 0; i < config.policies.size(); ++i) {
      if (g_stop) {
        stopped = true;
        break;
      }
      const dispatch::PolicyKind kind = config.policies[i];
      const auto began = std::chrono::steady_clock::now();
      const dispatch::RunResult result =
          dispatch::simulate(sessions.tasks, workers, kind, options, config.seed, config.engine);
      const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      trace.add_policy(kind, result, wall);
      rows.emplace_back(kind, result.metrics);
      double last_finish = 0.0;
      for (const auto& t : result.tasks) {
        if (t.done()) last_finish = std::max(last_finish, t.finish);
      }
      if (last_finish > config.horizon_s) past_horizon.emplace_back(to_string(kind));
      if (!quiet) {
        std::printf("# [%2zu/%zu] %-24s simulated in %6.2f s (%llu events)\n", i + 1, config.policies.size(),
                    std::string(to_string(kind)).c_str(), wall,
                    static_cast<unsigned long long>(result.metrics.events));
        std::fflush(stdout);
      }
    }
    stopped = stopped || (g_stop && rows.size() < config.policies.size());
    trace.finish(stopped);

    print_header();
    bool all_done = true;
    for (const auto& [kind, m] : rows) {
      print_row(kind, m);
      all_done = all_done && m.completed == m.tasks;
    }
    std::printf("# sessions: %zu per policy; workers: %zu routes; seed %llu\n", sessions.tasks.size(),
                swarm.routes.size(), static_cast<unsigned long long>(config.seed));
    std::printf("# imbalance: max/mean busy time over the routes alive during the run; util: busy/alive time;\n"
                "# p50/p99: session latency (finish - arrival); migrations: re-bindings of a session to another\n"
                "# route; rebuild: tokens recomputed for lost KV caches; messages: the policy's control messages.\n");
    for (const auto& name : past_horizon) {
      std::printf("# note: %s ran past run.horizon (%.0f s): the swarm was frozen from then on\n", name.c_str(),
                  config.horizon_s);
    }
    if (stopped) std::printf("# stopped early by a signal after %zu of %zu policies\n", rows.size(), config.policies.size());
    std::printf("# %s: %s\n", all_done ? "PASS" : "INCOMPLETE",
                all_done ? (stopped ? "every session completed exactly once under the policies run"
                                    : "every session completed exactly once under every policy")
                         : "some sessions never completed (every route left?)");
    std::printf("# trace: %s\n", std::filesystem::absolute(trace_path).c_str());
    return stopped ? 3 : 0;
  } catch (const ConfigError& e) {
    std::cerr << "swarm_sim dispatch: " << e.what() << "\n";
    return 2;
  } catch (const po::error& e) {
    std::cerr << "swarm_sim dispatch: command line: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "swarm_sim dispatch: error: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace swarm
