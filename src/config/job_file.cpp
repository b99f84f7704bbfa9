#include "swarm/job_file.hpp"

#include <cmath>
#include <fstream>
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

JobFile::JobFile(std::filesystem::path path, const po::options_description& schema,
                 std::span<const std::string> tables, std::vector<std::string> overrides)
    : path_(std::move(path)) {
  for (const auto& o : schema.options()) keys_.push_back(o->long_name());
  try {
    po::store(po::command_line_parser(overrides).options(schema).run(), values_);
  } catch (const po::error& e) {
    throw ConfigError(std::string("command line: ") + e.what());
  }
  if (!path_.empty()) {
    std::ifstream in(path_);
    if (!in) throw ConfigError("cannot read job file '" + path_.string() + "'");
    std::stringstream buffer;
    buffer << in.rdbuf();
    text_ = buffer.str();
    std::istringstream stream(text_);
    try {
      const po::parsed_options parsed = po::parse_config_file(stream, schema, true);
      for (const auto& opt : parsed.options) {
        if (!opt.unregistered) continue;
        const std::string& key = opt.string_key;
        const auto dot1 = key.find('.');
        const auto dot2 = dot1 == std::string::npos ? dot1 : key.find('.', dot1 + 1);
        const std::string prefix = key.substr(0, dot1);
        const bool known_table = std::find(tables.begin(), tables.end(), prefix) != tables.end();
        const std::string value = opt.value.empty() ? "" : opt.value.front();
        if (!known_table || dot2 == std::string::npos) {
          throw ConfigError(where() + ": unknown key '" + key + "' (value '" + value + "')");
        }
        const std::string name = key.substr(dot1 + 1, dot2 - dot1 - 1);
        auto& list = tables_[prefix];
        auto it = std::find_if(list.begin(), list.end(), [&](const Table& t) { return t.name == name; });
        if (it == list.end()) it = list.insert(list.end(), Table{name, {}});
        const std::string field = key.substr(dot2 + 1);
        if (const auto [at, fresh] = it->values.emplace(field, value); !fresh) {
          throw ConfigError(where() + ": key '" + key + "' is given twice (values '" + at->second + "' and '" +
                            value + "')");
        }
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

void JobFile::fail(const std::string& key, const std::string& value, const std::string& reason) const {
  throw ConfigError(where() + ": key '" + key + "' = '" + value + "': " + reason);
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
    r << "must be in [" << lo << ", " << hi << "]";
    fail(key, format_value(values_[key]), r.str());
  }
  return v;
}

long JobFile::integer(const std::string& key, long lo, long hi) const {
  const long v = get<long>(key);
  if (v < lo || v > hi) fail(key, std::to_string(v), "must be in " + std::to_string(lo) + ".." + std::to_string(hi));
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
    const double v = std::stod(text, &used);
    if (used != text.size()) throw std::invalid_argument("trailing text");
    return v;
  } catch (const std::exception&) {
    job.fail(key, text, "not a number");
  }
}

}  // namespace swarm
