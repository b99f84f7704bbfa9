#include "swarm/trace/trace.hpp"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "swarm/version.hpp"

#include <vector>

namespace swarm::trace {
namespace {

static_assert(std::is_same_v<hid_t, std::int64_t>, "Handle stores hid_t as int64_t");

// The HDF5 error stack as one line: the system error where a call reached the OS (a full disk:
// "No space left on device (errno 28)"), else the innermost description.
std::string error_stack() {
  struct Walk {
    std::string innermost;
    int err = 0;
  } walk;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        auto& w = *static_cast<Walk*>(out);
        const std::string desc = e->desc ? e->desc : "";
        w.innermost = (e->func_name ? std::string(e->func_name) + ": " : std::string()) + desc;
        if (const auto at = desc.find("errno = "); at != std::string::npos && w.err == 0) {
          w.err = std::atoi(desc.c_str() + at + 8);
        }
        return 0;
      },
      &walk);
  H5Eclear2(H5E_DEFAULT);
  if (walk.err != 0) return std::string(std::strerror(walk.err)) + " (errno " + std::to_string(walk.err) + ")";
  const auto newline = walk.innermost.find('\n');
  return newline == std::string::npos ? walk.innermost : walk.innermost.substr(0, newline);
}

// One check for every HDF5 call: negative means failure.
template <typename R>
R check(R result, const char* what, const std::string& path) {
  if (result < 0) {
    throw TraceError(std::string("HDF5 ") + what + " failed for '" + path + "': " + error_stack());
  }
  return result;
}

hid_t native(Type type) {
  switch (type) {
    case Type::f64: return H5T_NATIVE_DOUBLE;
    case Type::f32: return H5T_NATIVE_FLOAT;
    case Type::i64: return H5T_NATIVE_INT64;
    case Type::i32: return H5T_NATIVE_INT32;
    case Type::u8: return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_DOUBLE;
}

// Library defaults print every error to stderr; we report them through TraceError instead.
struct QuietErrors {
  QuietErrors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }
};
void quiet() { static QuietErrors once; }

// Variable-length UTF-8 strings: h5py reads them back as str, h5dump prints them plainly.
Handle string_type(const std::string& path) {
  Handle t(check(H5Tcopy(H5T_C_S1), "H5Tcopy", path), H5Tclose);
  check(H5Tset_size(t.id(), H5T_VARIABLE), "H5Tset_size", path);
  check(H5Tset_cset(t.id(), H5T_CSET_UTF8), "H5Tset_cset", path);
  return t;
}

void write_attribute(hid_t object, std::string_view name, hid_t type, const void* data,
                     const std::string& path) {
  const std::string key(name);
  if (check(H5Aexists(object, key.c_str()), "H5Aexists", path) > 0) {
    check(H5Adelete(object, key.c_str()), "H5Adelete", path);
  }
  Handle space(check(H5Screate(H5S_SCALAR), "H5Screate", path), H5Sclose);
  Handle attr(check(H5Acreate2(object, key.c_str(), type, space.id(), H5P_DEFAULT, H5P_DEFAULT),
                    "H5Acreate2", path + "@" + key),
              H5Aclose);
  check(H5Awrite(attr.id(), type, data), "H5Awrite", path + "@" + key);
}

void string_attribute(hid_t object, std::string_view name, std::string_view value, const std::string& path) {
  Handle t = string_type(path);
  const std::string copy(value);
  const char* data = copy.c_str();
  write_attribute(object, name, t.id(), &data, path);
}

std::string join(const std::string& parent, std::string_view name) {
  return (parent == "/" ? "/" : parent + "/") + std::string(name);
}

}  // namespace

void Handle::reset() {
  if (id_ >= 0 && close_ != nullptr) close_(id_);
  id_ = -1;
}

Series::Series(Handle dataset, Type type, std::size_t columns, std::string path)
    : dataset_(std::move(dataset)), type_(type), columns_(columns), path_(std::move(path)) {}

void Series::append_raw(const void* data, Type type, std::size_t count) {
  if (type != type_) throw TraceError("append to '" + path_ + "' with the wrong element type");
  const std::size_t width = columns_ == 0 ? 1 : columns_;
  if (count != width) {
    throw TraceError("append to '" + path_ + "': row of " + std::to_string(count) + " values, expected " +
                     std::to_string(width));
  }
  const int rank = columns_ == 0 ? 1 : 2;
  const hsize_t extent[2] = {rows_ + 1, columns_};
  check(H5Dset_extent(dataset_.id(), extent), "H5Dset_extent", path_);
  Handle file_space(check(H5Dget_space(dataset_.id()), "H5Dget_space", path_), H5Sclose);
  const hsize_t start[2] = {rows_, 0};
  const hsize_t shape[2] = {1, columns_};
  check(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start, nullptr, shape, nullptr),
        "H5Sselect_hyperslab", path_);
  Handle mem_space(check(H5Screate_simple(rank, shape, nullptr), "H5Screate_simple", path_), H5Sclose);
  check(H5Dwrite(dataset_.id(), native(type_), mem_space.id(), file_space.id(), H5P_DEFAULT, data),
        "H5Dwrite", path_);
  ++rows_;
}

void Series::set_attribute(std::string_view name, std::string_view value) {
  string_attribute(dataset_.id(), name, value, path_);
}

Group Group::group(std::string_view name) {
  const std::string path = join(path_, name);
  Handle g(check(H5Gcreate2(group_.id(), std::string(name).c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                 "H5Gcreate2", path),
           H5Gclose);
  return Group(std::move(g), path);
}

Series Group::series(std::string_view name, Type type, std::size_t columns, std::string_view units) {
  const std::string path = join(path_, name);
  const int rank = columns == 0 ? 1 : 2;
  const hsize_t dims[2] = {0, columns};
  const hsize_t maxdims[2] = {H5S_UNLIMITED, columns};
  // Chunks of ~64 KiB: small enough that a per-period append rewrites little, large enough
  // that reading a whole run back is fast.
  const hsize_t row_bytes = (columns == 0 ? 1 : columns) * 8;
  const hsize_t chunk[2] = {std::max<hsize_t>(1, std::min<hsize_t>(1024, 65536 / row_bytes)),
                            std::max<hsize_t>(1, columns)};
  Handle space(check(H5Screate_simple(rank, dims, maxdims), "H5Screate_simple", path), H5Sclose);
  Handle props(check(H5Pcreate(H5P_DATASET_CREATE), "H5Pcreate", path), H5Pclose);
  check(H5Pset_chunk(props.id(), rank, chunk), "H5Pset_chunk", path);
  Handle ds(check(H5Dcreate2(group_.id(), std::string(name).c_str(), native(type), space.id(), H5P_DEFAULT,
                             props.id(), H5P_DEFAULT),
                  "H5Dcreate2", path),
            H5Dclose);
  Series s(std::move(ds), type, columns, path);
  if (!units.empty()) s.set_attribute("units", units);
  return s;
}

void Group::write_strings(std::string_view name, std::span<const std::string> values) {
  const std::string path = join(path_, name);
  std::vector<const char*> pointers;
  for (const auto& v : values) pointers.push_back(v.c_str());
  Handle t = string_type(path);
  const hsize_t dims[1] = {values.size()};
  Handle space(check(H5Screate_simple(1, dims, nullptr), "H5Screate_simple", path), H5Sclose);
  Handle ds(check(H5Dcreate2(group_.id(), std::string(name).c_str(), t.id(), space.id(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  "H5Dcreate2", path),
            H5Dclose);
  if (!values.empty()) check(H5Dwrite(ds.id(), t.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()), "H5Dwrite", path);
}

void Group::write_raw(std::string_view name, Type type, const void* data, std::size_t count,
                      std::string_view units) {
  const std::string path = join(path_, name);
  const hsize_t dims[1] = {count};
  Handle space(check(H5Screate_simple(1, dims, nullptr), "H5Screate_simple", path), H5Sclose);
  Handle ds(check(H5Dcreate2(group_.id(), std::string(name).c_str(), native(type), space.id(), H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT),
                  "H5Dcreate2", path),
            H5Dclose);
  if (count > 0) check(H5Dwrite(ds.id(), native(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data), "H5Dwrite", path);
  if (!units.empty()) string_attribute(ds.id(), "units", units, path);
}

void Group::set_attribute(std::string_view name, std::string_view value) {
  string_attribute(group_.id(), name, value, path_);
}
void Group::set_attribute(std::string_view name, double value) {
  write_attribute(group_.id(), name, H5T_NATIVE_DOUBLE, &value, path_);
}
void Group::set_attribute(std::string_view name, std::int64_t value) {
  write_attribute(group_.id(), name, H5T_NATIVE_INT64, &value, path_);
}

File File::create(const std::filesystem::path& path) {
  quiet();
  const std::string p = path.string();
  // The usual mistakes get one line, not HDF5's error stack.
  std::error_code ec;
  if (p.empty()) throw TraceError("cannot create trace file '': the path is empty");
  if (std::filesystem::is_directory(path, ec)) throw TraceError("cannot create trace file '" + p + "': it is a directory");
  // A device, pipe or socket (/dev/null) would be truncated and, on a failure, removed.
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw TraceError("cannot create trace file '" + p + "': it exists and is not a regular file (a device, pipe or socket)");
  }
  const std::filesystem::path parent = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(parent, ec)) {
    throw TraceError("cannot create trace file '" + p + "': no directory '" + parent.string() + "'");
  }
  Handle fapl(check(H5Pcreate(H5P_FILE_ACCESS), "H5Pcreate", p), H5Pclose);
  // Readers (h5py, h5dump) must be able to open the trace while the run writes it.
  check(H5Pset_file_locking(fapl.id(), false, true), "H5Pset_file_locking", p);
  const hid_t id = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id());
  if (id < 0) {
    throw TraceError("cannot create trace file '" + p + "': " + error_stack());
  }
  File f;
  f.path_ = path;
  f.file_ = Handle(id, H5Fclose);
  f.ballast_.dir = parent;
  try {
    Handle root(check(H5Gopen2(id, "/", H5P_DEFAULT), "H5Gopen2", p), H5Gclose);
    f.root_ = Group(std::move(root), "/");
    f.root_.set_attribute("complete", std::int64_t{0});
    f.flush();
  } catch (const TraceError& e) {
    // Nothing of this run is in it: no file is left that a reader could take for a trace.
    f.root_ = Group();
    f.file_.reset();
    std::filesystem::remove(path, ec);
    throw TraceError("cannot create trace file '" + p + "': " + e.what());
  }
  return f;
}

// The ballast: `margin` bytes held on the trace's filesystem for the next round of rows. HDF5
// cannot be asked to write "all or nothing", and a flush that fails on a full disk leaves a file
// whose datasets no longer read. So the room is taken before the rows are written: the ballast is
// freed just before a round (make_room, flush) and taken again right after its flush; when it
// cannot be taken, the run stops there with every flushed row readable. The ballast is a file
// without a name, so a killed run leaves nothing behind: the kernel frees it with the process.
File::Ballast::~Ballast() { release(); }

void File::Ballast::release() {
  if (fd < 0) return;
  ::close(fd);
  fd = -1;
}

void File::Ballast::take(std::uintmax_t bytes, const std::string& trace) {
  release();
  int err = 0;
  fd = ::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    // A filesystem without O_TMPFILE: a named file, unlinked at once.
    std::string name = (dir / ".swarm-trace-ballast.").string();
    name.append(std::to_string(::getpid())).append(".XXXXXX");
    fd = ::mkostemp(name.data(), O_CLOEXEC);
    if (fd >= 0) ::unlink(name.c_str());
  }
  if (fd < 0) err = errno;
  if (err == 0) err = ::posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (err == 0) return;
  release();
  throw TraceError("'" + trace + "': no room on its filesystem for the next rows (holding " + std::to_string(bytes) +
                   " bytes in '" + dir.string() + "' failed: " + std::strerror(err) + ", errno " + std::to_string(err) +
                   "); the rows flushed so far read back");
}

void File::make_room() { ballast_.release(); }

void File::flush() {
  ballast_.release();
  check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "H5Fflush", path_.string());
  hsize_t size = 0;
  check(H5Fget_filesize(file_.id(), &size), "H5Fget_filesize", path_.string());
  // Room for twice the largest growth of one round (the first ones create the datasets), and at
  // least 1 MiB.
  if (size > last_size_) margin_ = std::max<std::uintmax_t>(margin_, 2 * (size - last_size_));
  last_size_ = size;
  ballast_.take(margin_, path_.string());
}

void File::finish() {
  ballast_.release();
  root_.set_attribute("complete", std::int64_t{1});
  check(H5Fflush(file_.id(), H5F_SCOPE_GLOBAL), "H5Fflush", path_.string());
  root_ = Group();
  file_.reset();
}

void write_run_info(Group& root, const RunInfo& info) {
  root.set_attribute("program", info.program);
  root.set_attribute("version", std::string(kVersion));
  root.set_attribute("hdf5_version", hdf5_version());
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  root.set_attribute("created", std::string(stamp));
  root.set_attribute("job_file", info.job_file);
  root.set_attribute("job_text", info.job_text);
  root.set_attribute("effective_config", info.effective);
  root.set_attribute("seed", static_cast<std::int64_t>(info.seed));
}

std::string hdf5_version() {
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

}  // namespace swarm::trace
