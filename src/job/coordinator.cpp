#include "coordinator.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "swarm/util/clock.hpp"
#include "swarm/balance/rules.hpp"

namespace swarm::job {
namespace {

// Probes use cache ids of their own, far from the client's (which count up from 1).
constexpr model::SessionId kProbeIds = model::SessionId{1} << 62;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1), p * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

Coordinator::Coordinator(const JobConfig& config, const JobFile& file, const model::WeightSource& source, int ranks,
                         std::vector<int> span_lengths, std::vector<Prompt> prompts, const JobMetadata& meta)
    : config_(config),
      file_(file),
      ranks_(ranks),
      prompts_(prompts),
      model_(source),
      client_(model_, config, ranks, std::move(prompts)),
      balancer_(config, source.config().num_hidden_layers, std::move(span_lengths)),
      last_post_(static_cast<std::size_t>(ranks), 0.0),
      last_heard_(static_cast<std::size_t>(ranks), 0.0),
      began_(seconds_now()) {
  if (!config_.trace.empty()) {
    trace_file_.emplace(trace::File::create(config_.trace));
    trace_ = std::make_unique<JobTrace>(*trace_file_, meta);
  }
  if (config_.generate && !config_.generate->dump_output.empty()) {
    dump_file_.emplace(trace::File::create(config_.generate->dump_output));
  }
}

Decision Coordinator::initial(const std::vector<Measurement>& measured) {
  balancer_.update(measured);
  last_decision_ = balancer_.initial();
  client_.set_servers(balancer_.route_servers());
  pending_ = client_.redispatch(seconds_now());
  return {Command::run, last_decision_.assignment};
}

void Coordinator::send(comm::Packet packet, comm::Fabric& fabric) {
  last_post_[static_cast<std::size_t>(packet.peer)] = seconds_now();
  fabric.post(std::move(packet));
}

// The client's packets onto the fabric: rows into this rank's activation memory (device memory
// with NCCL: uploaded on the executor's copy stream), drops split so that no header outgrows
// the fabric's limit.
void Coordinator::post(std::vector<Outgoing> out, SpanServer& span, comm::Fabric& fabric) {
  for (Outgoing& o : out) {
    if (o.header.kind == PacketKind::drop) {
      const auto per_packet = static_cast<std::size_t>(config_.max_batch_tokens);
      for (std::size_t i = 0; i < o.header.segments.size(); i += per_packet) {
        Header h;
        h.kind = PacketKind::drop;
        const auto end = std::min(o.header.segments.size(), i + per_packet);
        h.segments.assign(o.header.segments.begin() + static_cast<std::ptrdiff_t>(i),
                          o.header.segments.begin() + static_cast<std::ptrdiff_t>(end));
        send({o.peer, encode(h), {}}, fabric);
      }
      continue;
    }
    comm::Activations rows = fabric.pool().take(o.rows.size());
    if (rows.location() == comm::MemoryLocation::host) {
      std::copy(o.rows.begin(), o.rows.end(), rows.data());
    } else {
      // Ordered before the forward that reads it on this rank; another rank's transfer reads it
      // only once the copy finished (the fabric is handed finished rows).
      span.executor().upload(o.rows, rows.data());
      if (o.peer != fabric.rank()) span.executor().synchronize();
      staged_.push_back(std::move(o.rows));
    }
    send({o.peer, encode(o.header), std::move(rows)}, fabric);
  }
}

void Coordinator::handle(comm::Packet packet, HopRunner& runner, SpanServer& span, comm::Fabric& fabric) {
  last_heard_[static_cast<std::size_t>(packet.peer)] = seconds_now();
  Header h = decode(packet.header, packet.peer);
  if (h.kind == PacketKind::heartbeat) return;
  if (h.kind == PacketKind::epoch_done) {
    fabric.abort("rank " + std::to_string(packet.peer) + " ended its epoch before rank 0 ended it", 1);
  }
  const bool for_client = (h.kind == PacketKind::batch || h.kind == PacketKind::probe) &&
                          h.hop == static_cast<std::int32_t>(h.route.size());
  if (h.kind == PacketKind::stop) {
    stop_ = true;
  } else if (for_client && h.kind == PacketKind::probe) {
    --probes_in_flight_;
  } else if (for_client) {
    const double began = seconds_now();
    const std::vector<std::int64_t> rows = client_.head_rows(h);
    const auto hidden = static_cast<std::size_t>(model_.config().hidden_size);
    std::vector<float> last(rows.size() * hidden);
    if (packet.rows.location() == comm::MemoryLocation::host) {
      for (std::size_t i = 0; i < rows.size(); ++i) {
        std::copy_n(packet.rows.data() + static_cast<std::size_t>(rows[i]) * hidden, hidden, last.data() + i * hidden);
      }
    } else if (!rows.empty()) {
      span.executor().download_rows(packet.rows.data(), rows, last);
    }
    std::vector<Outgoing> out;
    client_.on_result(h, last, seconds_now(), out);
    post(std::move(out), span, fabric);
    client_seconds_ += seconds_now() - began;
  } else {
    runner.accept(std::move(h), std::move(packet.rows), packet.peer);
  }
}

double Coordinator::traffic(HopRunner& runner, SpanServer& span, comm::Fabric& fabric,
                            const std::atomic<bool>* terminate) {
  const double began = seconds_now();
  client_seconds_ = 0;
  std::fill(last_heard_.begin(), last_heard_.end(), began);
  post(std::exchange(pending_, {}), span, fabric);
  bool draining = false;
  const double heartbeat = fabric.timeout().count() / 4;
  double last_step = -1;
  for (;;) {
    const double iteration = seconds_now();
    const double client_before = client_seconds_;
    bool did = false;
    while (std::optional<comm::Packet> p = fabric.poll()) {
      handle(std::move(*p), runner, span, fabric);
      did = true;
    }
    did = runner.step() || did;
    // Serving time of this rank: the iteration's work, its client part apart.
    if (did) span.add_host_seconds(iteration, seconds_now(), client_seconds_ - client_before);
    const double now = seconds_now();
    if (terminate != nullptr && terminate->load()) stop_ = true;
    finished_ = finished_ || client_.done();
    if (!draining) {
      // Generation mode runs until its prompt is answered, whatever the epoch length; other
      // workloads end the epoch when its time is up, and the last one when the work is done.
      const bool time_up = !config_.generate && now - began >= config_.epoch_seconds;
      draining = time_up || stop_ || finished_;
    }
    // The client steps when something changed, or every millisecond (arrivals, dispatch timers).
    if (did || now - last_step >= 1e-3 || draining) {
      last_step = now;
      const double client_began = seconds_now();
      std::vector<Outgoing> out = client_.step(now, !draining);
      if (!out.empty()) {
        did = true;
        post(std::move(out), span, fabric);
      }
      client_seconds_ += seconds_now() - client_began;
    }
    if (draining && client_.idle() && probes_in_flight_ == 0 && runner.idle()) break;
    if (const auto oldest = client_.oldest_in_flight(); oldest && now - oldest->second.sent > fabric.timeout().count()) {
      // Servers send rank 0 a heartbeat every timeout / 4: one silent for half of it is stuck.
      const std::vector<int> silent = silent_ranks(oldest->second.hops, now, fabric.timeout().count() / 2);
      std::string message = "batch " + std::to_string(oldest->first) + " on route " + oldest->second.route +
                            " did not come back within " + format_number(fabric.timeout().count()) +
                            " s (run.comm_timeout): ";
      if (silent.empty()) {
        message.append("a rank on it died or hangs");
      } else {
        message.append(name_ranks(silent) + " on it sent nothing for " +
                       format_number(now - last_heard_[static_cast<std::size_t>(silent.front())]) + " s (" +
                       (silent.size() == 1 ? "died or hangs)" : "died or hang)"));
      }
      fabric.abort(message, 1);
    }
    for (int r = 1; r < ranks_; ++r) {
      if (now - last_post_[static_cast<std::size_t>(r)] > heartbeat) {
        Header h;
        h.kind = PacketKind::heartbeat;
        send({r, encode(h), {}}, fabric);
      }
    }
    if (staged_.size() > 0 && span.executor().idle()) staged_.clear();
    if (!did) fabric.wait(std::chrono::milliseconds(1));
  }
  // Nothing is in flight: every batch came back. The epoch ends for everyone.
  for (int r = 1; r < ranks_; ++r) {
    Header h;
    h.kind = PacketKind::end_epoch;
    send({r, encode(h), {}}, fabric);
  }
  await_epoch_done(fabric);
  const double seconds = seconds_now() - began;
  span.executor().synchronize();
  staged_.clear();
  return seconds;
}

// Every server answers end_epoch once it has nothing left of the epoch. Waiting for those
// answers here (not in the boundary's collective) lets a timeout name the ranks that are missing.
void Coordinator::await_epoch_done(comm::Fabric& fabric) {
  std::vector<bool> done(static_cast<std::size_t>(ranks_), false);
  int missing = ranks_ - 1;
  const double began = seconds_now();
  while (missing > 0) {
    while (std::optional<comm::Packet> p = fabric.poll()) {
      last_heard_[static_cast<std::size_t>(p->peer)] = seconds_now();
      const Header h = decode(p->header, p->peer);
      if (h.kind == PacketKind::epoch_done && !done[static_cast<std::size_t>(p->peer)]) {
        done[static_cast<std::size_t>(p->peer)] = true;
        --missing;
      } else if (h.kind == PacketKind::stop) {
        stop_ = true;
      } else if (h.kind != PacketKind::heartbeat) {
        fabric.abort("a packet from rank " + std::to_string(p->peer) + " arrived after the end of the epoch", 1);
      }
    }
    if (missing == 0) break;
    if (seconds_now() - began > fabric.timeout().count()) {
      std::vector<int> late;
      for (int r = 1; r < ranks_; ++r) {
        if (!done[static_cast<std::size_t>(r)]) late.push_back(r);
      }
      fabric.abort(name_ranks(late) + " did not finish the epoch within " +
                       format_number(fabric.timeout().count()) + " s (run.comm_timeout) after rank 0 ended it: " +
                       (late.size() == 1 ? "it died or hangs" : "they died or hang"),
                   1);
    }
    fabric.wait(std::chrono::milliseconds(1));
  }
}

std::vector<int> Coordinator::silent_ranks(const std::vector<Hop>& hops, double now, double longer_than) const {
  std::vector<int> silent;
  for (const Hop& hop : hops) {
    if (hop.rank != kClientRank && now - last_heard_[static_cast<std::size_t>(hop.rank)] > longer_than) {
      silent.push_back(hop.rank);
    }
  }
  std::sort(silent.begin(), silent.end());
  silent.erase(std::unique(silent.begin(), silent.end()), silent.end());
  return silent;
}

void Coordinator::between_blocks(HopRunner& runner, SpanServer& span, comm::Fabric& fabric) {
  while (std::optional<comm::Packet> p = fabric.poll()) handle(std::move(*p), runner, span, fabric);
}

Decision Coordinator::boundary(int epoch, const std::vector<Measurement>& measured, double traffic_seconds,
                               const BoundaryTimes& previous, bool last_epoch) {
  balancer_.update(measured, traffic_seconds);
  for (const Measurement& m : measured) stop_ = stop_ || m.stop;
  const double record_began = seconds_now();
  record(epoch, measured, traffic_seconds, previous);
  record_seconds_ = seconds_now() - record_began;
  // A swarm that leaves a block uncovered routes nobody. Say so; a workload that runs until it
  // is done would otherwise wait for ever, so it ends after kDisjointEpochs such epochs.
  const std::vector<double>& blocks = records_.back().block_throughput;
  const auto gap = std::find(blocks.begin(), blocks.end(), 0.0);
  disjoint_epochs_ = gap == blocks.end() ? 0 : disjoint_epochs_ + 1;
  if (gap != blocks.end()) {
    std::fprintf(stderr, "swarm_pipe: epoch %d: no online server holds block %td: no session can be routed\n",
                 epoch + 1, gap - blocks.begin());
  }
  const bool hopeless = config_.epochs_until_done() && disjoint_epochs_ >= kDisjointEpochs;
  if (hopeless) {
    std::fprintf(stderr, "swarm_pipe: the swarm has been disjoint for %d epochs: stopping with the work unfinished\n",
                 kDisjointEpochs);
  }
  if (last_epoch || stop_ || finished_ || hopeless) {
    std::vector<Assignment> same = last_decision_.assignment;
    for (Assignment& a : same) a.reload = false;
    return {stop_ ? Command::stop : Command::finish, same};
  }
  const double began = seconds_now();
  last_decision_ = balancer_.boundary(epoch + 1);
  decide_seconds_ = seconds_now() - began;
  return {Command::run, last_decision_.assignment};
}

void Coordinator::after(const Decision& d, const std::vector<Measurement>& measured) {
  client_.set_servers(balancer_.route_servers());
  std::set<int> changed;
  for (int r = 0; r < ranks_; ++r) {
    const Assignment& a = d.assignment[static_cast<std::size_t>(r)];
    if (a.reload || a.state == ServerState::offline) changed.insert(r);
  }
  const double now = seconds_now();
  pending_ = client_.reroute(changed);
  for (auto& m : client_.redispatch(now)) pending_.push_back(std::move(m));
  // A serving rank that ran nothing in the epoch (and did not just reload) is probed with one
  // batch of the start-up benchmark's shape, so that its measurements are never stale.
  const int sequences = std::max(1, config_.workload.concurrency * config_.workload.batch / 2);
  const int tokens = std::max(1, std::min(config_.workload.prompt_tokens, config_.max_batch_tokens / sequences));
  for (int r = 0; r < ranks_; ++r) {
    const Assignment& a = d.assignment[static_cast<std::size_t>(r)];
    if (a.state != ServerState::online || a.reload ||
        measured[static_cast<std::size_t>(r)].forwards > 0) {
      continue;
    }
    Outgoing probe;
    probe.peer = r;
    probe.header.kind = PacketKind::probe;
    probe.header.batch = next_probe_;
    probe.header.route = {{r, a.span_start, a.span_start + 1}};
    for (int i = 0; i < std::min(sequences, config_.max_batch_tokens); ++i) {
      probe.header.segments.push_back({kProbeIds + next_probe_++, 1, tokens, 0});
    }
    probe.rows.assign(static_cast<std::size_t>(probe.header.rows()) * model_.config().hidden_size, 0.01f);
    pending_.push_back(std::move(probe));
    ++probes_in_flight_;
  }
}

void Coordinator::record(int epoch, const std::vector<Measurement>& measured, double traffic_s,
                         const BoundaryTimes& boundary) {
  ClientStats stats = client_.take_stats();
  EpochRecord r;
  r.epoch = epoch;
  r.time = seconds_now() - began_;
  r.traffic_seconds = traffic_s;
  r.boundary = boundary;
  r.ranks = measured;
  for (const swarm::Server& s : balancer_.swarm().servers()) {
    r.assigned_start.push_back(s.span.start);
    r.assigned_end.push_back(s.span.end);
  }
  r.announced = balancer_.announced();
  r.compute = balancer_.compute();
  r.network = balancer_.network();
  r.block_throughput = block_throughputs(balancer_.swarm(), ServerState::online);
  r.swarm_throughput = swarm_throughput(r.block_throughput);
  r.predicted = balancer_.predicted();
  r.tokens_per_s = traffic_s > 0 ? stats.tokens_fed / traffic_s : 0;
  r.generated_per_s = traffic_s > 0 ? stats.tokens_generated / traffic_s : 0;
  r.batches = stats.batches;
  r.moves = static_cast<int>(last_decision_.moves.size());
  r.joined = static_cast<int>(last_decision_.joined.size());
  r.left = static_cast<int>(last_decision_.left.size());
  r.sessions_started = stats.sessions_started;
  r.sessions_completed = stats.sessions_completed;
  r.sessions_rerouted = stats.sessions_rerouted;
  r.sessions_active = client_.active();
  r.replay_tokens = stats.replay_tokens;
  r.cache_waits = stats.cache_waits;
  r.sessions_waiting_for_cache = client_.waiting_for_cache();
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

void Coordinator::progress(int epoch, const EpochRecord& r) const {
  if (config_.quiet || config_.generate) return;
  const double elapsed = seconds_now() - began_;
  if (config_.epochs_until_done()) {
    std::printf("epoch %4d  tokens/s %10.1f  predicted %10.1f  moves %3d  done %5ld  active %5ld  elapsed %7.1f s\n",
                epoch + 1, r.tokens_per_s, r.predicted, r.moves, r.sessions_completed, r.sessions_active, elapsed);
  } else {
    const double eta = elapsed / (epoch + 1) * (config_.epochs - epoch - 1);
    std::printf("epoch %4d/%d  tokens/s %10.1f  predicted %10.1f  moves %3d  done %5ld  elapsed %7.1f s  eta %7.1f s\n",
                epoch + 1, config_.epochs, r.tokens_per_s, r.predicted, r.moves, r.sessions_completed, elapsed, eta);
  }
  std::fflush(stdout);
}

void Coordinator::summary() const {
  if (config_.generate) return;
  std::printf("#\n# %5s %12s %12s %8s %12s %6s %6s %6s %9s %9s %9s %9s\n", "epoch", "tokens/s", "predicted", "ratio",
              "announced", "moves", "joins", "leaves", "sessions", "rerouted", "step_p50", "step_p99");
  std::printf("# %5s %12s %12s %8s %12s %6s %6s %6s %9s %9s %9s %9s\n", "", "(realised)", "(tokens/s)", "", "(Petals)",
              "", "", "", "(done)", "", "(ms)", "(ms)");
  double tokens = 0, seconds = 0, predicted = 0;
  long done = 0, waits = 0;
  for (const EpochRecord& r : records_) {
    std::printf("  %5d %12.1f %12.1f %8.3f %12.1f %6d %6d %6d %9ld %9ld %9.2f %9.2f\n", r.epoch + 1, r.tokens_per_s,
                r.predicted, r.predicted > 0 ? r.tokens_per_s / r.predicted : 0.0, r.swarm_throughput, r.moves,
                r.joined, r.left, r.sessions_completed, r.sessions_rerouted, 1e3 * r.step_p50, 1e3 * r.step_p99);
    tokens += r.tokens_per_s * r.traffic_seconds;
    predicted += r.predicted * r.traffic_seconds;
    seconds += r.traffic_seconds;
    done += r.sessions_completed;
    waits += r.cache_waits;
  }
  std::printf("# total: %.0f tokens in %.2f s of traffic (%.1f tokens/s, %.3f of predicted), %ld sessions completed, "
              "%d unfinished, %.2f s wall\n",
              tokens, seconds, seconds > 0 ? tokens / seconds : 0.0, predicted > 0 ? tokens / predicted : 0.0, done,
              client_.active(), seconds_now() - began_);
  if (config_.max_cache_mb > 0) {
    std::printf("# KV-cache admission: %ld session (re)starts waited for room (servers.max_cache_mb = %s), %ld waiting at "
                "the end\n",
                waits, format_number(config_.max_cache_mb).c_str(),
                records_.empty() ? 0L : records_.back().sessions_waiting_for_cache);
  }
  if (!config_.trace.empty()) std::printf("# trace: %s\n", std::filesystem::absolute(config_.trace).c_str());
  std::fflush(stdout);
}

void Coordinator::dump_output() {
  const auto& finished = client_.finished();
  if (finished.empty()) throw std::runtime_error("generation did not finish");
  const Session& s = finished.front();
  const auto& seq = s.sequences.front();
  std::printf("tokens:");
  for (auto t : seq) std::printf(" %d", t);
  std::printf("\n");
  if (!dump_file_) return;
  trace::File& out = *dump_file_;  // created at start-up, so that an unusable path fails before any work
  trace::Group group = out.root().group("output");
  const std::vector<std::int64_t> tokens(seq.begin(), seq.end());
  group.write<std::int64_t>("tokens", tokens);
  const int vocab = model_.config().vocab_size;
  trace::Series logits = group.series("logits", trace::Type::f32, static_cast<std::size_t>(vocab));
  for (std::size_t i = 0; i + static_cast<std::size_t>(vocab) <= s.logits.size(); i += static_cast<std::size_t>(vocab)) {
    logits.append_row<float>(std::span(s.logits).subspan(i, static_cast<std::size_t>(vocab)));
  }
  group.set_attribute("prompt_tokens", static_cast<std::int64_t>(config_.generate->prompt.size()));
  group.set_attribute("ranks", static_cast<std::int64_t>(ranks_));
  logits = trace::Series();
  group = trace::Group();
  out.finish();
  std::printf("# output: %s\n", std::filesystem::absolute(config_.generate->dump_output).c_str());
}

int Coordinator::finish(int epochs_run) {
  int status = stop_ ? 3 : 0;
  if (config_.generate) dump_output();
  summary();
  if (!config_.workload.prompts.empty()) {
    const auto& answers = client_.answers();
    const auto missing = static_cast<std::size_t>(
        std::count_if(answers.begin(), answers.end(), [](const auto& a) { return a.empty(); }));
    if (missing == 0) {
      write_answers(config_.workload.outputs, prompts_, answers);
      std::printf("# answers: %zu prompts in %s\n", answers.size(),
                  std::filesystem::absolute(config_.workload.outputs).c_str());
    } else {
      std::printf("# answers: %zu of %zu prompts unanswered when the run ended: %s not written\n", missing,
                  answers.size(), config_.workload.outputs.string().c_str());
      if (!stop_) status = 4;
    }
    std::fflush(stdout);
  }
  if (trace_) {
    trace_->finish(epochs_run, stop_);
    trace_.reset();
  }
  return status;
}

}  // namespace swarm::job
