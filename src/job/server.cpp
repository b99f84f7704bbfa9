#include "server.hpp"

#include <algorithm>
#include <thread>
#include <vector>

#include "swarm/util/clock.hpp"

namespace swarm::job {
namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

model::Memory memory_of(const comm::Activations& rows) {
  return rows.location() == comm::MemoryLocation::device ? model::Memory::device : model::Memory::host;
}

}  // namespace

SpanServer::SpanServer(const model::WeightSource& source, model::Backend backend, const DeviceClass& device,
                       int rank, const model::ExecutorOptions& options)
    : source_(source),
      backend_(backend),
      options_(options),
      executor_(model::make_executor(backend, options)),
      device_(device),
      rank_(rank) {}

void SpanServer::load(int start, int end) {
  const auto began = Clock::now();
  executor_->synchronize();
  executor_->load(source_, {start, end});  // drops every session
  sessions_.clear();
  span_ = {start, end};
  state_ = ServerState::online;
  reload_seconds_ = since(began);
}

void SpanServer::go_offline() {
  executor_->synchronize();
  for (model::SessionId session : sessions_) executor_->drop_session(session);
  sessions_.clear();
  state_ = ServerState::offline;
}

double SpanServer::benchmark(int sequences, int prompt_tokens, int new_tokens) {
  // Speed does not depend on the weights' values: a block of random weights of the model's
  // dimensions, so that no rank reads checkpoint tensors outside its span.
  const model::RandomWeights random(source_.config(), 0);
  model::ExecutorOptions probe_options = options_;
  probe_options.max_cache_bytes = 0;  // the probe's caches are its own
  const auto probe = model::make_executor(backend_, probe_options);
  probe->load(random, {0, 1});
  const int hidden = source_.config().hidden_size;
  const double factor = device_.compute_factor * slowdown_;
  std::vector<float> x(static_cast<std::size_t>(sequences) * prompt_tokens * hidden, 0.01f);
  std::vector<model::Segment> segments(static_cast<std::size_t>(sequences));
  const int decodes = std::min(new_tokens - 1, 4);  // a few steps show the decode rate
  double best = 0;
  for (int attempt = 0; attempt < 3; ++attempt) {
    for (int i = 0; i < sequences; ++i) segments[static_cast<std::size_t>(i)] = {static_cast<model::SessionId>(i + 1), 1, prompt_tokens, 0};
    auto began = Clock::now();
    probe->forward(segments, 0, 1, x.data());
    const double prefill = since(began) * factor;
    double decode = 0;
    for (int d = 0; d < decodes; ++d) {
      for (int i = 0; i < sequences; ++i) segments[static_cast<std::size_t>(i)] = {static_cast<model::SessionId>(i + 1), 1, 1, prompt_tokens + d};
      began = Clock::now();
      probe->forward(segments, 0, 1, x.data());
      decode += since(began) * factor;
    }
    for (int i = 0; i < sequences; ++i) probe->drop_session(static_cast<model::SessionId>(i + 1));
    // A session feeds its prompt once and then new_tokens - 1 single tokens.
    const double per_decode = decodes > 0 ? decode / decodes : 0;
    const double seconds = prefill + (new_tokens - 1) * per_decode;
    const double tokens = static_cast<double>(sequences) * (prompt_tokens + new_tokens - 1);
    if (seconds > 0) best = std::max(best, tokens / seconds);
  }
  block_tps_ = best;
  return best;
}

void SpanServer::start(const Header& h, comm::Activations& rows) {
  int first = 0, last = 0;
  if (h.kind == PacketKind::probe) {
    first = span_.start;
    last = span_.start + 1;
    probe_ = h.segments;
  } else {
    const Hop& hop = h.route[static_cast<std::size_t>(h.hop)];
    first = hop.first;
    last = hop.last;
    for (const model::Segment& s : h.segments) sessions_.insert(s.session);
  }
  running_ = true;
  done_at_ = -1;
  host_during_forward_ = 0;
  rows_blocks_ = static_cast<double>(h.rows()) * (last - first);
  executor_->forward(h.segments, first, last, rows.data(), memory_of(rows));
}

bool SpanServer::finished() {
  if (!running_) return true;
  const double now = seconds_now();
  if (done_at_ < 0) {
    if (!executor_->idle()) return false;
    // A slower device class takes `factor` times as long: the rank stays busy for the
    // difference (serving its link meanwhile) before the batch goes on.
    const double elapsed = executor_->last_forward_seconds();
    const double factor = device_.compute_factor * slowdown_;
    done_at_ = now + elapsed * (factor - 1.0);
    emulated_[0] = emulated_[1];
    emulated_[1] = {now, done_at_};
    compute_seconds_ += elapsed * (factor - 1.0);
    // A host forward ran inside a loop iteration, which counted it (add_host_seconds). A device
    // one ran while the loop went on: what the loop counted meanwhile is part of it.
    if (backend_ != model::Backend::cpu) compute_seconds_ += std::max(0.0, elapsed - host_during_forward_);
    block_tokens_ += rows_blocks_;
    ++forwards_;
  }
  if (now < done_at_) return false;
  running_ = false;
  if (!probe_.empty()) {
    for (const model::Segment& s : probe_) executor_->drop_session(s.session);
    probe_.clear();
  }
  return true;
}

void SpanServer::add_host_seconds(double began, double ended, double client) {
  const double length = ended - began;
  if (length <= 0) return;
  const double serving = std::clamp(length - client, 0.0, length);
  // An iteration that starts the next forward began inside the last window or before it, and
  // the window of the forward it started opens before it ends: both may overlap it.
  double inside = 0;
  for (const auto& [from, to] : emulated_) inside += std::max(0.0, std::min(ended, to) - std::max(began, from));
  inside = std::min(inside, length);
  // The client's part and the serving part are taken as spread evenly over the iteration.
  const double counted = serving * (1.0 - inside / length);
  compute_seconds_ += counted;
  if (running_) host_during_forward_ += counted;
}

void SpanServer::drop(std::span<const model::Segment> sessions) {
  for (const model::Segment& s : sessions) {
    executor_->drop_session(s.session);
    sessions_.erase(s.session);
  }
}

double SpanServer::emulated_link_seconds(double bytes) const {
  return device_.link_mbps > 0 ? bytes * 8.0 / (device_.link_mbps * 1e6) : 0.0;
}

void SpanServer::record_link(double bytes, double seconds) {
  bytes_ += bytes;
  link_seconds_ += seconds;
}

Measurement SpanServer::report(int hidden_size, const comm::FabricStats& fabric, double client_seconds) {
  Measurement m;
  m.rank = rank_;
  m.span_start = span_.start;
  m.span_end = span_.end;
  m.state = state_;
  m.forwards = forwards_;
  // The rate this epoch's batches ran at; an epoch without work keeps the last value (rank 0
  // probes idle servers, so that is one epoch old at most).
  if (block_tokens_ > 0 && compute_seconds_ > 0) block_tps_ = block_tokens_ / compute_seconds_;
  const double bytes = bytes_ + static_cast<double>(fabric.bytes_received);
  const double seconds = link_seconds_ + fabric.transfer_seconds;
  const double bytes_per_token = hidden_size * 4.0;  // fp32 activations
  if (bytes > 0 && seconds > 0) {
    net_tps_ = bytes / seconds / bytes_per_token;
  } else if (device_.link_mbps > 0) {
    net_tps_ = device_.link_mbps * 1e6 / 8.0 / bytes_per_token;  // nothing received: the class's cap
  } else {
    net_tps_ = 0;  // nothing received and no cap: unknown, so it does not limit
  }
  m.block_tokens_per_s = block_tps_;
  m.network_tokens_per_s = net_tps_;
  m.compute_seconds = compute_seconds_;
  m.block_tokens = block_tokens_;
  m.bytes_received = bytes;
  m.link_seconds = seconds;
  m.client_seconds = client_seconds;
  m.wait_seconds = fabric.wait_seconds;
  m.reload_seconds = reload_seconds_;
  m.memory_bytes = static_cast<double>(executor_->weight_bytes() + executor_->cache_bytes());
  compute_seconds_ = block_tokens_ = bytes_ = link_seconds_ = reload_seconds_ = 0;
  forwards_ = 0;
  return m;
}

void HopRunner::accept(Header header, comm::Activations rows, int source) {
  const double now = seconds_now();
  if (header.kind == PacketKind::drop) {
    span_.drop(header.segments);
    return;
  }
  // The class's link: transfers into this rank queue on it at its cap, then its latency.
  double ready_at = now;
  if (source != fabric_.rank() && !rows.empty()) {
    const double bytes = static_cast<double>(rows.size() * sizeof(float));
    const double transfer = span_.emulated_link_seconds(bytes);
    const double latency = span_.latency_seconds();
    if (transfer > 0 || latency > 0) {
      link_free_at_ = std::max(now, link_free_at_) + transfer;
      ready_at = link_free_at_ + latency;
      span_.record_link(0, transfer + latency);  // not the wait for the link to be free
    }
  }
  queue_.push_back({ready_at, std::move(header), std::move(rows)});
}

bool HopRunner::step() {
  bool did = false;
  for (;;) {
    if (running_) {
      if (!span_.finished()) return did;
      Header& h = running_->header;
      const int peer = h.next_peer();
      h.hop = h.kind == PacketKind::probe ? static_cast<std::int32_t>(h.route.size()) : h.hop + 1;
      fabric_.post({peer, encode(h), std::move(running_->rows)});
      running_.reset();
      did = true;
    }
    if (queue_.empty() || queue_.front().ready_at > seconds_now()) return did;
    running_ = std::move(queue_.front());
    queue_.pop_front();
    span_.start(running_->header, running_->rows);
    did = true;
  }
}

}  // namespace swarm::job
