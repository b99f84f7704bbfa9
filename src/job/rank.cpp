// One rank of swarm_pipe: set-up, then epochs. Every rank serves its span; rank 0 also runs the
// coordinator. An epoch is traffic (each rank serves packets as they come; rank 0's client keeps
// the pipeline full and ends the epoch once everything it started has come back), then a
// boundary: the measurements are allgathered, rank 0 decides, the decision is broadcast, the
// ranks reload where told. Those two are the only collectives of an epoch. Design: docs/job.md.
#include "swarm/job/rank.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "swarm/util/clock.hpp"
#include "coordinator.hpp"
#include "server.hpp"
#include "swarm/model/errors.hpp"
#include "swarm/version.hpp"

namespace swarm::job {
namespace {

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
  m.weights_dtype = c.weights_dtype;
  if (c.eos_token_id >= 0) m.eos_token_ids = {c.eos_token_id};
  m.validate("job file [model]");
  return m;
}

// Runs `f` on every rank and agrees on the outcome: a failure anywhere becomes one message from
// rank 0 and `false` everywhere (the caller exits 2). Bad input never hangs the others.
template <typename F>
bool all_ok(comm::Fabric& fabric, F&& f) {
  std::optional<std::string> error;
  try {
    f();
  } catch (const comm::AbortedError&) {
    throw;
  } catch (const std::exception& e) {
    error = e.what();
  }
  return fabric.agree(error);
}

// The decision travels as one broadcast: the command, then one assignment per rank.
Decision broadcast_decision(comm::Fabric& fabric, Decision d) {
  const auto n = static_cast<std::size_t>(fabric.size());
  std::vector<std::byte> bytes(sizeof(Command) + n * sizeof(Assignment));
  if (fabric.rank() == kClientRank) {
    std::memcpy(bytes.data(), &d.command, sizeof(Command));
    std::memcpy(bytes.data() + sizeof(Command), d.assignment.data(), n * sizeof(Assignment));
  }
  fabric.broadcast(bytes, kClientRank);
  std::memcpy(&d.command, bytes.data(), sizeof(Command));
  d.assignment.resize(n);
  std::memcpy(d.assignment.data(), bytes.data() + sizeof(Command), n * sizeof(Assignment));
  return d;
}

// Loads what rank 0 assigned; a rank that stops serving drops its sessions.
void apply(SpanServer& span, const Assignment& mine) {
  if (mine.reload) {
    span.load(mine.span_start, mine.span_end);
  } else if (mine.state == ServerState::offline && span.state() != ServerState::offline) {
    span.go_offline();
  } else if (mine.state == ServerState::online) {
    span.set_online();
  }
}

// Retires this rank's sends before the boundary (their peers have taken them: every batch is
// back at rank 0), within the deadline.
void drain(comm::Fabric& fabric) {
  const double began = seconds_now();
  while (fabric.in_flight() > 0) {
    if (std::optional<comm::Packet> p = fabric.poll()) {
      const Header h = decode(p->header, p->peer);
      if (h.kind != PacketKind::heartbeat && h.kind != PacketKind::stop) {
        fabric.abort("a packet from rank " + std::to_string(p->peer) + " arrived after the end of the epoch", 1);
      }
      continue;
    }
    if (seconds_now() - began > fabric.timeout().count()) {
      const std::vector<int> peers = fabric.in_flight_peers();
      std::string message = "packets sent in the epoch";
      if (!peers.empty()) message.append(" to " + name_ranks(peers));
      message.append(" were not taken within " + format_number(fabric.timeout().count()) +
                     " s (run.comm_timeout): " + (peers.size() == 1 ? "it died or hangs" : "they died or hang"));
      fabric.abort(message, 1);
    }
    fabric.wait(std::chrono::milliseconds(1));
  }
}

// A server's epoch of traffic (every rank but 0): packets as they come, until rank 0 says the
// epoch is over.
double serve_epoch(HopRunner& runner, SpanServer& span, comm::Fabric& fabric, const std::atomic<bool>* terminate,
                   bool& stop_sent) {
  const double began = seconds_now();
  double last_word = began, last_heartbeat = began;
  bool ended = false;
  for (;;) {
    const double iteration = seconds_now();
    bool did = false;
    while (std::optional<comm::Packet> p = fabric.poll()) {
      did = true;
      last_word = seconds_now();
      Header h = decode(p->header, p->peer);
      if (h.kind == PacketKind::end_epoch) {
        ended = true;
      } else if (h.kind != PacketKind::heartbeat) {
        runner.accept(std::move(h), std::move(p->rows), p->peer);
      }
    }
    did = runner.step() || did;
    if (did) span.add_host_seconds(iteration, seconds_now());
    if (terminate != nullptr && terminate->load() && !stop_sent) {
      Header h;
      h.kind = PacketKind::stop;
      fabric.post({kClientRank, encode(h), {}});
      stop_sent = true;
    }
    if (ended && runner.idle()) {
      Header h;
      h.kind = PacketKind::epoch_done;
      fabric.post({kClientRank, encode(h), {}});
      return seconds_now() - began;
    }
    // Rank 0 hears from every server at least this often, so that a timeout there can name the
    // rank that went silent.
    if (seconds_now() - last_heartbeat > fabric.timeout().count() / 4) {
      Header h;
      h.kind = PacketKind::heartbeat;
      fabric.post({kClientRank, encode(h), {}});
      last_heartbeat = seconds_now();
    }
    // An iteration that took long (this rank was stopped, or ran a long forward) gives rank 0
    // a fresh deadline: the silence was this rank's, and its packets may still be unread.
    if (seconds_now() - iteration > fabric.timeout().count() / 4) last_word = seconds_now();
    if (seconds_now() - last_word > fabric.timeout().count()) {
      fabric.abort("no word from rank 0 (the coordinator) within " + format_number(fabric.timeout().count()) +
                       " s (run.comm_timeout): it died or hangs",
                   1);
    }
    if (!did) fabric.wait(std::chrono::milliseconds(1));
  }
}

// Refuses an answers file that could not be written at the end, before any work.
void check_writable(const std::filesystem::path& file, const std::string& key) {
  if (std::filesystem::is_directory(file)) throw ConfigError("key '" + key + "' = '" + file.string() + "': is a directory");
  const auto probe = std::filesystem::path(file.string() + ".probe." + std::to_string(::getpid()));
  std::ofstream out(probe);
  const bool ok = static_cast<bool>(out);
  out.close();
  std::error_code ignored;
  std::filesystem::remove(probe, ignored);
  if (!ok) {
    throw ConfigError("key '" + key + "' = '" + file.string() + "': its directory does not exist or is not writable");
  }
}

}  // namespace

std::size_t job_header_bytes(const JobConfig& config, int ranks) {
  // A route visits a rank at most once (each hop runs to the end of its server's span); a batch,
  // a probe and a drop packet carry at most max_batch_tokens segments.
  return max_header_bytes(ranks, config.max_batch_tokens);
}

int run_rank(comm::Fabric& fabric, const JobConfig& config, const JobFile& file, const RankOptions& options) {
  const int rank = fabric.rank(), size = fabric.size();
  model::set_cpu_threads(config.threads);

  // Weights: each rank opens the source (a checkpoint reads only config.json and the headers).
  std::unique_ptr<model::WeightSource> source;
  if (!all_ok(fabric, [&] {
        if (config.model_dir.empty()) {
          source = std::make_unique<model::RandomWeights>(random_model(config), config.weights_seed);
        } else {
          source = std::make_unique<model::Checkpoint>(config.model_dir);
        }
      })) {
    return 2;
  }
  const model::ModelConfig& mc = source->config();
  const int blocks = mc.num_hidden_layers;

  // What depends on the model and the world size: spans, memory, prompts, outputs.
  std::vector<int> spans(static_cast<std::size_t>(size));
  std::vector<Prompt> prompts;
  if (!all_ok(fabric, [&] {
        long capacity = 0;
        for (int r = 0; r < size; ++r) {
          spans[static_cast<std::size_t>(r)] = config.span_of(r, size, blocks);
          capacity += spans[static_cast<std::size_t>(r)];
        }
        const int longest = *std::max_element(spans.begin(), spans.end());
        if (capacity < blocks) {
          file.fail("servers.span", std::to_string(config.span),
                    std::to_string(size) + " ranks holding " + std::to_string(capacity) +
                        " blocks in all (with the [class.*] spans) cannot cover the model's " + std::to_string(blocks) +
                        " blocks; more ranks are needed (or longer spans)");
        }
        // Weights in the dtype the executor holds them in, plus the KV caches the rank may hold:
        // the budget when one is set, else the synthetic workload's sessions in flight at full length.
        model::ModelConfig held = mc;
        if (config.compute_dtype == model::DType::bf16) held.weights_dtype = model::DType::bf16;
        const double weights_mb = static_cast<double>(held.block_weight_bytes()) * longest / (1024.0 * 1024.0);
        double cache_mb = config.max_cache_mb;
        if (cache_mb <= 0 && config.workload.prompts.empty()) {
          const double sessions = static_cast<double>(config.workload.concurrency);
          cache_mb = sessions * static_cast<double>(model::session_kv_bytes_per_block(
                                    mc, config.workload.batch, config.workload.prompt_tokens + config.workload.new_tokens)) *
                     longest / (1024.0 * 1024.0);
        }
        if (config.memory_mb > 0 && weights_mb + cache_mb > config.memory_mb) {
          file.fail("servers.memory_mb", format_number(config.memory_mb),
                    "a span of " + std::to_string(longest) + " blocks needs " + format_number(weights_mb) + " MiB of " +
                        std::string(model::to_string(held.weights_dtype)) + " weights and " + format_number(cache_mb) +
                        " MiB of KV caches; the model is too big for the ranks' memory (use more ranks "
                        "and a shorter servers.span, or a smaller servers.max_cache_mb)");
        }
        if (rank != kClientRank) return;  // the rest concerns the client: it reads and reports it
        if (!config.workload.prompts.empty()) {
          prompts = read_prompts(config.workload.prompts, mc.vocab_size, mc.max_position_embeddings);
          check_writable(config.workload.outputs, "workload.outputs");
        } else if (config.generate) {
          for (auto t : config.generate->prompt) {
            if (t >= mc.vocab_size) {
              throw ConfigError("command line: key 'prompt-tokens': token " + std::to_string(t) +
                                " is outside the vocabulary of " + std::to_string(mc.vocab_size));
            }
          }
          prompts = {{"0", config.generate->prompt, config.generate->max_new_tokens, false}};
        }
        if (config.max_cache_mb > 0) {
          // Sessions beyond the budget wait for room (the client's admission control), but one
          // session must fit a rank of the longest span, or it would wait for ever.
          int prompt = config.workload.prompt_tokens, total = prompt + config.workload.new_tokens - 1;
          for (const Prompt& p : prompts) {
            if (static_cast<int>(p.tokens.size()) + p.max_new_tokens - 1 > total) {
              prompt = static_cast<int>(p.tokens.size());
              total = prompt + p.max_new_tokens - 1;
            }
          }
          const int batch = prompts.empty() ? config.workload.batch : 1;
          const double needed =
              static_cast<double>(model::session_kv_bytes_per_block(mc, batch, std::max(prompt, total))) * longest;
          const auto budget = static_cast<double>(config.max_cache_bytes());
          if (needed > budget) {
            file.fail("servers.max_cache_mb", format_number(config.max_cache_mb),
                      "a span of " + std::to_string(longest) + " blocks needs " + format_number(needed / (1024.0 * 1024.0)) +
                          " MiB of KV cache for one session of batch " + std::to_string(batch) + " and " +
                          std::to_string(total) + " positions (the cache grows in powers of two); sessions beyond " +
                          "the budget wait for room, but one must fit");
          }
        }
        if (mc.sliding_window > 0) {
          // Full attention equals the sliding window only while a sequence fits in the window.
          long long longest_sequence = prompts.empty() ? config.workload.prompt_tokens + config.workload.new_tokens : 0;
          for (const Prompt& p : prompts) {
            longest_sequence = std::max(longest_sequence, static_cast<long long>(p.tokens.size()) + p.max_new_tokens);
          }
          if (longest_sequence > mc.sliding_window) {
            throw ConfigError((std::filesystem::path(config.model_dir) / "config.json").string() + ": key 'sliding_window' = " +
                              std::to_string(mc.sliding_window) + ": the workload has sequences of up to " +
                              std::to_string(longest_sequence) +
                              " positions, longer than the window, and only full attention is implemented");
          }
        }
        if (config.model_dir.empty() == false && config.workload.prompts.empty() && !config.generate &&
            config.workload.prompt_tokens + config.workload.new_tokens > mc.max_position_embeddings) {
          file.fail("workload.new_tokens", std::to_string(config.workload.new_tokens),
                    "prompt_tokens + new_tokens exceed the checkpoint's max_position_embeddings (" +
                        std::to_string(mc.max_position_embeddings) + ")");
        }
      })) {
    return 2;
  }

  // Rank 0: the coordinator (its trace file and generation output are opened here, so that an
  // unusable path fails before any work).
  std::unique_ptr<Coordinator> coordinator;
  if (!all_ok(fabric, [&] {
        if (rank != kClientRank) return;
        const JobMetadata meta{file.path().string(),
                               file.text(),
                               file.effective(),
                               source->describe(),
                               std::string(model::to_string(options.backend)),
                               std::string(comm::to_string(options.transport)),
                               std::string(to_string(config.strategy)),
                               config.seed,
                               size,
                               blocks,
                               mc.hidden_size};
        coordinator = std::make_unique<Coordinator>(config, file, *source, size, spans, std::move(prompts), meta);
        if (options.backend == model::Backend::cuda) {
          // The LM head is the client's one large GEMM: it runs where rank 0's blocks run.
          model::ExecutorOptions head;
          head.device = options.device;
          head.compute = config.compute_dtype;
          coordinator->run_head_on(model::Backend::cuda, head);
        }
      })) {
    if (rank == kClientRank && !config.trace.empty()) {
      std::error_code ignored;
      std::filesystem::remove(config.trace, ignored);
    }
    return 2;
  }

  // Throughput before choosing blocks, as Petals does, on the kind of work the server will do.
  std::unique_ptr<SpanServer> span;
  Measurement first;
  if (!all_ok(fabric, [&] {
        model::ExecutorOptions executor;
        executor.device = options.device;
        executor.max_cache_bytes = static_cast<std::size_t>(config.max_cache_bytes());
        executor.compute = config.compute_dtype;
        span = std::make_unique<SpanServer>(*source, options.backend, config.class_of(rank), rank, executor);
        const int sequences = std::max(1, config.workload.concurrency * config.workload.batch / 2);
        const int prompt_tokens = std::max(1, std::min(config.workload.prompt_tokens, config.max_batch_tokens / sequences));
        (void)span->benchmark(std::min(sequences, config.max_batch_tokens), prompt_tokens, config.workload.new_tokens);
        first = span->report(mc.hidden_size, {}, 0);
      })) {
    return 2;
  }
  const double started = seconds_now();
  const auto measured = fabric.allgather_values(first);
  Decision d;
  if (coordinator) d = coordinator->initial(measured);
  d = broadcast_decision(fabric, std::move(d));
  if (!all_ok(fabric, [&] { apply(*span, d.assignment[static_cast<std::size_t>(rank)]); })) return 2;
  BoundaryTimes last_boundary;
  last_boundary.total = seconds_now() - started;

  if (rank == kClientRank && !config.quiet) {
    std::printf("# swarm_pipe %s: %d ranks, %s, backend %s, transport %s, strategy %s, max_batch_tokens %d\n"
                "# effective config:\n%s",
                kVersion, size, source->describe().c_str(), std::string(model::to_string(options.backend)).c_str(),
                std::string(comm::to_string(options.transport)).c_str(), std::string(to_string(config.strategy)).c_str(), config.max_batch_tokens,
                file.effective().c_str());
    std::fflush(stdout);
  }

  HopRunner runner(*span, fabric);
  // While a host forward runs, the rank still takes in packets between its blocks: receives are
  // posted and completed, and rank 0's client answers results, instead of every peer waiting
  // for the forward to end.
  if (coordinator) {
    span->executor().set_between_blocks([&] { coordinator->between_blocks(runner, *span, fabric); });
  } else {
    span->executor().set_between_blocks([&] {
      while (std::optional<comm::Packet> p = fabric.poll()) {
        Header h = decode(p->header, p->peer);
        if (h.kind != PacketKind::heartbeat) runner.accept(std::move(h), std::move(p->rows), p->peer);
      }
    });
  }
  struct Unhook {
    SpanServer& span;
    ~Unhook() { span.executor().set_between_blocks({}); }
  } unhook{*span};
  const int epochs = config.generate ? 1 : config.epochs;
  int run = 0;
  bool stop_sent = false;
  Command command = Command::run;
  try {
    for (int epoch = 0; epoch < epochs; ++epoch) {
      // Speeds that change during the run (JobConfig::slowdown_of).
      const DeviceClass& device = config.class_of(rank);
      if (device.slowdown_sigma > 0 || device.slowdown_from > 0) span->set_slowdown(config.slowdown_of(rank, epoch));
      const double traffic_seconds = coordinator ? coordinator->traffic(runner, *span, fabric, options.terminate)
                                                 : serve_epoch(runner, *span, fabric, options.terminate, stop_sent);
      drain(fabric);
      const double boundary_began = seconds_now();
      Measurement mine = span->report(mc.hidden_size, fabric.take_stats(), coordinator ? coordinator->client_seconds() : 0);
      mine.stop = options.terminate != nullptr && options.terminate->load();
      BoundaryTimes times;
      const std::vector<Measurement> reports = fabric.allgather_values(mine);
      times.gather = seconds_now() - boundary_began;
      if (coordinator) {
        d = coordinator->boundary(epoch, reports, traffic_seconds, last_boundary, epoch + 1 == epochs);
        times.decide = coordinator->decide_seconds();
        times.trace = coordinator->record_seconds();
      }
      const double broadcast_began = seconds_now();
      d = broadcast_decision(fabric, std::move(d));
      times.broadcast = seconds_now() - broadcast_began;
      ++run;
      command = d.command;
      if (command != Command::run) break;
      const double reload_began = seconds_now();
      apply(*span, d.assignment[static_cast<std::size_t>(rank)]);
      if (coordinator) coordinator->after(d, reports);
      times.reload = seconds_now() - reload_began;
      times.total = seconds_now() - boundary_began;
      last_boundary = times;
    }
    int status = command == Command::stop ? 3 : 0;
    if (coordinator) {
      status = coordinator->finish(run);
      if (options.records != nullptr) *options.records = coordinator->records();
    }
    // Every rank exits with rank 0's status.
    std::vector<std::int32_t> word{status};
    word = fabric.broadcast_values(std::move(word), kClientRank);
    return word.front();
  } catch (const comm::AbortedError&) {
    throw;
  } catch (const model::CacheBudgetError& e) {
    // The client reserves every session's cache before its first step, so this is a bug in that
    // accounting; still one clear message and every rank out.
    fabric.abort(std::string(e.what()) + ": the client's admission control let the caches outgrow "
                     "servers.max_cache_mb = " + format_number(config.max_cache_mb) + " (" +
                     file.where("servers.max_cache_mb") + "); please report it (0 disables the budget)",
                 1);
  } catch (const std::exception& e) {
    fabric.abort(e.what(), 1);
  }
  return 1;  // not reached: abort() does not return
}

}  // namespace swarm::job
