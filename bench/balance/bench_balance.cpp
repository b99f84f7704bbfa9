// Google Benchmark of the balancing core at the sizes: per-block throughput, rule 1
// and a full rule-2 decision on 64 x 80, 1,000 x 200 and 10,000 x 1,000 (servers x blocks).
// Goals: rule 2 on 64 x 80 well under 1 ms and >= 100x faster than Petals' Python
// (bench/balance/compare_petals.py measures that ratio); 10,000 x 1,000 under 1 s.
// `bench_balance --write-swarm N L FILE` writes the benchmark swarm as a what-if JSON line.
#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>

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

// A whole number in lo..hi, or nothing.
std::optional<int> whole(const char* text, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return std::nullopt;
  return static_cast<int>(v);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--write-swarm") == 0) {
    const auto n = argc == 5 ? whole(argv[2], 1, 1'000'000) : std::nullopt;
    const auto l = argc == 5 ? whole(argv[3], 1, 100'000) : std::nullopt;
    if (!n || !l) {
      std::fprintf(stderr, "usage: bench_balance --write-swarm SERVERS(1..1000000) BLOCKS(1..100000) FILE\n");
      return 2;
    }
    try {
      if (write_swarm(*n, *l, argv[4]) != 0) {
        std::fprintf(stderr, "bench_balance: cannot write '%s'\n", argv[4]);
        return 1;
      }
    } catch (const std::exception& e) {  // a swarm the fixture cannot build on so few blocks
      std::fprintf(stderr, "bench_balance: %s\n", e.what());
      return 2;
    }
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
