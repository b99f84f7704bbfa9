#pragma once
// Every rank's server: its span of blocks on a backend (SpanServer: the executor, the emulation
// of its device class, its measurements) and the loop that serves packets as they arrive
// (HopRunner: batches queue in arrival order, one forward at a time runs on the device, each
// finished batch is posted on to its next hop without waiting for anybody).
#include <array>
#include <chrono>
#include <deque>
#include <memory>
#include <set>
#include <utility>

#include "swarm/comm/fabric.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/protocol.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/model/weights.hpp"

namespace swarm::job {

class SpanServer {
 public:
  /// `options`: the executor's device, KV-cache budget and compute dtype.
  SpanServer(const model::WeightSource& source, model::Backend backend, const DeviceClass& device, int rank,
             const model::ExecutorOptions& options);

  /// Loads blocks [start, end) (a joiner or a mover); the time counts as reload downtime.
  void load(int start, int end);
  /// Stops serving: drops every session's caches (the weights stay, as a Petals server going offline).
  void go_offline();
  [[nodiscard]] ServerState state() const { return state_; }
  void set_online() { state_ = ServerState::online; }
  [[nodiscard]] model::Span span() const { return span_; }

  /// Tokens/s through one block, measured before the server chooses its blocks on the kind of
  /// work it will do: a batch of `sequences` sequences prefilled with `prompt_tokens` tokens,
  /// then decoded one token at a time, through one block of the model's dimensions (random
  /// weights: no checkpoint tensor is read); best of three, weighted as a session's
  /// prompt_tokens + new_tokens - 1 tokens are, compute emulation included.
  double benchmark(int sequences, int prompt_tokens, int new_tokens);

  /// Starts hop `header.hop` of a batch on `rows` (in place; host or device memory as the
  /// backend computes), or a probe: the batch through the span's first block, its caches
  /// dropped afterwards.
  void start(const Header& header, comm::Activations& rows);
  /// Whether the forward started last has finished, the class's slower compute included.
  [[nodiscard]] bool finished();
  [[nodiscard]] bool busy() const { return running_; }
  void drop(std::span<const model::Segment> sessions);

  /// Extra seconds the class's link adds to a transfer of `bytes` (cap and latency).
  [[nodiscard]] double emulated_link_seconds(double bytes) const;
  [[nodiscard]] double latency_seconds() const { return device_.latency_ms / 1000.0; }
  void record_link(double bytes, double seconds);

  /// The device's changing speed: compute is slowed by `factor` (>= 1) on top of the class's
  /// compute_factor until the next call (drawn per rank and epoch from the class's slowdown_sigma).
  void set_slowdown(double factor) { slowdown_ = factor; }

  [[nodiscard]] model::SpanExecutor& executor() { return *executor_; }
  /// An iteration of the rank's loop that served (took in packets, ran or posted batches), from
  /// `began` to `ended`, `client` seconds of it rank 0's client. With the forwards' device time
  /// and the class's slower compute, the time the server was busy. Busy time is a union, not a
  /// sum: the part of an iteration inside the emulated slower compute of the last forward, or
  /// inside a device forward, is counted once (a slower device computes while its host polls).
  void add_host_seconds(double began, double ended, double client = 0);

  /// This epoch's measurements (and resets the epoch counters). `fabric`: the data plane's own
  /// counts of this epoch; `client_seconds`: time this rank spent as the client.
  [[nodiscard]] Measurement report(int hidden_size, const comm::FabricStats& fabric, double client_seconds);

 private:
  const model::WeightSource& source_;
  model::Backend backend_;
  model::ExecutorOptions options_;
  std::unique_ptr<model::SpanExecutor> executor_;
  DeviceClass device_;
  int rank_;
  ServerState state_ = ServerState::offline;
  double slowdown_ = 1.0;
  std::set<model::SessionId> sessions_;  // sessions with caches here
  model::Span span_{};
  // The forward in progress.
  bool running_ = false;
  double done_at_ = -1;  // end of the emulated slower compute, once the device finished
  // The last two emulated slower computes, [from, to): the rank is busy in them whatever its
  // loop does.
  std::array<std::pair<double, double>, 2> emulated_{};
  double host_during_forward_ = 0;  // host seconds counted since the forward in progress started
  double rows_blocks_ = 0;
  std::vector<model::Segment> probe_;  // a probe's sessions, dropped once it finished
  int forwards_ = 0;
  double block_tps_ = 0;  // last measured compute
  double net_tps_ = 0;    // last measured link, tokens/s
  // compute_seconds_: the time the server was busy (forwards and their handling), so that
  // block_tokens_ / compute_seconds_ is the rate it delivers as it runs.
  double compute_seconds_ = 0, block_tokens_ = 0, bytes_ = 0, link_seconds_ = 0, reload_seconds_ = 0;
};

/// The serving loop's state: packets accepted in arrival order (after the class's emulated
/// link), one forward at a time, each finished batch posted to its next hop (or back to rank 0).
class HopRunner {
 public:
  HopRunner(SpanServer& span, comm::Fabric& fabric) : span_(span), fabric_(fabric) {}

  /// A packet for this rank's server: a batch at one of its hops, a probe, a drop.
  void accept(Header header, comm::Activations rows, int source);
  /// Starts the next forward when the device is free and posts finished ones; returns whether
  /// anything happened.
  bool step();
  /// Nothing queued and nothing running.
  [[nodiscard]] bool idle() const { return queue_.empty() && !span_.busy(); }

 private:
  struct Work {
    double ready_at = 0;  // when the emulated link has delivered it
    Header header;
    comm::Activations rows;
  };
  SpanServer& span_;
  comm::Fabric& fabric_;
  std::deque<Work> queue_;
  std::optional<Work> running_;
  double link_free_at_ = 0;
};

}  // namespace swarm::job
