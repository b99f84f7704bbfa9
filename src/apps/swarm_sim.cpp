// swarm_sim: the offline throughput study (--job FILE.ini --trace OUT.h5) and the what-if
// interface (what-if [FILE]). A thin main: options into a const config, run, report.
#include <mpi.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <optional>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "swarm/study/dispatch_study.hpp"
#include "swarm/sim/seed_study.hpp"
#include "swarm/sim/sim_job.hpp"
#include "swarm/trace/sim_trace.hpp"
#include "swarm/version.hpp"
#include "swarm/sim/what_if.hpp"

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
  // Unsynchronised streams: the synchronised std::cin reads a character at a time through stdio
  // (a line of a million servers took 3 s just to read); what-if writes only through iostreams.
  std::ios::sync_with_stdio(false);
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

// MPI only when a launcher started this process (mpirun, srun): a plain `swarm_sim` needs no
// MPI runtime. Finalised on every way out of main.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"};
    bool launched = false;
    for (const char* v : vars) launched = launched || std::getenv(v) != nullptr;
    if (!launched) return;
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    world_.mpi = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world_.size);
  }
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  ~MpiSession() {
    if (world_.mpi) MPI_Finalize();
  }
  [[nodiscard]] const swarm::sim::StudyWorld& world() const { return world_; }

  /// Whether every rank got here with `ok`; the lowest rank that did not is the one to speak.
  [[nodiscard]] bool agree(bool ok, bool& speak) const {
    int mine = ok ? INT_MAX : world_.rank, first = mine;
    if (world_.mpi && world_.size > 1) MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    speak = !ok && first == world_.rank;
    return first == INT_MAX;
  }

 private:
  swarm::sim::StudyWorld world_;
};

struct Setup {
  int exit = -1;  // >= 0: stop with this status (help, or an error in `error`)
  std::string error;
  std::optional<swarm::JobFile> job;
  swarm::sim::SimConfig config;
  std::string trace_path;
  bool quiet = false;
};

Setup setup(const std::vector<std::string>& args, bool root, bool& printed) {
  Setup out;
  po::options_description program("swarm_sim " + std::string(swarm::kVersion) +
                                  ": offline swarm throughput study\n"
                                  "usage: swarm_sim --job FILE.ini --trace OUT.h5 [--section.key VALUE ...]\n"
                                  "       mpirun -n N swarm_sim --job FILE.ini --trace OUT.h5 --run.seeds 1-64\n"
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
    const std::string tables[] = {"class"};
    const po::variables_map pre = swarm::preview_command_line(args, all, tables);
    if (pre.count("help")) {
      if (root) {
        std::cout << all
                  << "\nDevice classes: [class.NAME] with span (required), share (default 1), block_rps (1000),\n"
                  << "bandwidth_mbps (1000), relay_fraction (0), load_seconds_per_block (1), compute_jitter (0),\n"
                  << "speed_drift (0: sigma per sqrt(hour) of each server's compute random walk), leave_at (never:\n"
                  << "simulated second at which the whole class leaves)\n"
                  << "(docs/simulator.md); on the command line as --class.NAME.key VALUE.\n"
                  << "Signals: the first SIGINT/SIGTERM stops at the end of the period (exit 3), a second at once.\n";
      }
      printed = true;
      out.exit = 0;
      return out;
    }
    if (pre.count("job") && pre["job"].as<std::string>().empty()) {
      out.error = "command line: --job is empty";
      out.exit = 2;
      return out;
    }
    if (!pre.count("job") || !pre.count("trace")) {
      out.error = "--job and --trace are required (see --help)";
      out.exit = 2;
      return out;
    }
    const swarm::OtherJobKind others[] = {
        {swarm::dispatch_job_schema(), "a dispatch-study job", "swarm_sim dispatch --job FILE --trace OUT.h5"}};
    out.job.emplace(swarm::read_job_file(pre["job"].as<std::string>(), all, tables, args, others));
    out.config = swarm::sim::load_config(*out.job);
    out.trace_path = pre["trace"].as<std::string>();
    out.job->refuse_as_output(out.trace_path, "--trace");
    out.quiet = pre.count("quiet") > 0;
  } catch (const swarm::ConfigError& e) {
    out.error = e.what();
    out.exit = 2;
  } catch (const po::error& e) {
    out.error = std::string("command line: ") + e.what();
    out.exit = 2;
  }
  return out;
}

swarm::trace::File create_trace(const std::string& path) {
  try {  // an unusable path is bad input, like a bad key
    return swarm::trace::File::create(path);
  } catch (const swarm::trace::TraceError& e) {
    throw swarm::ConfigError(std::string("command line: --trace: ") + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "what-if") return what_if(argc, argv);
  if (argc >= 2 && std::string(argv[1]) == "dispatch") {
    return swarm::run_dispatch_study(std::vector<std::string>(argv + 2, argv + argc));
  }
  MpiSession mpi(&argc, &argv);
  const swarm::sim::StudyWorld& world = mpi.world();
  const bool root = world.rank == 0;
  bool printed = false, speak = false;
  Setup s = setup(std::vector<std::string>(argv + 1, argv + argc), root, printed);
  if (s.exit < 0 && world.size > 1 && s.config.seeds.empty()) {
    s.error = "more than one rank (" + std::to_string(world.size) +
              ") needs --run.seeds: the ranks share out the seeds of a study";
    s.exit = 2;
  }
  std::optional<swarm::trace::File> file;
  if (s.exit < 0 && root) {
    try {
      file.emplace(create_trace(s.trace_path));
    } catch (const swarm::ConfigError& e) {
      s.error = e.what();
      s.exit = 2;
    }
  }
  if (!mpi.agree(s.exit < 0, speak)) {
    if (speak && !s.error.empty()) std::cerr << "swarm_sim: " << s.error << "\n";
    if (file) {
      file.reset();
      std::error_code ec;
      std::filesystem::remove(s.trace_path, ec);
    }
    return s.exit >= 0 ? s.exit : 2;
  }
  if (printed) return 0;

  const swarm::sim::SimConfig& config = s.config;
  const swarm::JobFile& job = *s.job;
  try {
    if (!s.quiet && root) std::printf("# swarm_sim %s\n# effective config:\n%s", swarm::kVersion, job.effective().c_str());
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    const swarm::sim::RunMetadata meta{"swarm_sim", job.path().string(), job.text(), job.effective()};

    if (!config.seeds.empty()) {
      swarm::sim::SeedStudy study{config, config.seeds, job.get<std::string>("run.seeds"), meta, s.trace_path,
                                  s.quiet, [] { return g_stop.load(); }};
      const int rc = swarm::sim::run_seed_study(study, world, file ? &*file : nullptr);
      if (root && rc == 1) {  // a run failed: no trace passed off as a study
        file.reset();
        std::error_code ec;
        std::filesystem::remove(s.trace_path, ec);
      }
      if (root && rc != 1) std::printf("# trace: %s\n", std::filesystem::absolute(s.trace_path).c_str());
      return rc;
    }

    swarm::sim::SimTrace trace(*file, meta);
    const int periods = static_cast<int>(std::floor(config.duration / config.period + 1e-9));
    Progress progress(trace, periods, s.quiet);
    const swarm::sim::SimResult result = swarm::sim::run(config, progress, [] { return g_stop.load(); });
    trace.finish(result);
    print_table(result);
    std::printf("# trace: %s\n", std::filesystem::absolute(s.trace_path).c_str());
    return result.stopped_early ? 3 : 0;
  } catch (const std::exception& e) {
    std::cerr << "swarm_sim: error: " << e.what() << "\n";
    return 1;
  }
}
