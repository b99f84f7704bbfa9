#include "swarm/sim/what_if.hpp"

#include <cmath>
#include <istream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "swarm/balance/rules.hpp"
#include "swarm/balance/strategy.hpp"

namespace swarm {
namespace {

using json = nlohmann::json;

// A malformed line: `field` is a JSON path such as servers[2].end.
struct LineError : std::runtime_error {
  LineError(std::string f, const std::string& what) : std::runtime_error(what), field(std::move(f)) {}
  std::string field;
};

// Bounds of one line: a swarm far beyond any model's blocks or a swarm's servers would keep a
// single line busy for minutes (rule 2 is O(servers x blocks) per visited server).
constexpr long kMaxBlocks = 100'000;
constexpr std::size_t kMaxServers = 100'000;
constexpr double kMaxThroughput = 1e15;

// A value as an error message shows it: scalars as written (cut at 60 characters), arrays and
// objects by kind only. dump() recurses, and a value nested 100,000 deep overflowed the stack.
std::string brief(const json& v) {
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

const json& member(const json& obj, const std::string& key, const std::string& path) {
  const auto it = obj.find(key);
  if (it == obj.end()) throw LineError(path + key, "missing");
  return *it;
}

long integer(const json& v, const std::string& field) {
  if (v.is_number_unsigned() && v.get<unsigned long>() > 1'000'000'000'000'000UL)
    throw LineError(field, "out of range, got " + brief(v));
  if (v.is_number_integer()) return v.get<long>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e15) return static_cast<long>(d);
  }
  throw LineError(field, "must be an integer, got " + brief(v));
}

double number(const json& v, const std::string& field) {
  if (!v.is_number()) throw LineError(field, "must be a number, got " + brief(v));
  return v.get<double>();
}

std::string text(const json& v, const std::string& field) {
  if (!v.is_string()) throw LineError(field, "must be a string, got " + brief(v));
  return v.get<std::string>();
}

Swarm parse_swarm(const json& line) {
  const long total = integer(member(line, "total_blocks", ""), "total_blocks");
  if (total < 1 || total > kMaxBlocks) {
    throw LineError("total_blocks", "must be in 1.." + std::to_string(kMaxBlocks) + ", got " + std::to_string(total));
  }
  const json& list = member(line, "servers", "");
  if (!list.is_array()) throw LineError("servers", "must be an array");
  if (list.size() > kMaxServers) {
    throw LineError("servers", "at most " + std::to_string(kMaxServers) + " servers, got " + std::to_string(list.size()));
  }
  std::vector<Server> servers;
  std::set<std::string> ids;
  for (std::size_t i = 0; i < list.size(); ++i) {
    const std::string at = "servers[" + std::to_string(i) + "].";
    const json& s = list[i];
    if (!s.is_object()) throw LineError("servers[" + std::to_string(i) + "]", "must be an object");
    Server server;
    server.id = text(member(s, "id", at), at + "id");
    if (!ids.insert(server.id).second) throw LineError(at + "id", "duplicate server id " + brief(server.id));
    const long start = integer(member(s, "start", at), at + "start");
    const long end = integer(member(s, "end", at), at + "end");
    if (start < 0 || start > total) {
      throw LineError(at + "start", "span [" + std::to_string(start) + ", " + std::to_string(end) +
                                        ") is outside the model's " + std::to_string(total) + " blocks");
    }
    if (end < start) {
      throw LineError(at + "start", "span [" + std::to_string(start) + ", " + std::to_string(end) +
                                        ") is inverted: start must not exceed end");
    }
    if (end > total) {
      throw LineError(at + "end", "span [" + std::to_string(start) + ", " + std::to_string(end) +
                                      ") is outside the model's " + std::to_string(total) + " blocks");
    }
    server.span = {static_cast<int>(start), static_cast<int>(end)};
    server.throughput = number(member(s, "throughput", at), at + "throughput");
    // Bounded so that every sum over the servers stays finite (two of 1e308 summed to inf).
    if (!(server.throughput >= 0 && server.throughput <= kMaxThroughput)) {
      throw LineError(at + "throughput", "must be in [0, 1e15], got " + brief(member(s, "throughput", at)));
    }
    const std::string state = text(member(s, "state", at), at + "state");
    const auto parsed = parse_server_state(state);
    if (!parsed) throw LineError(at + "state", "must be online, joining or offline, got " + brief(state));
    server.state = *parsed;
    servers.push_back(std::move(server));
  }
  try {
    return Swarm(static_cast<int>(total), std::move(servers));
  } catch (const SwarmError& e) {
    throw LineError("servers[].id", e.what());
  }
}

// {"op": "plan"}: what a strategy would do at a boundary of this swarm (docs/what-if.md).
json plan(const Swarm& swarm, const json& q, const std::string& at, Rng& rng) {
  const std::string name = text(member(q, "strategy", at), at + "strategy");
  const auto kind = parse_strategy(name);
  if (!kind) {
    throw LineError(at + "strategy", "unknown strategy " + brief(name) + " (none, new_only, full, upper_bound, move_aware)");
  }
  const auto optional_number = [&](const char* key, double fallback, double lo, double hi) {
    if (!q.contains(key)) return fallback;
    const double v = number(q[key], at + key);
    if (!(v >= lo && v <= hi)) {
      throw LineError(at + key, "must be in [" + brief(json(lo)) + ", " + brief(json(hi)) + "], got " + brief(q[key]));
    }
    return v;
  };
  StrategyOptions options;
  options.balance_quality = optional_number("balance_quality", 0.75, 0, 1e9);
  options.placement_time_limit_s = optional_number("placement_time_limit_s", 0.5, 0, 60);
  options.placement_reproducible = true;  // the same line gives the same answer
  options.move_horizon_s = optional_number("horizon_s", options.move_horizon_s, 0, 1e9);
  options.move_min_gain = optional_number("min_gain", 0, 0, 10);
  const double per_block = optional_number("load_seconds_per_block", 1.0, 0, 1e6);
  std::vector<double> load(swarm.size());
  for (std::size_t i = 0; i < swarm.size(); ++i) load[i] = per_block * swarm[i].span.length();
  if (q.contains("load_seconds")) {
    const json& m = q["load_seconds"];
    if (!m.is_object()) throw LineError(at + "load_seconds", "must be an object {server id: seconds}");
    for (const auto& [id, v] : m.items()) {
      const std::string field = at + "load_seconds." + id;
      const auto i = swarm.find(id);
      if (!i) throw LineError(field, "unknown server " + brief(id));
      const double seconds = number(v, field);
      if (!(seconds >= 0 && seconds <= 1e6)) throw LineError(field, "must be in [0, 1e6], got " + brief(v));
      load[*i] = seconds;
    }
  }
  const auto strategy = make_strategy(*kind, options);
  std::vector<std::size_t> due;  // `full`: every online server checks rule 2, in a random order
  for (std::size_t i = 0; i < swarm.size(); ++i) {
    if (swarm[i].state == ServerState::online) due.push_back(i);
  }
  shuffle(std::span<std::size_t>(due), rng);
  BoundaryContext context;
  context.load_seconds = load;
  const RebalanceResult result = strategy->rebalance(swarm, due, rng, context);

  Swarm after = swarm;
  apply_moves(after, result.moves, ServerState::joining);
  json moves = json::array();
  double downtime = 0;
  for (const Move& m : result.moves) {
    const double seconds = load[*swarm.find(m.id)];
    downtime += seconds;
    moves.push_back({{"server", m.id}, {"from", {m.from.start, m.from.end}}, {"to", {m.to.start, m.to.end}},
                     {"load_seconds", seconds}});
  }
  json r = {{"strategy", name},
            {"moves", std::move(moves)},
            {"current", swarm_throughput(swarm)},
            {"planned", swarm_throughput(after)},
            {"reload_seconds", downtime}};
  if (result.placement) r["target"] = result.placement->value;
  if (result.plan) {
    r["expected_gain"] = result.plan->expected_gain();
    r["net"] = result.plan->net;
    r["cost"] = result.plan->cost;
  }
  return r;
}

json answer(const Swarm& swarm, const json& q, std::size_t index, Rng& rng) {
  const std::string at = "queries[" + std::to_string(index) + "].";
  if (!q.is_object()) throw LineError("queries[" + std::to_string(index) + "]", "must be an object");
  const std::string op = text(member(q, "op", at), at + "op");
  json r = {{"op", op}};
  if (op == "block_throughputs") {
    r["throughputs"] = block_throughputs(swarm);
  } else if (op == "swarm_throughput") {
    r["value"] = swarm_throughput(swarm);
  } else if (op == "choose_best_blocks") {
    const long k = integer(member(q, "num_blocks", at), at + "num_blocks");
    if (k < 1 || k > swarm.total_blocks()) {
      throw LineError(at + "num_blocks", "must be in 1.." + std::to_string(swarm.total_blocks()) + ", got " +
                                             std::to_string(k));
    }
    const Span s = choose_best_blocks(swarm, static_cast<int>(k));
    r["start"] = s.start;
    r["end"] = s.end;
  } else if (op == "should_choose_other_blocks") {
    const std::string id = text(member(q, "server", at), at + "server");
    const auto i = swarm.find(id);
    if (!i) throw LineError(at + "server", "unknown server " + brief(id));
    double quality_threshold = 0.75;  // Petals' default
    if (q.contains("balance_quality")) {
      quality_threshold = number(q["balance_quality"], at + "balance_quality");
      if (!std::isfinite(quality_threshold)) throw LineError(at + "balance_quality", "must be finite");
    }
    const RebalanceDecision d = should_choose_other_blocks(swarm, *i, quality_threshold, rng);
    r["move"] = d.move;
    r["quality"] = d.quality ? json(*d.quality) : json(nullptr);
    static constexpr const char* kReasons[] = {"forced", "not_counted", "would_disjoin",
                                               "already_best", "no_improvement", "compared"};
    r["reason"] = kReasons[static_cast<int>(d.reason)];
  } else if (op == "plan") {
    r.update(plan(swarm, q, at, rng));
  } else {
    throw LineError(at + "op", "unknown op " + brief(op) +
                                   " (block_throughputs, swarm_throughput, choose_best_blocks, "
                                   "should_choose_other_blocks, plan)");
  }
  return r;
}

json answer_line(const json& line) {
  if (!line.is_object()) throw LineError("(line)", "must be a JSON object");
  const Swarm swarm = parse_swarm(line);
  std::uint64_t seed = 0;
  if (line.contains("seed") && !line["seed"].is_null()) {
    const long s = integer(line["seed"], "seed");
    if (s < 0) throw LineError("seed", "must be >= 0");
    seed = static_cast<std::uint64_t>(s);
  }
  Rng rng(seed);  // one stream per line, drawn by its rule-2 queries in order
  const json& queries = member(line, "queries", "");
  if (!queries.is_array()) throw LineError("queries", "must be an array");
  json results = json::array();
  for (std::size_t q = 0; q < queries.size(); ++q) results.push_back(answer(swarm, queries[q], q, rng));
  return {{"results", std::move(results)}};
}

// Where the parser is in a line, as a JSON path (servers[2].throughput), so that an error the
// parser itself raises (a number like 1e999 that overflows a double) names its field too.
class ParsePath {
 public:
  bool on_event(json::parse_event_t event, const json& parsed) {
    using E = json::parse_event_t;
    switch (event) {
      case E::object_start: frames_.push_back({false, 0, {}}); break;
      case E::array_start: frames_.push_back({true, 0, {}}); break;
      case E::key: frames_.back().key = parsed.get<std::string>(); break;
      case E::object_end:
      case E::array_end: frames_.pop_back(); element_done(); break;
      case E::value: element_done(); break;
    }
    return true;
  }

  std::string field() const {
    std::string path;
    for (const Frame& f : frames_) {
      if (f.array) path += "[" + std::to_string(f.index) + "]";
      else if (!f.key.empty()) path += (path.empty() ? "" : ".") + f.key;
    }
    return path.empty() ? "(line)" : path;
  }

 private:
  struct Frame {
    bool array;
    std::size_t index;
    std::string key;
  };
  void element_done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }
  std::vector<Frame> frames_;
};

// Counts the top-level "servers" array's elements without building the line, stopping at
// kMaxServers + 1: a line of a million servers is refused in a fraction of the time and none of
// the memory (775 MB) its DOM takes.
class ServerCounter : public nlohmann::json_sax<json> {
 public:
  std::size_t count = 0;
  bool over = false;

  bool null() override { return element(); }
  bool boolean(bool) override { return element(); }
  bool number_integer(number_integer_t) override { return element(); }
  bool number_unsigned(number_unsigned_t) override { return element(); }
  bool number_float(number_float_t, const string_t&) override { return element(); }
  bool string(string_t&) override { return element(); }
  bool binary(binary_t&) override { return element(); }
  bool start_object(std::size_t) override { return open(); }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    if (depth_ == 1 && key_ == "servers") in_servers_ = true;
    return open();
  }
  bool end_array() override {
    if (depth_ == 2) in_servers_ = false;
    return close();
  }
  bool key(string_t& k) override {
    if (depth_ == 1) key_ = k;
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }

 private:
  bool element() {
    if (in_servers_ && depth_ == 2 && ++count > kMaxServers) over = true;
    return !over;
  }
  bool open() {
    const bool ok = element();
    ++depth_;
    return ok;
  }
  bool close() {
    --depth_;
    return true;
  }
  int depth_ = 0;
  bool in_servers_ = false;
  std::string key_;
};

// The field at which the parser gives up on `text`, or "(line)".
// Only for lines the plain parser refused.
std::string field_of_parse_error(const std::string& text) {
  ParsePath path;
  try {
    const json ignored =
        json::parse(text, [&path](int, json::parse_event_t event, json& parsed) { return path.on_event(event, parsed); });
  } catch (const json::exception&) {
    return path.field();
  }
  return "(line)";
}

}  // namespace

int run_what_if(std::istream& in, std::ostream& out, std::ostream& err) {
  std::string text_line;
  for (long number = 1; std::getline(in, text_line); ++number) {
    if (text_line.find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      // The plain parser, linear in the line; the callback parser that tracks the field path is
      // superlinear in an array's length (nlohmann 3.11: 150,000 servers took 3.7 s), so it only
      // re-reads a line the plain one refused, to name the field.
      ServerCounter counter;
      (void)json::sax_parse(text_line, &counter);  // a malformed line is reported by the parse below
      if (counter.over) {
        throw LineError("servers", "at most " + std::to_string(kMaxServers) + " servers, got more");
      }
      const json line = json::parse(text_line);
      out << answer_line(line).dump() << '\n';
      out.flush();
    } catch (const json::parse_error& e) {
      err << "what-if: line " << number << ": field '(line)': not valid JSON: " << e.what() << '\n';
      return 2;
    } catch (const json::out_of_range& e) {  // a number the parser cannot hold (1e999)
      err << "what-if: line " << number << ": field '" << field_of_parse_error(text_line) << "': " << e.what() << '\n';
      return 2;
    } catch (const LineError& e) {
      err << "what-if: line " << number << ": field '" << e.field << "': " << e.what() << '\n';
      return 2;
    }
  }
  return 0;
}

}  // namespace swarm
