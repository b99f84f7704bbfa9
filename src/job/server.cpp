#include "server.hpp"

#include <algorithm>
#include <thread>
#include <vector>

namespace swarm::job {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A slower device class takes `factor` times as long: sleep for the difference.
void slow_down(double elapsed, double factor) {
  if (factor > 1.0) std::this_thread::sleep_for(std::chrono::duration<double>(elapsed * (factor - 1.0)));
}

}  // namespace

SpanServer::SpanServer(const model::WeightSource& source, model::Backend backend, const DeviceClass& device,
                       int rank, std::size_t max_cache_bytes, int cuda_device)
    : source_(source),
      backend_(backend),
      device_index_(cuda_device),
      executor_(model::make_executor(backend, {cuda_device, max_cache_bytes})),
      device_(device),
      rank_(rank) {}

void SpanServer::load(int start, int end) {
  const auto began = Clock::now();
  executor_->load(source_, {start, end});  // drops every session
  sessions_.clear();
  span_ = {start, end};
  state_ = RankState::online;
  reload_seconds_ = since(began);
}

void SpanServer::go_offline() {
  for (std::uint64_t session : sessions_) executor_->drop_session(session);
  sessions_.clear();
  state_ = RankState::offline;
}

double SpanServer::benchmark(int tokens) {
  // Speed does not depend on the weights' values: a block of random weights of the model's
  // dimensions, so that no rank reads checkpoint tensors outside its span.
  const model::RandomWeights random(source_.config(), 0);
  const auto probe = model::make_executor(backend_, {device_index_, 0});
  probe->load(random, {0, 1});
  const int hidden = source_.config().hidden_size;
  std::vector<float> x(static_cast<std::size_t>(tokens) * hidden, 0.01f);
  double best = 0;
  for (int i = 0; i < 3; ++i) {
    const auto began = Clock::now();
    probe->forward(1, 0, 1, x.data(), 1, tokens);
    const double plain = since(began);
    slow_down(plain, device_.compute_factor * slowdown_);
    const double seconds = since(began);
    probe->drop_session(1);
    if (seconds > 0) best = std::max(best, tokens / seconds);
  }
  block_tps_ = best;
  return best;
}

void SpanServer::forward(const StepHeader& h, float* hidden) {
  const int first = h.first[static_cast<std::size_t>(h.hop)];
  const int last = h.last[static_cast<std::size_t>(h.hop)];
  const auto began = Clock::now();
  sessions_.insert(h.session);
  executor_->forward(h.session, first, last, hidden, h.batch, h.tokens);
  slow_down(since(began), device_.compute_factor * slowdown_);
  compute_seconds_ += since(began);
  block_tokens_ += static_cast<double>(h.batch) * h.tokens * (last - first);
}

void SpanServer::drop(std::uint64_t session) {
  executor_->drop_session(session);
  sessions_.erase(session);
}

double SpanServer::emulated_link_delay(double bytes) const {
  double delay = device_.latency_ms / 1000.0;
  if (device_.link_mbps > 0) delay += bytes * 8.0 / (device_.link_mbps * 1e6);
  return delay;
}

void SpanServer::record_link(double bytes, double seconds) {
  bytes_ += bytes;
  link_seconds_ += seconds;
}

Measurement SpanServer::report(int hidden_size) {
  Measurement m;
  m.rank = rank_;
  m.span_start = span_.start;
  m.span_end = span_.end;
  m.state = static_cast<std::int32_t>(state_);
  // This epoch's traffic when there was enough to measure, else the last value.
  if (block_tokens_ > 0 && compute_seconds_ > 0) block_tps_ = block_tokens_ / compute_seconds_;
  const double bytes_per_token = hidden_size * 4.0;  // fp32 activations
  if (bytes_ > 0 && link_seconds_ > 0) {
    net_tps_ = bytes_ / link_seconds_ / bytes_per_token;
  } else if (net_tps_ == 0 && device_.link_mbps > 0) {
    net_tps_ = device_.link_mbps * 1e6 / 8.0 / bytes_per_token;  // no traffic yet: the class's cap
  }
  m.block_tokens_per_s = block_tps_;
  m.network_tokens_per_s = net_tps_;
  m.compute_seconds = compute_seconds_;
  m.block_tokens = block_tokens_;
  m.bytes_received = bytes_;
  m.link_seconds = link_seconds_;
  m.reload_seconds = reload_seconds_;
  m.memory_bytes = static_cast<double>(executor_->weight_bytes() + executor_->cache_bytes());
  compute_seconds_ = block_tokens_ = bytes_ = link_seconds_ = reload_seconds_ = 0;
  return m;
}

}  // namespace swarm::job
