// swarm_pipe's epoch loop. Every rank is a server; rank 0 is also the client and the
// coordinator. Each epoch: ticks of traffic (bulk-synchronous exchanges of activations along the
// sessions' routes), then a boundary: measurements allgathered, rank 0 applies churn and the
// balancing strategy, the assignment is broadcast, movers reload. Design: docs/job.md.
#include "swarm/job/pipeline.hpp"

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <thread>

#include "client.hpp"
#include "exchange.hpp"
#include "job_trace.hpp"
#include "server.hpp"
#include "swarm/comm/control.hpp"
#include "swarm/comm/device.hpp"
#include "swarm/comm/errors.hpp"
#include "swarm/comm/failure.hpp"
#include "swarm/comm/mpi_world.hpp"
#include "swarm/comm/transport.hpp"
#include "swarm/job/balancer.hpp"
#include "swarm/job/config.hpp"
#include "swarm/model/client.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/model/weights.hpp"
#include "swarm/random.hpp"
#include "swarm/rules.hpp"
#include "swarm/version.hpp"

namespace po = boost::program_options;

namespace swarm::job {
namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_terminate{false};
extern "C" void on_terminate(int) { g_terminate = true; }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Rank 0's assignment to everyone (the vector has one entry per rank on every rank).
std::vector<Assignment> broadcast(const comm::Communicator& comm, std::vector<Assignment> assignment) {
  comm::detail::bcast_bytes(comm, std::as_writable_bytes(std::span(assignment)), 0);
  return assignment;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1), p * static_cast<double>(v.size())));
  return v[i];
}

// Runs `f` on every rank and agrees on the outcome: a failure anywhere becomes one message from
// rank 0 and `false` everywhere (the caller exits non-zero). Bad input never hangs the others.
template <typename F>
bool all_ok(const comm::Communicator& comm, F&& f) {
  std::optional<std::string> error;
  try {
    f();
  } catch (const std::exception& e) {
    error = e.what();
  }
  return comm::agree(comm, error);
}

model::ModelConfig random_model(const JobConfig& c) {
  model::ModelConfig m;
  m.vocab_size = c.vocab_size;
  m.hidden_size = c.hidden_size;
  m.intermediate_size = c.intermediate_size;
  m.num_hidden_layers = c.layers;
  m.num_attention_heads = c.heads;
  m.num_key_value_heads = c.kv_heads;
  m.head_dim = c.head_dim > 0 ? c.head_dim : c.hidden_size / c.heads;
  m.rms_norm_eps = c.rms_norm_eps;
  m.rope_theta = c.rope_theta;
  m.max_position_embeddings = c.max_position;
  m.validate("job file [model]");
  return m;
}

class Job {
 public:
  Job(comm::MpiWorld& world, JobConfig config, const JobFile& file)
      : world_(world), comm_(world.comm()), config_(std::move(config)), file_(file) {}

  int run();

 private:
  bool setup();
  void traffic(int epoch);
  void apply(const std::vector<Assignment>& assignment);
  Measurement measure() { return server_->report(hidden_); }
  void record(int epoch, const std::vector<Measurement>& measured, double traffic_s);
  void progress(int epoch, const EpochRecord& r) const;
  void summary() const;
  void dump_output();

  comm::MpiWorld& world_;
  const comm::Communicator& comm_;
  JobConfig config_;
  const JobFile& file_;
  int rank_ = 0, size_ = 1, blocks_ = 0, hidden_ = 0;
  model::Backend backend_ = model::Backend::cpu;
  comm::TransportKind transport_kind_ = comm::TransportKind::mpi;
  std::unique_ptr<model::WeightSource> source_;
  std::unique_ptr<model::ClientModel> client_model_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<SpanServer> server_;
  std::unique_ptr<comm::Transport> transport_;
  std::unique_ptr<Exchange> exchange_;
  std::unique_ptr<Balancer> balancer_;  // rank 0
  std::optional<trace::File> trace_file_;
  std::optional<trace::File> dump_file_;  // generation output (--dump-output), rank 0
  std::unique_ptr<JobTrace> trace_;
  BoundaryDecision last_decision_;      // rank 0: the boundary before the current epoch
  double last_boundary_seconds_ = 0;
  std::vector<EpochRecord> records_;
  std::vector<Message> outbox_;
  bool terminate_seen_ = false;
  bool finished_ = false;  // the batch workload is done: this epoch is the last
  Clock::time_point began_ = Clock::now();
};

bool Job::setup() {
  rank_ = comm_.rank();
  size_ = comm_.size();
  model::set_cpu_threads(config_.threads);

  // Weights: each rank opens the source (a checkpoint reads only config.json and the headers).
  if (!all_ok(comm_, [&] {
        if (config_.model_dir.empty()) {
          source_ = std::make_unique<model::RandomWeights>(random_model(config_), config_.weights_seed);
        } else {
          source_ = std::make_unique<model::Checkpoint>(config_.model_dir);
        }
      })) {
    return false;
  }
  const model::ModelConfig& mc = source_->config();
  blocks_ = mc.num_hidden_layers;
  hidden_ = mc.hidden_size;

  // What depends on the model and the world size: spans, memory, backend, transport.
  std::vector<int> spans(static_cast<std::size_t>(size_));
  if (!all_ok(comm_, [&] {
        long capacity = 0;
        for (int r = 0; r < size_; ++r) {
          spans[static_cast<std::size_t>(r)] = config_.span_of(r, size_, blocks_);
          capacity += spans[static_cast<std::size_t>(r)];
        }
        const int longest = *std::max_element(spans.begin(), spans.end());
        if (capacity < blocks_) {
          file_.fail("servers.span", std::to_string(config_.span),
                     std::to_string(size_) + " ranks holding " + std::to_string(capacity) +
                         " blocks in all (with the [class.*] spans) cannot cover the model's " +
                         std::to_string(blocks_) + " blocks; more ranks are needed (or longer spans)");
        }
        const double needed_mb = static_cast<double>(mc.block_weight_bytes()) * longest / (1024.0 * 1024.0);
        if (config_.memory_mb > 0 && needed_mb > config_.memory_mb) {
          file_.fail("servers.memory_mb", std::to_string(config_.memory_mb),
                     "a span of " + std::to_string(longest) + " blocks needs " + std::to_string(needed_mb) +
                         " MiB of fp32 weights; the model is too big for the ranks' memory (use more ranks "
                         "and a shorter servers.span)");
        }
        if (config_.max_cache_mb > 0) {
          // Sessions beyond the budget wait for room (the client's admission control), but one
          // session must fit a rank of the longest span even when restarted after a reroute,
          // or it would wait for ever.
          const bool generating = config_.generate.has_value();
          const int prompt = generating ? static_cast<int>(config_.generate->prompt.size()) : config_.workload.prompt_tokens;
          const int total = prompt + (generating ? config_.generate->max_new_tokens : config_.workload.new_tokens) - 1;
          const int batch = generating ? 1 : config_.workload.batch;
          const double needed =
              static_cast<double>(model::worst_session_kv_bytes_per_block(mc, batch, prompt, std::max(prompt, total))) *
              longest;
          const auto budget = static_cast<double>(config_.max_cache_bytes());
          if (needed > budget) {
            file_.fail("servers.max_cache_mb", format_number(config_.max_cache_mb),
                       "a span of " + std::to_string(longest) + " blocks needs " + format_number(needed / (1024.0 * 1024.0)) +
                           " MiB of KV cache for one session of batch " + std::to_string(batch) + " and " +
                           std::to_string(total) + " positions (restarted after a reroute, the cache's doubling " +
                           "included); sessions beyond the budget wait for room");
          }
        }
        if (config_.generate && !config_.generate->prompt.empty()) {
          for (auto t : config_.generate->prompt) {
            if (t >= mc.vocab_size) {
              throw ConfigError("command line: key 'prompt-tokens': token " + std::to_string(t) +
                                " is outside the vocabulary of " + std::to_string(mc.vocab_size));
            }
          }
        }
        const bool gpu = model::cuda_available();
        if (config_.backend == "cuda" && !gpu) {
          file_.fail("model.backend", "cuda",
                     "rank " + std::to_string(rank_) + " sees no usable GPU (or the build has no CUDA backend)");
        }
      })) {
    return false;
  }
  // Backend and transport: the GPU path only when every rank has its own GPU.
  const int devices = comm::device_count();
  const int have = config_.backend == "cpu" ? 0 : (model::cuda_available() ? 1 : 0);
  const auto all = comm::allgather_values(comm_, have);
  const bool every_gpu = std::all_of(all.begin(), all.end(), [](int x) { return x == 1; });
  backend_ = (config_.backend == "cuda" || (config_.backend == "auto" && every_gpu)) ? model::Backend::cuda
                                                                                       : model::Backend::cpu;
  if (config_.transport == "nccl") {
    transport_kind_ = comm::TransportKind::nccl;
  } else if (config_.transport == "mpi") {
    transport_kind_ = comm::TransportKind::mpi;
  } else {
    transport_kind_ = backend_ == model::Backend::cuda ? comm::default_transport_kind(world_.layout(), devices)
                                                       : comm::TransportKind::mpi;
  }
  const int device = devices > 0 ? world_.layout().device_for(devices) : 0;
  if (!all_ok(comm_, [&] {
        if (backend_ == model::Backend::cuda) comm::set_device(device);
        transport_ = comm::make_transport(transport_kind_, comm_, device,
                                          {std::chrono::duration<double>(config_.comm_timeout)});
      })) {
    return false;
  }
  exchange_ = std::make_unique<Exchange>(comm_, *transport_, hidden_, transport_kind_ == comm::TransportKind::nccl);

  // Rank 0: the trace file (an unwritable path fails here, before any work) and the client.
  if (!all_ok(comm_, [&] {
        if (rank_ != 0) return;
        client_model_ = std::make_unique<model::ClientModel>(*source_);
        client_ = std::make_unique<Client>(*client_model_, config_, size_);
        if (!config_.trace.empty()) {
          trace_file_.emplace(trace::File::create(config_.trace));
          JobMetadata meta{file_.path().string(),
                           file_.text(),
                           file_.effective(),
                           source_->describe(),
                           std::string(model::to_string(backend_)),
                           std::string(to_string(transport_kind_)),
                           std::string(to_string(config_.strategy)),
                           config_.seed,
                           size_,
                           blocks_,
                           hidden_};
          trace_ = std::make_unique<JobTrace>(*trace_file_, meta);
        }
        if (config_.generate && !config_.generate->dump_output.empty()) {
          dump_file_.emplace(trace::File::create(config_.generate->dump_output));
        }
        balancer_ = std::make_unique<Balancer>(config_, blocks_, spans);
      })) {
    if (rank_ == 0 && trace_file_ && !config_.trace.empty()) std::filesystem::remove(config_.trace);
    if (rank_ == 0 && dump_file_) std::filesystem::remove(config_.generate->dump_output);
    return false;
  }

  // Throughput before choosing blocks, as Petals does: one block, a prompt-sized batch.
  Measurement first;
  if (!all_ok(comm_, [&] {
        server_ = std::make_unique<SpanServer>(*source_, backend_, config_.class_of(rank_), rank_,
                                               static_cast<std::size_t>(config_.max_cache_bytes()), device);
        (void)server_->benchmark(std::max(1, config_.workload.prompt_tokens * config_.workload.batch));
        first = measure();
      })) {
    return false;
  }
  const auto measured = comm::allgather_values(comm_, first);
  const auto started = Clock::now();
  std::vector<Assignment> assignment(static_cast<std::size_t>(size_));
  if (rank_ == 0) {
    balancer_->update(measured);
    last_decision_ = balancer_->initial();
    assignment = last_decision_.assignment;
  }
  assignment = broadcast(comm_, std::move(assignment));
  if (!all_ok(comm_, [&] { apply(assignment); })) return false;
  last_boundary_seconds_ = seconds_since(started);
  if (rank_ == 0) {
    client_->set_servers(balancer_->route_servers());
    outbox_ = client_->redispatch(0.0);
  }

  if (rank_ == 0 && !config_.quiet) {
    std::printf("# swarm_pipe %s: %d ranks, %s, backend %s, transport %s, strategy %s\n# effective config:\n%s",
                kVersion, size_, source_->describe().c_str(), std::string(model::to_string(backend_)).c_str(),
                std::string(to_string(transport_kind_)).c_str(), std::string(to_string(config_.strategy)).c_str(),
                file_.effective().c_str());
    std::fflush(stdout);
  }
  return true;
}

// Loads what rank 0 assigned; a rank that stops serving drops its sessions.
void Job::apply(const std::vector<Assignment>& assignment) {
  const Assignment& mine = assignment[static_cast<std::size_t>(rank_)];
  if (mine.reload) {
    server_->load(mine.span_start, mine.span_end);
  } else if (mine.state == static_cast<std::int32_t>(RankState::offline) && server_->state() != RankState::offline) {
    server_->go_offline();
  } else if (mine.state == static_cast<std::int32_t>(RankState::online)) {
    server_->set_online();
  }
}

// One epoch of traffic: ticks until rank 0 has drained every step it started.
void Job::traffic(int epoch) {
  const auto began = Clock::now();
  bool draining = false;
  (void)epoch;
  for (;;) {
    TickControl mine;
    mine.terminate = g_terminate ? 1 : 0;
    if (rank_ == 0) {
      if (client_->batch_done()) mine.finish = 1;
      if (!draining) {
        // Generation mode runs until its prompt is done, whatever the epoch length; a batch
        // workload ends its last epoch as soon as the batch is done.
        const bool time_up = seconds_since(began) >= config_.epoch_seconds;
        draining = config_.generate ? client_->active() == 0 || terminate_seen_
                                    : time_up || terminate_seen_ || client_->batch_done();
      }
      if (draining && client_->idle() && outbox_.empty()) mine.command = 1;
    }
    const TickControl all = agree_tick(comm_, mine);
    if (all.terminate) terminate_seen_ = true;
    if (all.finish) finished_ = true;
    if (all.command == 1) break;
    if (rank_ == 0) {
      for (auto& m : client_->tick(seconds_since(began_), !draining)) outbox_.push_back(std::move(m));
    }
    std::vector<Message> incoming = exchange_->run(std::move(outbox_));
    outbox_.clear();
    // The device class's link: the cap and latency stretch every transfer this rank receives.
    double bytes = 0, delay = 0;
    for (const Message& m : incoming) {
      if (m.peer == rank_ || m.payload.empty()) continue;
      const double b = static_cast<double>(m.payload.size() * sizeof(float));
      bytes += b;
      delay += server_->emulated_link_delay(b);
    }
    if (delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay));
    if (bytes > 0) server_->record_link(bytes, exchange_->last_seconds() + delay);

    for (Message& m : incoming) {
      StepHeader& h = m.header;
      if (h.kind == MessageKind::drop) {
        server_->drop(h.session);
      } else if (h.hop < h.hops) {
        server_->forward(h, m.payload.data());
        ++h.hop;
        m.peer = h.hop < h.hops ? h.rank[static_cast<std::size_t>(h.hop)] : 0;
        outbox_.push_back(std::move(m));
      } else {
        client_->on_result(m, seconds_since(began_), outbox_);
      }
    }
  }
}

void Job::record(int epoch, const std::vector<Measurement>& measured, double traffic_s) {
  ClientStats stats = client_->take_stats();
  EpochRecord r;
  r.epoch = epoch;
  r.time = seconds_since(began_);
  r.traffic_seconds = traffic_s;
  r.boundary_seconds = last_boundary_seconds_;
  r.ranks = measured;
  for (const Server& s : balancer_->swarm().servers()) {
    r.assigned_start.push_back(s.span.start);
    r.assigned_end.push_back(s.span.end);
  }
  r.announced = balancer_->announced();
  r.compute = balancer_->compute();
  r.network = balancer_->network();
  r.block_throughput = block_throughputs(balancer_->swarm(), ServerState::online);
  r.swarm_throughput = swarm_throughput(r.block_throughput);
  r.tokens_per_s = traffic_s > 0 ? stats.tokens_fed / traffic_s : 0;
  r.generated_per_s = traffic_s > 0 ? stats.tokens_generated / traffic_s : 0;
  r.moves = static_cast<int>(last_decision_.moves.size());
  r.joined = static_cast<int>(last_decision_.joined.size());
  r.left = static_cast<int>(last_decision_.left.size());
  r.sessions_started = stats.sessions_started;
  r.sessions_completed = stats.sessions_completed;
  r.sessions_rerouted = stats.sessions_rerouted;
  r.sessions_active = client_->active();
  r.replay_tokens = stats.replay_tokens;
  r.cache_waits = stats.cache_waits;
  r.sessions_waiting_for_cache = client_->waiting_for_cache();
  r.step_p50 = percentile(stats.step_latency, 0.50);
  r.step_p95 = percentile(stats.step_latency, 0.95);
  r.step_p99 = percentile(stats.step_latency, 0.99);
  r.session_p50 = percentile(stats.session_latency, 0.50);
  r.session_p99 = percentile(stats.session_latency, 0.99);
  r.upper_bound = last_decision_.placement ? last_decision_.placement->value : 0.0;
  r.makespan = stats.makespan;
  r.dispatch_messages = static_cast<double>(stats.dispatch.messages);
  r.migrations = static_cast<double>(stats.dispatch.migrations);
  r.route_imbalance = stats.dispatch.imbalance;
  r.routes = stats.dispatch.routes;
  if (trace_) trace_->append(r);
  progress(epoch, r);
  records_.push_back(std::move(r));
}

void Job::progress(int epoch, const EpochRecord& r) const {
  if (config_.quiet || config_.generate) return;
  const double elapsed = seconds_since(began_);
  const double eta = elapsed / (epoch + 1) * (config_.epochs - epoch - 1);
  std::printf("epoch %4d/%d  tokens/s %10.1f  swarm %10.1f  moves %3d  done %5ld  elapsed %7.1f s  eta %7.1f s\n",
              epoch + 1, config_.epochs, r.tokens_per_s, r.swarm_throughput, r.moves, r.sessions_completed, elapsed, eta);
  std::fflush(stdout);
}

void Job::summary() const {
  if (config_.generate) return;
  std::printf("#\n# %5s %12s %12s %12s %6s %6s %6s %9s %9s %9s %9s\n", "epoch", "tokens/s", "swarm", "predicted",
              "moves", "joins", "leaves", "sessions", "rerouted", "step_p50", "step_p99");
  std::printf("# %5s %12s %12s %12s %6s %6s %6s %9s %9s %9s %9s\n", "", "(realised)", "(announced)", "(ratio)", "",
              "", "", "(done)", "", "(ms)", "(ms)");
  double tokens = 0, seconds = 0;
  long done = 0, waits = 0;
  for (const EpochRecord& r : records_) {
    std::printf("  %5d %12.1f %12.1f %12.3f %6d %6d %6d %9ld %9ld %9.2f %9.2f\n", r.epoch + 1, r.tokens_per_s,
                r.swarm_throughput, r.swarm_throughput > 0 ? r.tokens_per_s / r.swarm_throughput : 0.0, r.moves,
                r.joined, r.left, r.sessions_completed, r.sessions_rerouted, 1e3 * r.step_p50, 1e3 * r.step_p99);
    tokens += r.tokens_per_s * r.traffic_seconds;
    seconds += r.traffic_seconds;
    done += r.sessions_completed;
    waits += r.cache_waits;
  }
  std::printf("# total: %.0f tokens in %.2f s of traffic (%.1f tokens/s), %ld sessions completed, %.2f s wall\n",
              tokens, seconds, seconds > 0 ? tokens / seconds : 0.0, done, seconds_since(began_));
  if (config_.max_cache_mb > 0) {
    std::printf("# KV-cache admission: %ld session (re)starts waited for room (servers.max_cache_mb = %s), %ld waiting at "
                "the end\n",
                waits, format_number(config_.max_cache_mb).c_str(),
                records_.empty() ? 0L : records_.back().sessions_waiting_for_cache);
  }
  if (!config_.trace.empty()) std::printf("# trace: %s\n", std::filesystem::absolute(config_.trace).c_str());
  std::fflush(stdout);
}

void Job::dump_output() {
  const auto& finished = client_->finished();
  if (finished.empty()) throw std::runtime_error("generation did not finish");
  const Session& s = finished.front();
  const auto& seq = s.sequences.front();
  std::printf("tokens:");
  for (auto t : seq) std::printf(" %d", t);
  std::printf("\n");
  if (!dump_file_) return;
  trace::File& out = *dump_file_;  // created at setup, so that an unusable path fails before any work
  trace::Group group = out.root().group("output");
  const std::vector<std::int64_t> tokens(seq.begin(), seq.end());
  group.write<std::int64_t>("tokens", tokens);
  const int vocab = source_->config().vocab_size;
  trace::Series logits = group.series("logits", trace::Type::f32, static_cast<std::size_t>(vocab));
  for (std::size_t i = 0; i + static_cast<std::size_t>(vocab) <= s.logits.size(); i += static_cast<std::size_t>(vocab)) {
    logits.append_row<float>(std::span(s.logits).subspan(i, static_cast<std::size_t>(vocab)));
  }
  group.set_attribute("prompt_tokens", static_cast<std::int64_t>(config_.generate->prompt.size()));
  group.set_attribute("ranks", static_cast<std::int64_t>(size_));
  logits = trace::Series();
  group = trace::Group();
  out.finish();
  std::printf("# output: %s\n", std::filesystem::absolute(config_.generate->dump_output).c_str());
}

int Job::run() {
  std::signal(SIGTERM, on_terminate);
  std::signal(SIGINT, on_terminate);
  if (!setup()) return 2;
  if (rank_ == 0 && config_.generate) client_->add_prompt(config_.generate->prompt, config_.generate->max_new_tokens);
  const int epochs = config_.generate ? 1 : config_.epochs;
  int run = 0;
  try {
    for (int epoch = 0; epoch < epochs; ++epoch) {
      // The lecture's hardest case: speeds that change during the run (seeded per rank and epoch).
      const double sigma = config_.class_of(rank_).slowdown_sigma;
      if (sigma > 0) {
        Rng rng(derive_seed(config_.seed, "speed/" + std::to_string(rank_) + "/" + std::to_string(epoch)));
        server_->set_slowdown(std::exp(sigma * std::fabs(standard_normal(rng))));
      }
      const auto traffic_began = Clock::now();
      traffic(epoch);
      const double traffic_s = seconds_since(traffic_began);
      const auto boundary_began = Clock::now();
      const auto measured = comm::allgather_values(comm_, measure());
      if (rank_ == 0) {
        balancer_->update(measured);
        record(epoch, measured, traffic_s);
      }
      ++run;
      if (epoch + 1 == epochs || terminate_seen_ || finished_) break;
      // The boundary before the next epoch: churn, the strategy, reloads, reroutes.
      std::vector<Assignment> assignment(static_cast<std::size_t>(size_));
      if (rank_ == 0) {
        last_decision_ = balancer_->boundary(epoch + 1);
        assignment = last_decision_.assignment;
      }
      assignment = broadcast(comm_, std::move(assignment));
      apply(assignment);
      if (rank_ == 0) {
        client_->set_servers(balancer_->route_servers());
        std::set<int> changed;
        for (int r = 0; r < size_; ++r) {
          const Assignment& a = assignment[static_cast<std::size_t>(r)];
          if (a.reload || a.state == static_cast<std::int32_t>(RankState::offline)) changed.insert(r);
        }
        outbox_ = client_->reroute(changed);
        for (auto& m : client_->redispatch(seconds_since(began_))) outbox_.push_back(std::move(m));
      }
      comm::barrier(comm_);  // reloads finished everywhere before traffic resumes
      last_boundary_seconds_ = seconds_since(boundary_began);
    }
    if (rank_ == 0) {
      if (config_.generate) dump_output();
      summary();
      if (trace_) {
        trace_->finish(run, terminate_seen_);
        trace_.reset();
      }
    }
  } catch (const model::CacheBudgetError& e) {
    // The client reserves every session's cache before its first step, so this is a bug in that
    // accounting; still one clear message and every rank out.
    comm::abort_job(comm_,
                    std::string(e.what()) + ": the client's admission control let the caches outgrow "
                        "servers.max_cache_mb = " + format_number(config_.max_cache_mb) + " (" +
                        file_.where("servers.max_cache_mb") + "); please report it (0 disables the budget)",
                    1);
  } catch (const std::exception& e) {
    comm::abort_job(comm_, e.what(), 1);
  }
  return terminate_seen_ ? 3 : 0;
}

}  // namespace

int run_swarm_pipe(int argc, char** argv) {
  comm::MpiWorld world(argc, argv);
  const comm::Communicator& comm = world.comm();
  const std::vector<std::string> args(argv + 1, argv + argc);
  const po::options_description all = schema();
  const std::string tables[] = {"class"};
  po::variables_map pre;
  std::optional<std::string> error;
  try {
    pre = preview_command_line(args, all, tables);
  } catch (const po::error& e) {
    error = std::string("command line: ") + e.what();
  } catch (const ConfigError& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  if (pre.count("help")) {
    if (comm.rank() == 0) {
      std::cout << "swarm_pipe " << kVersion
                << ": Petals-style pipeline inference over MPI ranks with epoch balancing\n"
                   "usage: mpirun -n N swarm_pipe --job FILE.ini [--trace OUT.h5] [--section.key VALUE ...]\n"
                   "       mpirun -n N swarm_pipe --model-dir DIR --prompt-tokens 5,17,42 --max-new-tokens 4 "
                   "--dump-output OUT.h5\n\n"
                << all
                << "\nDevice classes: [class.NAME] with compute_factor, link_mbps, latency_ms, span (docs/job.md).\n";
    }
    return 0;
  }
  std::optional<JobFile> file;
  std::optional<JobConfig> config;
  try {
    if (pre.count("job") && pre["job"].as<std::string>().empty()) throw ConfigError("command line: --job is empty");
    file.emplace(pre.count("job") ? pre["job"].as<std::string>() : std::string(), all, tables, args);
    config.emplace(load_config(*file, comm.size()));
    file->refuse_as_output(config->trace, "--trace");
    if (config->generate) file->refuse_as_output(config->generate->dump_output, "--dump-output");
    if (!pre.count("job") && !config->generate) {
      throw ConfigError("command line: --job FILE.ini is required (or --prompt-tokens for generation); see --help");
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!comm::agree(comm, error)) return 2;
  world.set_timeout(std::chrono::duration<double>(config->comm_timeout));
  Job job(world, std::move(*config), *file);
  return job.run();
}

}  // namespace swarm::job
