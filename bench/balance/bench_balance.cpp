// Google Benchmark of the balancing core at the sizes: per-block throughput, rule 1
// and a full rule-2 decision on 64 x 80, 1,000 x 200 and 10,000 x 1,000 (servers x blocks).
// Goals: rule 2 on 64 x 80 well under 1 ms and >= 100x faster than Petals' Python
// (bench/balance/compare_petals.py measures that ratio); 10,000 x 1,000 under 1 s.
// `bench_balance --write-swarm N L FILE` writes the benchmark swarm as a what-if JSON line.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>

#include "swarm_fixture.hpp"

namespace {

using swarm::bench::petals_like_swarm;

const swarm::Swarm& cached(int n, int l) {
  static std::map<std::pair<int, int>, swarm::Swarm> swarms;
  auto it = swarms.find({n, l});
  if (it == swarms.end()) it = swarms.emplace(std::make_pair(n, l), petals_like_swarm(n, l)).first;
  return it->second;
}

void BM_BlockThroughputs(benchmark::State& state) {
  const auto& s = cached(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  for (auto _ : state) benchmark::DoNotOptimize(swarm::block_throughputs(s));
  state.counters["servers"] = static_cast<double>(s.size());
}

void BM_RuleOne(benchmark::State& state) {
  const auto& s = cached(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  const int k = std::max(1, s.total_blocks() / 8);
  for (auto _ : state) benchmark::DoNotOptimize(swarm::choose_best_blocks(s, k));
}

void BM_RuleTwo(benchmark::State& state) {
  const auto& s = cached(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)));
  swarm::Rng rng(1);
  std::size_t i = 0;
  double passes = 0, moves = 0, decisions = 0;
  for (auto _ : state) {
    const auto d = swarm::should_choose_other_blocks(s, i, 0.99, rng);
    benchmark::DoNotOptimize(d);
    passes += d.passes;
    moves += d.move;
    ++decisions;
    i = (i + 7919) % s.size();  // a different server each time
  }
  state.counters["passes"] = passes / decisions;
  state.counters["moved"] = moves / decisions;
}

void sizes(benchmark::internal::Benchmark* b) {
  b->Args({64, 80})->Args({1000, 200})->Args({10000, 1000})->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_BlockThroughputs)->Apply(sizes);
BENCHMARK(BM_RuleOne)->Apply(sizes);
BENCHMARK(BM_RuleTwo)->Apply(sizes)->MinTime(0.5);

int write_swarm(int n, int l, const char* path) {
  const swarm::Swarm s = petals_like_swarm(n, l);
  std::ofstream out(path);
  out << "{\"total_blocks\": " << l << ", \"seed\": 1, \"servers\": [";
  for (std::size_t i = 0; i < s.size(); ++i) {
    out << (i ? ", " : "") << "{\"id\": \"" << s[i].id << "\", \"start\": " << s[i].span.start
        << ", \"end\": " << s[i].span.end << ", \"throughput\": " << s[i].throughput << ", \"state\": \"online\"}";
  }
  out << "], \"queries\": []}\n";
  return out ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::strcmp(argv[1], "--write-swarm") == 0) {
    return write_swarm(std::atoi(argv[2]), std::atoi(argv[3]), argv[4]);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
