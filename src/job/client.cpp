#include "client.hpp"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "swarm/model/executor.hpp"

namespace swarm::job {
namespace {
// The smallest piece a prefill is cut into to balance the lanes (tokens per sequence).
constexpr int kMinPrefillChunk = 32;
}  // namespace

std::string route_key(const std::vector<Hop>& route) {
  std::string k;
  for (const Hop& h : route) {
    k += (k.empty() ? "r" : "-r") + std::to_string(h.rank) + "[" + std::to_string(h.first) + "," +
         std::to_string(h.last) + ")";
  }
  return k;
}

Client::Client(const model::ClientModel& model, const JobConfig& config, int world_size, std::vector<Prompt> prompts)
    : model_(model),
      config_(config),
      rng_(derive_seed(config.seed, "workload")),
      prompts_(std::move(prompts)),
      answers_(prompts_.size()),
      world_(world_size),
      ledger_(config.max_cache_bytes(), world_size) {
  if (config.dispatch_policy) {
    dispatcher_ = std::make_unique<Dispatcher>(*config.dispatch_policy, config.dispatch_options,
                                               derive_seed(config.seed, "dispatch"));
  }
}

Session* Client::find(std::uint64_t id) {
  const auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : &it->second;
}

Session Client::make_session(double now) {
  Session s;
  s.id = next_id_++;
  s.batch = config_.workload.batch;
  s.target_new = config_.workload.new_tokens;
  s.started = now;
  const auto vocab = static_cast<std::uint64_t>(model_.config().vocab_size);
  for (int b = 0; b < s.batch; ++b) {
    std::vector<std::int32_t> prompt(static_cast<std::size_t>(config_.workload.prompt_tokens));
    for (auto& t : prompt) t = static_cast<std::int32_t>(uniform_index(rng_, vocab));
    s.sequences.push_back(std::move(prompt));
  }
  return s;
}

Session Client::prompt_session(int index, double now) {
  const Prompt& p = prompts_[static_cast<std::size_t>(index)];
  Session s;
  s.id = next_id_++;
  s.sequences = {p.tokens};
  s.target_new = p.max_new_tokens;
  s.stop_at_eos = p.stop_at_eos && !model_.config().eos_token_ids.empty();
  s.prompt = index;
  s.keep_logits = config_.generate.has_value();
  s.started = now;
  return s;
}

// A new session enters: straight onto a route of its own, or to the dispatch policy, which
// starts it on one of its routes when it decides to.
void Client::admit(Session s, double now) {
  ++stats_.sessions_started;
  if (dispatcher_) {
    s.running = false;
    const double work = static_cast<double>(s.batch) *
                        (static_cast<double>(s.sequences.front().size()) + s.target_new);
    dispatcher_->arrive(s.id, work, now);
  }
  const std::uint64_t id = s.id;
  sessions_.emplace(id, std::move(s));
}

void Client::admit_new(double now) {
  if (!prompts_.empty()) {
    // A closed loop over the file: at most workload.concurrency prompts in flight, in file order.
    if (!batch_started_) {
      batch_started_ = true;
      batch_started_at_ = now;
    }
    while (active() < config_.workload.concurrency && next_prompt_ < prompts_.size()) {
      admit(prompt_session(static_cast<int>(next_prompt_++), now), now);
    }
    return;
  }
  switch (config_.workload.arrival) {
    case Arrival::closed:
      while (active() < config_.workload.concurrency) admit(make_session(now), now);
      break;
    case Arrival::poisson:
      if (next_arrival_ == 0) next_arrival_ = now + exponential(rng_, 1.0 / config_.workload.rate);
      while (now >= next_arrival_) {
        admit(make_session(next_arrival_), now);
        next_arrival_ += exponential(rng_, 1.0 / config_.workload.rate);
      }
      break;
    case Arrival::batch:
      if (!batch_started_) {
        for (int i = 0; i < config_.workload.sessions; ++i) admit(make_session(now), now);
        batch_started_ = true;
        batch_started_at_ = now;
      }
      break;
  }
}

bool Client::done() const {
  if (!prompts_.empty()) return prompts_done_ == prompts_.size();
  return config_.workload.arrival == Arrival::batch && batch_started_ && sessions_.empty();
}

std::vector<Outgoing> Client::step(double now, bool admit) {
  if (admit) admit_new(now);
  std::vector<Outgoing> out;
  if (dispatcher_) {
    dispatcher_->tick(now);
    apply_dispatch(now, out);
  }
  if (admit) send_batches(now, out);
  return out;
}

// Whether `s` can take part in a batch now: routed (a new route if it has none), its KV-cache
// room held. First come, first served for room: once a session finds none, later sessions that
// need a new route wait behind it, so that long replays are not starved by short sessions.
bool Client::ready(Session& s, bool& no_room) {
  if (s.in_flight || !s.running) return false;
  if (s.route.empty()) {
    if (no_room) {
      s.waiting_for_cache = s.waited_for_cache = true;
      return false;
    }
    const int tokens = static_cast<int>(s.sequences.front().size()) - s.fed;
    std::optional<std::vector<Hop>> route;
    const int blocks = model_.config().num_hidden_layers;
    if (ledger_.limited()) {
      // Only through servers with room for the session's cache on their whole span (a hop runs
      // to the end of its server's span, so that is enough for any hop).
      const std::uint64_t per_block = cache_per_block(s);
      std::vector<RouteServer> roomy = servers_;
      for (RouteServer& srv : roomy) {
        srv.online = srv.online && ledger_.fits(srv.rank, per_block * static_cast<std::uint64_t>(srv.span.length()));
      }
      route = shortest_route(blocks, roomy, tokens);
      s.waiting_for_cache = !route && shortest_route(blocks, servers_, tokens);
      s.waited_for_cache = s.waited_for_cache || s.waiting_for_cache;
    } else {
      route = shortest_route(blocks, servers_, tokens);
    }
    if (!route) {  // disjoint, or no room yet: wait for a boundary or a drop
      no_room = no_room || s.waiting_for_cache;
      return false;
    }
    s.route = std::move(*route);
    count_route(s, +1);
  }
  return hold_cache(s);  // a dispatch route without room: wait for a drop
}

// Continuous batching. Per route, the sessions ready now go out in micro-batches ("lanes") of
// about (next-step tokens of the sessions on the route) / lanes tokens, at most
// servers.max_batch_tokens, while fewer than hops + 2 batches of that route are in flight: one
// for every hop, one at the client and one in transit, so that no stage waits for the others
// (FasterTransformer, TensorRT-LLM and vLLM run as many micro-batches as pipeline stages; the
// client and the transfers here are stages too). Lanes of equal tokens keep a lane of prefills
// from holding a stage while the next one idles; a prefill longer than its lane's share goes in
// chunks of at least kMinPrefillChunk tokens (smaller forwards would cost more than the balance
// gains). A session that is not ready waits for the next batch of its route; a batch that
// returns frees a lane. Measured in docs/job.md, "Batching and lanes".
void Client::send_batches(double now, std::vector<Outgoing>& out) {
  std::map<std::string, std::vector<Session*>> ready_on;  // route key -> sessions, admission order
  std::map<std::string, std::int64_t> tokens_on;         // next-step tokens of every session on the route
  std::vector<std::string> order;
  bool no_room = false;
  for (auto& [id, s] : sessions_) {
    const bool go = ready(s, no_room);
    if (s.route.empty()) continue;
    const std::string key = route_key(s.route);
    // A session in flight will most likely decode one token next.
    tokens_on[key] += static_cast<std::int64_t>(s.batch) * (go ? chunk_of(s) : 1);
    if (!go) continue;
    auto& list = ready_on[key];
    if (list.empty()) order.push_back(key);
    list.push_back(&s);
  }
  const auto max_tokens = static_cast<std::int64_t>(config_.max_batch_tokens);
  for (const std::string& key : order) {
    std::vector<Session*>& ready = ready_on[key];
    const int lanes = static_cast<int>(ready.front()->route.size()) + 2;
    // Lanes of about equal tokens, so that a lane of prefills does not hold a stage while
    // the next one idles.
    const std::int64_t target = std::min(max_tokens, std::max<std::int64_t>(1, (tokens_on[key] + lanes - 1) / lanes));
    std::size_t next = 0;
    while (next < ready.size() && lanes_[key] < lanes) {
      std::vector<Session*> members;
      std::int64_t tokens = 0;
      std::vector<int> chunks;
      for (; next < ready.size(); ++next) {
        Session& s = *ready[next];
        // A prefill longer than a lane's share goes in chunks (SGLang's chunked pipeline
        // parallelism): its caches continue where the last chunk ended.
        const int chunk = std::min<std::int64_t>(chunk_of(s), std::max<std::int64_t>(kMinPrefillChunk, target / s.batch));
        const std::int64_t t = static_cast<std::int64_t>(s.batch) * chunk;
        if (!members.empty() && tokens + t > target) break;
        members.push_back(&s);
        chunks.push_back(chunk);
        tokens += t;
      }
      out.push_back(make_batch(members, chunks, now));
      ++lanes_[key];
    }
  }
}

// Tokens per sequence of a session's next forward: what its caches lack, in chunks that keep a
// forward within servers.max_batch_tokens (a long prompt or replay is prefilled in pieces).
int Client::chunk_of(const Session& s) const {
  const int missing = static_cast<int>(s.sequences.front().size()) - s.fed;
  return std::max(1, std::min(missing, config_.max_batch_tokens / s.batch));
}

Outgoing Client::make_batch(const std::vector<Session*>& members, const std::vector<int>& chunks, double now) {
  Outgoing o;
  Header& h = o.header;
  h.kind = PacketKind::batch;
  h.batch = next_batch_++;
  h.hop = 0;
  h.route = members.front()->route;
  o.peer = h.route.front().rank;
  for (std::size_t i = 0; i < members.size(); ++i) {
    Session* s = members[i];
    if (s->cache == 0) {
      s->cache = next_cache_++;
      by_cache_[s->cache] = s->id;
    }
    const int chunk = chunks[i];
    // The final length lets every server size the session's caches once (no doubling while it decodes).
    h.segments.push_back({s->cache, s->batch, chunk, s->fed, final_positions(*s)});
    for (const auto& seq : s->sequences) {
      const std::vector<float> rows = model_.embed(std::span(seq).subspan(static_cast<std::size_t>(s->fed), chunk));
      o.rows.insert(o.rows.end(), rows.begin(), rows.end());
    }
    stats_.tokens_fed += static_cast<double>(s->batch) * chunk;
    s->in_flight = true;
    s->step_sent = now;
  }
  in_flight_[h.batch] = {route_key(h.route), h.route, now};
  ++stats_.batches;
  return o;
}

std::vector<std::int64_t> Client::head_rows(const Header& result) const {
  std::vector<std::int64_t> rows;
  std::int64_t offset = 0;
  for (const model::Segment& seg : result.segments) {
    const auto it = by_cache_.find(seg.session);
    const Session* s = it == by_cache_.end() ? nullptr : &sessions_.at(it->second);
    const bool last_chunk = s != nullptr && seg.position + seg.tokens == static_cast<int>(s->sequences.front().size());
    if (last_chunk) {
      for (int b = 0; b < seg.batch; ++b) rows.push_back(offset + std::int64_t{b} * seg.tokens + seg.tokens - 1);
    }
    offset += seg.rows();
  }
  return rows;
}

void Client::on_result(const Header& result, std::span<const float> last, double now, std::vector<Outgoing>& out) {
  const auto flight = in_flight_.find(result.batch);
  if (flight == in_flight_.end()) return;
  --lanes_[flight->second.route];
  in_flight_.erase(flight);
  // Greedy (Hugging Face do_sample=False): argmax of the last position's logits, first on ties;
  // one GEMM for every sequence of the batch that needs a token.
  const int vocab = model_.config().vocab_size;
  const auto sequences = static_cast<int>(last.size() / static_cast<std::size_t>(model_.config().hidden_size));
  const std::vector<float> logits = sequences > 0 ? model_.logits(last, sequences) : std::vector<float>{};
  std::size_t row = 0;  // next row of `logits`
  for (const model::Segment& seg : result.segments) {
    const auto cached = by_cache_.find(seg.session);
    if (cached == by_cache_.end()) continue;
    const auto it = sessions_.find(cached->second);
    Session& s = it->second;
    s.in_flight = false;
    stats_.step_latency.push_back(now - s.step_sent);
    s.fed = seg.position + seg.tokens;
    const bool last_chunk = s.fed == static_cast<int>(s.sequences.front().size());
    bool ends = false;
    if (last_chunk) {
      for (int b = 0; b < s.batch; ++b, ++row) {
        const float* l = logits.data() + row * static_cast<std::size_t>(vocab);
        const auto token = static_cast<std::int32_t>(std::max_element(l, l + vocab) - l);
        s.sequences[static_cast<std::size_t>(b)].push_back(token);
        const auto& eos = model_.config().eos_token_ids;
        ends = ends || (s.stop_at_eos && std::find(eos.begin(), eos.end(), token) != eos.end());
      }
      if (s.keep_logits) {
        s.logits.insert(s.logits.end(), logits.begin() + static_cast<std::ptrdiff_t>((row - s.batch) * vocab),
                        logits.begin() + static_cast<std::ptrdiff_t>(row * vocab));
      }
      ++s.generated;
      stats_.tokens_generated += s.batch;
    }
    if (ends || s.generated >= s.target_new) {
      finish(it, now, out);
      continue;
    }
    if (s.preempted || (s.next_route && *s.next_route != s.route)) {
      // Taken away while this step was in flight: now its caches go.
      drop_caches(s, out);
      stats_.replay_tokens += static_cast<double>(s.batch) * s.fed;
      s.fed = 0;
      s.running = false;
      s.preempted = false;
    }
    if (s.next_route) {  // and it was started again elsewhere meanwhile
      count_route(s, -1);
      s.route = std::move(*s.next_route);
      count_route(s, +1);
      s.next_route.reset();
      s.running = true;
      s.run_started = now;
    }
  }
}

void Client::finish(std::map<std::uint64_t, Session>::iterator it, double now, std::vector<Outgoing>& out) {
  Session& s = it->second;
  drop_caches(s, out);
  count_route(s, -1);
  stats_.session_latency.push_back(now - s.started);
  ++stats_.sessions_completed;
  const double run_time = now - s.run_started;
  const double work = static_cast<double>(s.batch) * static_cast<double>(s.sequences.front().size());
  const std::uint64_t id = s.id;
  if (s.prompt >= 0) {
    answers_[static_cast<std::size_t>(s.prompt)] = s.sequences.front();
    ++prompts_done_;
  }
  if (s.keep_logits) finished_.push_back(std::move(s));
  sessions_.erase(it);
  if (dispatcher_) dispatcher_->finished(id, run_time, work, now);
  if (batch_started_ && done()) stats_.makespan = now - batch_started_at_;
}

void Client::count_route(const Session& s, int delta) {
  for (const Hop& h : s.route) {
    for (auto& srv : servers_) {
      if (srv.rank == h.rank) srv.sessions = std::max(0, srv.sessions + delta);
    }
  }
}

int Client::final_positions(const Session& s) {
  // The last step feeds position prompt + new - 1 (and a replay at least the sequence so far).
  const int len = static_cast<int>(s.sequences.front().size());
  return std::max(len, len - s.generated + s.target_new - 1);
}

std::uint64_t Client::cache_per_block(const Session& s) const {
  return model::session_kv_bytes_per_block(model_.config(), s.batch, final_positions(s));
}

// Before a session's first step on its route (no caches there yet), its caches' final size is
// reserved on every hop; without room it waits.
bool Client::hold_cache(Session& s) {
  if (!ledger_.limited() || s.cache_per_block > 0 || s.fed > 0) return true;
  const std::uint64_t per_block = cache_per_block(s);
  if (!ledger_.reserve(s.route, per_block)) {
    s.waiting_for_cache = s.waited_for_cache = true;
    return false;
  }
  s.cache_route = s.route;
  s.cache_per_block = per_block;
  if (s.waited_for_cache) ++stats_.cache_waits;
  s.waiting_for_cache = s.waited_for_cache = false;
  return true;
}

// The session's caches are dropped (or gone with a reloaded rank): its room is free again.
void Client::release_cache(Session& s) {
  if (s.cache_per_block == 0) return;
  ledger_.release(s.cache_route, s.cache_per_block);
  s.cache_route.clear();
  s.cache_per_block = 0;
}

int Client::waiting_for_cache() const {
  return static_cast<int>(
      std::count_if(sessions_.begin(), sessions_.end(), [](const auto& e) { return e.second.waiting_for_cache; }));
}

// The session's caches go: a drop to every hop of its route (but the ranks in `gone`, whose
// caches went with them), their room is free again, and its next step starts fresh caches under
// a new id. One place, so that no drop site can forget the room. Drops to one rank in one call of
// the client share a packet.
void Client::drop_caches(Session& s, std::vector<Outgoing>& out, std::span<const int> gone) {
  if (s.cache != 0) {
    for (const Hop& h : s.route) {
      if (std::find(gone.begin(), gone.end(), h.rank) != gone.end()) continue;
      auto it = std::find_if(out.begin(), out.end(), [&](const Outgoing& o) {
        return o.peer == h.rank && o.header.kind == PacketKind::drop;
      });
      if (it == out.end()) {
        Outgoing o;
        o.peer = h.rank;
        o.header.kind = PacketKind::drop;
        out.push_back(std::move(o));
        it = out.end() - 1;
      }
      auto& segs = it->header.segments;
      if (std::none_of(segs.begin(), segs.end(), [&](const model::Segment& g) { return g.session == s.cache; })) {
        segs.push_back({s.cache, s.batch, 0, 0});
      }
    }
    by_cache_.erase(s.cache);
    s.cache = 0;
  }
  release_cache(s);
}

// The policy's decisions: preempted sessions lose their caches (a step in flight finishes
// first); started sessions take their route, replaying what they had if they move.
void Client::apply_dispatch(double now, std::vector<Outgoing>& out) {
  for (std::uint64_t id : dispatcher_->take_preempts()) {
    Session* s = find(id);
    if (s == nullptr) continue;
    if (s->in_flight) {
      s->preempted = true;
      continue;
    }
    drop_caches(*s, out);
    if (s->fed > 0) stats_.replay_tokens += static_cast<double>(s->batch) * s->fed;
    s->fed = 0;
    s->running = false;
  }
  for (Dispatcher::Start& start : dispatcher_->take_starts()) {
    Session* s = find(start.session);
    if (s == nullptr) continue;
    if (s->in_flight) {  // the step in flight finishes on its old route first
      s->next_route = std::move(start.route);
      continue;
    }
    if (s->route != start.route && s->fed > 0) {
      drop_caches(*s, out);
      stats_.replay_tokens += static_cast<double>(s->batch) * s->fed;
      ++stats_.sessions_rerouted;
      s->fed = 0;
    }
    if (s->route != start.route) release_cache(*s);  // room held before any step (no-op after drop_caches)
    count_route(*s, -1);
    s->route = std::move(start.route);
    count_route(*s, +1);
    s->running = true;
    s->preempted = false;
    s->run_started = now;
  }
}

std::vector<Outgoing> Client::redispatch(double now) {
  std::vector<Outgoing> out;
  // Routes are the swarm's structure: split again only when spans or states changed. Speeds
  // that drift are the policies' business (the adaptive ones measure them).
  std::vector<std::tuple<int, int, int, bool>> shape;
  for (const RouteServer& s : servers_) shape.emplace_back(s.rank, s.span.start, s.span.end, s.online);
  if (shape == route_shape_) return out;
  route_shape_ = std::move(shape);
  if (dispatcher_) {
    const int max_routes = config_.max_routes > 0 ? config_.max_routes : 2 * world_;
    dispatcher_->set_routes(capacity_routes(model_.config().num_hidden_layers, servers_, max_routes), now);
    apply_dispatch(now, out);
  }
  return out;
}

std::vector<Outgoing> Client::reroute(const std::set<int>& changed) {
  std::vector<Outgoing> out;
  for (auto& srv : servers_) srv.sessions = 0;
  const std::vector<int> gone(changed.begin(), changed.end());  // reloaded or offline: caches already gone
  for (auto& [id, s] : sessions_) {
    const bool broken = std::any_of(s.route.begin(), s.route.end(), [&](const Hop& h) { return changed.count(h.rank) > 0; });
    if (!broken) continue;
    drop_caches(s, out, gone);
    stats_.replay_tokens += static_cast<double>(s.batch) * s.fed;
    ++stats_.sessions_rerouted;
    s.fed = 0;
    // Without a policy the session finds a new shortest route at its next step; with one, its
    // route is its worker's, which the policy keeps or takes away (set_servers).
    if (!dispatcher_) s.route.clear();
  }
  // Routes kept count towards the load of their servers again.
  for (const auto& [id, s] : sessions_) count_route(s, +1);
  return out;
}

std::optional<std::pair<std::uint64_t, BatchInFlight>> Client::oldest_in_flight() const {
  std::optional<std::pair<std::uint64_t, BatchInFlight>> oldest;
  for (const auto& [id, b] : in_flight_) {
    if (!oldest || b.sent < oldest->second.sent) oldest = std::pair{id, b};
  }
  return oldest;
}

ClientStats Client::take_stats() {
  ClientStats s = std::move(stats_);
  stats_ = {};
  if (dispatcher_) s.dispatch = dispatcher_->take_stats();
  return s;
}

}  // namespace swarm::job
