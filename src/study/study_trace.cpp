#include "study_trace.hpp"

#include <chrono>
#include <cmath>
#include <ctime>

#include "swarm/version.hpp"

namespace swarm::study {
namespace {

using dispatch::Metrics;

// The per-policy summary: one column of /summary per metric, one row per finished policy, in
// the order of /summary/policy. Also written as attributes of the policy's group.
struct SummaryColumn {
  const char* name;
  const char* units;
  double (*get)(const Metrics&);
};

const SummaryColumn kColumns[] = {
    {"sessions", "sessions", [](const Metrics& m) { return static_cast<double>(m.tasks); }},
    {"completed", "sessions", [](const Metrics& m) { return static_cast<double>(m.completed); }},
    {"makespan_s", "s", [](const Metrics& m) { return m.makespan_s; }},
    {"tokens_per_s", "tokens/s", [](const Metrics& m) { return m.tokens_per_s; }},
    {"imbalance_busy", "max/mean", [](const Metrics& m) { return m.imbalance_busy; }},
    {"imbalance_tokens", "max/mean", [](const Metrics& m) { return m.imbalance_tokens; }},
    {"utilization", "busy/alive", [](const Metrics& m) { return m.utilization; }},
    {"latency_mean_s", "s", [](const Metrics& m) { return m.latency_mean_s; }},
    {"latency_p50_s", "s", [](const Metrics& m) { return m.latency_p50_s; }},
    {"latency_p95_s", "s", [](const Metrics& m) { return m.latency_p95_s; }},
    {"latency_p99_s", "s", [](const Metrics& m) { return m.latency_p99_s; }},
    {"migrations", "re-bindings", [](const Metrics& m) { return static_cast<double>(m.migrations); }},
    {"migrations_join", "re-bindings", [](const Metrics& m) { return static_cast<double>(m.migrations_join); }},
    {"migrations_leave", "re-bindings", [](const Metrics& m) { return static_cast<double>(m.migrations_leave); }},
    {"migrations_balance", "re-bindings", [](const Metrics& m) { return static_cast<double>(m.migrations_balance); }},
    {"sessions_migrated", "sessions", [](const Metrics& m) { return static_cast<double>(m.sessions_migrated); }},
    {"restarts", "runs", [](const Metrics& m) { return static_cast<double>(m.restarts); }},
    {"rebuild_tokens", "tokens", [](const Metrics& m) { return m.rebuild_tokens; }},
    {"control_messages", "messages", [](const Metrics& m) { return static_cast<double>(m.control_messages); }},
    {"events", "events", [](const Metrics& m) { return static_cast<double>(m.events); }},
};

void write_servers(trace::Group g, const StudyConfig& c, const SwarmModel& s) {
  std::vector<std::string> ids, classes;
  std::vector<double> throughput, join, online, leave, load;
  std::vector<std::int32_t> start, end, changes;
  std::vector<std::uint8_t> relay;
  for (const ServerRecord& r : s.servers) {
    ids.push_back(r.plan.id);
    classes.push_back(c.classes[r.plan.device_class].device.name);
    throughput.push_back(r.plan.throughput);
    join.push_back(r.plan.join_time);
    online.push_back(r.online_time);
    leave.push_back(r.plan.leave_time);
    load.push_back(r.plan.load_time);
    start.push_back(r.span.start);
    end.push_back(r.span.end);
    changes.push_back(static_cast<std::int32_t>(r.factor.size()));
    relay.push_back(r.plan.relay ? 1 : 0);
  }
  g.write_strings("id", ids);
  g.write_strings("device_class", classes);
  g.write<double>("throughput", throughput, "tokens/s (announced)");
  g.write<std::int32_t>("span_start", start, "block");
  g.write<std::int32_t>("span_end", end, "block (exclusive)");
  g.write<double>("join_time", join, "s");
  g.write<double>("online_time", online, "s (inf: left while loading, or after run.horizon)");
  g.write<double>("leave_time", leave, "s (inf: stays)");
  g.write<double>("load_time", load, "s");
  g.write<std::int32_t>("speed_changes", changes, "count");
  g.write<std::uint8_t>("relay", relay, "flag (1: reached through a relay)");
}

void write_workers(trace::Group g, const SwarmModel& s) {
  std::vector<std::string> names, hops;
  std::vector<double> allocation, speed, join, leave, time, value;
  std::vector<std::int32_t> nhops;
  std::vector<std::int64_t> offset{0};
  for (const Route& r : s.routes) {
    names.push_back(r.worker.name);
    std::string h;
    for (std::uint32_t i : r.hops) {
      if (!h.empty()) h += ' ';
      h += std::to_string(i);
    }
    hops.push_back(h);
    nhops.push_back(static_cast<std::int32_t>(r.hops.size()));
    allocation.push_back(r.allocation);
    speed.push_back(r.worker.speed);
    join.push_back(r.worker.join_time);
    leave.push_back(r.worker.leave_time);
    for (const auto& c : r.worker.speed_changes) {
      time.push_back(c.time);
      value.push_back(c.speed);
    }
    offset.push_back(static_cast<std::int64_t>(time.size()));
  }
  g.write_strings("name", names);
  g.write_strings("hops", hops);
  g.write<std::int32_t>("hop_count", nhops, "servers");
  g.write<double>("announced_speed", allocation, "tokens/s (reserved on every hop)");
  g.write<double>("speed", speed, "tokens/s (real, at join)");
  g.write<double>("join_time", join, "s");
  g.write<double>("leave_time", leave, "s (inf: stays)");
  g.write<std::int64_t>("profile_offset", offset, "index into profile_time (worker i: [offset[i], offset[i+1]))");
  g.write<double>("profile_time", time, "s");
  g.write<double>("profile_speed", value, "tokens/s from profile_time on");
  g.set_attribute("hops_meaning", std::string("server indices into /servers, in block order"));
  g.set_attribute("routes_at_start", static_cast<std::int64_t>(s.routes_at_start));
  g.set_attribute("route_capacity_at_start", s.route_capacity_at_start);
  g.set_attribute("swarm_throughput_at_start", s.swarm_throughput_at_start);
  g.set_attribute("routes_broken", static_cast<std::int64_t>(s.routes_broken));
}

void write_sessions(trace::Group g, const Sessions& s) {
  std::vector<std::int64_t> id;
  std::vector<double> arrival, work;
  for (const auto& t : s.tasks) {
    id.push_back(static_cast<std::int64_t>(t.session));
    arrival.push_back(t.arrival);
    work.push_back(t.work);
  }
  g.write<std::int64_t>("session", id, "hashing key (uint64 bits)");
  g.write<double>("arrival", arrival, "s");
  g.write<std::int32_t>("prompt_tokens", s.prompt_tokens, "tokens");
  g.write<std::int32_t>("new_tokens", s.new_tokens, "tokens");
  g.write<double>("work", work, "tokens");
}

}  // namespace

StudyTrace::StudyTrace(trace::File& file, const RunMeta& meta, const StudyConfig& c, const SwarmModel& swarm,
                       const Sessions& sessions)
    : file_(file), sessions_(sessions) {
  trace::Group& root = file_.root();
  trace::write_run_info(root, {meta.program, meta.job_file, meta.job_text, meta.effective, c.seed});
  root.set_attribute("blocks", static_cast<std::int64_t>(c.blocks));
  root.set_attribute("horizon_s", c.horizon_s);
  root.set_attribute("sessions", static_cast<std::int64_t>(c.sessions));
  root.set_attribute("workers", static_cast<std::int64_t>(swarm.routes.size()));
  std::string names;
  std::vector<std::string> list;
  for (auto k : c.policies) {
    if (!names.empty()) names += ',';
    names += to_string(k);
    list.emplace_back(to_string(k));
  }
  root.set_attribute("policies", names);
  root.set_attribute("policies_complete", std::int64_t{0});

  write_servers(root.group("servers"), c, swarm);
  write_workers(root.group("workers"), swarm);
  write_sessions(root.group("sessions"), sessions);

  summary_ = root.group("summary");
  summary_.write_strings("policy", list);
  summary_.set_attribute("rows", std::string("one per finished policy, in the order of /summary/policy"));
  for (const SummaryColumn& col : kColumns) columns_.push_back(summary_.series(col.name, trace::Type::f64, 0, col.units));
  file_.flush();
}

void StudyTrace::add_policy(dispatch::PolicyKind kind, const dispatch::RunResult& r, double wall_s) {
  trace::Group g = file_.root().group(to_string(kind));
  g.set_attribute("policy", std::string(to_string(kind)));
  const std::size_t n = r.tasks.size();
  std::vector<std::int32_t> worker(n), migrations(n), restarts(n);
  std::vector<double> arrival(n), first_start(n), start(n), finish(n), latency(n), rebuild(n);
  for (std::size_t i = 0; i < n; ++i) {
    const dispatch::TaskRecord& t = r.tasks[i];
    worker[i] = t.done() ? static_cast<std::int32_t>(t.worker) : -1;
    arrival[i] = sessions_.tasks[i].arrival;
    first_start[i] = t.first_start;
    start[i] = t.start;
    finish[i] = t.finish;
    latency[i] = t.finish - sessions_.tasks[i].arrival;  // NaN when not completed
    migrations[i] = static_cast<std::int32_t>(t.migrations);
    restarts[i] = static_cast<std::int32_t>(t.restarts);
    rebuild[i] = t.rebuild_tokens;
  }
  g.write<std::int32_t>("worker", worker, "index into /workers (-1: not completed)");
  g.write<double>("arrival", arrival, "s");
  g.write<double>("first_start", first_start, "s (NaN: never started)");
  g.write<double>("start", start, "s (of the completing run)");
  g.write<double>("finish", finish, "s (NaN: not completed)");
  g.write<double>("latency", latency, "s (finish - arrival)");
  g.write<std::int32_t>("migrations", migrations, "re-bindings to another worker");
  g.write<std::int32_t>("restarts", restarts, "interrupted runs");
  g.write<double>("rebuild_tokens", rebuild, "tokens (KV-cache rebuild)");

  const std::size_t w = r.workers.size();
  std::vector<double> tokens(w), busy(w), alive(w);
  std::vector<std::int32_t> tasks(w);
  for (std::size_t i = 0; i < w; ++i) {
    tokens[i] = r.workers[i].tokens;
    busy[i] = r.workers[i].busy_s;
    alive[i] = r.workers[i].alive_s;
    tasks[i] = static_cast<std::int32_t>(r.workers[i].tasks);
  }
  g.write<double>("worker_tokens", tokens, "tokens (including rebuilds and lost work)");
  g.write<double>("worker_busy_s", busy, "s");
  g.write<double>("worker_alive_s", alive, "s (within the run)");
  g.write<std::int32_t>("worker_tasks", tasks, "sessions completed");

  for (std::size_t k = 0; k < columns_.size(); ++k) {
    const double v = kColumns[k].get(r.metrics);
    columns_[k].append(v);
    g.set_attribute(kColumns[k].name, v);
  }
  g.set_attribute("wall_s", wall_s);
  file_.root().set_attribute("policies_complete", ++done_);
  file_.flush();
}

void StudyTrace::finish(bool stopped_early) {
  file_.root().set_attribute("stopped_early", static_cast<std::int64_t>(stopped_early));
  columns_.clear();
  summary_ = {};
  file_.finish();
}

}  // namespace swarm::study
