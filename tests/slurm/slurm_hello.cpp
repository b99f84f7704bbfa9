// slurm_hello: a stand-in for swarm_pipe in the Slurm tests (tests/slurm/test_sbatch.sh).
//
// It takes swarm_pipe's command line - `--job FILE [--trace OUT.h5] [--key value ...]` - and
// behaves like it where the batch script is concerned:
//   * runs under MPI (launched by `srun --mpi=pmix` or `mpirun`),
//   * ends at the next "epoch boundary" after a SIGTERM (or SIGINT) reaches any rank: every
//     epoch (100 ms) the ranks agree by MPI_Allreduce whether one saw a signal,
//   * writes an HDF5 trace whose root attribute `complete` is 1 when the run finished (and
//     `stopped_early` 1 after a signal),
//   * exits 3 when a signal stopped it early, as swarm_pipe does (docs/job.md), else with a
//     chosen code.
// Options of its own (anything else is an override and is only recorded):
//   --marker PREFIX     each rank writes PREFIX.<rank>: its arguments, CUDA_VISIBLE_DEVICES,
//                       "ready", the signal it saw ("signal=15", or "signal=0"), "exit=<code>"
//   --exit-code N       exit status of rank --fail-rank (default rank 0); the others exit 0
//   --fail-rank R
//   --wait-signal SECS  run epochs until a signal arrives; exit 4 if none came within SECS
// Exit codes: 0 success, N from --exit-code, 2 usage error, 3 stopped early by a signal (trace
// complete), 4 no signal within --wait-signal, 5 the trace could not be written.
#include <mpi.h>
#include <hdf5.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signo) { g_signal = signo; }

struct Options {
  std::string job;
  std::string trace;
  std::string marker;
  int exit_code = 0;
  int fail_rank = 0;
  double wait_signal = -1.0;
  std::vector<std::string> overrides;
};

bool parse(int argc, char** argv, Options& o, std::string& error) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        error = a + " needs a value";
        return nullptr;
      }
      return argv[++i];
    };
    const char* v = nullptr;
    if (a == "--job") {
      if (!(v = value())) return false;
      o.job = v;
    } else if (a == "--trace") {
      if (!(v = value())) return false;
      o.trace = v;
    } else if (a == "--marker") {
      if (!(v = value())) return false;
      o.marker = v;
    } else if (a == "--exit-code") {
      if (!(v = value())) return false;
      o.exit_code = std::atoi(v);
    } else if (a == "--fail-rank") {
      if (!(v = value())) return false;
      o.fail_rank = std::atoi(v);
    } else if (a == "--wait-signal") {
      if (!(v = value())) return false;
      o.wait_signal = std::atof(v);
    } else {
      o.overrides.push_back(a);
    }
  }
  if (o.job.empty()) {
    error = "--job FILE is required";
    return false;
  }
  return true;
}

class Marker {
 public:
  Marker(const std::string& prefix, int rank) {
    if (!prefix.empty()) out_.open(prefix + "." + std::to_string(rank), std::ios::trunc);
  }
  void line(const std::string& s) {
    if (out_) out_ << s << std::endl;  // flushed: the test reads it while the job runs
  }

 private:
  std::ofstream out_;
};

bool write_trace(const std::string& path, int ranks, int epochs, int signal, bool stopped_early) {
  hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (file < 0) return false;
  bool ok = true;
  auto attr = [&](const char* name, int value) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(file, name, H5T_NATIVE_INT, space, H5P_DEFAULT, H5P_DEFAULT);
    ok = ok && a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &value) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
  };
  attr("ranks", ranks);
  attr("epochs", epochs);
  attr("signal", signal);
  attr("stopped_early", stopped_early ? 1 : 0);
  attr("complete", 1);
  ok = H5Fclose(file) >= 0 && ok;
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);

  Options o;
  std::string error;
  if (!parse(argc, argv, o, error)) {
    if (rank == 0) std::fprintf(stderr, "slurm_hello: %s\n", error.c_str());
    MPI_Finalize();
    return 2;
  }
  Marker marker(o.marker, rank);
  marker.line("rank=" + std::to_string(rank) + " size=" + std::to_string(size));
  marker.line("job=" + o.job);
  marker.line("trace=" + o.trace);
  const char* cvd = std::getenv("CUDA_VISIBLE_DEVICES");
  marker.line(std::string("cuda_visible_devices=") + (cvd ? cvd : "unset"));
  for (const auto& a : o.overrides) marker.line("arg=" + a);
  if (rank == 0) {
    std::printf("slurm_hello: %d ranks, job %s, trace %s, %zu override words\n", size, o.job.c_str(),
                o.trace.empty() ? "(none)" : o.trace.c_str(), o.overrides.size());
    std::fflush(stdout);
  }

  int epochs = 0;
  int status = 0;
  bool stopped_early = false;
  if (o.wait_signal >= 0) {
    marker.line("ready");
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration<double>(o.wait_signal);
    while (true) {
      // One epoch of "work", then the ranks agree whether to stop (the epoch boundary).
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      ++epochs;
      int local = g_signal != 0 ? 1 : 0, any = 0;
      int late = std::chrono::steady_clock::now() > deadline ? 1 : 0, timeout = 0;
      MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      MPI_Allreduce(&late, &timeout, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      if (any) {
        stopped_early = true;
        break;
      }
      if (timeout) {
        status = 4;
        break;
      }
    }
    // Give a signal sent to the other ranks a moment to arrive too, so the marker says whether
    // every rank received it (Slurm signals the tasks one by one).
    for (int i = 0; i < 20 && g_signal == 0 && status == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  marker.line("signal=" + std::to_string(static_cast<int>(g_signal)));
  if (rank == 0 && g_signal != 0) {
    std::printf("slurm_hello: signal %d seen, ending at the epoch boundary after %d epochs\n",
                static_cast<int>(g_signal), epochs);
    std::fflush(stdout);
  }

  MPI_Barrier(MPI_COMM_WORLD);
  if (rank == 0 && !o.trace.empty() && status == 0 &&
      !write_trace(o.trace, size, epochs, static_cast<int>(g_signal), stopped_early)) {
    std::fprintf(stderr, "slurm_hello: cannot write trace %s\n", o.trace.c_str());
    status = 5;
  }
  if (status == 0 && stopped_early) status = 3;
  if (status == 0 && rank == o.fail_rank) status = o.exit_code;
  marker.line("exit=" + std::to_string(status));
  MPI_Finalize();
  return status;
}
