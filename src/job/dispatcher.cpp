#include "swarm/job/dispatcher.hpp"

#include <algorithm>
#include <set>

namespace swarm::job {

Dispatcher::Dispatcher(dispatch::PolicyKind kind, const dispatch::DispatchOptions& options, std::uint64_t seed)
    : policy_(dispatch::make_policy(kind, options, seed)) {}

void Dispatcher::set_routes(const std::vector<RouteShare>& routes, double now) {
  std::set<std::string> keys;
  for (const RouteShare& r : routes) keys.insert(r.key());
  // Leaves first, so that their sessions can go to the routes that join.
  for (auto it = live_.begin(); it != live_.end();) {
    if (keys.count(it->first)) {
      ++it;
      continue;
    }
    const dispatch::WorkerId w = it->second;
    std::vector<dispatch::TaskId> interrupted;
    if (workers_[w].running) interrupted.push_back(*workers_[w].running);
    workers_[w].running.reset();
    for (dispatch::TaskId t : interrupted) take_back(sessions_[t]);  // its cache is gone
    it = live_.erase(it);
    scratch_.clear();
    policy_->worker_left(w, interrupted, now, scratch_);
    execute(scratch_, now);
  }
  for (const RouteShare& r : routes) {
    const auto it = live_.find(r.key());
    if (it != live_.end()) {
      workers_[it->second].route = r;  // same chain: same worker, fresh speed
      continue;
    }
    const auto w = static_cast<dispatch::WorkerId>(workers_.size());
    workers_.push_back({r, std::nullopt, 0});
    live_.emplace(r.key(), w);
    scratch_.clear();
    policy_->worker_joined(w, {r.key(), std::max(r.speed, 1e-9)}, now, scratch_);
    execute(scratch_, now);
    idle(w, now);
  }
}

void Dispatcher::arrive(std::uint64_t session, double work, double now) {
  const auto t = static_cast<dispatch::TaskId>(sessions_.size());
  sessions_.push_back(session);
  tasks_.emplace(session, t);
  scratch_.clear();
  policy_->task_arrived(t, {session, now, std::max(work, 1.0)}, now, scratch_);
  execute(scratch_, now);
}

void Dispatcher::finished(std::uint64_t session, double elapsed, double tokens, double now) {
  const auto t = tasks_.at(session);
  const auto b = bound_.find(t);
  if (b == bound_.end()) return;
  const dispatch::WorkerId w = b->second;
  workers_[w].running.reset();
  workers_[w].served += tokens;
  scratch_.clear();
  policy_->task_finished(w, t, elapsed, tokens, now, scratch_);
  execute(scratch_, now);
  if (live_.count(workers_[w].route.key()) && !workers_[w].running) idle(w, now);
}

void Dispatcher::idle(dispatch::WorkerId w, double now) {
  scratch_.clear();
  policy_->worker_idle(w, now, scratch_);
  execute(scratch_, now);
}

void Dispatcher::tick(double now) {
  std::sort(timers_.begin(), timers_.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
  while (!timers_.empty() && timers_.front().at <= now) {
    const dispatch::Timer timer = timers_.front();
    timers_.erase(timers_.begin());
    scratch_.clear();
    policy_->timer_fired(timer, now, scratch_);
    execute(scratch_, now);
  }
}

// The policy's decisions, in its order: preempts, assigns, runs, timers. Run delays model
// message latency in the simulator; here the real messages take their own time, so a run starts
// at once.
void Dispatcher::execute(dispatch::Actions& a, double now) {
  dispatch::Actions actions = std::move(a);
  stats_.messages += actions.messages;
  std::vector<dispatch::WorkerId> freed;  // workers a preempt left idle
  for (dispatch::TaskId t : actions.preempts) {
    for (std::size_t w = 0; w < workers_.size(); ++w) {
      if (workers_[w].running == t) {
        workers_[w].running.reset();
        freed.push_back(static_cast<dispatch::WorkerId>(w));
      }
    }
    take_back(sessions_[t]);
  }
  const auto bind = [&](dispatch::TaskId t, dispatch::WorkerId w) {
    const auto [it, fresh] = bound_.emplace(t, w);
    if (!fresh && it->second != w) {
      ++stats_.migrations;
      it->second = w;
    }
  };
  for (const auto& as : actions.assigns) bind(as.task, as.worker);
  for (const auto& run : actions.runs) {
    bind(run.task, run.worker);
    workers_[run.worker].running = run.task;
    starts_.push_back({sessions_[run.task], workers_[run.worker].route.hops});
  }
  for (const auto& timer : actions.timers) timers_.push_back(timer);
  // As the engine does: a worker whose session was preempted is idle again.
  for (dispatch::WorkerId w : freed) {
    if (live_.count(workers_[w].route.key()) && !workers_[w].running) idle(w, now);
  }
}

// A session leaves its route: a start the caller has not taken yet is void (the route may be
// gone), and the caller drops whatever the session had there.
void Dispatcher::take_back(std::uint64_t session) {
  std::erase_if(starts_, [&](const Start& s) { return s.session == session; });
  preempts_.push_back(session);
}

std::vector<Dispatcher::Start> Dispatcher::take_starts() { return std::exchange(starts_, {}); }
std::vector<std::uint64_t> Dispatcher::take_preempts() { return std::exchange(preempts_, {}); }

Dispatcher::Stats Dispatcher::take_stats() {
  Stats s = stats_;
  double most = 0, sum = 0;
  for (const auto& [key, w] : live_) {
    most = std::max(most, workers_[w].served);
    sum += workers_[w].served;
  }
  s.routes = static_cast<int>(live_.size());
  s.imbalance = sum > 0 ? most / (sum / static_cast<double>(live_.size())) : 0.0;
  for (Worker& w : workers_) w.served = 0;
  stats_ = {};
  return s;
}

}  // namespace swarm::job
