#include "swarm/trace/sim_trace.hpp"


namespace swarm::sim {

void SimTrace::on_start(const SimConfig& c, const std::vector<ServerPlan>& plans) {
  if (group_name_.empty()) {
    base_ = &file_.root();
    trace::write_run_info(*base_, {meta_.program, meta_.job_file, meta_.job_text, meta_.effective, c.seed});
  } else {
    seed_group_ = file_.root().group(group_name_);
    base_ = &seed_group_;
    base_->set_attribute("seed", static_cast<std::int64_t>(c.seed));
  }
  trace::Group& root = *base_;
  root.set_attribute("blocks", static_cast<std::int64_t>(c.blocks));
  root.set_attribute("period_s", c.period);

  trace::Group servers = root.group("servers");
  std::vector<std::string> ids, classes;
  std::vector<double> throughput, join, leave, load;
  std::vector<std::int32_t> span;
  std::vector<std::uint8_t> relay;
  for (const auto& p : plans) {
    ids.push_back(p.id);
    classes.push_back(c.classes[p.device_class].name);
    throughput.push_back(p.throughput);
    join.push_back(p.join_time);
    leave.push_back(p.leave_time);
    load.push_back(p.load_time);
    span.push_back(p.span);
    relay.push_back(p.relay ? 1 : 0);
  }
  servers.write_strings("id", ids);
  servers.write_strings("device_class", classes);
  servers.write<double>("throughput", throughput, "tokens/s");
  servers.write<std::int32_t>("span_length", span, "blocks");
  servers.write<double>("join_time", join, "s");
  servers.write<double>("leave_time", leave, "s (inf: stays)");
  servers.write<double>("load_time", load, "s");
  servers.write<std::uint8_t>("relay", relay, "flag (1: reached through a relay)");

  const std::size_t n = plans.size();
  const auto blocks = static_cast<std::size_t>(c.blocks);
  for (StrategyKind k : c.strategies) {
    Datasets d;
    d.group = root.group(to_string(k));
    d.group.set_attribute("strategy", std::string(to_string(k)));
    d.time = d.group.series("time", trace::Type::f64, 0, "s");
    d.swarm_throughput = d.group.series("swarm_throughput", trace::Type::f64, 0, "tokens/s (mean over the period)");
    d.swarm_throughput_sampled = d.group.series("swarm_throughput_sampled", trace::Type::f64, 0, "tokens/s (at the boundary)");
    d.disjoint_time = d.group.series("disjoint_time", trace::Type::f64, 0, "s");
    d.upper_bound = d.group.series("upper_bound", trace::Type::f64, 0, "tokens/s");
    d.upper_bound_certified = d.group.series("upper_bound_certified", trace::Type::f64, 0, "tokens/s");
    d.moves = d.group.series("moves", trace::Type::i32, 0, "servers");
    d.reload_downtime = d.group.series("reload_downtime", trace::Type::f64, 0, "server-seconds");
    d.disjoint = d.group.series("disjoint", trace::Type::u8, 0, "1: disjoint at the boundary");
    d.online = d.group.series("online", trace::Type::i32, 0, "servers");
    d.present = d.group.series("present", trace::Type::i32, 0, "servers");
    d.block_throughput = d.group.series("block_throughput", trace::Type::f64, blocks, "tokens/s");
    d.span_start = d.group.series("span_start", trace::Type::i32, std::max<std::size_t>(n, 1), "block (-1: absent)");
    d.span_end = d.group.series("span_end", trace::Type::i32, std::max<std::size_t>(n, 1), "block (-1: absent)");
    d.state = d.group.series("state", trace::Type::u8, std::max<std::size_t>(n, 1),
                             "0 absent, 1 offline, 2 joining, 3 online");
    if (k == StrategyKind::move_aware) {
      d.planned_throughput = d.group.series("planned_throughput", trace::Type::f64, 0,
                                            "tokens/s (planned at the boundary, joining servers counted)");
      d.expected_gain = d.group.series("expected_gain", trace::Type::f64, 0,
                                       "tokens/s (what the boundary's moves were to add)");
    }
    d.group.set_attribute("periods_complete", std::int64_t{0});
    groups_.emplace(k, std::move(d));
  }
  file_.flush();
}

void SimTrace::on_period(StrategyKind kind, const PeriodRecord& r) {
  Datasets& d = groups_.at(kind);
  d.time.append(r.time);
  d.swarm_throughput.append(r.swarm_throughput);
  d.swarm_throughput_sampled.append(r.swarm_throughput_sampled);
  d.disjoint_time.append(r.disjoint_time);
  d.upper_bound.append(r.upper_bound);
  d.upper_bound_certified.append(r.upper_bound_certified);
  d.moves.append(static_cast<std::int32_t>(r.moves));
  d.reload_downtime.append(r.reload_downtime);
  d.disjoint.append(static_cast<std::uint8_t>(r.disjoint));
  d.online.append(static_cast<std::int32_t>(r.online));
  d.present.append(static_cast<std::int32_t>(r.present));
  d.block_throughput.append_row<double>(r.block_throughput);
  if (d.planned_throughput) d.planned_throughput->append(r.planned_throughput);
  if (d.expected_gain) d.expected_gain->append(r.expected_gain);
  if (r.span_start.empty()) {  // a run without servers still has one (absent) column
    const std::int32_t none[1] = {-1};
    const std::uint8_t absent[1] = {0};
    d.span_start.append_row<std::int32_t>(none);
    d.span_end.append_row<std::int32_t>(none);
    d.state.append_row<std::uint8_t>(absent);
  } else {
    d.span_start.append_row<std::int32_t>(r.span_start);
    d.span_end.append_row<std::int32_t>(r.span_end);
    d.state.append_row<std::uint8_t>(r.presence);
  }
}

void SimTrace::on_period_end(int period) {
  for (auto& [k, d] : groups_) d.group.set_attribute("periods_complete", static_cast<std::int64_t>(period));
  file_.flush();
}

void SimTrace::finish(const SimResult& result) {
  for (const auto& s : result.summaries) {
    trace::Group& g = groups_.at(s.kind).group;
    g.set_attribute("mean_throughput", s.mean_throughput);
    g.set_attribute("mean_ratio_to_upper_bound", s.mean_ratio);
    g.set_attribute("disjoint_time_fraction", s.disjoint_fraction);
    g.set_attribute("moves_total", static_cast<std::int64_t>(s.moves));
    g.set_attribute("reload_downtime_total", s.reload_downtime);
    g.set_attribute("mean_upper_bound_gap", s.mean_bound_gap);
  }
  base_->set_attribute("periods_run", static_cast<std::int64_t>(result.periods_run));
  base_->set_attribute("stopped_early", static_cast<std::int64_t>(result.stopped_early));
  groups_.clear();
  base_ = nullptr;
  if (group_name_.empty()) {
    file_.finish();
  } else {
    seed_group_ = {};
    file_.flush();
  }
}

void write_seed_summary(trace::Group& root, const std::vector<SeedFigures>& figures) {
  trace::Group summary = root.group("summary");
  for (const SeedFigures& f : figures) {
    trace::Group g = summary.group(to_string(f.kind));
    std::vector<std::int64_t> seeds(f.seeds.begin(), f.seeds.end());
    g.write<std::int64_t>("seed", seeds);
    g.set_attribute("seeds", static_cast<std::int64_t>(seeds.size()));
    for (const char* name : kFigureNames) {
      const std::vector<double>& values = f.figures.at(name);
      g.write<double>(name, values);
      const Interval i = mean_ci95(values);
      g.set_attribute(std::string(name) + "_mean", i.mean);
      g.set_attribute(std::string(name) + "_ci95", i.ci95);
    }
  }
}

}  // namespace swarm::sim
