#include "swarm/config/job_file.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>

namespace po = boost::program_options;

namespace swarm {
namespace {

std::string format_value(const po::variable_value& v) {
  if (v.empty()) return "";
  const boost::any& a = v.value();
  if (const auto* x = boost::any_cast<std::string>(&a)) return *x;
  if (const auto* x = boost::any_cast<int>(&a)) return std::to_string(*x);
  if (const auto* x = boost::any_cast<long>(&a)) return std::to_string(*x);
  if (const auto* x = boost::any_cast<std::uint64_t>(&a)) return std::to_string(*x);
  if (const auto* x = boost::any_cast<bool>(&a)) return *x ? "true" : "false";
  if (const auto* x = boost::any_cast<double>(&a)) {
    std::ostringstream s;
    s << *x;
    return s.str();
  }
  return "?";
}

}  // namespace

std::string format_number(double value) {
  std::ostringstream s;
  s << value;
  return s.str();
}

std::string readable_value(std::string_view value, std::size_t limit) {
  std::string out;
  std::size_t shown = 0, i = 0;
  for (; i < value.size() && shown < limit; ++i, ++shown) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c == 0x7F) {  // a NUL would end the message where C strings read it
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (i < value.size()) out += "... (" + std::to_string(value.size()) + " characters)";
  return out;
}

std::vector<std::string> split_list(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, sep)) {
    const auto b = item.find_first_not_of(" \t");
    const auto e = item.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

namespace {

// "prefix.name.key" with a prefix in `tables`: split into its parts, or nothing.
struct TableKey {
  std::string prefix, name, field;
};
std::optional<TableKey> table_key(const std::string& key, std::span<const std::string> tables) {
  const auto dot1 = key.find('.');
  const auto dot2 = dot1 == std::string::npos ? dot1 : key.find('.', dot1 + 1);
  if (dot2 == std::string::npos) return std::nullopt;
  const std::string prefix = key.substr(0, dot1);
  if (std::find(tables.begin(), tables.end(), prefix) == tables.end()) return std::nullopt;
  TableKey k{prefix, key.substr(dot1 + 1, dot2 - dot1 - 1), key.substr(dot2 + 1)};
  if (k.name.empty() || k.field.empty()) throw ConfigError("key '" + key + "': a table key is " + prefix + ".NAME.KEY");
  return k;
}

// Table keys on the command line (--class.big.span 3) are taken out before Boost sees them:
// the schema cannot name them, and Boost gives an unregistered option no separate value.
struct SplitArgs {
  std::vector<std::string> schema_args;
  std::vector<std::pair<std::string, std::string>> table_args;  // key (no dashes), value
};
SplitArgs split_table_overrides(const std::vector<std::string>& args, std::span<const std::string> tables) {
  SplitArgs out;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto eq = arg.find('=');
    const std::string key = arg.rfind("--", 0) == 0 ? arg.substr(2, eq == std::string::npos ? eq : eq - 2) : "";
    bool is_table = false;
    try {
      is_table = table_key(key, tables).has_value();
    } catch (const ConfigError& e) {
      throw ConfigError(std::string("command line: ") + e.what());
    }
    if (!is_table) {
      out.schema_args.push_back(arg);
    } else if (eq != std::string::npos) {
      out.table_args.emplace_back(key, arg.substr(eq + 1));
    } else if (i + 1 < args.size()) {
      out.table_args.emplace_back(key, args[++i]);
    } else {
      throw ConfigError("command line: option '--" + key + "' needs a value");
    }
  }
  return out;
}

}  // namespace

bool keys_fit(const std::filesystem::path& path, const po::options_description& schema,
              std::span<const std::string> tables) {
  std::ifstream in(path);
  if (!in) return false;
  try {
    for (const auto& opt : po::parse_config_file(in, schema, true).options) {
      if (opt.unregistered && !table_key(opt.string_key, tables)) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

JobFile read_job_file(const std::filesystem::path& path, const po::options_description& schema,
                      std::span<const std::string> tables, const std::vector<std::string>& overrides,
                      std::span<const OtherJobKind> others) {
  try {
    return JobFile(path, schema, tables, overrides);
  } catch (const UnknownKeyError& e) {
    for (const OtherJobKind& other : others) {
      if (!keys_fit(path, other.schema, tables)) continue;
      std::string command = other.command;
      if (const auto at = command.find("FILE"); at != std::string::npos) command.replace(at, 4, path.string());
      throw ConfigError(std::string(e.what()) + "; the file is " + other.what + ": run " + command);
    }
    throw;
  }
}

po::variables_map preview_command_line(const std::vector<std::string>& args, const po::options_description& schema,
                                       std::span<const std::string> tables) {
  po::variables_map out;
  po::store(po::command_line_parser(split_table_overrides(args, tables).schema_args).options(schema).run(), out);
  return out;
}

JobFile::JobFile(std::filesystem::path path, const po::options_description& schema,
                 std::span<const std::string> tables, std::vector<std::string> overrides)
    : path_(std::move(path)) {
  for (const auto& o : schema.options()) keys_.push_back(o->long_name());
  auto table_entry = [this](const TableKey& k) -> std::string& {
    auto& list = tables_[k.prefix];
    auto it = std::find_if(list.begin(), list.end(), [&](const Table& t) { return t.name == k.name; });
    if (it == list.end()) it = list.insert(list.end(), Table{k.name, {}});
    return it->values[k.field];
  };

  const auto [schema_args, table_args] = split_table_overrides(overrides, tables);
  for (const auto& [key, value] : table_args) {
    if (!from_command_line_.insert(key).second) {
      throw ConfigError("command line: option '--" + key + "' is given twice");
    }
    table_entry(*table_key(key, tables)) = value;
  }
  try {
    const po::parsed_options parsed = po::command_line_parser(schema_args).options(schema).run();
    for (const auto& opt : parsed.options) {
      if (opt.position_key >= 0) {
        throw ConfigError("command line: unexpected argument '" + opt.value.front() +
                          "' (options are --section.key VALUE)");
      }
      from_command_line_.insert(opt.string_key);
    }
    po::store(parsed, values_);
  } catch (const po::error& e) {
    throw ConfigError(std::string("command line: ") + e.what());
  }
  if (!path_.empty()) {
    std::error_code ec;
    if (std::filesystem::is_directory(path_, ec)) throw ConfigError("job file '" + path_.string() + "' is a directory");
    std::ifstream in(path_);
    if (!in) throw ConfigError("cannot read job file '" + path_.string() + "'");
    std::stringstream buffer;
    buffer << in.rdbuf();
    text_ = buffer.str();
    std::istringstream stream(text_);
    try {
      const po::parsed_options parsed = po::parse_config_file(stream, schema, true);
      std::set<std::string> table_keys_in_file;
      for (const auto& opt : parsed.options) {
        if (!opt.unregistered) continue;
        const std::string& key = opt.string_key;
        const std::string value = opt.value.empty() ? "" : opt.value.front();
        std::optional<TableKey> table;
        try {
          table = table_key(key, tables);
        } catch (const ConfigError& e) {
          throw ConfigError(where() + ": " + e.what());
        }
        if (!table) throw UnknownKeyError(where() + ": unknown key '" + key + "' (value '" + value + "')");
        std::string& slot = table_entry(*table);
        if (!table_keys_in_file.insert(key).second) {
          throw ConfigError(where() + ": key '" + key + "' is given twice (values '" + slot + "' and '" + value + "')");
        }
        if (!from_command_line_.count(key)) slot = value;
      }
      po::store(parsed, values_);
    } catch (const ConfigError&) {
      throw;
    } catch (const po::error& e) {
      throw ConfigError(where() + ": " + e.what());
    }
  }
  try {
    po::notify(values_);
  } catch (const po::error& e) {
    throw ConfigError(where() + ": " + e.what());
  }
}

std::string JobFile::where() const {
  return path_.empty() ? std::string("command line") : "job file '" + path_.string() + "'";
}

std::string JobFile::where(const std::string& key) const {
  return from_command_line_.count(key) ? std::string("command line") : where();
}

void JobFile::refuse_as_output(const std::filesystem::path& output, const std::string& option) const {
  std::error_code ec;
  if (!path_.empty() && !output.empty() && std::filesystem::equivalent(path_, output, ec)) {
    throw ConfigError("command line: " + option + " '" + output.string() + "' is the job file '" + path_.string() +
                      "' itself, which writing it would destroy");
  }
}

void JobFile::fail(const std::string& key, const std::string& value, const std::string& reason) const {
  throw ConfigError(where(key) + ": key '" + key + "' = '" + readable_value(value) + "': " + reason);
}

double JobFile::positive(const std::string& key) const {
  const double v = get<double>(key);
  if (!(v > 0) || !std::isfinite(v)) fail(key, format_value(values_[key]), "must be a finite number > 0");
  return v;
}

double JobFile::non_negative(const std::string& key) const {
  const double v = get<double>(key);
  if (!(v >= 0) || !std::isfinite(v)) fail(key, format_value(values_[key]), "must be a finite number >= 0");
  return v;
}

double JobFile::in_range(const std::string& key, double lo, double hi) const {
  const double v = get<double>(key);
  if (!(v >= lo && v <= hi)) {
    std::ostringstream r;
    r << std::setprecision(15) << "must be in [" << lo << ", " << hi << "]";
    fail(key, format_value(values_[key]), r.str());
  }
  return v;
}

long JobFile::integer(const std::string& key, long lo, long hi) const {
  const long v = get<long>(key);
  if (v < lo || v > hi) fail(key, std::to_string(v), "must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

std::uint64_t JobFile::seed(const std::string& key) const {
  const auto v = get<std::uint64_t>(key);
  constexpr std::uint64_t most = std::numeric_limits<std::int64_t>::max();
  if (v > most) fail(key, std::to_string(v), "must be in 0.." + std::to_string(most) + " (a negative seed wraps to this)");
  return v;
}

const std::vector<Table>& JobFile::tables(const std::string& prefix) const {
  static const std::vector<Table> none;
  const auto it = tables_.find(prefix);
  return it == tables_.end() ? none : it->second;
}

std::string JobFile::effective() const {
  std::ostringstream out;
  for (const auto& key : keys_) {
    if (values_.count(key) == 0) continue;
    out << key << " = " << format_value(values_[key]) << "\n";
  }
  for (const auto& [prefix, list] : tables_) {
    for (const auto& t : list) {
      for (const auto& [k, v] : t.values) out << prefix << "." << t.name << "." << k << " = " << v << "\n";
    }
  }
  return out.str();
}

double parse_number(const JobFile& job, const std::string& key, const std::string& text) {
  try {
    std::size_t used = 0;
    // Decimal only, as Boost reads the other keys: std::stod would take hex (0x10) too.
    if (text.find_first_of("xXpP") != std::string::npos) throw std::invalid_argument("not decimal");
    const double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing text");
    return v;
  } catch (const std::out_of_range&) {
    job.fail(key, text, "out of the range of a double");
  } catch (const std::exception&) {
    job.fail(key, text, "not a number");
  }
}

void refuse_outputs_over_inputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs) {
  namespace fs = std::filesystem;
  std::vector<NamedPath> files;  // the inputs, directories expanded to their files
  for (const NamedPath& in : inputs) {
    std::error_code ec;
    if (in.path.empty()) continue;
    if (fs::is_directory(in.path, ec)) {
      for (const auto& entry : fs::directory_iterator(in.path, ec)) {
        if (entry.is_regular_file(ec)) files.push_back({"a file of " + in.name + " '" + in.path.string() + "'", entry.path()});
      }
    } else {
      files.push_back({in.name, in.path});
    }
  }
  const auto same = [](const fs::path& a, const fs::path& b) {
    std::error_code ec;
    if (fs::equivalent(a, b, ec)) return true;  // both exist: same inode whatever the names
    const fs::path ca = fs::weakly_canonical(a, ec), cb = fs::weakly_canonical(b, ec);
    return !ca.empty() && ca == cb;
  };
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const NamedPath& out = outputs[i];
    if (out.path.empty()) continue;
    // A device, pipe or socket (--trace /dev/null) would be removed or renamed over as root.
    std::error_code ec;
    if (fs::exists(out.path, ec) && !fs::is_regular_file(out.path, ec) && !fs::is_directory(out.path, ec)) {
      throw ConfigError("command line: " + out.name + " '" + out.path.string() +
                        "' exists and is not a regular file (a device, pipe or socket); outputs are files this "
                        "run replaces");
    }
    for (const NamedPath& in : files) {
      if (same(out.path, in.path)) {
        throw ConfigError("command line: " + out.name + " '" + out.path.string() + "' is " + in.name + " ('" +
                          in.path.string() + "'), which this run reads and writing would destroy");
      }
    }
    for (const NamedPath& in : inputs) {
      std::error_code ec;
      if (!in.path.empty() && fs::is_directory(in.path, ec) && same(out.path, in.path)) {
        throw ConfigError("command line: " + out.name + " '" + out.path.string() + "' is the directory " + in.name +
                          " '" + in.path.string() + "', not a file");
      }
    }
    for (std::size_t j = 0; j < i; ++j) {
      if (!outputs[j].path.empty() && same(out.path, outputs[j].path)) {
        throw ConfigError("command line: " + out.name + " '" + out.path.string() + "' and " + outputs[j].name + " '" +
                          outputs[j].path.string() + "' are the same file; each output needs its own");
      }
    }
  }
}

}  // namespace swarm
