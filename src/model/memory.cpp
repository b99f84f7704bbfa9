#include "memory.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "swarm/model/errors.hpp"

namespace swarm::model::detail {
namespace {

std::uint64_t read_number(const char* path) {
  std::ifstream in(path);
  std::string text;
  if (!(in >> text) || text == "max") return std::numeric_limits<std::uint64_t>::max();
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    return std::numeric_limits<std::uint64_t>::max();
  }
}

std::uint64_t mem_available() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib * 1024;
  }
  const long pages = ::sysconf(_SC_AVPHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page)
                               : std::numeric_limits<std::uint64_t>::max();
}

}  // namespace

std::uint64_t available_host_bytes() {
  std::uint64_t available = mem_available();
  const std::uint64_t limit = read_number("/sys/fs/cgroup/memory.max");
  if (limit != std::numeric_limits<std::uint64_t>::max()) {
    const std::uint64_t used = read_number("/sys/fs/cgroup/memory.current");
    available = std::min(available, used < limit ? limit - used : 0);
  }
  return available;
}

std::string format_bytes(std::uint64_t bytes) {
  char text[64];
  const double b = static_cast<double>(bytes);
  if (b >= 0x1p30) {
    std::snprintf(text, sizeof text, "%.2f GiB", b / 0x1p30);
  } else if (b >= 0x1p20) {
    std::snprintf(text, sizeof text, "%.2f MiB", b / 0x1p20);
  } else {
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return text;
}

void require_memory(const std::string& what, std::uint64_t needed, std::uint64_t available, const std::string& where) {
  if (needed <= available) return;
  throw OutOfMemoryError(what + " needs " + format_bytes(needed) + " of " + where + " memory but only " +
                         format_bytes(available) + " is available");
}

}  // namespace swarm::model::detail
