// Engine throughput per policy on the study size the brief names (10,000 sessions over 1,000
// workers with heterogeneous, changing speeds and churn), plus a larger case (100,000 x 5,000).
// Besides the time, each row reports s_per_run, which is also the ratio to the 1 s budget of
// the first case (the goal: well under 1), completed_ok and the run's own metrics, so a slow
// policy and a wrong one are both visible.
#include <benchmark/benchmark.h>

#include <string>

#include "swarm/dispatch/engine.hpp"

namespace {

using namespace swarm::dispatch;

std::vector<WorkerSpec> swarm_of(std::size_t n) {
  swarm::Rng rng(1);
  std::vector<WorkerSpec> workers(n);
  for (std::size_t i = 0; i < n; ++i) {
    workers[i].speed = swarm::uniform(rng, 20.0, 200.0);
    if (i % 10 == 0) workers[i].speed_changes = {{50.0, workers[i].speed / 4.0}};  // slows down
    if (i % 50 == 1) workers[i].leave_time = 30.0;
    if (i % 50 == 2) workers[i].join_time = 20.0;
  }
  return workers;
}

void run(benchmark::State& state, PolicyKind kind) {
  const auto workers = swarm_of(static_cast<std::size_t>(state.range(0)));
  const auto tasks = make_workload({.count = static_cast<std::size_t>(state.range(1)), .work_min = 128, .work_max = 1024}, 2);
  Metrics m;
  for (auto _ : state) {
    const RunResult r = simulate(tasks, workers, kind, {}, 7);
    m = r.metrics;
    benchmark::DoNotOptimize(m);
  }
  state.counters["s_per_run"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["completed_ok"] = m.completed == tasks.size() ? 1.0 : 0.0;
  state.counters["makespan_s"] = m.makespan_s;
  state.counters["imbalance"] = m.imbalance_busy;
  state.counters["p99_s"] = m.latency_p99_s;
  state.counters["migrations"] = static_cast<double>(m.migrations);
  state.counters["messages"] = static_cast<double>(m.control_messages);
  state.counters["events"] = static_cast<double>(m.events);
  state.SetLabel(std::string(to_string(kind)));
}

const bool registered = [] {
  for (PolicyKind kind : all_policies()) {
    benchmark::RegisterBenchmark(("simulate/" + std::string(to_string(kind))).c_str(), run, kind)
        ->Args({1000, 10000})
        ->Args({5000, 100000})
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace

BENCHMARK_MAIN();
