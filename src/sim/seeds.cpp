#include "swarm/sim/seeds.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <stdexcept>
#include <type_traits>

namespace swarm::sim {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::uint64_t parse_seed(std::string_view item, std::string_view whole) {
  item = trim(item);
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
  if (item.empty() || ec != std::errc() || end != item.data() + item.size()) {
    throw std::invalid_argument("'" + std::string(whole) + "' is not a seed or a range FIRST-LAST of seeds");
  }
  return v;
}

}  // namespace

std::vector<std::uint64_t> parse_seeds(std::string_view text, std::size_t max_seeds) {
  std::vector<std::uint64_t> seeds;
  std::set<std::uint64_t> seen;
  if (trim(text).empty()) throw std::invalid_argument("no seeds (e.g. 1-16 or 3,7,9-12)");
  std::size_t from = 0;
  while (from <= text.size()) {
    const std::size_t comma = std::min(text.find(',', from), text.size());
    const std::string_view item = trim(text.substr(from, comma - from));
    from = comma + 1;
    const std::size_t dash = item.find('-');
    std::uint64_t first = 0, last = 0;
    if (dash == std::string_view::npos) {
      first = last = parse_seed(item, item);
    } else {
      first = parse_seed(item.substr(0, dash), item);
      last = parse_seed(item.substr(dash + 1), item);
      if (last < first) throw std::invalid_argument("range '" + std::string(item) + "' runs backwards");
    }
    if (last - first >= max_seeds || seeds.size() + (last - first + 1) > max_seeds) {
      throw std::invalid_argument("more than " + std::to_string(max_seeds) + " seeds");
    }
    for (std::uint64_t s = first;; ++s) {
      if (!seen.insert(s).second) throw std::invalid_argument("seed " + std::to_string(s) + " is listed twice");
      seeds.push_back(s);
      if (s == last) break;
    }
  }
  return seeds;
}

void SeedRecorder::on_start(const SimConfig& config, const std::vector<ServerPlan>& plans) {
  run_.plans = plans;
  run_.records.clear();
  for (StrategyKind k : config.strategies) run_.records.push_back({k, {}});
}

void SeedRecorder::on_period(StrategyKind kind, const PeriodRecord& record) {
  for (auto& [k, list] : run_.records) {
    if (k == kind) list.push_back(record);
  }
}

SeedRun SeedRecorder::take(SimResult result) {
  run_.result = std::move(result);
  return std::move(run_);
}

void replay(const SeedRun& run, const SimConfig& config, SimObserver& observer) {
  SimConfig c = config;
  c.seed = run.seed;
  observer.on_start(c, run.plans);
  const std::size_t periods = run.records.empty() ? 0 : run.records.front().second.size();
  for (std::size_t p = 0; p < periods; ++p) {
    for (const auto& [k, list] : run.records) observer.on_period(k, list.at(p));
    observer.on_period_end(static_cast<int>(p + 1));
  }
}

// ---- flat bytes -------------------------------------------------------------------------------

namespace {

class Writer {
 public:
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const char*>(&v);
    out.insert(out.end(), p, p + sizeof v);
  }
  void put(const std::string& s) {
    put<std::uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }
  template <typename T>
  void put(const std::vector<T>& v) {
    put<std::uint64_t>(v.size());
    const auto* p = reinterpret_cast<const char*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
  }
  std::vector<char> out;
};

class Reader {
 public:
  explicit Reader(const std::vector<char>& in) : in_(in) {}
  template <typename T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T v;
    need(sizeof v);
    std::memcpy(&v, in_.data() + at_, sizeof v);
    at_ += sizeof v;
    return v;
  }
  std::string get_string() {
    const auto n = count(1);
    std::string s(in_.data() + at_, n);
    at_ += n;
    return s;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const auto n = count(sizeof(T));
    std::vector<T> v(n);
    if (n > 0) std::memcpy(v.data(), in_.data() + at_, n * sizeof(T));
    at_ += n * sizeof(T);
    return v;
  }
  [[nodiscard]] bool done() const { return at_ == in_.size(); }

 private:
  std::size_t count(std::size_t element) {
    const auto n = get<std::uint64_t>();
    if (n > (in_.size() - at_) / element) throw std::invalid_argument("seed run: truncated buffer");
    return static_cast<std::size_t>(n);
  }
  void need(std::size_t n) const {
    if (in_.size() - at_ < n) throw std::invalid_argument("seed run: truncated buffer");
  }
  const std::vector<char>& in_;
  std::size_t at_ = 0;
};

constexpr std::uint32_t kMagic = 0x53454544;  // "SEED"

}  // namespace

std::vector<char> pack(const SeedRun& run) {
  Writer w;
  w.put(kMagic);
  w.put(run.seed);
  w.put<std::uint64_t>(run.plans.size());
  for (const auto& p : run.plans) {
    w.put(p.id);
    w.put<std::uint64_t>(p.device_class);
    w.put(p.span);
    w.put(p.throughput);
    w.put(p.load_time);
    w.put<std::uint8_t>(p.relay);
    w.put(p.join_time);
    w.put(p.leave_time);
  }
  w.put<std::uint64_t>(run.records.size());
  for (const auto& [k, list] : run.records) {
    w.put(static_cast<std::int32_t>(k));
    w.put<std::uint64_t>(list.size());
    for (const auto& r : list) {
      w.put(r.period);
      w.put(r.time);
      w.put(r.swarm_throughput);
      w.put(r.swarm_throughput_sampled);
      w.put(r.upper_bound);
      w.put(r.upper_bound_certified);
      w.put(r.moves);
      w.put(r.reload_downtime);
      w.put(r.planned_throughput);
      w.put(r.expected_gain);
      w.put(r.disjoint_time);
      w.put<std::uint8_t>(r.disjoint);
      w.put(r.online);
      w.put(r.present);
      w.put(r.block_throughput);
      w.put(r.span_start);
      w.put(r.span_end);
      w.put(r.presence);
    }
  }
  w.put<std::uint64_t>(run.result.summaries.size());
  for (const auto& s : run.result.summaries) {
    w.put(static_cast<std::int32_t>(s.kind));
    w.put(s.periods);
    w.put(s.mean_throughput);
    w.put(s.mean_ratio);
    w.put(s.disjoint_fraction);
    w.put(s.moves);
    w.put(s.reload_downtime);
    w.put(s.mean_bound_gap);
  }
  w.put(run.result.periods_run);
  w.put<std::uint8_t>(run.result.stopped_early);
  return std::move(w.out);
}

SeedRun unpack(const std::vector<char>& bytes) {
  Reader r(bytes);
  if (r.get<std::uint32_t>() != kMagic) throw std::invalid_argument("seed run: not a packed run");
  auto kind = [&] {
    const auto k = r.get<std::int32_t>();
    if (k < 0 || k > static_cast<std::int32_t>(StrategyKind::move_aware)) throw std::invalid_argument("seed run: bad strategy");
    return static_cast<StrategyKind>(k);
  };
  SeedRun run;
  run.seed = r.get<std::uint64_t>();
  const auto plans = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < plans; ++i) {
    ServerPlan p;
    p.id = r.get_string();
    p.device_class = static_cast<std::size_t>(r.get<std::uint64_t>());
    p.span = r.get<int>();
    p.throughput = r.get<double>();
    p.load_time = r.get<double>();
    p.relay = r.get<std::uint8_t>() != 0;
    p.join_time = r.get<double>();
    p.leave_time = r.get<double>();
    run.plans.push_back(std::move(p));
  }
  const auto lanes = r.get<std::uint64_t>();
  for (std::uint64_t l = 0; l < lanes; ++l) {
    const StrategyKind k = kind();
    const auto n = r.get<std::uint64_t>();
    std::vector<PeriodRecord> list;
    for (std::uint64_t i = 0; i < n; ++i) {
      PeriodRecord x;
      x.period = r.get<int>();
      x.time = r.get<double>();
      x.swarm_throughput = r.get<double>();
      x.swarm_throughput_sampled = r.get<double>();
      x.upper_bound = r.get<double>();
      x.upper_bound_certified = r.get<double>();
      x.moves = r.get<int>();
      x.reload_downtime = r.get<double>();
      x.planned_throughput = r.get<double>();
      x.expected_gain = r.get<double>();
      x.disjoint_time = r.get<double>();
      x.disjoint = r.get<std::uint8_t>() != 0;
      x.online = r.get<int>();
      x.present = r.get<int>();
      x.block_throughput = r.get_vector<double>();
      x.span_start = r.get_vector<std::int32_t>();
      x.span_end = r.get_vector<std::int32_t>();
      x.presence = r.get_vector<std::uint8_t>();
      list.push_back(std::move(x));
    }
    run.records.push_back({k, std::move(list)});
  }
  const auto summaries = r.get<std::uint64_t>();
  for (std::uint64_t i = 0; i < summaries; ++i) {
    StrategySummary s{kind()};
    s.periods = r.get<int>();
    s.mean_throughput = r.get<double>();
    s.mean_ratio = r.get<double>();
    s.disjoint_fraction = r.get<double>();
    s.moves = r.get<long>();
    s.reload_downtime = r.get<double>();
    s.mean_bound_gap = r.get<double>();
    run.result.summaries.push_back(s);
  }
  run.result.periods_run = r.get<int>();
  run.result.stopped_early = r.get<std::uint8_t>() != 0;
  if (!r.done()) throw std::invalid_argument("seed run: trailing bytes");
  return run;
}

// ---- figures ----------------------------------------------------------------------------------

namespace {

// Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (scipy.stats.t.ppf(0.975, df)).
constexpr double kT95[] = {
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912,
    2.364624, 2.306004, 2.262157, 2.228139, 2.200985, 2.178813,
    2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
    2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272};

double t95(std::size_t df) {
  if (df >= 1 && df <= 30) return kT95[df - 1];
  // Beyond 30: the Cornish-Fisher expansion around the normal quantile (error < 1e-4 at 31, smaller beyond).
  const double z = 1.959964, d = static_cast<double>(df);
  return z + (z * z * z + z) / (4 * d) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * d * d);
}

}  // namespace

Interval mean_ci95(const std::vector<double>& values) {
  Interval out;
  const std::size_t n = values.size();
  if (n == 0) return {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::quiet_NaN()};
  double sum = 0;
  for (double v : values) sum += v;
  out.mean = sum / static_cast<double>(n);
  if (n < 2) {
    out.ci95 = std::numeric_limits<double>::quiet_NaN();
    return out;
  }
  double ss = 0;
  for (double v : values) ss += (v - out.mean) * (v - out.mean);
  const double sd = std::sqrt(ss / static_cast<double>(n - 1));
  out.ci95 = t95(n - 1) * sd / std::sqrt(static_cast<double>(n));
  return out;
}

std::vector<SeedFigures> seed_figures(const std::vector<std::pair<std::uint64_t, SimResult>>& results) {
  std::vector<SeedFigures> out;
  for (const auto& [seed, result] : results) {
    for (const StrategySummary& s : result.summaries) {
      auto it = std::find_if(out.begin(), out.end(), [&](const SeedFigures& f) { return f.kind == s.kind; });
      if (it == out.end()) {
        out.push_back({s.kind, {}, {}});
        it = out.end() - 1;
      }
      it->seeds.push_back(seed);
      it->figures["mean_throughput"].push_back(s.mean_throughput);
      it->figures["ratio_to_upper_bound"].push_back(s.mean_ratio);
      it->figures["moves"].push_back(static_cast<double>(s.moves));
      it->figures["reload_hours"].push_back(s.reload_downtime / 3600);
      it->figures["disjoint_time_fraction"].push_back(s.disjoint_fraction);
    }
  }
  return out;
}

}  // namespace swarm::sim
