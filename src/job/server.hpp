#pragma once
// One rank's server: its span of blocks on a backend, the emulation of its device class (slower
// compute, capped links) and the measurements it reports at each epoch boundary.
#include <chrono>
#include <memory>
#include <set>

#include "swarm/job/config.hpp"
#include "swarm/job/protocol.hpp"
#include "swarm/model/executor.hpp"
#include "swarm/model/weights.hpp"

namespace swarm::job {

class SpanServer {
 public:
  SpanServer(const model::WeightSource& source, model::Backend backend, const DeviceClass& device, int rank,
             std::size_t max_cache_bytes, int cuda_device);

  /// Loads blocks [start, end) (a joiner or a mover); the time counts as reload downtime.
  void load(int start, int end);
  /// Stops serving: drops every session's caches (the weights stay, as a Petals server going offline).
  void go_offline();
  [[nodiscard]] RankState state() const { return state_; }
  void set_online() { state_ = RankState::online; }

  /// Tokens/s through one block, measured Petals-style before the server chooses its blocks: a
  /// forward pass of `tokens` tokens through one block of the model's dimensions (random
  /// weights: no checkpoint tensor is read), best of three, compute emulation included.
  double benchmark(int tokens);

  /// Runs the header's hop on `hidden` in place (host memory), emulating the class's compute.
  void forward(const StepHeader& header, float* hidden);
  void drop(std::uint64_t session);

  /// Activation bytes received and the seconds they took (transport time plus the emulated link
  /// cap and latency); returns the extra seconds to sleep for the emulation.
  [[nodiscard]] double emulated_link_delay(double bytes) const;
  void record_link(double bytes, double seconds);

  /// The device's changing speed: compute is slowed by `factor` (>= 1) on top of the class's
  /// compute_factor until the next call (drawn per rank and epoch from the class's slowdown_sigma).
  void set_slowdown(double factor) { slowdown_ = factor; }

  /// This epoch's measurements (and resets the epoch counters).
  [[nodiscard]] Measurement report(int hidden_size);

 private:
  const model::WeightSource& source_;
  model::Backend backend_;
  int device_index_;
  std::unique_ptr<model::SpanExecutor> executor_;
  DeviceClass device_;
  int rank_;
  RankState state_ = RankState::offline;
  double slowdown_ = 1.0;
  std::set<std::uint64_t> sessions_;  // sessions with caches here
  model::Span span_{};
  double block_tps_ = 0;  // last measured compute
  double net_tps_ = 0;    // last measured link, tokens/s
  double compute_seconds_ = 0, block_tokens_ = 0, bytes_ = 0, link_seconds_ = 0, reload_seconds_ = 0;
};

}  // namespace swarm::job
