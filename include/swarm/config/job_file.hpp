#pragma once
// Job files: INI text read with Boost.Program_options, command-line overrides on top
// (the command line wins), typed values with defaults, and dynamic tables such as
// [class.a100] whose names the schema cannot know in advance.
//
// Every error is a ConfigError whose message names the file, the key and the value.
#include <boost/program_options.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace swarm {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A job file key the program does not know (the file may be another program's job).
class UnknownKeyError : public ConfigError {
 public:
  using ConfigError::ConfigError;
};

/// One `[prefix.name]` section: its keys and raw values.
struct Table {
  std::string name;                           // e.g. "a100"
  std::map<std::string, std::string> values;  // key -> raw text
};

class JobFile {
 public:
  /// Parses `path` (if non-empty) and `overrides` (command-line arguments "--key value") against
  /// `schema`. Keys "prefix.name.key" for a prefix in `tables` become tables, from the file or
  /// the command line (which wins there too); any other key not in the schema, and any argument
  /// that is not an option, is an error.
  JobFile(std::filesystem::path path, const boost::program_options::options_description& schema,
          std::span<const std::string> tables, std::vector<std::string> overrides = {});

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] const std::string& text() const { return text_; }
  [[nodiscard]] std::string where() const;  // "job file 'x.ini'" or "command line"
  /// Where `key`'s value came from: "command line" if it was given there, else where().
  [[nodiscard]] std::string where(const std::string& key) const;

  template <typename T>
  [[nodiscard]] T get(const std::string& key) const {
    try {
      return values_.at(key).as<T>();
    } catch (const std::exception&) {
      throw ConfigError(where() + ": key '" + key + "' is missing or has the wrong type");
    }
  }
  [[nodiscard]] bool has(const std::string& key) const { return values_.count(key) > 0 && !values_[key].empty(); }
  [[nodiscard]] bool defaulted(const std::string& key) const { return values_[key].defaulted(); }

  /// Refuses an output path (`option`, e.g. "--trace") that is the job file itself, which
  /// writing it would destroy.
  void refuse_as_output(const std::filesystem::path& output, const std::string& option) const;

  /// Throws ConfigError "FILE: key 'k' = 'v': <reason>" (FILE as where(key) says).
  [[noreturn]] void fail(const std::string& key, const std::string& value, const std::string& reason) const;

  /// Checks that make the usual messages: value > 0, value >= 0, lo <= value <= hi.
  double positive(const std::string& key) const;
  double non_negative(const std::string& key) const;
  double in_range(const std::string& key, double lo, double hi) const;
  /// An integer key in lo..hi.
  long integer(const std::string& key, long lo, long hi) const;
  /// A seed: 0..2^63-1, so that traces can store it as a signed 64-bit attribute, and so that
  /// "-1" (which the unsigned parse wraps to 2^64-1) is refused.
  std::uint64_t seed(const std::string& key) const;

  [[nodiscard]] const std::vector<Table>& tables(const std::string& prefix) const;

  /// Effective configuration, one "key = value" line per option, for the log and the trace.
  [[nodiscard]] std::string effective() const;

 private:
  std::filesystem::path path_;
  std::string text_;
  boost::program_options::variables_map values_;
  std::map<std::string, std::vector<Table>> tables_;
  std::vector<std::string> keys_;
  std::set<std::string> from_command_line_;
};

/// Whether every key of the job file at `path` belongs to `schema` (or its `tables`): a job of
/// the program with that schema. Values are not checked; false when the file cannot be read.
[[nodiscard]] bool keys_fit(const std::filesystem::path& path, const boost::program_options::options_description& schema,
                            std::span<const std::string> tables);

/// Another program's kind of job file, for the hint of read_job_file.
struct OtherJobKind {
  boost::program_options::options_description schema;
  std::string what;     // "a simulator job"
  std::string command;  // "swarm_sim --job FILE --trace OUT.h5" (FILE: the path)
};

/// JobFile(path, schema, tables, overrides), except that a key the schema does not know, in a
/// file whose keys all belong to one of `others` (tables "class"), says what the file is and
/// which command runs it.
[[nodiscard]] JobFile read_job_file(const std::filesystem::path& path,
                                    const boost::program_options::options_description& schema,
                                    std::span<const std::string> tables, const std::vector<std::string>& overrides,
                                    std::span<const OtherJobKind> others);

/// The command line's schema options, its table keys (--class.big.span 3) left out: a first look
/// (--help, --job, --trace) before the job file is read. Throws po::error or ConfigError.
[[nodiscard]] boost::program_options::variables_map preview_command_line(
    const std::vector<std::string>& args, const boost::program_options::options_description& schema,
    std::span<const std::string> tables);

/// A number as job-file messages write it ("%g"-like, shortest).
[[nodiscard]] std::string format_number(double value);

/// Splits "a, b ,c" into {"a","b","c"} (empty items are dropped).
[[nodiscard]] std::vector<std::string> split_list(const std::string& text, char sep = ',');

/// Parses a number; ConfigError via `job.fail(key, ...)` when `text` is not one.
double parse_number(const JobFile& job, const std::string& key, const std::string& text);

/// A value as messages echo it: control characters (a NUL included) as \xNN, and cut after
/// `limit` characters with the full length said, so that a 2,000,000-character value does not
/// become a 2 MB message.
[[nodiscard]] std::string readable_value(std::string_view value, std::size_t limit = 80);

/// A path a run reads or writes, and what names it in messages ("--trace", "model.dir").
struct NamedPath {
  std::string name;
  std::filesystem::path path;
};

/// Throws ConfigError before anything is opened for writing when an output is, or resolves to
/// (symbolic links, "..", hard links), a file the run reads, or when two outputs are the same
/// file. An input that is a directory (a checkpoint) stands for every file directly in it.
/// Empty paths are skipped.
void refuse_outputs_over_inputs(const std::vector<NamedPath>& outputs, const std::vector<NamedPath>& inputs);

}  // namespace swarm
