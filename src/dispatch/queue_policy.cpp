#include "queue_policy.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace swarm::dispatch::detail {

void Welford::add(double x) {
  ++n_;
  const double delta = x - mean_;
  mean_ += delta / static_cast<double>(n_);
  m2_ += delta * (x - mean_);
}

double Welford::cv() const {
  if (n_ < 2 || !(mean_ > 0.0)) return 0.0;
  return std::sqrt(variance()) / mean_;
}

void TaskSet::insert(TaskId t) {
  if (pos_.size() <= t) pos_.resize(static_cast<std::size_t>(t) + 1, UINT32_MAX);
  if (pos_[t] != UINT32_MAX) return;
  pos_[t] = static_cast<std::uint32_t>(items_.size());
  items_.push_back(t);
}

void TaskSet::erase(TaskId t) {
  if (t >= pos_.size() || pos_[t] == UINT32_MAX) return;
  const std::uint32_t i = pos_[t];
  items_[i] = items_.back();
  pos_[items_[i]] = i;
  items_.pop_back();
  pos_[t] = UINT32_MAX;
}

QueuePolicy::QueuePolicy(const DispatchOptions& options, std::uint64_t seed)
    : options_(options), rng_(seed) {}

void QueuePolicy::worker_joined(WorkerId w, const WorkerInfo& info, double now, Actions& out) {
  if (w == kNoWorker) throw std::invalid_argument("dispatch: worker id kNoWorker");
  if (workers_.size() <= w) workers_.resize(static_cast<std::size_t>(w) + 1);
  WorkerState& s = workers_[w];
  if (s.alive) throw std::logic_error("dispatch: worker " + std::to_string(w) + " joined twice");
  s = WorkerState{};
  s.alive = true;
  s.announced_speed = info.announced_speed > 0.0 ? info.announced_speed : 1.0;
  s.speed = s.announced_speed;
  s.name = info.name.empty() ? default_worker_name(w) : info.name;
  alive_.insert(std::lower_bound(alive_.begin(), alive_.end(), w), w);
  on_joined(w, now, out);
  // Whatever waited for a worker goes out now, oldest first.
  std::deque<TaskId> held;
  held.swap(held_);
  for (TaskId t : held) dispatch(t, now, out);
}

void QueuePolicy::worker_left(WorkerId w, std::span<const TaskId> interrupted, double now,
                              Actions& out) {
  if (!alive(w)) throw std::logic_error("dispatch: worker " + std::to_string(w) + " left twice");
  WorkerState& s = workers_[w];
  std::vector<TaskId> orphans(interrupted.begin(), interrupted.end());
  for (const Queued& q : s.queue) orphans.push_back(q.task);
  s.queue.clear();
  s.queued_work = 0.0;
  s.current = kNoTask;
  s.alive = false;
  s.idle = false;
  alive_.erase(std::lower_bound(alive_.begin(), alive_.end(), w));
  for (TaskId t : orphans) bound_[t] = kNoWorker;
  sort_by_arrival(orphans);
  on_left(w, orphans, now, out);
}

void QueuePolicy::on_left(WorkerId, std::span<const TaskId> orphans, double now, Actions& out) {
  for (TaskId t : orphans) dispatch(t, now, out);
}

void QueuePolicy::task_arrived(TaskId id, const Task& task, double now, Actions& out) {
  if (id == kNoTask) throw std::invalid_argument("dispatch: task id kNoTask");
  if (tasks_.size() <= id) {
    tasks_.resize(static_cast<std::size_t>(id) + 1);
    bound_.resize(static_cast<std::size_t>(id) + 1, kNoWorker);
  }
  tasks_[id] = task;
  active_.insert(id);
  admit(id, now, out);
}

void QueuePolicy::worker_idle(WorkerId w, double now, Actions& out) {
  if (!alive(w)) throw std::logic_error("dispatch: worker_idle for dead worker " + std::to_string(w));
  WorkerState& s = workers_[w];
  if (s.current != kNoTask) {
    throw std::logic_error("dispatch: worker_idle for worker " + std::to_string(w) +
                           ", which the policy saw running task " + std::to_string(s.current));
  }
  s.idle = true;
  if (!start_next(w, now, out)) on_starved(w, now, out);
}

void QueuePolicy::task_finished(WorkerId w, TaskId id, double elapsed_s, double tokens, double,
                                Actions&) {
  WorkerState& s = workers_[w];
  if (s.current != id) {
    throw std::logic_error("dispatch: task " + std::to_string(id) + " finished on worker " +
                           std::to_string(w) + ", which the policy did not give it");
  }
  s.current = kNoTask;
  bound_[id] = kNoWorker;
  active_.erase(id);
  if (elapsed_s > 0.0 && tokens > 0.0) {
    // Measured speed: an exponentially weighted mean, so that a worker that slows down (the
    // CS 294-8 lecture's "nodes change dynamically") is seen slower after a few tasks.
    const double a = options_.speed_smoothing;
    s.speed = (1.0 - a) * s.speed + a * (tokens / elapsed_s);
  }
}

Placement QueuePolicy::place(TaskId, double, Actions&) { return {}; }

void QueuePolicy::enqueue(WorkerId w, TaskId t, double ready_at, double now, Actions& out) {
  WorkerState& s = workers_[w];
  s.queue.push_back({t, ready_at});
  s.queued_work += tasks_[t].work;
  bound_[t] = w;
  out.assigns.push_back({t, w});
  if (s.idle) start_next(w, now, out);
}

void QueuePolicy::dispatch(TaskId t, double now, Actions& out) {
  const Placement p = place(t, now, out);
  if (p.worker == kNoWorker) {
    held_.push_back(t);
    return;
  }
  enqueue(p.worker, t, now + p.delay_s, now, out);
}

bool QueuePolicy::start_next(WorkerId w, double now, Actions& out) {
  WorkerState& s = workers_[w];
  if (!s.idle || s.queue.empty()) return false;
  const Queued q = owner_pops_newest() ? take_back(w) : take_front(w);
  s.current = q.task;
  s.idle = false;
  out.runs.push_back({q.task, w, std::max(0.0, q.ready_at - now)});
  return true;
}

Queued QueuePolicy::take_front(WorkerId w) {
  WorkerState& s = workers_[w];
  const Queued q = s.queue.front();
  s.queue.pop_front();
  s.queued_work = s.queue.empty() ? 0.0 : s.queued_work - tasks_[q.task].work;
  return q;
}

Queued QueuePolicy::take_back(WorkerId w) {
  WorkerState& s = workers_[w];
  const Queued q = s.queue.back();
  s.queue.pop_back();
  s.queued_work = s.queue.empty() ? 0.0 : s.queued_work - tasks_[q.task].work;
  return q;
}

void QueuePolicy::unbind(TaskId t, Actions& out) {
  const WorkerId w = bound_[t];
  if (w == kNoWorker) return;
  WorkerState& s = workers_[w];
  bound_[t] = kNoWorker;
  if (s.current == t) {
    // Running or in flight: the driver stops it and then reports the worker idle.
    out.preempts.push_back(t);
    s.current = kNoTask;
    s.idle = false;
    return;
  }
  const auto it = std::find_if(s.queue.begin(), s.queue.end(), [t](const Queued& q) { return q.task == t; });
  if (it == s.queue.end()) throw std::logic_error("dispatch: task " + std::to_string(t) + " lost");
  s.queue.erase(it);
  s.queued_work = s.queue.empty() ? 0.0 : s.queued_work - tasks_[t].work;
}

void QueuePolicy::move(TaskId t, WorkerId to, double now, Actions& out) {
  unbind(t, out);
  enqueue(to, t, now, now, out);
}

void QueuePolicy::sort_by_arrival(std::vector<TaskId>& ids) const {
  std::sort(ids.begin(), ids.end(), [this](TaskId a, TaskId b) {
    return tasks_[a].arrival != tasks_[b].arrival ? tasks_[a].arrival < tasks_[b].arrival : a < b;
  });
}

std::size_t QueuePolicy::load(WorkerId w) const {
  const WorkerState& s = workers_[w];
  return s.queue.size() + (s.current != kNoTask ? 1 : 0);
}

WorkerId QueuePolicy::random_alive() {
  if (alive_.empty()) return kNoWorker;
  return alive_[uniform_index(rng_, alive_.size())];
}

}  // namespace swarm::dispatch::detail
