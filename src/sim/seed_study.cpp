#include "swarm/sim/seed_study.hpp"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "swarm/sim/seeds.hpp"

namespace swarm::sim {
namespace {

// Tags on MPI_COMM_WORLD; swarm_sim runs nothing else over MPI.
constexpr int kTagFailNote = 901;  // empty: "a run failed, stop"
constexpr int kTagFailText = 902;  // to rank 0: the message
constexpr int kTagSize = 903;      // a packed run's size (0: not run)
constexpr int kTagBytes = 904;     // its bytes, in chunks
constexpr std::size_t kChunk = std::size_t{1} << 30;

// The MPI calls of the study; with MPI's default handler on MPI_COMM_WORLD an error aborts the
// job with MPI's message, which is the right end for a broken fabric.
void send_bytes(const std::vector<char>& bytes, int to) {
  const std::uint64_t n = bytes.size();
  MPI_Send(&n, 1, MPI_UINT64_T, to, kTagSize, MPI_COMM_WORLD);
  for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
    const int len = static_cast<int>(std::min(kChunk, bytes.size() - at));
    MPI_Send(bytes.data() + at, len, MPI_CHAR, to, kTagBytes, MPI_COMM_WORLD);
  }
}

std::vector<char> recv_bytes(int from) {
  std::uint64_t n = 0;
  MPI_Recv(&n, 1, MPI_UINT64_T, from, kTagSize, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  std::vector<char> bytes(static_cast<std::size_t>(n));
  for (std::size_t at = 0; at < bytes.size(); at += kChunk) {
    const int len = static_cast<int>(std::min(kChunk, bytes.size() - at));
    MPI_Recv(bytes.data() + at, len, MPI_CHAR, from, kTagBytes, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  return bytes;
}

bool failure_noted(const StudyWorld& w) {
  if (!w.mpi || w.size == 1) return false;
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, kTagFailNote, MPI_COMM_WORLD, &flag, MPI_STATUS_IGNORE);
  return flag != 0;
}

std::string plus_minus(double mean, double ci, int width, int precision) {
  char buf[96];
  if (std::isnan(ci)) {
    std::snprintf(buf, sizeof buf, "%*.*f ± %-*s", width, precision, mean, width / 2, "n/a");
  } else {
    std::snprintf(buf, sizeof buf, "%*.*f ± %-*.*f", width, precision, mean, width / 2, precision, ci);
  }
  return buf;
}

void print_table(const std::vector<SeedFigures>& figures, std::size_t seeds) {
  std::printf("#\n# over %zu seeds: mean ± half-width of the 95%% confidence interval (Student's t)\n", seeds);
  std::printf("# %-12s %26s %20s %18s %22s %20s\n", "strategy", "throughput (tokens/s)", "of_upper (%)",
              "disjoint (% time)", "moves (count)", "reload (server-h)");
  for (const SeedFigures& f : figures) {
    const auto at = [&](const char* name, double scale) {
      Interval i = mean_ci95(f.figures.at(name));
      i.mean *= scale;
      i.ci95 *= scale;
      return i;
    };
    const Interval tp = at("mean_throughput", 1), ratio = at("ratio_to_upper_bound", 100),
                   dis = at("disjoint_time_fraction", 100), moves = at("moves", 1), reload = at("reload_hours", 1);
    std::printf("  %-12s %26s %20s %18s %22s %20s\n", std::string(to_string(f.kind)).c_str(),
                plus_minus(tp.mean, tp.ci95, 10, 1).c_str(), plus_minus(ratio.mean, ratio.ci95, 7, 2).c_str(),
                plus_minus(dis.mean, dis.ci95, 6, 2).c_str(), plus_minus(moves.mean, moves.ci95, 8, 1).c_str(),
                plus_minus(reload.mean, reload.ci95, 7, 2).c_str());
  }
}

}  // namespace

int run_seed_study(const SeedStudy& study, const StudyWorld& world, trace::File* trace) {
  // 1. This rank's seeds, run one after the other and kept packed.
  std::vector<std::vector<char>> mine;  // by position among this rank's seeds; empty: not run
  bool failed = false, stopped = false;
  std::string message;
  std::vector<MPI_Request> notes;
  const auto stop = [&] {
    if (study.stop && study.stop()) stopped = true;
    if (failure_noted(world)) stopped = true;
    return stopped;
  };
  for (std::size_t i = static_cast<std::size_t>(world.rank); i < study.seeds.size(); i += static_cast<std::size_t>(world.size)) {
    std::vector<char> packed;
    if (!failed && !stop()) {
      SimConfig c = study.config;
      c.seed = study.seeds[i];
      try {
        // Testing aid (tests/sim/test_sim_seeds.py): make one seed's run fail, as a bad
        // node or an exhausted allocation would, to check that every rank ends without a trace.
        if (const char* fail = std::getenv("SWARM_SIM_FAIL_SEED"); fail && std::to_string(c.seed) == fail) {
          throw std::runtime_error("SWARM_SIM_FAIL_SEED=" + std::string(fail) + " asked this run to fail");
        }
        const auto began = std::chrono::steady_clock::now();
        SeedRecorder recorder(c.seed);
        SimResult result = run(c, recorder, stop);
        if (!result.stopped_early) {
          packed = pack(recorder.take(std::move(result)));
          if (!study.quiet) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
            std::printf("seed %llu done on rank %d: %.1f s\n", static_cast<unsigned long long>(c.seed), world.rank, s);
            std::fflush(stdout);
          }
        }
      } catch (const std::exception& e) {
        failed = true;
        message = "seed " + std::to_string(c.seed) + " (rank " + std::to_string(world.rank) + "): " + e.what();
        if (world.mpi) {
          for (int r = 0; r < world.size; ++r) {
            if (r == world.rank) continue;
            notes.emplace_back();
            MPI_Isend(nullptr, 0, MPI_CHAR, r, kTagFailNote, MPI_COMM_WORLD, &notes.back());
          }
          if (world.rank != 0) {
            notes.emplace_back();
            MPI_Isend(message.data(), static_cast<int>(message.size()), MPI_CHAR, 0, kTagFailText, MPI_COMM_WORLD,
                      &notes.back());
          }
        }
      }
    }
    mine.push_back(std::move(packed));
  }

  // 2. Agree on how it went: 2 a run failed, 1 stopped by a signal, 0 done.
  int status = failed ? 2 : (stopped ? 1 : 0), worst = status, failures = failed ? 1 : 0, all_failures = failures;
  if (world.mpi && world.size > 1) {
    MPI_Allreduce(&status, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&failures, &all_failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  }
  if (worst == 2) {
    if (world.mpi && world.size > 1) {
      // Every note addressed to this rank is taken, so every rank's sends complete.
      for (int k = 0; k < all_failures - failures; ++k) {
        MPI_Recv(nullptr, 0, MPI_CHAR, MPI_ANY_SOURCE, kTagFailNote, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      }
      if (world.rank == 0) {
        for (int k = 0; k < all_failures - failures; ++k) {
          MPI_Status st;
          MPI_Probe(MPI_ANY_SOURCE, kTagFailText, MPI_COMM_WORLD, &st);
          int len = 0;
          MPI_Get_count(&st, MPI_CHAR, &len);
          std::string text(static_cast<std::size_t>(len), '\0');
          MPI_Recv(text.data(), len, MPI_CHAR, st.MPI_SOURCE, kTagFailText, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          if (message.empty()) message = text;  // rank 0's own failure first, else the first to arrive
        }
      }
      MPI_Waitall(static_cast<int>(notes.size()), notes.data(), MPI_STATUSES_IGNORE);
    }
    if (world.rank == 0) {
      std::fprintf(stderr, "swarm_sim: error: %s%s; no trace written\n", message.c_str(),
                   all_failures > 1 ? (" (and " + std::to_string(all_failures - 1) + " more ranks failed)").c_str() : "");
    }
    return 1;
  }

  // 3. Rank 0 writes the runs in list order; the others send theirs.
  if (world.rank != 0) {
    for (const auto& packed : mine) send_bytes(packed, 0);
    return worst == 1 ? 3 : 0;
  }
  std::vector<std::pair<std::uint64_t, SimResult>> results;
  int periods = 0;
  for (std::size_t i = 0; i < study.seeds.size(); ++i) {
    const int owner = static_cast<int>(i % static_cast<std::size_t>(world.size));
    const std::vector<char> bytes = owner == 0 ? std::move(mine[i / static_cast<std::size_t>(world.size)]) : recv_bytes(owner);
    if (bytes.empty()) continue;  // stopped before it finished
    const SeedRun run = unpack(bytes);
    SimTrace seed_trace(*trace, study.meta, "seed_" + std::to_string(run.seed));
    replay(run, study.config, seed_trace);
    seed_trace.finish(run.result);
    periods = run.result.periods_run;
    results.emplace_back(run.seed, run.result);
  }
  trace::Group& root = trace->root();
  SimConfig c = study.config;
  c.seed = study.seeds.front();
  trace::write_run_info(root, {study.meta.program, study.meta.job_file, study.meta.job_text, study.meta.effective, c.seed});
  root.set_attribute("seeds", study.seeds_text);
  root.set_attribute("seeds_run", static_cast<std::int64_t>(results.size()));
  root.set_attribute("blocks", static_cast<std::int64_t>(c.blocks));
  root.set_attribute("period_s", c.period);
  root.set_attribute("periods_run", static_cast<std::int64_t>(periods));
  root.set_attribute("stopped_early", static_cast<std::int64_t>(worst == 1));
  const std::vector<SeedFigures> figures = seed_figures(results);
  write_seed_summary(root, figures);
  trace->finish();
  print_table(figures, results.size());
  if (worst == 1) {
    std::printf("# stopped by a signal: %zu of %zu seeds finished and are in the trace\n", results.size(),
                study.seeds.size());
  }
  return worst == 1 ? 3 : 0;
}

}  // namespace swarm::sim
