#pragma once
// The client on rank 0: the sessions of the workload (random prompts, a prompts file, or the one
// prompt of generation mode), their routes, and continuous batching. At every step the sessions
// ready on a route are packed into micro-batches (prefills and decodes mixed, at most
// servers.max_batch_tokens tokens), with up to hops + 1 micro-batches in flight per route so
// that every stage of the pipeline has work; each batch's embeddings are one lookup and its
// greedy tokens one LM-head GEMM. Pure apart from the model's arithmetic: no MPI, no clock of its
// own (the caller passes `now`), no device memory (rows in and out are host floats).
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "prompts.hpp"
#include "swarm/job/admission.hpp"
#include "swarm/job/config.hpp"
#include "swarm/job/dispatcher.hpp"
#include "swarm/job/protocol.hpp"
#include "swarm/job/routing.hpp"
#include "swarm/model/client.hpp"
#include "swarm/util/random.hpp"

namespace swarm::job {

/// A packet the client wants sent: a batch's first hop with its embeddings, or a drop.
struct Outgoing {
  int peer = 0;
  Header header;
  std::vector<float> rows;  // host embeddings [header.rows(), hidden_size]; empty for a drop
};

struct Session {
  std::uint64_t id = 0;               // the workload's number of the session
  model::SessionId cache = 0;         // its caches' id on the current route (0: none yet)
  int batch = 1;
  std::vector<std::vector<std::int32_t>> sequences;  // per sequence: prompt then generated
  int target_new = 0;
  int generated = 0;
  int fed = 0;  // tokens per sequence already in the caches along `route`
  std::vector<Hop> route;
  bool in_flight = false;
  bool running = true;     // dispatch: the policy started it on `route` (else it waits)
  bool preempted = false;  // dispatch: taken away while a step was in flight
  std::optional<std::vector<Hop>> next_route;  // dispatch: started elsewhere while a step was in flight
  std::vector<Hop> cache_route;       // hops whose KV-cache room this session holds (servers.max_cache_mb)
  std::uint64_t cache_per_block = 0;  // bytes held per block of cache_route (0: none)
  bool waiting_for_cache = false;     // its last start found a hop without room
  bool waited_for_cache = false;      // since its last (re)start: counted once it gets room
  double started = 0, step_sent = 0, run_started = 0;
  int prompt = -1;                    // prompts workload: index of its line
  bool stop_at_eos = false;
  bool keep_logits = false;           // generation mode
  std::vector<float> logits;          // kept in generation mode: [steps, batch * vocab]
};

/// Per-epoch counters of the client.
struct ClientStats {
  long sessions_started = 0, sessions_completed = 0, sessions_rerouted = 0;
  long batches = 0;            // micro-batches sent
  double tokens_fed = 0;       // tokens through the whole pipeline (prompts, decodes, replays)
  double tokens_generated = 0;
  double replay_tokens = 0;    // re-fed after a reroute (the KV-cache rebuild work)
  long cache_waits = 0;        // (re)starts that waited for KV-cache room, counted when they got it
  std::vector<double> step_latency, session_latency;
  double makespan = -1;  // batch and prompts workloads: first arrival to last completion
  Dispatcher::Stats dispatch;
};

/// A batch on its way.
struct BatchInFlight {
  std::string route;  // route_key of its route
  std::vector<Hop> hops;
  double sent = 0;
};

/// "r0[0,4)-r3[4,8)": a route's name in messages and as a key.
[[nodiscard]] std::string route_key(const std::vector<Hop>& route);

class Client {
 public:
  /// `prompts`: the prompts workload (workload.prompts) or generation mode's one prompt; empty:
  /// the random workload of config.workload.
  Client(const model::ClientModel& model, const JobConfig& config, int world_size, std::vector<Prompt> prompts = {});

  /// The servers to route through for the coming epoch (from the balancer).
  void set_servers(std::vector<RouteServer> servers) { servers_ = std::move(servers); }
  /// With a dispatch policy: splits the servers' capacity into routes, the policy's workers, and
  /// applies what the policy decides (call after reroute()). Returns the cache drops that cost.
  [[nodiscard]] std::vector<Outgoing> redispatch(double now);
  /// Admits sessions and sends the micro-batches that can go now; `admit`: new sessions and new
  /// steps may start (false while draining at the end of an epoch).
  [[nodiscard]] std::vector<Outgoing> step(double now, bool admit);
  /// Rows of a batch that came back from its last hop that the head needs: the last row of every
  /// sequence whose step was the last chunk of its tokens, in segment order.
  [[nodiscard]] std::vector<std::int64_t> head_rows(const Header& result) const;
  /// A batch came back: `last` holds head_rows(result) as host rows. Greedy tokens (one LM-head
  /// GEMM for the whole batch), then the sessions continue, finish or wait.
  void on_result(const Header& result, std::span<const float> last, double now, std::vector<Outgoing>& out);
  /// Sessions whose route crosses a rank in `changed` lose their caches: drop what is left on
  /// the other hops and replay the whole sequence on a new route at their next step.
  [[nodiscard]] std::vector<Outgoing> reroute(const std::set<int>& changed);

  [[nodiscard]] bool idle() const { return in_flight_.empty(); }
  /// The batch in flight for longest, if any.
  [[nodiscard]] std::optional<std::pair<std::uint64_t, BatchInFlight>> oldest_in_flight() const;
  [[nodiscard]] int active() const { return static_cast<int>(sessions_.size()); }
  /// Sessions waiting now for KV-cache room on their route.
  [[nodiscard]] int waiting_for_cache() const;
  /// KV-cache bytes reserved on `rank` now (servers.max_cache_mb; 0 without a budget).
  [[nodiscard]] std::uint64_t cache_reserved(int rank) const { return ledger_.reserved(rank); }
  /// Batch and prompts workloads: every session has arrived and finished.
  [[nodiscard]] bool done() const;
  [[nodiscard]] std::size_t routes() const { return dispatcher_ ? dispatcher_->routes() : 0; }

  /// Prompts workload: per prompt, prompt then generated tokens (empty while unfinished).
  [[nodiscard]] const std::vector<std::vector<std::int32_t>>& answers() const { return answers_; }
  /// Generation mode: the finished sessions (with their logits).
  [[nodiscard]] const std::vector<Session>& finished() const { return finished_; }

  /// Returns and resets the epoch's counters.
  [[nodiscard]] ClientStats take_stats();

 private:
  [[nodiscard]] Session make_session(double now);
  [[nodiscard]] Session prompt_session(int index, double now);
  void admit(Session s, double now);
  void admit_new(double now);
  [[nodiscard]] bool ready(Session& s, bool& no_room);
  void send_batches(double now, std::vector<Outgoing>& out);
  [[nodiscard]] Outgoing make_batch(const std::vector<Session*>& members, const std::vector<int>& chunks, double now);
  [[nodiscard]] int chunk_of(const Session& s) const;
  void finish(std::map<std::uint64_t, Session>::iterator it, double now, std::vector<Outgoing>& out);
  void drop_caches(Session& s, std::vector<Outgoing>& out, std::span<const int> gone = {});
  void apply_dispatch(double now, std::vector<Outgoing>& out);
  [[nodiscard]] Session* find(std::uint64_t id);
  [[nodiscard]] bool hold_cache(Session& s);
  void release_cache(Session& s);
  /// Positions the session's caches will hold at most: what its segments tell the servers
  /// (Segment::length) and what its cache room is reserved for.
  [[nodiscard]] static int final_positions(const Session& s);
  [[nodiscard]] std::uint64_t cache_per_block(const Session& s) const;
  void count_route(const Session& s, int delta);

  const model::ClientModel& model_;
  const JobConfig& config_;
  Rng rng_;
  std::vector<RouteServer> servers_;
  std::map<std::uint64_t, Session> sessions_;            // active (not finished), by id: admission order
  std::map<model::SessionId, std::uint64_t> by_cache_;   // cache id -> session id
  std::map<std::uint64_t, BatchInFlight> in_flight_;     // batch id -> batch
  std::map<std::string, int> lanes_;                     // route key -> batches in flight on it
  std::vector<Session> finished_;                        // generation mode keeps them
  std::vector<Prompt> prompts_;
  std::vector<std::vector<std::int32_t>> answers_;
  std::size_t next_prompt_ = 0;
  std::size_t prompts_done_ = 0;
  std::uint64_t next_id_ = 1;
  model::SessionId next_cache_ = 1;
  std::uint64_t next_batch_ = 1;
  double next_arrival_ = 0;
  bool batch_started_ = false;
  double batch_started_at_ = 0;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::vector<std::tuple<int, int, int, bool>> route_shape_;  // servers the routes were split from
  int world_ = 1;
  CacheLedger ledger_;
  ClientStats stats_;
};

}  // namespace swarm::job
