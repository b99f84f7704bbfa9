#pragma once
// swarm_pipe's configuration: the job file schema (Boost.Program_options; the command line
// overrides the file) and its translation into a validated, const JobConfig.
#include <boost/program_options.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "swarm/balance/strategy.hpp"
#include "swarm/comm/transport_kind.hpp"
#include "swarm/config/job_file.hpp"
#include "swarm/dispatch/policy.hpp"
#include "swarm/model/config.hpp"
#include "swarm/model/executor.hpp"

namespace swarm::job {

/// How a homogeneous cluster imitates a heterogeneous swarm ([class.NAME]).
struct DeviceClass {
  std::string name = "default";
  double compute_factor = 1.0;  // compute takes this many times longer (sleep after each forward)
  double link_mbps = 0.0;       // cap on this rank's links, 0 = none (sleep after each transfer)
  double latency_ms = 0.0;      // added to every transfer this rank receives
  int span = 0;                 // blocks a rank of this class holds (0: [servers] span)
  double slowdown_sigma = 0.0;  // changing speed: every epoch compute is also slowed by exp(sigma |N(0,1)|)
  int slowdown_from = 0;        // from this epoch on (1-based; 0: never) compute is also slowdown_factor x slower
  double slowdown_factor = 1.0;  // (a GPU that throttles, a node shared with another job)
};

enum class Arrival { closed, poisson, batch };

struct Churn {
  struct Event {
    int epoch;
    int rank;
  };
  std::vector<Event> leaves;  // the rank stops serving at the boundary before `epoch` (from 1)
  std::vector<Event> joins;   // the rank joins (rule for joiners) at the boundary before `epoch`
  double leave_probability = 0.0;  // per online server per boundary
  double join_probability = 0.0;   // per offline server per boundary
};

struct Workload {
  int prompt_tokens = 16;
  int new_tokens = 8;
  int batch = 1;
  int concurrency = 4;  // closed loop: sessions in flight
  Arrival arrival = Arrival::closed;
  double rate = 2.0;    // poisson: sessions per second
  int sessions = 64;    // batch: sessions that all arrive at the start (the job ends when all are done)
  std::filesystem::path prompts;  // batch inference: JSON Lines of prompts (then `concurrency` in flight)
  std::filesystem::path outputs;  // and where their answers go
};

/// Greedy generation of one prompt (the --dump-output mode).
struct Generate {
  std::vector<std::int32_t> prompt;
  int max_new_tokens = 4;
  std::string dump_output;  // HDF5 file with /output/tokens and /output/logits
};

struct JobConfig {
  // model
  std::string model_dir;        // checkpoint; empty: random weights with the dims below
  int hidden_size = 64, intermediate_size = 172, layers = 8, heads = 4, kv_heads = 2, head_dim = 0;
  int vocab_size = 256, max_position = 4096;
  double rope_theta = 10000.0, rms_norm_eps = 1e-5;
  std::uint64_t weights_seed = 1;
  model::DType weights_dtype = model::DType::f32;  // random weights: dtype of the matrices in memory
  model::DType compute_dtype = model::DType::f32;  // operands of the matrix products (cpu: f32 or bf16)
  int eos_token_id = -1;         // random weights: the end-of-sequence token (-1: none)
  std::optional<model::Backend> backend;  // none: auto (cuda when every rank has a GPU)
  int threads = 1;               // OpenBLAS threads per rank
  // run
  int epochs = 4;                  // the most epochs; a prompts file runs until answered unless set
  double epoch_seconds = 1.0;
  StrategyKind strategy = StrategyKind::full;
  double balance_quality = 0.75;
  CheckMode check = CheckMode::every_boundary;
  double mean_check_epochs = 1.0;
  double placement_time_limit = 1.0;
  double move_horizon = 30;       // move_aware: seconds of job time a move's gain is counted over
  double move_min_interval = 5;   // move_aware: seconds a rank that moved stays put
  double move_min_gain = 0.05;    // move_aware: least relative gain (measured throughputs are noisy)
  std::uint64_t seed = 1;
  std::optional<comm::TransportKind> transport;  // none: auto (nccl on GPUs with a GPU per rank, else mpi)
  double comm_timeout = 120.0;
  std::string trace;
  bool quiet = false;
  // servers
  int span = 0;                    // 0: automatic
  std::vector<std::string> rank_classes;  // class name per rank, cycled
  std::vector<std::string> notes;         // what the job file says that this run ignores (rank 0 prints them)
  std::vector<DeviceClass> classes;
  int max_batch_tokens = 2048;     // tokens of one forward at most (one micro-batch)
  double max_cache_mb = 0.0;
  /// The KV-cache budget per rank in bytes (0: none), as the executors, the client's admission
  /// and the start-up check all count it.
  [[nodiscard]] std::uint64_t max_cache_bytes() const {
    return static_cast<std::uint64_t>(max_cache_mb * 1024.0 * 1024.0);
  }
  double memory_mb = 0.0;          // per-rank memory budget for weights + cache, 0 = unchecked
  Workload workload;
  Churn churn;
  // Request dispatch: a classical load-balancing policy over capacity routes (docs/dispatch.md);
  // empty: every session takes the shortest-latency route, as Petals' clients do.
  std::optional<dispatch::PolicyKind> dispatch_policy;
  dispatch::DispatchOptions dispatch_options;
  int max_routes = 0;  // 0: 2 x ranks
  std::optional<Generate> generate;

  /// The job runs until its workload is done (a prompts file without run.epochs).
  [[nodiscard]] bool epochs_until_done() const { return epochs == kUntilDone; }
  static constexpr int kUntilDone = 2147483647;

  /// The class of `rank` (the default class when none is configured).
  [[nodiscard]] const DeviceClass& class_of(int rank) const;
  /// How many times slower than its class `rank` computes in `epoch` (0-based): the class's
  /// random draw (slowdown_sigma, seeded per rank and epoch) times slowdown_factor from
  /// slowdown_from on; 1 for a class with neither.
  [[nodiscard]] double slowdown_of(int rank, int epoch) const;
  /// Blocks `rank` holds, given the model's blocks and the world size.
  [[nodiscard]] int span_of(int rank, int world_size, int blocks) const;
};

/// Every key with its default and help (job file sections and --section.key overrides), plus
/// the program options (--job, --trace, --model-dir, --prompt-tokens, ...).
[[nodiscard]] boost::program_options::options_description schema();

/// Builds and validates the configuration; throws ConfigError naming file, key and value.
/// `world_size` checks what depends on the number of ranks (classes, churn).
[[nodiscard]] JobConfig load_config(const JobFile& job, int world_size);

}  // namespace swarm::job
