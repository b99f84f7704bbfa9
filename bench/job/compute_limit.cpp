// bench_compute_limit: what one rank can compute when nothing else holds it up, for the batching
// benchmark (bench/job/batching.py). In one process, no communication: a span of `span` blocks
// runs batches of `rows` sessions decoding one token each after `position` cached tokens,
// back to back, and the client's work for such a batch (embeddings and the LM-head GEMM) is
// timed apart. Prints the rates of a server rank (its forwards only) and of rank 0 (its forwards
// and the client's work), in tokens through the span per second.
//
//   bench_compute_limit [--hidden 2048] [--intermediate 5632] [--heads 16] [--kv-heads 4]
//                       [--vocab 32000] [--span 2] [--rows 8] [--position 32] [--reps 5]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "swarm/model/model.hpp"
#include "swarm/util/clock.hpp"

using namespace swarm::model;

namespace {

using swarm::Clock;

double seconds_of(Clock::time_point began) { return std::chrono::duration<double>(Clock::now() - began).count(); }

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "bench_compute_limit: %s\nusage: bench_compute_limit [--hidden N] [--intermediate N] "
               "[--heads N] [--kv-heads N] [--vocab N] [--span N] [--rows N] [--position N] [--reps N]\n",
               why.c_str());
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int hidden = 2048, intermediate = 5632, heads = 16, kv_heads = 4, vocab = 32000, span = 2, rows = 8, position = 32,
      reps = 5;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value after " + flag);
    char* end = nullptr;
    const long v = std::strtol(argv[i + 1], &end, 10);
    if (*end != '\0' || v < 1 || v > (1 << 20)) usage("bad value '" + std::string(argv[i + 1]) + "' for " + flag);
    int* target = flag == "--hidden" ? &hidden : flag == "--intermediate" ? &intermediate : flag == "--heads" ? &heads
                : flag == "--kv-heads" ? &kv_heads : flag == "--vocab" ? &vocab : flag == "--span" ? &span
                : flag == "--rows" ? &rows : flag == "--position" ? &position : flag == "--reps" ? &reps : nullptr;
    if (target == nullptr) usage("unknown flag " + flag);
    *target = static_cast<int>(v);
  }
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = span;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = position + reps + 8;
  c.validate("bench_compute_limit");
  const RandomWeights weights(c, 1);
  auto executor = make_executor(Backend::cpu);
  executor->load(weights, {0, span});
  const ClientModel client(weights);
  set_cpu_threads(1);

  // Caches of `position` tokens for every session, then timed decode steps.
  std::vector<float> prefill(static_cast<std::size_t>(rows) * position * hidden, 0.01f);
  std::vector<Segment> segments;
  for (int s = 0; s < rows; ++s) segments.push_back({static_cast<SessionId>(s + 1), 1, position, 0});
  executor->forward(segments, 0, span, prefill.data());
  std::vector<float> x(static_cast<std::size_t>(rows) * hidden, 0.01f);
  std::vector<std::int32_t> tokens(static_cast<std::size_t>(rows));
  for (int s = 0; s < rows; ++s) tokens[static_cast<std::size_t>(s)] = s % vocab;
  double forward = 1e30, head = 1e30;
  for (int r = 0; r < reps; ++r) {
    for (int s = 0; s < rows; ++s) segments[static_cast<std::size_t>(s)] = {static_cast<SessionId>(s + 1), 1, 1, position + r};
    auto began = Clock::now();
    executor->forward(segments, 0, span, x.data());
    forward = std::min(forward, seconds_of(began));
    began = Clock::now();
    const std::vector<float> embedded = client.embed(tokens);
    const std::vector<float> logits = client.logits(x, rows);
    head = std::min(head, seconds_of(began));
    if (logits.empty() || embedded.empty()) return 1;
  }
  std::printf("# %6s %6s %9s %12s %12s %14s %14s\n", "span", "rows", "position", "forward", "client", "server rank",
              "rank 0");
  std::printf("# %6s %6s %9s %12s %12s %14s %14s\n", "", "", "", "(ms)", "(ms)", "(tokens/s)", "(tokens/s)");
  std::printf("  %6d %6d %9d %12.3f %12.3f %14.1f %14.1f\n", span, rows, position, 1e3 * forward, 1e3 * head,
              rows / forward, rows / (forward + head));
  return 0;
}
