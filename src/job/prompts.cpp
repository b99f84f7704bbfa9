// The prompts file (workload.prompts) and the answers file (workload.outputs).
#include "prompts.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#include "swarm/config/job_file.hpp"

namespace swarm::job {
namespace {

using nlohmann::json;

constexpr const char* kFields = "id, tokens, max_new_tokens, stop_at_eos";

/// The value as it appears in an error message: compact JSON, cut short. Arrays and objects are
/// dumped only when flat and small, since dump recurses and a line may nest arbitrarily deep.
std::string quote(const json& v) {
  if (v.is_array() || v.is_object()) {
    bool flat = v.size() <= 16;
    for (const auto& e : v) flat = flat && !e.is_structured();
    if (!flat) return std::string(v.is_array() ? "an array" : "an object") + " of size " + std::to_string(v.size());
  }
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

/// nlohmann's what() without its "[json.exception.parse_error.101] " prefix, and without its
/// "line 1", which would contradict the file's line number (each parse sees one line).
std::string reason(const json::exception& e) {
  std::string s = e.what();
  if (!s.empty() && s.front() == '[') {
    const auto end = s.find("] ");
    if (end != std::string::npos) s.erase(0, end + 2);
  }
  const std::string one = "at line 1, column ";
  if (const auto at = s.find(one); at != std::string::npos) s.replace(at, one.size(), "at column ");
  return s;
}

/// A key with JSON escapes for control characters but without its quotes.
std::string bare(const std::string& key) {
  const std::string s = json(key).dump(-1, ' ', false, json::error_handler_t::replace);
  return s.substr(1, s.size() - 2);
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r") == std::string::npos; }

/// Whether `v` is a JSON integer within [lo, hi] (then stored in `out`).
bool integer_in(const json& v, long long lo, long long hi, long long& out) {
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(hi)) return false;
    out = static_cast<long long>(u);
    return out >= lo;
  }
  if (v.is_number_integer()) {
    out = v.get<std::int64_t>();
    return out >= lo && out <= hi;
  }
  return false;
}

class LineParser {
 public:
  LineParser(std::string file, int vocab_size, int max_positions)
      : file_(std::move(file)), vocab_(vocab_size), max_positions_(max_positions) {}

  Prompt parse(const std::string& text, int line) {
    line_ = line;
    const json obj = parse_json(text);
    if (!obj.is_object()) fail("expected a JSON object, got " + quote(obj));
    for (const auto& [key, value] : obj.items()) {
      if (key != "id" && key != "tokens" && key != "max_new_tokens" && key != "stop_at_eos") {
        fail("unknown field '" + bare(key) + "' (fields: " + kFields + ")");
      }
    }
    Prompt p;
    p.id = parse_id(field(obj, "id"));
    parse_tokens(field(obj, "tokens"), p.tokens);
    p.max_new_tokens = parse_max_new_tokens(field(obj, "max_new_tokens"), p.tokens.size());
    if (const auto it = obj.find("stop_at_eos"); it != obj.end()) {
      if (!it->is_boolean()) fail("field 'stop_at_eos' = " + quote(*it) + " must be true or false");
      p.stop_at_eos = it->get<bool>();
    }
    return p;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ConfigError(file_ + ":" + std::to_string(line_) + ": " + what);
  }

  /// Parses one line, refusing a field given twice (nlohmann would keep the last silently) and
  /// naming the field in which a syntax error or an overflowing number sits.
  json parse_json(const std::string& text) {
    std::string open;  // the top-level field whose value is being read
    std::set<std::string> seen;
    std::string twice;
    const json::parser_callback_t watch = [&](int depth, json::parse_event_t event, json& parsed) {
      if (depth != 1) return true;
      if (event == json::parse_event_t::key) {
        open = parsed.get<std::string>();
        if (!seen.insert(open).second && twice.empty()) twice = open;
      } else if (event == json::parse_event_t::value || event == json::parse_event_t::array_end ||
                 event == json::parse_event_t::object_end) {
        open.clear();
      }
      return true;
    };
    json obj;
    try {
      obj = json::parse(text, watch);
    } catch (const json::exception& e) {
      fail((open.empty() ? std::string() : "field '" + bare(open) + "': ") + "not valid JSON: " + reason(e));
    }
    if (!twice.empty()) fail("field '" + bare(twice) + "' is given twice");
    return obj;
  }

  const json& field(const json& obj, const char* name) const {
    const auto it = obj.find(name);
    if (it == obj.end()) fail(std::string("field '") + name + "' is missing");
    return *it;
  }

  std::string parse_id(const json& v) {
    if (!v.is_string() && !v.is_number_integer()) fail("field 'id' = " + quote(v) + " must be a string or an integer");
    std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    const auto [it, fresh] = ids_.emplace(text, line_);
    if (!fresh) fail("field 'id' = " + quote(v) + " repeats line " + std::to_string(it->second));
    return text;
  }

  void parse_tokens(const json& v, std::vector<std::int32_t>& out) const {
    if (!v.is_array()) fail("field 'tokens' = " + quote(v) + " must be an array of token ids");
    if (v.empty()) fail("field 'tokens' is empty: a prompt needs at least one token");
    out.reserve(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
      const json& t = v[i];
      long long id = 0;
      if (!t.is_number_integer()) {
        fail("field 'tokens': element " + std::to_string(i) + " = " + quote(t) + " is not an integer token id");
      }
      if (!integer_in(t, 0, vocab_ - 1, id)) {
        fail("field 'tokens': token " + quote(t) + " is outside the vocabulary [0, " + std::to_string(vocab_) +
             ") at index " + std::to_string(i));
      }
      out.push_back(static_cast<std::int32_t>(id));
    }
  }

  int parse_max_new_tokens(const json& v, std::size_t prompt_tokens) const {
    long long n = 0;
    if (!v.is_number_integer()) fail("field 'max_new_tokens' = " + quote(v) + " must be an integer");
    if (!integer_in(v, 1, INT32_MAX, n)) {
      const bool large = v.is_number_unsigned() ? v.get<std::uint64_t>() > INT32_MAX : v.get<std::int64_t>() > INT32_MAX;
      if (large) {
        fail("field 'max_new_tokens' = " + quote(v) + " is out of range (at most " + std::to_string(INT32_MAX) + ")");
      }
      fail("field 'max_new_tokens' = " + quote(v) + " must be at least 1");
    }
    if (static_cast<long long>(prompt_tokens) + n > max_positions_) {
      fail("field 'max_new_tokens': " + std::to_string(prompt_tokens) + " prompt tokens + " + std::to_string(n) +
           " new tokens = " + std::to_string(static_cast<long long>(prompt_tokens) + n) +
           " exceed the model's max_positions " + std::to_string(max_positions_));
    }
    return static_cast<int>(n);
  }

  std::string file_;
  int vocab_;
  int max_positions_;
  int line_ = 0;
  std::map<std::string, int> ids_;  // id text -> its line
};

std::string errno_text(int err) { return std::generic_category().message(err); }

}  // namespace

std::vector<Prompt> read_prompts(const std::filesystem::path& file, int vocab_size, int max_positions) {
  if (vocab_size < 1 || max_positions < 1) {
    throw std::invalid_argument("read_prompts: vocab_size and max_positions must be positive");
  }
  const std::string name = file.string();
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) throw ConfigError(name + ": is a directory, not a prompts file");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ConfigError(name + ": cannot open the prompts file: " + errno_text(errno));

  LineParser parser(name, vocab_size, max_positions);
  std::vector<Prompt> prompts;
  std::string text;
  int line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (blank(text)) continue;
    if (text.back() == '\r') text.pop_back();  // Windows line endings
    prompts.push_back(parser.parse(text, line));
  }
  if (in.bad()) throw ConfigError(name + ": cannot read the prompts file: " + errno_text(errno));
  if (prompts.empty()) throw ConfigError(name + ": no prompts (the file has no non-blank line)");
  return prompts;
}

namespace {

/// The temporary file, removed unless renamed over the target.
struct Partial {
  std::filesystem::path path;
  std::FILE* f = nullptr;
  bool done = false;
  ~Partial() {
    if (f != nullptr) std::fclose(f);
    if (!done) {
      std::error_code ec;
      std::filesystem::remove(path, ec);
    }
  }
};

/// A JSON string or integer, as read_prompts stores an id; anything else would corrupt the line.
bool valid_id(const std::string& id) {
  const json v = json::parse(id, nullptr, false);
  return !v.is_discarded() && (v.is_string() || v.is_number_integer());
}

}  // namespace

void write_answers(const std::filesystem::path& file, const std::vector<Prompt>& prompts,
                   const std::vector<std::vector<std::int32_t>>& answers) {
  if (prompts.size() != answers.size()) {
    throw std::invalid_argument("write_answers: " + std::to_string(prompts.size()) + " prompts but " +
                                std::to_string(answers.size()) + " answers");
  }
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    if (answers[i].empty()) throw std::invalid_argument("write_answers: answer " + std::to_string(i) + " is empty");
    if (!valid_id(prompts[i].id)) {
      throw std::invalid_argument("write_answers: prompt " + std::to_string(i) + " has id '" + prompts[i].id +
                                  "', not a JSON string or integer");
    }
  }

  const std::string name = file.string();
  const auto fail = [&](const std::string& why) { throw std::runtime_error(name + ": cannot write the answers: " + why); };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) fail("it is a directory");
  const std::filesystem::path dir = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  const auto st = std::filesystem::status(dir, ec);
  if (!std::filesystem::exists(st)) fail("the directory '" + dir.string() + "' does not exist");
  if (!std::filesystem::is_directory(st)) fail("'" + dir.string() + "' is not a directory");

  Partial tmp;
  tmp.path = file;
  tmp.path += ".partial." + std::to_string(::getpid());
  tmp.f = std::fopen(tmp.path.c_str(), "wb");
  if (tmp.f == nullptr) fail(tmp.path.string() + ": " + errno_text(errno));

  std::string out;
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    out.clear();
    out += "{\"id\":";
    out += prompts[i].id;
    out += ",\"tokens\":[";
    for (std::size_t k = 0; k < answers[i].size(); ++k) {
      if (k > 0) out += ',';
      out += std::to_string(answers[i][k]);
    }
    out += "]}\n";
    if (std::fwrite(out.data(), 1, out.size(), tmp.f) != out.size()) fail(errno_text(errno));
  }
  // A full disk often shows only here: the data sits in stdio's or the kernel's buffers.
  if (std::fflush(tmp.f) != 0) fail(errno_text(errno));
  if (::fsync(::fileno(tmp.f)) != 0) fail(errno_text(errno));
  std::FILE* f = tmp.f;
  tmp.f = nullptr;
  if (std::fclose(f) != 0) fail(errno_text(errno));

  std::filesystem::rename(tmp.path, file, ec);
  if (ec) fail("renaming " + tmp.path.string() + " over it: " + ec.message());
  tmp.done = true;
  // Best effort: the rename itself durable across a crash.
  if (const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); d >= 0) {
    ::fsync(d);
    ::close(d);
  }
}

}  // namespace swarm::job
