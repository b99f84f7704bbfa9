// swarm_sim: the offline throughput study (--job FILE.ini --trace OUT.h5) and the what-if
// interface (what-if [FILE]). A thin main: options into a const config, run, report.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "swarm/dispatch_study.hpp"
#include "swarm/sim_job.hpp"
#include "swarm/sim_trace.hpp"
#include "swarm/version.hpp"
#include "swarm/what_if.hpp"

namespace po = boost::program_options;

namespace {

std::atomic<bool> g_stop{false};
// The first signal stops the run at the end of the period (trace complete, exit 3); the handler
// then steps aside, so a second one ends the process at once (trace flushed up to the last period).
extern "C" void on_signal(int) {
  g_stop = true;
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGINT, SIG_DFL);
}

int what_if(int argc, char** argv) {
  if (argc > 3) {
    std::cerr << "usage: swarm_sim what-if [FILE]   (JSON Lines on FILE or stdin)\n";
    return 2;
  }
  if (argc == 3) {
    std::ifstream in(argv[2]);
    std::error_code ec;
    if (!in || std::filesystem::is_directory(argv[2], ec)) {
      std::cerr << "what-if: cannot read '" << argv[2] << "'\n";
      return 2;
    }
    return swarm::run_what_if(in, std::cout, std::cerr);
  }
  return swarm::run_what_if(std::cin, std::cout, std::cerr);
}

// Prints progress about every 10% of the run, with elapsed time and an estimate of what is left.
class Progress final : public swarm::sim::SimObserver {
 public:
  Progress(swarm::sim::SimObserver& inner, int periods, bool quiet)
      : inner_(inner), periods_(periods), quiet_(quiet), began_(std::chrono::steady_clock::now()) {}
  void on_start(const swarm::sim::SimConfig& c, const std::vector<swarm::sim::ServerPlan>& p) override {
    inner_.on_start(c, p);
  }
  void on_period(swarm::StrategyKind k, const swarm::sim::PeriodRecord& r) override { inner_.on_period(k, r); }
  void on_period_end(int period) override {
    inner_.on_period_end(period);
    const int step = std::max(1, periods_ / 10);
    if (quiet_ || (period % step != 0 && period != periods_)) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - began_).count();
    std::printf("period %6d/%d  %3.0f%%  elapsed %7.1f s  eta %7.1f s\n", period, periods_,
                100.0 * period / periods_, elapsed, elapsed / period * (periods_ - period));
    std::fflush(stdout);
  }

 private:
  swarm::sim::SimObserver& inner_;
  int periods_;
  bool quiet_;
  std::chrono::steady_clock::time_point began_;
};

void print_table(const swarm::sim::SimResult& r) {
  std::printf("#\n# %-12s %16s %12s %11s %8s %14s %10s\n", "strategy", "throughput", "of_upper", "disjoint",
              "moves", "reload", "ub_gap");
  std::printf("# %-12s %16s %12s %11s %8s %14s %10s\n", "", "(tokens/s)", "(%)", "(% time)", "(count)",
              "(server-h)", "(%)");
  for (const auto& s : r.summaries) {
    std::printf("  %-12s %16.2f %12.2f %11.2f %8ld %14.3f %10.3f\n", std::string(swarm::to_string(s.kind)).c_str(),
                s.mean_throughput, 100 * s.mean_ratio, 100 * s.disjoint_fraction, s.moves, s.reload_downtime / 3600,
                100 * s.mean_bound_gap);
  }
  std::printf("# periods run: %d%s\n", r.periods_run, r.stopped_early ? " (stopped early by a signal)" : "");
  std::printf("# of_upper: mean of throughput / best placement found for the same servers each period;\n"
              "# ub_gap: mean (certified bound - best placement) / certified bound.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "what-if") return what_if(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "dispatch") {
    return swarm::run_dispatch_study(std::vector<std::string>(argv + 2, argv + argc));
  }

  po::options_description program("swarm_sim " + std::string(swarm::kVersion) +
                                  ": offline swarm throughput study\n"
                                  "usage: swarm_sim --job FILE.ini --trace OUT.h5 [--section.key VALUE ...]\n"
                                  "       swarm_sim what-if [FILE]    (JSON Lines; see docs/what-if.md)\n"
                                  "       swarm_sim dispatch --job FILE.ini --trace OUT.h5   (docs/dispatch.md)\n"
                                  "Options");
  program.add_options()("help,h", "print this help and every job key with its default")(
      "job", po::value<std::string>(), "job file (INI)")("trace", po::value<std::string>(),
                                                         "HDF5 trace to write (overwritten)")(
      "quiet", "no progress lines");
  po::options_description schema = swarm::sim::job_schema();
  po::options_description all;
  all.add(program).add(schema);

  try {
    const std::vector<std::string> args(argv + 1, argv + argc);
    const std::string tables[] = {"class"};
    const po::variables_map pre = swarm::preview_command_line(args, all, tables);
    if (pre.count("help")) {
      std::cout << all
                << "\nDevice classes: [class.NAME] with span (required), share (default 1), block_rps (1000),\n"
                << "bandwidth_mbps (1000), relay_fraction (0), load_seconds_per_block (1), compute_jitter (0)\n"
                << "(docs/simulator.md); on the command line as --class.NAME.key VALUE.\n"
                << "Signals: the first SIGINT/SIGTERM stops at the end of the period (exit 3), a second at once.\n";
      return 0;
    }
    if (pre.count("job") && pre["job"].as<std::string>().empty()) {
      std::cerr << "swarm_sim: command line: --job is empty\n";
      return 2;
    }
    if (!pre.count("job") || !pre.count("trace")) {
      std::cerr << "swarm_sim: --job and --trace are required (see --help)\n";
      return 2;
    }
    const swarm::JobFile job(pre["job"].as<std::string>(), all, tables, args);
    const swarm::sim::SimConfig config = swarm::sim::load_config(job);
    const std::string trace_path = pre["trace"].as<std::string>();
    job.refuse_as_output(trace_path, "--trace");
    const bool quiet = pre.count("quiet") > 0;

    if (!quiet) std::printf("# swarm_sim %s\n# effective config:\n%s", swarm::kVersion, job.effective().c_str());
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);

    swarm::trace::File file = [&] {  // an unusable path is bad input, like a bad key
      try {
        return swarm::trace::File::create(trace_path);
      } catch (const swarm::trace::TraceError& e) {
        throw swarm::ConfigError(std::string("command line: --trace: ") + e.what());
      }
    }();
    swarm::sim::SimTrace trace(file, {"swarm_sim", job.path().string(), job.text(), job.effective()});
    const int periods = static_cast<int>(std::floor(config.duration / config.period + 1e-9));
    Progress progress(trace, periods, quiet);
    const swarm::sim::SimResult result = swarm::sim::run(config, progress, [] { return g_stop.load(); });
    trace.finish(result);
    print_table(result);
    std::printf("# trace: %s\n", std::filesystem::absolute(trace_path).c_str());
    return result.stopped_early ? 3 : 0;
  } catch (const swarm::ConfigError& e) {
    std::cerr << "swarm_sim: " << e.what() << "\n";
    return 2;
  } catch (const po::error& e) {
    std::cerr << "swarm_sim: command line: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "swarm_sim: error: " << e.what() << "\n";
    return 1;
  }
}
