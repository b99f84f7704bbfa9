// How exact is the optimal placement on swarms of the paper's size? Prints one row per swarm:
// the best placement found, the certified bound, whether they meet (proven optimal) and the
// seconds taken. Fixed cases (one to four GPU classes), then swarms drawn from a simulator job
// file's device classes (servers in the order the simulator plans them: random classes, relays).
//
//   bench_placement [--job jobs/petals-appendix-e.ini] [--swarms 20] [--servers 64]
//                   [--classes 4] [--time-limit 10] [--threads 0] [--reproducible]
// --classes K adds as many swarms of K random GPU-like classes (throughputs multiples of 100 in
// 300..3000, spans 5..40), servers split evenly: instances with the structure the exact search
// exploits, beyond the hand-picked ones.
// Exit status 0 whatever the gaps (this measures, the unit tests judge); 2 for bad options.
//
//   bench_placement --scaling [--threads N] [--time-limit 60]
// instead decides the hardest single targets of docs/placement.md (the exact search alone, as
// optimal_placement asks it) with 1, 2, 4, ... workers up to N (0: one per CPU this process may
// run on), each within the time limit, and prints each count's speedup over one worker measured
// in the same run: how the search scales on a many-core node. Exit status 1 if a decision
// differs from the known one.
//
//   bench_placement --decide 1200:24,900:29,1000:9,400:29 --target 14700 [--servers 64]
//                   [--blocks 80] [--threads N] [--time-limit 30]
// decides one target with the exact search alone (servers cycling through the classes) and prints
// one line, `outcome nodes seconds`: what bench/balance/compare_solvers.py sets beside HiGHS and
// CP-SAT on the same questions. Exit status 2 for a malformed class list.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <boost/program_options.hpp>

#include "../../src/placement/placement_search.hpp"
#include "../../src/placement/placement_values.hpp"
#include "swarm/config/job_file.hpp"
#include "swarm/placement/placement.hpp"
#include "swarm/util/random.hpp"
#include "swarm/sim/simulator.hpp"
#include "swarm/sim/sim_job.hpp"

namespace {

using swarm::PlacementServer;

struct Case {
  std::string name;
  int blocks;
  std::vector<PlacementServer> servers;
};

// n servers cycling through the classes (t:k), as the unit tests build them.
Case cycling(std::string name, int blocks, int n, std::vector<PlacementServer> classes) {
  Case c{std::move(name), blocks, {}};
  for (int i = 0; i < n; ++i) c.servers.push_back(classes[static_cast<std::size_t>(i) % classes.size()]);
  return c;
}

std::size_t distinct_classes(const std::vector<PlacementServer>& servers) {
  std::vector<std::pair<double, int>> keys;
  for (const auto& s : servers) keys.emplace_back(s.throughput, s.num_blocks);
  std::sort(keys.begin(), keys.end());
  return static_cast<std::size_t>(std::unique(keys.begin(), keys.end()) - keys.begin());
}

// The exact search's hard single targets (docs/placement.md, "Single targets searched alone"),
// 64 servers cycling through the classes, on 80 blocks.
struct HardTarget {
  std::vector<PlacementServer> classes;
  double target;
  bool reachable;  // as docs/placement.md reports it: a decision otherwise is a bug
};

std::vector<swarm::detail::SearchClass> cycled_classes(const std::vector<PlacementServer>& classes, int servers) {
  std::vector<swarm::detail::SearchClass> out;
  const int n = static_cast<int>(classes.size());
  for (int c = 0; c < n; ++c) {
    const auto& k = classes[static_cast<std::size_t>(c)];
    out.push_back({k.throughput, k.num_blocks, servers / n + (c < servers % n ? 1 : 0)});
  }
  return out;
}

int scaling(int max_workers, double limit) {
  const std::vector<HardTarget> targets = {
      {{{1900, 12}, {400, 17}, {2900, 5}, {2900, 28}}, 24'800, false},
      {{{3000, 33}, {2500, 5}, {1200, 36}, {2800, 31}}, 42'400, false},
      {{{2800, 31}, {1200, 38}, {1800, 15}, {1200, 19}, {600, 31}}, 31'400, false},
      {{{2500, 22}, {2400, 40}, {3000, 33}, {2500, 5}, {1200, 36}}, 47'600, false},
      {{{2500, 22}, {2400, 40}, {3000, 33}, {2500, 5}, {1200, 36}, {2800, 31}}, 50'000, true},
      {{{2500, 22}, {2400, 40}, {3000, 33}, {2500, 5}, {1200, 36}, {2800, 31}}, 50'100, false},
  };
  std::vector<int> workers;
  for (int w = 1; w < max_workers; w *= 2) workers.push_back(w);
  workers.push_back(max_workers);
  std::printf("%-52s %8s %7s %11s %12s %8s %8s\n", "swarm (64 servers, 80 blocks)", "target", "workers", "outcome",
              "nodes", "seconds", "speedup");
  const char* outcomes[] = {"reached", "refuted", "out_of_time"};
  double sum_one = 0.0, sum_most = 0.0;
  bool all_decided = true;
  int wrong = 0;
  for (const HardTarget& h : targets) {
    const auto classes = cycled_classes(h.classes, 64);
    const auto values = swarm::detail::coverage_values(classes, h.target);
    std::string name;
    for (const auto& c : h.classes) {
      if (!name.empty()) name += ", ";
      name += std::to_string(static_cast<int>(c.throughput)) + ':' + std::to_string(c.num_blocks);
    }
    double one = 0.0;  // seconds with one worker; 0: it did not decide
    for (int w : workers) {
      const auto began = std::chrono::steady_clock::now();
      const auto deadline =
          began + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(limit));
      const swarm::detail::SearchResult r = swarm::detail::reach_target(
          80, classes, h.target, values ? std::span<const double>(*values) : std::span<const double>{},
          {.deadline = deadline, .wide_deadline = deadline, .threads = w});
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
      const bool decided = r.outcome != swarm::detail::SearchOutcome::out_of_time;
      if (w == 1) one = decided ? seconds : 0.0;
      std::printf("%-52s %8.0f %7d %11s %12ld %8.2f ", name.c_str(), h.target, w,
                  outcomes[static_cast<int>(r.outcome)], r.nodes, seconds);
      if (decided && one > 0) {
        std::printf("%7.2fx\n", one / seconds);
      } else {
        std::printf("%8s\n", "-");
      }
      std::fflush(stdout);
      if (decided && (r.outcome == swarm::detail::SearchOutcome::reached) != h.reachable) {
        std::fprintf(stderr, "bench_placement: %d workers decide %.0f of %s against what is known: the search disagrees\n",
                     w, h.target, name.c_str());
        ++wrong;
      }
      if (w == workers.back()) {
        all_decided = all_decided && decided && one > 0;
        sum_one += one;
        sum_most += seconds;
      }
    }
  }
  if (all_decided) {
    std::printf("all targets: %.2f s with 1 worker, %.2f s with %d: %.2fx\n", sum_one, sum_most, workers.back(),
                sum_one / sum_most);
  } else {
    std::printf("all targets: not every one decided within %.1f s (raise --time-limit)\n", limit);
  }
  return wrong == 0 ? 0 : 1;
}

// "t:k,t:k,..." -> classes; nullopt (with a message) when malformed.
std::optional<std::vector<PlacementServer>> parse_classes(const std::string& text) {
  std::vector<PlacementServer> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    double t = 0;
    int k = 0;
    char colon = 0;
    std::istringstream one(item);
    if (!(one >> t >> colon >> k) || colon != ':' || !(t >= 0) || k < 1 || !(one >> std::ws).eof()) {
      std::fprintf(stderr, "bench_placement: --decide: '%s' is not throughput:span (e.g. 1200:24)\n", item.c_str());
      return std::nullopt;
    }
    out.push_back({t, k});
  }
  if (out.empty()) {
    std::fprintf(stderr, "bench_placement: --decide: no classes in '%s'\n", text.c_str());
    return std::nullopt;
  }
  return out;
}

int decide(const std::vector<PlacementServer>& given, int blocks, int servers, double target, int threads,
           double limit) {
  for (const auto& c : given) {
    if (c.num_blocks > blocks) {
      std::fprintf(stderr, "bench_placement: --decide: span %d is longer than --blocks %d\n", c.num_blocks, blocks);
      return 2;
    }
  }
  const auto classes = cycled_classes(given, servers);
  const auto values = swarm::detail::coverage_values(classes, target);
  const auto began = std::chrono::steady_clock::now();
  const auto deadline =
      began + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(limit));
  const swarm::detail::SearchResult r = swarm::detail::reach_target(
      blocks, classes, target, values ? std::span<const double>(*values) : std::span<const double>{},
      {.deadline = deadline, .wide_deadline = deadline, .threads = threads});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  const char* outcomes[] = {"reached", "refuted", "out_of_time"};
  std::printf("%s %ld %.3f\n", outcomes[static_cast<int>(r.outcome)], r.nodes, seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace po = boost::program_options;
  po::options_description program("bench_placement");
  program.add_options()("help,h", "this help")(
      "job", po::value<std::string>()->default_value("jobs/petals-appendix-e.ini"),
      "simulator job file whose device classes draw the random swarms ('' for none)")(
      "swarms", po::value<int>()->default_value(20), "random swarms to draw")(
      "servers", po::value<int>()->default_value(64), "servers per swarm")(
      "classes", po::value<int>()->default_value(0), "also draw swarms of this many random classes (0: none)")(
      "time-limit", po::value<double>()->default_value(10.0), "seconds per placement")(
      "reproducible", "count the time limit in work, not by the clock (PlacementOptions::reproducible)")(
      "threads", po::value<int>()->default_value(0), "threads for the exact search (0: one per CPU this process may run on)")(
      "decide", po::value<std::string>(), "decide one --target for these classes t:k,t:k,... (see the file's comment)")(
      "target", po::value<double>(), "the target of --decide")(
      "blocks", po::value<int>()->default_value(80), "blocks of the model, with --decide")(
      "scaling", "decide the hard single targets with 1, 2, 4, ... workers up to --threads (see the file's comment)");
  po::variables_map args;
  try {
    const po::parsed_options parsed = po::parse_command_line(argc, argv, program);
    for (const auto& o : parsed.options) {
      if (o.position_key >= 0) throw std::invalid_argument("unexpected argument '" + o.value.front() + "'");
    }
    po::store(parsed, args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_placement: %s\n", e.what());
    return 2;
  }
  if (args.count("help")) {
    std::printf("%s", (std::ostringstream() << program).str().c_str());
    return 0;
  }
  const int n = args["servers"].as<int>();
  const double limit = args["time-limit"].as<double>();
  // Bounds of a benchmark, not of the method: they keep a typo from exhausting memory or threads.
  if (n < 1 || n > 100'000 || args["swarms"].as<int>() < 0 || args["classes"].as<int>() < 0 ||
      !(limit > 0 && limit <= 1e6) || args["threads"].as<int>() < 0 || args["threads"].as<int>() > 1024 ||
      args["blocks"].as<int>() > 100'000) {
    std::fprintf(stderr,
                 "bench_placement: need --servers in 1..100000, --swarms >= 0, --classes >= 0, --time-limit in "
                 "(0, 1e6], --threads in 0..1024, --blocks <= 100000\n");
    return 2;
  }

  if (args.count("decide")) {
    const auto classes = parse_classes(args["decide"].as<std::string>());
    if (!classes) return 2;
    if (!args.count("target") || !(args["target"].as<double>() >= 0) || args["blocks"].as<int>() < 1) {
      std::fprintf(stderr, "bench_placement: --decide needs --target >= 0 and --blocks >= 1\n");
      return 2;
    }
    const int threads = args["threads"].as<int>();
    return decide(*classes, args["blocks"].as<int>(), n, args["target"].as<double>(),
                  threads > 0 ? threads : swarm::detail::usable_cpus(), limit);
  }

  if (args.count("scaling")) {
    const int threads = args["threads"].as<int>();
    return scaling(threads > 0 ? threads : swarm::detail::usable_cpus(), limit);
  }

  std::vector<Case> cases = {
      cycling("one class 2100:40", 80, n, {{2100, 40}}),
      cycling("equal t, lengths 40/20/11/7", 80, n, {{1, 40}, {1, 20}, {1, 11}, {1, 7}}),
      cycling("2100:40, 1300:20", 80, n, {{2100, 40}, {1300, 20}}),
      cycling("2100:40, 1300:20, 700:11", 80, n, {{2100, 40}, {1300, 20}, {700, 11}}),
      cycling("1000:13, 700:11, 350:7", 80, n, {{1000, 13}, {700, 11}, {350, 7}}),
      cycling("2100:40, 1300:20, 700:11, 350:7", 80, n, {{2100, 40}, {1300, 20}, {700, 11}, {350, 7}}),
  };
  const int random_classes = args["classes"].as<int>();
  if (random_classes > 0) {
    swarm::Rng rng(2026);
    for (int s = 1; s <= args["swarms"].as<int>(); ++s) {
      std::vector<PlacementServer> classes;
      for (int c = 0; c < random_classes; ++c) {
        classes.push_back({100.0 * static_cast<double>(3 + swarm::uniform_index(rng, 28)),
                           5 + static_cast<int>(swarm::uniform_index(rng, 36))});
      }
      std::string name;
      for (const auto& c : classes) {
        if (!name.empty()) name += ", ";
        name += std::to_string(static_cast<int>(c.throughput));
        name += ':';
        name += std::to_string(c.num_blocks);
      }
      cases.push_back(cycling(name, 80, n, std::move(classes)));
    }
  }
  const std::string job_path = args["job"].as<std::string>();
  if (!job_path.empty()) {
    try {
      po::options_description schema = swarm::sim::job_schema();
      const std::string tables[] = {"class"};
      const swarm::JobFile job(job_path, schema, tables);
      swarm::sim::SimConfig config = swarm::sim::load_config(job);
      for (int s = 1; s <= args["swarms"].as<int>(); ++s) {
        config.seed = static_cast<std::uint64_t>(s);
        config.initial_servers = std::max(config.initial_servers, n);
        const auto plans = swarm::sim::plan_servers(config);
        Case c{job_path + " seed " + std::to_string(s), config.blocks, {}};
        for (const auto& p : plans) {
          if (static_cast<int>(c.servers.size()) == n) break;
          c.servers.push_back({p.throughput, p.span});
        }
        cases.push_back(std::move(c));
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_placement: %s\n", e.what());
      return 2;
    }
  }

  std::printf("%-44s %7s %12s %12s %8s %6s %8s  %s\n", "swarm", "classes", "found", "bound", "gap_%",
              "proven", "seconds", "method");
  int proven = 0;
  double worst = 0.0, total = 0.0;
  std::vector<double> open_gaps;
  for (const Case& c : cases) {
    const swarm::Placement p = swarm::optimal_placement(
        c.blocks, c.servers,
        {.time_limit_s = limit, .reproducible = args.count("reproducible") > 0, .threads = args["threads"].as<int>(),
         .hints = {}});
    std::printf("%-44s %7zu %12.1f %12.1f %8.3f %6s %8.2f  %s\n", c.name.c_str(), distinct_classes(c.servers),
                p.value, p.bound, 100 * p.gap(), p.optimal ? "yes" : "no", p.seconds, p.method.c_str());
    std::fflush(stdout);
    proven += p.optimal ? 1 : 0;
    if (!p.optimal) open_gaps.push_back(100 * p.gap());
    worst = std::max(worst, p.seconds);
    total += p.seconds;
  }
  std::printf("proven optimal: %d of %zu; seconds: mean %.2f, worst %.2f (limit %.1f)\n", proven, cases.size(),
              total / static_cast<double>(cases.size()), worst, limit);
  if (!open_gaps.empty()) {
    std::sort(open_gaps.begin(), open_gaps.end());
    std::printf("gap of the unproven (%%): median %.3f, worst %.3f\n", open_gaps[open_gaps.size() / 2], open_gaps.back());
  }
  return 0;
}
