#include "job_trace.hpp"

namespace swarm::job {

namespace {
// (dataset, units, value) for the scalar per-epoch series, in one place.
struct Column {
  const char* name;
  const char* units;
  double (*get)(const EpochRecord&);
};
const Column kColumns[] = {
    {"time", "s", [](const EpochRecord& r) { return r.time; }},
    {"traffic_seconds", "s", [](const EpochRecord& r) { return r.traffic_seconds; }},
    {"boundary_seconds", "s (the boundary before the epoch, on rank 0: all of it)", [](const EpochRecord& r) { return r.boundary.total; }},
    {"boundary_gather_seconds", "s (its allgather of the measurements)", [](const EpochRecord& r) { return r.boundary.gather; }},
    {"boundary_decide_seconds", "s (churn and the strategy)", [](const EpochRecord& r) { return r.boundary.decide; }},
    {"boundary_broadcast_seconds", "s (the decision to every rank)", [](const EpochRecord& r) { return r.boundary.broadcast; }},
    {"boundary_trace_seconds", "s (writing the previous epoch's row)", [](const EpochRecord& r) { return r.boundary.trace; }},
    {"boundary_reload_seconds", "s (rank 0's reload and reroutes)", [](const EpochRecord& r) { return r.boundary.reload; }},
    {"swarm_throughput", "tokens/s (announced, min over blocks)", [](const EpochRecord& r) { return r.swarm_throughput; }},
    {"predicted_throughput", "tokens/s (what the job should realise: docs/job.md)", [](const EpochRecord& r) { return r.predicted; }},
    {"tokens_per_s", "tokens/s (realised, through the whole pipeline)", [](const EpochRecord& r) { return r.tokens_per_s; }},
    {"batches", "micro-batches sent", [](const EpochRecord& r) { return static_cast<double>(r.batches); }},
    {"generated_tokens_per_s", "tokens/s", [](const EpochRecord& r) { return r.generated_per_s; }},
    {"moves", "servers", [](const EpochRecord& r) { return static_cast<double>(r.moves); }},
    {"joined", "servers", [](const EpochRecord& r) { return static_cast<double>(r.joined); }},
    {"left", "servers", [](const EpochRecord& r) { return static_cast<double>(r.left); }},
    {"sessions_issued", "sessions", [](const EpochRecord& r) { return static_cast<double>(r.sessions_started); }},
    {"sessions_completed", "sessions", [](const EpochRecord& r) { return static_cast<double>(r.sessions_completed); }},
    {"sessions_rerouted", "sessions", [](const EpochRecord& r) { return static_cast<double>(r.sessions_rerouted); }},
    {"sessions_active", "sessions (at the end of the epoch)", [](const EpochRecord& r) { return static_cast<double>(r.sessions_active); }},
    {"replay_tokens", "tokens (KV-cache rebuild after reroutes)", [](const EpochRecord& r) { return r.replay_tokens; }},
    {"cache_waits", "session (re)starts that waited for KV-cache room (servers.max_cache_mb)", [](const EpochRecord& r) { return static_cast<double>(r.cache_waits); }},
    {"sessions_waiting_for_cache", "sessions (at the end of the epoch) waiting for KV-cache room", [](const EpochRecord& r) { return static_cast<double>(r.sessions_waiting_for_cache); }},
    {"step_latency_p50", "s", [](const EpochRecord& r) { return r.step_p50; }},
    {"step_latency_p95", "s", [](const EpochRecord& r) { return r.step_p95; }},
    {"step_latency_p99", "s", [](const EpochRecord& r) { return r.step_p99; }},
    {"session_latency_p50", "s", [](const EpochRecord& r) { return r.session_p50; }},
    {"session_latency_p99", "s", [](const EpochRecord& r) { return r.session_p99; }},
    {"upper_bound", "tokens/s (upper_bound strategy only)", [](const EpochRecord& r) { return r.upper_bound; }},
    {"makespan", "s (batch workload: first arrival to last completion; -1 until then)", [](const EpochRecord& r) { return r.makespan; }},
    {"dispatch_messages", "control messages the dispatch policy spent", [](const EpochRecord& r) { return r.dispatch_messages; }},
    {"migrations", "sessions that changed route (dispatch policy)", [](const EpochRecord& r) { return r.migrations; }},
    {"route_imbalance", "max / mean tokens served per route (dispatch policy)", [](const EpochRecord& r) { return r.route_imbalance; }},
    {"routes", "routes the capacity was split into (dispatch policy)", [](const EpochRecord& r) { return r.routes; }},
};
}  // namespace

JobTrace::JobTrace(trace::File& file, const JobMetadata& m) : file_(file) {
  trace::Group& root = file_.root();
  trace::write_run_info(root, {"swarm_pipe", m.job_file, m.job_text, m.effective, m.seed});
  root.set_attribute("model", m.model);
  root.set_attribute("backend", m.backend);
  root.set_attribute("transport", m.transport);
  root.set_attribute("strategy", m.strategy);
  root.set_attribute("ranks", static_cast<std::int64_t>(m.ranks));
  root.set_attribute("blocks", static_cast<std::int64_t>(m.blocks));
  root.set_attribute("hidden_size", static_cast<std::int64_t>(m.hidden_size));

  epochs_ = root.group("epochs");
  epochs_.set_attribute("epochs_complete", std::int64_t{0});
  for (const Column& c : kColumns) scalars_.emplace_back(c.name, epochs_.series(c.name, trace::Type::f64, 0, c.units));
  const auto n = static_cast<std::size_t>(m.ranks);
  span_start_ = epochs_.series("span_start", trace::Type::i32, n, "block");
  span_end_ = epochs_.series("span_end", trace::Type::i32, n, "block");
  assigned_start_ = epochs_.series("assigned_span_start", trace::Type::i32, n, "block (rank 0's assignment)");
  assigned_end_ = epochs_.series("assigned_span_end", trace::Type::i32, n, "block (rank 0's assignment)");
  state_ = epochs_.series("state", trace::Type::i32, n, "0 offline, 1 joining, 2 online");
  throughput_ = epochs_.series("throughput", trace::Type::f64, n, "tokens/s (announced)");
  compute_ = epochs_.series("compute_throughput", trace::Type::f64, n, "tokens/s (compute / ((k+1)/2))");
  network_ = epochs_.series("network_throughput", trace::Type::f64, n, "tokens/s (0: not measured, no limit)");
  compute_seconds_ = epochs_.series("compute_seconds", trace::Type::f64, n, "s (busy: forwards and their handling)");
  client_seconds_ = epochs_.series("client_seconds", trace::Type::f64, n, "s (rank 0: as the client)");
  wait_seconds_ = epochs_.series("wait_seconds", trace::Type::f64, n, "s (nothing to do)");
  forwards_ = epochs_.series("forwards", trace::Type::f64, n, "batches run");
  reload_ = epochs_.series("reload_seconds", trace::Type::f64, n, "s (at the boundary before the epoch)");
  memory_ = epochs_.series("memory_bytes", trace::Type::f64, n, "bytes (weights + KV caches)");
  block_throughput_ = epochs_.series("block_throughput", trace::Type::f64, static_cast<std::size_t>(m.blocks),
                                     "tokens/s (announced, online)");
  file_.flush();
}

void JobTrace::append(const EpochRecord& r) {
  file_.make_room();  // the room held for this epoch's rows (trace::File::flush)
  for (std::size_t i = 0; i < scalars_.size(); ++i) scalars_[i].second.append(kColumns[i].get(r));
  std::vector<std::int32_t> start, end, state;
  std::vector<double> cs, reload, memory, client, wait, forwards;
  for (const Measurement& m : r.ranks) {
    start.push_back(m.span_start);
    end.push_back(m.span_end);
    state.push_back(static_cast<std::int32_t>(m.state));
    cs.push_back(m.compute_seconds);
    client.push_back(m.client_seconds);
    wait.push_back(m.wait_seconds);
    forwards.push_back(m.forwards);
    reload.push_back(m.reload_seconds);
    memory.push_back(m.memory_bytes);
  }
  span_start_.append_row<std::int32_t>(start);
  span_end_.append_row<std::int32_t>(end);
  assigned_start_.append_row<std::int32_t>(r.assigned_start);
  assigned_end_.append_row<std::int32_t>(r.assigned_end);
  state_.append_row<std::int32_t>(state);
  throughput_.append_row<double>(r.announced);
  compute_.append_row<double>(r.compute);
  network_.append_row<double>(r.network);
  compute_seconds_.append_row<double>(cs);
  client_seconds_.append_row<double>(client);
  wait_seconds_.append_row<double>(wait);
  forwards_.append_row<double>(forwards);
  reload_.append_row<double>(reload);
  memory_.append_row<double>(memory);
  block_throughput_.append_row<double>(r.block_throughput);
  epochs_.set_attribute("epochs_complete", static_cast<std::int64_t>(++rows_));
  file_.flush();
}

void JobTrace::finish(int epochs_run, bool stopped_early) {
  file_.root().set_attribute("epochs_run", static_cast<std::int64_t>(epochs_run));
  file_.root().set_attribute("stopped_early", static_cast<std::int64_t>(stopped_early));
  scalars_.clear();
  for (trace::Series* s : {&span_start_, &span_end_, &assigned_start_, &assigned_end_, &state_, &throughput_, &compute_, &network_, &compute_seconds_,
                           &client_seconds_, &wait_seconds_, &forwards_, &reload_, &memory_, &block_throughput_}) {
    *s = trace::Series();  // close the datasets before the file
  }
  epochs_ = trace::Group();
  file_.finish();
}

}  // namespace swarm::job
