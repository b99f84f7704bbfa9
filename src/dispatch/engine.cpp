// The discrete-event dispatch engine. Time advances from event to event (a binary heap);
// between events every running task progresses at its worker's current speed. The engine owns
// execution (what runs where, progress, speeds, membership) and checks every decision of the
// policy against its contract, so a policy bug surfaces as an exception, not a wrong number.
#include "swarm/dispatch/engine.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <queue>
#include <stdexcept>
#include <string>
#include <tuple>

#include "option_error.hpp"

namespace swarm::dispatch {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Simultaneous events run in this order: work that completes at t counts before a departure at
// t, departures and arrivals of workers before the sessions that might use them.
enum class EventKind : std::uint8_t { finish, speed, leave, join, start, timer, arrival };

struct Event {
  double time;
  EventKind kind;
  std::uint64_t seq;       // insertion order: ties are deterministic
  std::uint32_t a;         // worker, or task for arrivals
  std::uint32_t b;         // speed-change index, timer tag
  std::uint64_t version;   // finish and start: the worker's run version when scheduled
};

struct Later {
  bool operator()(const Event& x, const Event& y) const {
    return std::tie(x.time, x.kind, x.seq) > std::tie(y.time, y.kind, y.seq);
  }
};

enum class TaskState : std::uint8_t { future, pending, reserved, running, done };

struct TaskRt {
  TaskState state = TaskState::future;
  WorkerId owner = kNoWorker;  // last worker it was bound to
  double progress = 0.0;       // tokens of the session done (kept across interruptions)
  double rebuild = 0.0;        // tokens the next run recomputes first (the lost KV cache)
};

struct WorkerRt {
  bool alive = false;
  bool told_idle = false;      // worker_idle was called and nothing has been given since
  double speed = 1.0;
  TaskId task = kNoTask;       // reserved (in flight) or running
  bool running = false;
  double run_total = 0.0;      // tokens of the current run: rebuild part + rest of the session
  double rebuild_part = 0.0;
  double remaining = 0.0;
  double run_start = 0.0;
  double last_update = 0.0;
  double joined_at = 0.0;
  std::uint64_t version = 0;   // bumped whenever a scheduled start or finish becomes stale
};

// Why the current batch of actions was taken: classifies migrations.
enum class Cause { other, join, leave };

void validate_inputs(std::span<const Task> tasks, std::span<const WorkerSpec> workers,
                     const EngineOptions& o) {
  using detail::reject_option;
  if (!(o.rebuild_fraction >= 0.0 && o.rebuild_fraction <= 1.0)) {
    reject_option("engine.rebuild_fraction", o.rebuild_fraction, "it must be in [0, 1]");
  }
  if (o.max_events == 0) reject_option("engine.max_events", o.max_events, "it must be > 0");
  if (tasks.size() >= kNoTask) throw std::invalid_argument("simulate: too many tasks");
  if (workers.size() >= kNoWorker) throw std::invalid_argument("simulate: too many workers");
  for (std::size_t i = 0; i < tasks.size(); ++i) {
    const std::string at = "tasks[" + std::to_string(i) + "]";
    if (!(std::isfinite(tasks[i].arrival) && tasks[i].arrival >= 0.0)) {
      reject_option(at + ".arrival", tasks[i].arrival, "it must be finite and >= 0");
    }
    if (!(std::isfinite(tasks[i].work) && tasks[i].work > 0.0)) {
      reject_option(at + ".work", tasks[i].work, "a session has some tokens to process");
    }
  }
  for (std::size_t i = 0; i < workers.size(); ++i) {
    const WorkerSpec& w = workers[i];
    const std::string at = "workers[" + std::to_string(i) + "]";
    if (!(std::isfinite(w.speed) && w.speed > 0.0)) reject_option(at + ".speed", w.speed, "it must be finite and > 0");
    if (!std::isfinite(w.announced_speed)) reject_option(at + ".announced_speed", w.announced_speed, "it must be finite");
    if (!(std::isfinite(w.join_time) && w.join_time >= 0.0)) {
      reject_option(at + ".join_time", w.join_time, "it must be finite and >= 0");
    }
    if (!(w.leave_time > w.join_time)) reject_option(at + ".leave_time", w.leave_time, "a worker leaves after it joins");
    double last = -std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < w.speed_changes.size(); ++k) {
      const SpeedChange& c = w.speed_changes[k];
      const std::string ck = at + ".speed_changes[" + std::to_string(k) + "]";
      if (!(std::isfinite(c.time) && c.time >= last)) reject_option(ck + ".time", c.time, "times must be finite and ascending");
      if (!(std::isfinite(c.speed) && c.speed > 0.0)) reject_option(ck + ".speed", c.speed, "it must be finite and > 0");
      last = c.time;
    }
  }
}

class Engine {
 public:
  Engine(std::span<const Task> tasks, std::span<const WorkerSpec> workers, Policy& policy,
         const EngineOptions& options)
      : tasks_(tasks), specs_(workers), policy_(policy), options_(options),
        task_rt_(tasks.size()), worker_rt_(workers.size()) {
    result_.tasks.resize(tasks.size());
    result_.workers.resize(workers.size());
  }

  RunResult run() {
    seed_events();
    while (!heap_.empty() && completed_ < tasks_.size()) {
      const Event ev = heap_.top();
      heap_.pop();
      if (++events_ > options_.max_events) {
        throw std::runtime_error("simulate: more than " + std::to_string(options_.max_events) +
                                 " events; policy " + std::string(policy_.name()) +
                                 " may never let the run end");
      }
      now_ = ev.time;
      handle(ev);
    }
    finish_metrics();
    return std::move(result_);
  }

 private:
  // ---- events -------------------------------------------------------------------------------
  void push(double time, EventKind kind, std::uint32_t a, std::uint32_t b = 0, std::uint64_t version = 0) {
    heap_.push({time, kind, seq_++, a, b, version});
  }

  void seed_events() {
    for (std::size_t w = 0; w < specs_.size(); ++w) {
      const auto id = static_cast<std::uint32_t>(w);
      worker_rt_[w].speed = specs_[w].speed;
      push(specs_[w].join_time, EventKind::join, id);
      if (std::isfinite(specs_[w].leave_time)) push(specs_[w].leave_time, EventKind::leave, id);
      for (std::size_t k = 0; k < specs_[w].speed_changes.size(); ++k) {
        push(specs_[w].speed_changes[k].time, EventKind::speed, id, static_cast<std::uint32_t>(k));
      }
    }
    for (std::size_t t = 0; t < tasks_.size(); ++t) {
      push(tasks_[t].arrival, EventKind::arrival, static_cast<std::uint32_t>(t));
    }
  }

  void handle(const Event& ev) {
    switch (ev.kind) {
      case EventKind::arrival: on_arrival(ev.a); break;
      case EventKind::join: on_join(ev.a); break;
      case EventKind::leave: on_leave(ev.a); break;
      case EventKind::speed: on_speed(ev.a, ev.b); break;
      case EventKind::start: on_start(ev.a, ev.version); break;
      case EventKind::finish: on_finish(ev.a, ev.version); break;
      case EventKind::timer:
        policy_.timer_fired({ev.time, ev.a, ev.b}, now_, out_);
        apply(Cause::other);
        break;
    }
    settle();
  }

  void on_arrival(TaskId t) {
    task_rt_[t].state = TaskState::pending;
    if (std::isnan(first_arrival_) || tasks_[t].arrival < first_arrival_) first_arrival_ = tasks_[t].arrival;
    policy_.task_arrived(t, tasks_[t], now_, out_);
    apply(Cause::other);
  }

  void on_join(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    rt.alive = true;
    rt.joined_at = now_;
    const WorkerSpec& spec = specs_[w];
    const WorkerInfo info{spec.name.empty() ? default_worker_name(w) : spec.name,
                          spec.announced_speed > 0.0 ? spec.announced_speed : spec.speed};
    policy_.worker_joined(w, info, now_, out_);
    apply(Cause::join);
    idle_.push_back(w);
  }

  void on_leave(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    if (!rt.alive) return;
    std::vector<TaskId> interrupted;
    if (rt.task != kNoTask) {
      interrupted.push_back(rt.task);
      interrupt(w);
    }
    rt.alive = false;
    rt.told_idle = false;
    ++rt.version;
    result_.workers[w].alive_s += std::max(0.0, now_ - std::max(rt.joined_at, run_begin()));
    policy_.worker_left(w, interrupted, now_, out_);
    apply(Cause::leave);
  }

  void on_speed(WorkerId w, std::uint32_t k) {
    WorkerRt& rt = worker_rt_[w];
    advance(w);
    rt.speed = specs_[w].speed_changes[k].speed;
    if (rt.running) {
      ++rt.version;
      schedule_finish(w);
    }
  }

  void on_start(WorkerId w, std::uint64_t version) {
    const WorkerRt& rt = worker_rt_[w];
    if (!rt.alive || rt.version != version || rt.task == kNoTask) return;  // cancelled meanwhile
    begin_run(w);
  }

  void on_finish(WorkerId w, std::uint64_t version) {
    WorkerRt& rt = worker_rt_[w];
    if (!rt.alive || rt.version != version || !rt.running) return;  // rescheduled or stopped
    advance(w);
    rt.remaining = 0.0;
    const TaskId t = rt.task;
    const double elapsed = now_ - rt.run_start;
    const double tokens = rt.run_total;
    account_run(w);
    TaskRt& trt = task_rt_[t];
    trt.state = TaskState::done;
    trt.progress = tasks_[t].work;
    TaskRecord& rec = result_.tasks[t];
    rec.finish = now_;
    rec.worker = w;
    ++result_.workers[w].tasks;
    ++completed_;
    last_finish_ = now_;
    rt.task = kNoTask;
    rt.running = false;
    ++rt.version;
    policy_.task_finished(w, t, elapsed, tokens, now_, out_);
    apply(Cause::other);
    idle_.push_back(w);
  }

  // ---- execution ----------------------------------------------------------------------------
  void advance(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    if (!rt.running) return;
    rt.remaining = std::max(0.0, rt.remaining - rt.speed * (now_ - rt.last_update));
    rt.last_update = now_;
  }

  void schedule_finish(WorkerId w) {
    const WorkerRt& rt = worker_rt_[w];
    push(now_ + rt.remaining / rt.speed, EventKind::finish, w, 0, rt.version);
  }

  void begin_run(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    const TaskId t = rt.task;
    TaskRt& trt = task_rt_[t];
    trt.state = TaskState::running;
    TaskRecord& rec = result_.tasks[t];
    if (std::isnan(rec.first_start)) rec.first_start = now_;
    rec.start = now_;
    rt.rebuild_part = trt.rebuild;
    rt.run_total = trt.rebuild + (tasks_[t].work - trt.progress);
    rt.remaining = rt.run_total;
    rt.run_start = now_;
    rt.last_update = now_;
    rt.running = true;
    ++rt.version;
    schedule_finish(w);
  }

  // Books the current run of `w` (at now_, after advance): busy time, tokens, and which of the
  // processed tokens were rebuild (the prefix of the run) and which advanced the session.
  void account_run(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    const TaskId t = rt.task;
    const double processed = rt.run_total - rt.remaining;
    const double rebuilt = std::min(processed, rt.rebuild_part);
    WorkerStats& ws = result_.workers[w];
    ws.busy_s += now_ - rt.run_start;
    ws.tokens += processed;
    task_rt_[t].progress = std::min(tasks_[t].work, task_rt_[t].progress + (processed - rebuilt));
    result_.tasks[t].rebuild_tokens += rebuilt;
    rebuild_tokens_ += rebuilt;
  }

  // Stops whatever `w` runs or awaits: the session keeps its progress but its KV cache is gone,
  // so its next run first recomputes rebuild_fraction of it.
  void interrupt(WorkerId w) {
    WorkerRt& rt = worker_rt_[w];
    const TaskId t = rt.task;
    TaskRt& trt = task_rt_[t];
    if (rt.running) {
      advance(w);
      account_run(w);
      trt.rebuild = options_.rebuild_fraction * trt.progress;
      ++result_.tasks[t].restarts;
      ++restarts_;
    }
    trt.state = TaskState::pending;
    rt.task = kNoTask;
    rt.running = false;
    ++rt.version;
  }

  // ---- the policy's decisions ---------------------------------------------------------------
  [[noreturn]] void broken(const std::string& what) const {
    throw std::logic_error("dispatch policy " + std::string(policy_.name()) + " broke its contract at t = " +
                           std::to_string(now_) + ": " + what);
  }

  void check_task(TaskId t, const char* action) const {
    if (t >= tasks_.size() || task_rt_[t].state == TaskState::future || task_rt_[t].state == TaskState::done) {
      broken(std::string(action) + " of task " + std::to_string(t) + ", which is not waiting or running");
    }
  }

  void check_worker(WorkerId w, const char* action) const {
    if (w >= specs_.size() || !worker_rt_[w].alive) {
      broken(std::string(action) + " names worker " + std::to_string(w) + ", which is not alive");
    }
  }

  void bind(TaskId t, WorkerId w, Cause cause) {
    TaskRt& trt = task_rt_[t];
    if (trt.owner != kNoWorker && trt.owner != w) {
      ++result_.tasks[t].migrations;
      ++migrations_;
      if (!worker_rt_[trt.owner].alive || cause == Cause::leave) {
        ++migrations_leave_;
      } else if (cause == Cause::join) {
        ++migrations_join_;
      } else {
        ++migrations_balance_;
      }
    }
    trt.owner = w;
  }

  void apply(Cause cause) {
    messages_ += out_.messages;
    for (TaskId t : out_.preempts) {
      check_task(t, "preempt");
      const TaskState st = task_rt_[t].state;
      const WorkerId w = task_rt_[t].owner;
      if ((st != TaskState::running && st != TaskState::reserved) || w == kNoWorker || worker_rt_[w].task != t) {
        broken("preempt of task " + std::to_string(t) + ", which is neither running nor in flight");
      }
      interrupt(w);
      idle_.push_back(w);
    }
    for (const Assignment& a : out_.assigns) {
      check_task(a.task, "assignment");
      check_worker(a.worker, "assignment");
      if (task_rt_[a.task].state != TaskState::pending) {
        broken("assignment of task " + std::to_string(a.task) + ", which runs (preempt it first)");
      }
      bind(a.task, a.worker, cause);
    }
    for (const Run& r : out_.runs) {
      check_task(r.task, "run");
      check_worker(r.worker, "run");
      WorkerRt& rt = worker_rt_[r.worker];
      if (task_rt_[r.task].state != TaskState::pending) {
        broken("run of task " + std::to_string(r.task) + ", which already runs or is in flight");
      }
      if (rt.task != kNoTask) {
        broken("run of task " + std::to_string(r.task) + " on worker " + std::to_string(r.worker) +
               ", which is busy with task " + std::to_string(rt.task));
      }
      if (!(r.delay_s >= 0.0) || !std::isfinite(r.delay_s)) broken("run with delay " + std::to_string(r.delay_s));
      bind(r.task, r.worker, cause);
      rt.task = r.task;
      rt.told_idle = false;
      task_rt_[r.task].state = TaskState::reserved;
      if (r.delay_s > 0.0) {
        ++rt.version;
        push(now_ + r.delay_s, EventKind::start, r.worker, 0, rt.version);
      } else {
        begin_run(r.worker);
      }
    }
    for (const Timer& tm : out_.timers) {
      if (!(tm.at >= now_) || !std::isfinite(tm.at)) broken("timer at " + std::to_string(tm.at));
      push(tm.at, EventKind::timer, tm.worker, tm.tag);
    }
    out_.clear();
  }

  // Tell the policy about every worker that became free, until none is left untold.
  void settle() {
    while (!idle_.empty()) {
      const WorkerId w = idle_.front();
      idle_.pop_front();
      WorkerRt& rt = worker_rt_[w];
      if (!rt.alive || rt.task != kNoTask || rt.told_idle) continue;
      rt.told_idle = true;
      policy_.worker_idle(w, now_, out_);
      apply(Cause::other);
    }
  }

  // ---- results ------------------------------------------------------------------------------
  [[nodiscard]] double run_begin() const { return std::isnan(first_arrival_) ? 0.0 : first_arrival_; }

  void finish_metrics() {
    Metrics& m = result_.metrics;
    const double end = completed_ > 0 ? last_finish_ : now_;
    const double begin = run_begin();
    m.tasks = tasks_.size();
    m.completed = completed_;
    m.makespan_s = completed_ > 0 ? std::max(0.0, end - begin) : 0.0;

    double useful = 0.0;
    std::vector<double> latency;
    latency.reserve(completed_);
    for (std::size_t t = 0; t < tasks_.size(); ++t) {
      const TaskRecord& r = result_.tasks[t];
      if (!r.done()) continue;
      useful += tasks_[t].work;
      latency.push_back(r.finish - tasks_[t].arrival);
      if (r.migrations > 0) ++m.sessions_migrated;
    }
    m.tokens_per_s = m.makespan_s > 0.0 ? useful / m.makespan_s : 0.0;
    if (!latency.empty()) {
      std::sort(latency.begin(), latency.end());
      double sum = 0.0;
      for (double x : latency) sum += x;
      m.latency_mean_s = sum / static_cast<double>(latency.size());
      m.latency_p50_s = percentile(latency, 0.50);
      m.latency_p95_s = percentile(latency, 0.95);
      m.latency_p99_s = percentile(latency, 0.99);
    }

    // Workers alive at some point of [begin, end]; alive time clipped to that window.
    double busy_max = 0.0, busy_sum = 0.0, tok_max = 0.0, tok_sum = 0.0, alive_sum = 0.0;
    std::size_t counted = 0;
    for (std::size_t w = 0; w < specs_.size(); ++w) {
      WorkerStats& ws = result_.workers[w];
      if (worker_rt_[w].alive) ws.alive_s += std::max(0.0, end - std::max(worker_rt_[w].joined_at, begin));
      const bool present = specs_[w].join_time <= end && specs_[w].leave_time > begin;
      if (!present) continue;
      ++counted;
      busy_max = std::max(busy_max, ws.busy_s);
      busy_sum += ws.busy_s;
      tok_max = std::max(tok_max, ws.tokens);
      tok_sum += ws.tokens;
      alive_sum += ws.alive_s;
    }
    if (counted > 0 && busy_sum > 0.0) m.imbalance_busy = busy_max / (busy_sum / static_cast<double>(counted));
    if (counted > 0 && tok_sum > 0.0) m.imbalance_tokens = tok_max / (tok_sum / static_cast<double>(counted));
    m.utilization = alive_sum > 0.0 ? busy_sum / alive_sum : 0.0;

    m.migrations = migrations_;
    m.migrations_join = migrations_join_;
    m.migrations_leave = migrations_leave_;
    m.migrations_balance = migrations_balance_;
    m.restarts = restarts_;
    m.rebuild_tokens = rebuild_tokens_;
    m.control_messages = messages_;
    m.events = events_;
  }

  // Nearest rank: the smallest value with at least q of the sample at or below it.
  [[nodiscard]] static double percentile(const std::vector<double>& sorted, double q) {
    const auto n = static_cast<double>(sorted.size());
    const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(q * n - 1e-9)));
    return sorted[std::min(rank, sorted.size()) - 1];
  }

  std::span<const Task> tasks_;
  std::span<const WorkerSpec> specs_;
  Policy& policy_;
  EngineOptions options_;
  std::vector<TaskRt> task_rt_;
  std::vector<WorkerRt> worker_rt_;
  std::priority_queue<Event, std::vector<Event>, Later> heap_;
  std::deque<WorkerId> idle_;  // workers that may need a worker_idle call
  Actions out_;
  RunResult result_;
  double now_ = 0.0;
  double first_arrival_ = kNaN;
  double last_finish_ = 0.0;
  std::uint64_t seq_ = 0;
  std::uint64_t events_ = 0;
  std::size_t completed_ = 0;
  std::uint64_t messages_ = 0;
  std::uint64_t migrations_ = 0, migrations_join_ = 0, migrations_leave_ = 0, migrations_balance_ = 0;
  std::uint64_t restarts_ = 0;
  double rebuild_tokens_ = 0.0;
};

}  // namespace

RunResult simulate(std::span<const Task> tasks, std::span<const WorkerSpec> workers, Policy& policy,
                   const EngineOptions& options) {
  validate_inputs(tasks, workers, options);
  return Engine(tasks, workers, policy, options).run();
}

RunResult simulate(std::span<const Task> tasks, std::span<const WorkerSpec> workers, PolicyKind kind,
                   const DispatchOptions& dispatch, std::uint64_t seed, const EngineOptions& options) {
  validate_inputs(tasks, workers, options);
  const auto policy = make_policy(kind, dispatch, seed);
  return Engine(tasks, workers, *policy, options).run();
}

std::vector<Task> make_workload(const WorkloadSpec& spec, std::uint64_t seed) {
  using detail::reject_option;
  if (!(spec.arrival_rate >= 0.0 && std::isfinite(spec.arrival_rate))) {
    reject_option("workload.arrival_rate", spec.arrival_rate, "it must be finite and >= 0 (0: a batch)");
  }
  if (!(spec.work_min > 0.0 && spec.work_max >= spec.work_min && std::isfinite(spec.work_max))) {
    reject_option("workload.work_min", spec.work_min, "need 0 < work_min <= work_max < inf");
  }
  Rng rng(seed);
  std::vector<Task> tasks(spec.count);
  double t = 0.0;
  for (Task& task : tasks) {
    if (spec.arrival_rate > 0.0) t += exponential(rng, 1.0 / spec.arrival_rate);
    task.arrival = t;
    task.session = rng();
    task.work = uniform(rng, spec.work_min, spec.work_max);
  }
  return tasks;
}

}  // namespace swarm::dispatch
