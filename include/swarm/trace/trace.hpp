#pragma once
// HDF5 traces: thin RAII over the C API (one owner per hid_t, move-only), appendable 1-D and
// 2-D datasets (chunked, unlimited first dimension) and attributes. Schema: docs/trace.md.
//
// A trace is written to its final path and carries the root attribute `complete` = 0 until
// `File::finish()` sets it to 1, so a reader can tell a finished run from one that was killed
// or failed. Every `flush()` leaves the file readable by h5py and h5dump (file locking is off so
// that they can open it while the writer runs).
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace swarm::trace {

/// An HDF5 call failed; the message holds the operation, the object path and the HDF5 error stack.
class TraceError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Owns one hid_t and closes it with the right H5*close.
class Handle {
 public:
  using Closer = int (*)(std::int64_t);
  Handle() = default;
  Handle(std::int64_t id, Closer close) : id_(id), close_(close) {}
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, -1)), close_(o.close_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, -1);
      close_ = o.close_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }
  [[nodiscard]] std::int64_t id() const { return id_; }
  [[nodiscard]] bool valid() const { return id_ >= 0; }
  void reset();

 private:
  std::int64_t id_ = -1;
  Closer close_ = nullptr;
};

enum class Type { f64, f32, i64, i32, u8 };

template <typename T>
constexpr Type type_of();
template <> constexpr Type type_of<double>() { return Type::f64; }
template <> constexpr Type type_of<float>() { return Type::f32; }
template <> constexpr Type type_of<std::int64_t>() { return Type::i64; }
template <> constexpr Type type_of<std::int32_t>() { return Type::i32; }
template <> constexpr Type type_of<std::uint8_t>() { return Type::u8; }

/// A dataset whose first dimension grows by one row per append: 1-D (`columns == 0`, a
/// scalar per row) or 2-D ([rows, columns]).
class Series {
 public:
  Series() = default;
  Series(Handle dataset, Type type, std::size_t columns, std::string path);

  template <typename T>
  void append(T value) {
    static_assert(std::is_arithmetic_v<T>);
    append_raw(&value, type_of<T>(), 1);
  }
  template <typename T>
  void append_row(std::span<const T> row) {
    append_raw(row.data(), type_of<T>(), row.size());
  }
  [[nodiscard]] std::size_t rows() const { return rows_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  void set_attribute(std::string_view name, std::string_view value);

 private:
  void append_raw(const void* data, Type type, std::size_t count);

  Handle dataset_;
  Type type_ = Type::f64;
  std::size_t columns_ = 0;
  std::size_t rows_ = 0;
  std::string path_;
};

class Group {
 public:
  Group() = default;
  Group(Handle group, std::string path) : group_(std::move(group)), path_(std::move(path)) {}

  [[nodiscard]] Group group(std::string_view name);
  /// An appendable dataset of `type`: 1-D for columns == 0, else [rows, columns].
  [[nodiscard]] Series series(std::string_view name, Type type, std::size_t columns = 0,
                              std::string_view units = {});
  /// Writes a whole fixed-size 1-D dataset at once (e.g. a table of the servers).
  void write_strings(std::string_view name, std::span<const std::string> values);
  template <typename T>
  void write(std::string_view name, std::span<const T> values, std::string_view units = {}) {
    write_raw(name, type_of<T>(), values.data(), values.size(), units);
  }

  void set_attribute(std::string_view name, std::string_view value);
  void set_attribute(std::string_view name, double value);
  void set_attribute(std::string_view name, std::int64_t value);
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::int64_t id() const { return group_.id(); }

 private:
  void write_raw(std::string_view name, Type type, const void* data, std::size_t count, std::string_view units);

  Handle group_;
  std::string path_;
};

class File {
 public:
  /// Creates (truncates) `path`; throws TraceError naming the path when it cannot.
  static File create(const std::filesystem::path& path);

  [[nodiscard]] Group& root() { return root_; }
  /// Call before writing a round of rows: frees the room held for them (see flush).
  void make_room();
  /// Pushes everything written so far to the file (called once per period or epoch), then holds
  /// room on the filesystem for the next round (an unnamed file on the trace's filesystem, at
  /// least 1 MiB, twice the largest round so far). Throws TraceError naming the file and the
  /// errno when the flush fails or the room cannot be held (a full disk): the rows flushed so far
  /// then still read back.
  void flush();
  /// Marks the trace complete (`complete` = 1) and closes it.
  void finish();
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  File() = default;
  // Room held on the trace's filesystem: an unnamed file (O_TMPFILE, or one unlinked as soon as
  // it is made) open in this process, so that nothing is left behind however the process ends.
  struct Ballast {
    std::filesystem::path dir;  // the trace's directory: the ballast must be on its filesystem
    int fd = -1;
    Ballast() = default;
    Ballast(Ballast&& o) noexcept : dir(std::move(o.dir)), fd(std::exchange(o.fd, -1)) {}
    Ballast& operator=(Ballast&& o) noexcept {
      release();
      dir = std::move(o.dir);
      fd = std::exchange(o.fd, -1);
      return *this;
    }
    ~Ballast();
    void release();
    void take(std::uintmax_t bytes, const std::string& trace);
  };
  std::filesystem::path path_;
  Handle file_;
  Group root_;
  Ballast ballast_;
  std::uintmax_t margin_ = 1 << 20;
  std::uintmax_t last_size_ = 0;
};

/// Returns the HDF5 library version "major.minor.release".
[[nodiscard]] std::string hdf5_version();

/// What every trace records about its run (docs/trace.md).
struct RunInfo {
  std::string program;
  std::string job_file;   // path
  std::string job_text;   // the job file as read
  std::string effective;  // every key = value after overrides
  std::uint64_t seed = 0;
};

/// Writes the run's metadata as root attributes: program, version, hdf5_version, created (UTC),
/// job_file, job_text, effective_config, seed.
void write_run_info(Group& root, const RunInfo& info);

}  // namespace swarm::trace
