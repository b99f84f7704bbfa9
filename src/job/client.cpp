#include "client.hpp"

#include <algorithm>
#include <tuple>

#include "swarm/model/executor.hpp"

namespace swarm::job {

Client::Client(const model::ClientModel& model, const JobConfig& config, int world_size)
    : model_(model),
      config_(config),
      rng_(derive_seed(config.seed, "workload")),
      world_(world_size),
      ledger_(config.max_cache_bytes(), world_size) {
  if (config.dispatch_policy) {
    dispatcher_ = std::make_unique<Dispatcher>(*config.dispatch_policy, config.dispatch_options,
                                               derive_seed(config.seed, "dispatch"));
  }
}

void Client::add_prompt(std::vector<std::int32_t> prompt, int max_new) {
  Session s;
  s.id = next_id_++;
  s.sequences = {std::move(prompt)};
  s.target_new = max_new;
  sessions_.push_back(std::move(s));
  keep_finished_ = true;
}

Session* Client::find(std::uint64_t id) {
  const auto it = std::find_if(sessions_.begin(), sessions_.end(), [&](const Session& s) { return s.id == id; });
  return it == sessions_.end() ? nullptr : &*it;
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
  ++stats_.sessions_started;
  return s;
}

// A new session enters: straight onto a route of its own, or to the dispatch policy, which
// starts it on one of its routes when it decides to.
void Client::admit(Session s, double now) {
  if (dispatcher_) {
    s.running = false;
    const double work = static_cast<double>(s.batch) * (config_.workload.prompt_tokens + config_.workload.new_tokens);
    dispatcher_->arrive(s.id, work, now);
  }
  sessions_.push_back(std::move(s));
}

std::vector<Message> Client::tick(double now, bool admit_new) {
  if (admit_new && !keep_finished_) {
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
  std::vector<Message> out;
  if (dispatcher_) {
    dispatcher_->tick(now);
    apply_dispatch(now, out);
  }
  if (!admit_new) return out;  // draining: steps in flight finish, nothing new starts
  // First come, first served for KV-cache room: once a session finds none, later sessions that
  // need a new route wait behind it (so that long replays are not starved by short sessions).
  bool no_room = false;
  for (Session& s : sessions_) {
    if (s.in_flight || !s.running) continue;
    if (no_room && s.route.empty()) {
      s.waiting_for_cache = s.waited_for_cache = true;
      continue;
    }
    if (auto m = step(s, now)) {
      out.push_back(std::move(*m));
    } else if (s.waiting_for_cache && s.route.empty()) {
      no_room = true;
    }
  }
  return out;
}

// The policy's decisions: preempted sessions lose their caches (a step in flight finishes
// first); started sessions take their route, replaying what they had if they move.
void Client::apply_dispatch(double now, std::vector<Message>& out) {
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
    s->route = std::move(start.route);
    s->running = true;
    s->preempted = false;
    s->run_started = now;
  }
}

// The next step of a session: the tokens not yet in the caches of its route (all of them after a
// reroute), embedded, sent to the first hop.
std::optional<Message> Client::step(Session& s, double now) {
  const int len = static_cast<int>(s.sequences.front().size());
  if (s.route.empty()) {
    const int tokens = len - s.fed;
    std::optional<std::vector<Hop>> route;
    if (ledger_.limited()) {
      // Only through servers with room for the session's cache on their whole span (a hop runs
      // to the end of its server's span, so that is enough for any hop).
      const std::uint64_t per_block = cache_per_block(s);
      std::vector<RouteServer> roomy = servers_;
      for (RouteServer& srv : roomy) {
        srv.online = srv.online && ledger_.fits(srv.rank, per_block * static_cast<std::uint64_t>(srv.span.length()));
      }
      route = shortest_route(model_.config().num_hidden_layers, roomy, tokens);
      s.waiting_for_cache = !route && shortest_route(model_.config().num_hidden_layers, servers_, tokens);
      s.waited_for_cache = s.waited_for_cache || s.waiting_for_cache;
    } else {
      route = shortest_route(model_.config().num_hidden_layers, servers_, tokens);
    }
    if (!route) return std::nullopt;  // disjoint, or no room yet: wait for a boundary or a drop
    s.route = std::move(*route);
    for (const Hop& h : s.route) {
      for (auto& srv : servers_) {
        if (srv.rank == h.rank) ++srv.sessions;
      }
    }
  }
  if (static_cast<int>(s.route.size()) > kMaxHops) return std::nullopt;
  if (!hold_cache(s)) return std::nullopt;  // a dispatch route without room: wait for a drop
  Message m;
  m.peer = s.route.front().rank;
  StepHeader& h = m.header;
  h.session = s.id;
  h.kind = MessageKind::forward;
  h.batch = s.batch;
  h.tokens = len - s.fed;
  h.hop = 0;
  h.hops = static_cast<std::int32_t>(s.route.size());
  h.step = s.generated;
  for (std::size_t i = 0; i < s.route.size(); ++i) {
    h.rank[i] = s.route[i].rank;
    h.first[i] = static_cast<std::int16_t>(s.route[i].first);
    h.last[i] = static_cast<std::int16_t>(s.route[i].last);
  }
  const int hidden = model_.config().hidden_size;
  m.payload.reserve(static_cast<std::size_t>(s.batch) * h.tokens * hidden);
  for (const auto& seq : s.sequences) {
    const std::vector<float> rows = model_.embed(std::span(seq).subspan(static_cast<std::size_t>(s.fed)));
    m.payload.insert(m.payload.end(), rows.begin(), rows.end());
  }
  stats_.tokens_fed += static_cast<double>(s.batch) * h.tokens;
  s.in_flight = true;
  s.step_sent = now;
  ++in_flight_;
  return m;
}

void Client::on_result(const Message& result, double now, std::vector<Message>& out) {
  const auto it = std::find_if(sessions_.begin(), sessions_.end(),
                               [&](const Session& s) { return s.id == result.header.session; });
  if (it == sessions_.end()) return;
  Session& s = *it;
  s.in_flight = false;
  --in_flight_;
  stats_.step_latency.push_back(now - s.step_sent);
  // Greedy (Hugging Face do_sample=False): argmax of the last position's logits, first on ties.
  const int hidden = model_.config().hidden_size;
  const int tokens = result.header.tokens;
  std::vector<float> last(static_cast<std::size_t>(s.batch) * hidden);
  for (int b = 0; b < s.batch; ++b) {
    const float* row = result.payload.data() + (static_cast<std::size_t>(b) * tokens + tokens - 1) * hidden;
    std::copy(row, row + hidden, last.begin() + static_cast<std::ptrdiff_t>(b) * hidden);
  }
  const std::vector<float> logits = model_.logits(last, s.batch);
  const int vocab = model_.config().vocab_size;
  s.fed = static_cast<int>(s.sequences.front().size());
  for (int b = 0; b < s.batch; ++b) {
    const float* l = logits.data() + static_cast<std::size_t>(b) * vocab;
    s.sequences[static_cast<std::size_t>(b)].push_back(static_cast<std::int32_t>(std::max_element(l, l + vocab) - l));
  }
  if (keep_finished_) s.logits.insert(s.logits.end(), logits.begin(), logits.end());
  ++s.generated;
  stats_.tokens_generated += s.batch;
  if (s.generated >= s.target_new) {
    drop_caches(s, out);
    for (const Hop& h : s.route) {
      for (auto& srv : servers_) {
        if (srv.rank == h.rank && srv.sessions > 0) --srv.sessions;
      }
    }
    stats_.session_latency.push_back(now - s.started);
    ++stats_.sessions_completed;
    const std::uint64_t id = s.id;
    const double run_time = now - s.run_started;
    const double work = static_cast<double>(s.batch) * static_cast<double>(s.sequences.front().size());
    if (keep_finished_) finished_.push_back(std::move(s));
    sessions_.erase(it);
    if (dispatcher_) dispatcher_->finished(id, run_time, work, now);
    if (batch_started_ && sessions_.empty()) stats_.makespan = now - batch_started_at_;
  } else {
    if (s.preempted || (s.next_route && *s.next_route != s.route)) {
      // Taken away while this step was in flight: now its caches go.
      drop_caches(s, out);
      stats_.replay_tokens += static_cast<double>(s.batch) * s.fed;
      s.fed = 0;
      s.running = false;
      s.preempted = false;
    }
    if (s.next_route) {  // and it was started again elsewhere meanwhile
      s.route = std::move(*s.next_route);
      s.next_route.reset();
      s.running = true;
      s.run_started = now;
    }
  }
}

std::uint64_t Client::cache_per_block(const Session& s) const {
  // A (re)start feeds the whole sequence so far; the last step feeds position prompt + new - 1.
  const int len = static_cast<int>(s.sequences.front().size());
  const int total = len - s.generated + s.target_new - 1;
  return model::session_kv_bytes_per_block(model_.config(), s.batch, len, std::max(len, total));
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
  return static_cast<int>(std::count_if(sessions_.begin(), sessions_.end(), [](const Session& s) { return s.waiting_for_cache; }));
}

// The session's caches go: a drop message to every hop of its route (but the ranks in `gone`,
// whose caches went with them), and their room is free again. One place, so that no drop site
// can forget the room.
void Client::drop_caches(Session& s, std::vector<Message>& out, std::span<const int> gone) {
  for (const Hop& h : s.route) {
    if (std::find(gone.begin(), gone.end(), h.rank) != gone.end()) continue;
    Message m;
    m.peer = h.rank;
    m.header.session = s.id;
    m.header.kind = MessageKind::drop;
    out.push_back(std::move(m));
  }
  release_cache(s);
}

std::vector<Message> Client::redispatch(double now) {
  std::vector<Message> out;
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

std::vector<Message> Client::reroute(const std::set<int>& changed) {
  std::vector<Message> out;
  for (auto& srv : servers_) srv.sessions = 0;
  for (Session& s : sessions_) {
    const bool broken = std::any_of(s.route.begin(), s.route.end(), [&](const Hop& h) { return changed.count(h.rank) > 0; });
    if (!broken) continue;
    const std::vector<int> gone(changed.begin(), changed.end());  // reloaded or offline: caches already gone
    drop_caches(s, out, gone);
    stats_.replay_tokens += static_cast<double>(s.batch) * s.fed;
    ++stats_.sessions_rerouted;
    s.fed = 0;
    // Without a policy the session finds a new shortest route at its next step; with one, its
    // route is its worker's, which the policy keeps or takes away (set_servers).
    if (!dispatcher_) s.route.clear();
  }
  // Routes kept count towards the load of their servers again.
  for (const Session& s : sessions_) {
    for (const Hop& h : s.route) {
      for (auto& srv : servers_) {
        if (srv.rank == h.rank) ++srv.sessions;
      }
    }
  }
  return out;
}

ClientStats Client::take_stats() {
  ClientStats s = std::move(stats_);
  stats_ = {};
  if (dispatcher_) s.dispatch = dispatcher_->take_stats();
  return s;
}

}  // namespace swarm::job
