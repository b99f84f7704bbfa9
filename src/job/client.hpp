#pragma once
// The client on rank 0: sessions of the workload (or the one prompt of generation mode), their
// routes, embeddings in, greedy tokens out. Produces and consumes the messages of the ticks.
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "exchange.hpp"
#include "swarm/job/admission.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/dispatcher.hpp"
#include "swarm/job/routing.hpp"
#include "swarm/model/client.hpp"
#include "swarm/random.hpp"

namespace swarm::job {

struct Session {
  std::uint64_t id = 0;
  int batch = 1;
  std::vector<std::vector<std::int32_t>> sequences;  // per sequence: prompt then generated
  int target_new = 0;
  int generated = 0;
  int fed = 0;  // tokens per sequence already in the caches along `route`
  std::vector<Hop> route;
  bool in_flight = false;
  bool running = true;  // dispatch: the policy started it on `route` (else it waits)
  bool preempted = false;  // dispatch: taken away while a step was in flight
  std::optional<std::vector<Hop>> next_route;  // dispatch: started elsewhere while a step was in flight
  std::vector<Hop> cache_route;   // hops whose KV-cache room this session holds (servers.max_cache_mb)
  std::uint64_t cache_per_block = 0;  // bytes held per block of cache_route (0: none)
  bool waiting_for_cache = false;     // its last start found a hop without room
  bool waited_for_cache = false;      // since its last (re)start: counted once it gets room
  double started = 0, step_sent = 0, run_started = 0;
  std::vector<float> logits;  // kept in generation mode: [steps, batch * vocab]
};

/// Per-epoch counters of the client.
struct ClientStats {
  long sessions_started = 0, sessions_completed = 0, sessions_rerouted = 0;
  double tokens_fed = 0;       // tokens through the whole pipeline (prompts, decodes, replays)
  double tokens_generated = 0;
  double replay_tokens = 0;    // re-fed after a reroute (the KV-cache rebuild work)
  long cache_waits = 0;        // (re)starts that waited for KV-cache room, counted when they got it
  std::vector<double> step_latency, session_latency;
  double makespan = -1;  // batch workload: first arrival to last completion, in the epoch it ended
  Dispatcher::Stats dispatch;
};

class Client {
 public:
  Client(const model::ClientModel& model, const JobConfig& config, int world_size);

  /// The servers to route through for the coming epoch (from the balancer).
  void set_servers(std::vector<RouteServer> servers) { servers_ = std::move(servers); }
  /// With a dispatch policy: splits the servers' capacity into routes, the policy's workers, and
  /// applies what the policy decides (call after reroute()). Returns the cache drops that cost.
  [[nodiscard]] std::vector<Message> redispatch(double now);
  /// Starts sessions and steps that can start now; `admit`: new sessions may begin.
  [[nodiscard]] std::vector<Message> tick(double now, bool admit);
  /// A step came back from the last hop: greedy token, then maybe the next step.
  void on_result(const Message& result, double now, std::vector<Message>& out);
  /// Sessions whose route crosses a rank in `changed` lose their caches: drop what is left on
  /// the other hops and replay the whole sequence on a new route at their next step.
  [[nodiscard]] std::vector<Message> reroute(const std::set<int>& changed);
  [[nodiscard]] bool idle() const { return in_flight_ == 0; }
  [[nodiscard]] int active() const { return static_cast<int>(sessions_.size()); }
  /// Sessions waiting now for KV-cache room on their route.
  [[nodiscard]] int waiting_for_cache() const;
  /// KV-cache bytes reserved on `rank` now (servers.max_cache_mb; 0 without a budget).
  [[nodiscard]] std::uint64_t cache_reserved(int rank) const { return ledger_.reserved(rank); }
  /// Batch workload: every session has arrived and finished.
  [[nodiscard]] bool batch_done() const { return batch_started_ && sessions_.empty(); }
  [[nodiscard]] std::size_t routes() const { return dispatcher_ ? dispatcher_->routes() : 0; }

  /// Generation mode: one session of `prompt` (batch 1) generating `max_new` tokens.
  void add_prompt(std::vector<std::int32_t> prompt, int max_new);
  [[nodiscard]] const std::vector<Session>& finished() const { return finished_; }

  /// Returns and resets the epoch's counters.
  [[nodiscard]] ClientStats take_stats();

 private:
  [[nodiscard]] std::optional<Message> step(Session& s, double now);
  [[nodiscard]] Session make_session(double now);
  void drop_caches(Session& s, std::vector<Message>& out, std::span<const int> gone = {});
  void apply_dispatch(double now, std::vector<Message>& out);
  [[nodiscard]] Session* find(std::uint64_t id);
  void admit(Session s, double now);
  [[nodiscard]] bool hold_cache(Session& s);
  void release_cache(Session& s);
  [[nodiscard]] std::uint64_t cache_per_block(const Session& s) const;

  const model::ClientModel& model_;
  const JobConfig& config_;
  Rng rng_;
  std::vector<RouteServer> servers_;
  std::vector<Session> sessions_;  // active (not finished)
  std::vector<Session> finished_;  // generation mode keeps them
  std::uint64_t next_id_ = 1;
  double next_arrival_ = 0;
  int in_flight_ = 0;
  bool keep_finished_ = false;
  bool batch_started_ = false;
  double batch_started_at_ = 0;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::vector<std::tuple<int, int, int, bool>> route_shape_;  // servers the routes were split from
  int world_ = 1;
  CacheLedger ledger_;
  ClientStats stats_;
};

}  // namespace swarm::job
