#include "safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "swarm/model/errors.hpp"

namespace swarm::model::detail {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

float f16_to_f32(std::uint16_t bits) {
  const std::uint32_t sign = (bits & 0x8000U) << 16;
  const std::uint32_t exponent = (bits >> 10) & 0x1FU;
  const std::uint32_t mantissa = bits & 0x3FFU;
  if (exponent == 0) {  // zero or subnormal: mantissa * 2^-24, exact in fp32
    const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
    return sign != 0 ? -magnitude : magnitude;
  }
  const std::uint32_t out = exponent == 0x1FU ? sign | 0x7F800000U | (mantissa << 13)  // inf / NaN
                                              : sign | ((exponent + 112U) << 23) | (mantissa << 13);
  return std::bit_cast<float>(out);
}

float bf16_to_f32(std::uint16_t bits) { return std::bit_cast<float>(std::uint32_t{bits} << 16); }

std::uint16_t f32_to_bf16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  if ((bits & 0x7FFFFFFFU) > 0x7F800000U) return static_cast<std::uint16_t>((bits >> 16) | 0x40U);  // quiet NaN
  const std::uint32_t rounding = 0x7FFFU + ((bits >> 16) & 1U);
  return static_cast<std::uint16_t>((bits + rounding) >> 16);
}

std::uint16_t f32_to_f16(float value) {
  const auto bits = std::bit_cast<std::uint32_t>(value);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000U);
  const std::uint32_t magnitude = bits & 0x7FFFFFFFU;
  if (magnitude > 0x7F800000U) return static_cast<std::uint16_t>(sign | 0x7E00U);  // NaN
  if (magnitude >= 0x477FF000U) return static_cast<std::uint16_t>(sign | 0x7C00U);  // rounds to inf
  if (magnitude < 0x38800000U) {  // below the smallest normal half: a subnormal or zero
    // value * 2^24 rounded to an integer is the subnormal's mantissa (rint: nearest even).
    const float scaled = std::bit_cast<float>(magnitude) * 16777216.0F;
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(scaled)));
  }
  const std::uint32_t rounded = magnitude + 0xFFFU + ((magnitude >> 13) & 1U);
  return static_cast<std::uint16_t>(sign | ((rounded - 0x38000000U) >> 13));
}

std::string shape_string(std::span<const std::int64_t> shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

namespace {

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& what) {
  throw CheckpointError(path.string() + ": " + what);
}

// Bytes per element of the safetensors dtypes (0 = unknown, size not checked).
std::uint64_t item_size(const std::string& dtype) {
  static constexpr std::pair<const char*, std::uint64_t> kSizes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"U64", 8}, {"I32", 4}, {"U32", 4},
      {"I16", 2}, {"U16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  for (const auto& [name, size] : kSizes) {
    if (dtype == name) return size;
  }
  return 0;
}

TensorEntry parse_entry(const std::filesystem::path& path, const std::string& name, const nlohmann::json& value,
                        std::uint64_t data_start, std::uint64_t file_size) {
  const auto bad = [&](const std::string& why) { fail(path, "tensor '" + name + "': " + why); };
  if (!value.is_object() || !value.contains("dtype") || !value.contains("shape") || !value.contains("data_offsets")) {
    bad("header entry lacks dtype, shape or data_offsets");
  }
  TensorEntry entry;
  const auto& dtype = value["dtype"];
  const auto& shape = value["shape"];
  const auto& offsets = value["data_offsets"];
  if (!dtype.is_string()) bad("dtype is not a string");
  entry.dtype = dtype.get<std::string>();
  if (!shape.is_array()) bad("shape is not an array");
  std::uint64_t elements = 1;
  for (const auto& dim : shape) {
    if (!dim.is_number_unsigned()) bad("shape " + shape.dump() + " has a non-integer or negative dimension");
    // Every dtype takes at least a byte, so more elements than the file has bytes is corrupt; the
    // check also keeps the product from wrapping (2^40 x 2^40 would read as 0 elements).
    const auto d = dim.get<std::uint64_t>();
    if (d != 0 && elements > file_size / d) bad("shape " + shape.dump() + " has more elements than the file has bytes");
    entry.shape.push_back(static_cast<std::int64_t>(d));
    elements *= d;
  }
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    bad("data_offsets " + offsets.dump() + " is not a pair of byte offsets");
  }
  const auto begin = offsets[0].get<std::uint64_t>();
  const auto end = offsets[1].get<std::uint64_t>();
  if (end < begin) bad("data_offsets " + offsets.dump() + " end before begin");
  if (const auto size = item_size(entry.dtype); size != 0 && end - begin != elements * size) {
    bad("data_offsets " + offsets.dump() + " hold " + std::to_string(end - begin) + " bytes but " + entry.dtype + " " +
        shape_string(entry.shape) + " needs " + std::to_string(elements * size));
  }
  if (data_start + end > file_size) {
    bad("data [" + std::to_string(data_start + begin) + ", " + std::to_string(data_start + end) +
        ") extends past the end of the file (" + std::to_string(file_size) + " bytes): file truncated?");
  }
  entry.begin = data_start + begin;
  entry.end = data_start + end;
  return entry;
}

}  // namespace

void write_safetensors(const std::filesystem::path& path, std::span<const RawTensor> tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::uint64_t offset = 0;
  for (const auto& tensor : tensors) {
    header[tensor.name] = {{"dtype", tensor.dtype}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + tensor.data.size()}}};
    offset += tensor.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  const std::uint64_t length = text.size();
  out.write(reinterpret_cast<const char*>(&length), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& tensor : tensors) {
    out.write(reinterpret_cast<const char*>(tensor.data.data()), static_cast<std::streamsize>(tensor.data.size()));
  }
  if (!out.flush()) fail(path, "cannot write the safetensors file");
}

std::vector<std::byte> f32_bytes(std::span<const float> values) {
  std::vector<std::byte> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

MappedFile::MappedFile(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    const int err = errno;
    ::close(fd);
    fail(path, std::string("cannot stat: ") + std::strerror(err));
  }
  size_ = static_cast<std::size_t>(info.st_size);
  if (size_ > 0) {
    void* map = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail(path, std::string("cannot mmap: ") + std::strerror(err));
    }
    data_ = static_cast<const std::byte*>(map);
  }
  ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

SafetensorsFile::SafetensorsFile(std::filesystem::path path) : path_(std::move(path)), file_(path_) {
  if (file_.size() < 8) fail(path_, "too short for a safetensors file (" + std::to_string(file_.size()) + " bytes)");
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, file_.data(), 8);
  if (header_size > file_.size() - 8) {
    fail(path_, "header length " + std::to_string(header_size) + " exceeds the file size " +
                    std::to_string(file_.size()) + ": not a safetensors file, or truncated");
  }
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(file_.data()) + 8,
                                   reinterpret_cast<const char*>(file_.data()) + 8 + header_size);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    fail(path_, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path_, "header is not a JSON object");
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") continue;
    tensors_.emplace(name, parse_entry(path_, name, value, 8 + header_size, file_.size()));
  }
  // The format gives every tensor its own bytes: overlapping ranges would let one tensor's
  // values change another's (the safetensors reference implementation refuses them too).
  std::vector<std::pair<const std::string*, const TensorEntry*>> by_offset;
  for (const auto& [name, entry] : tensors_) {
    if (entry.end > entry.begin) by_offset.emplace_back(&name, &entry);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (std::size_t i = 1; i < by_offset.size(); ++i) {
    const auto& [prev_name, prev] = by_offset[i - 1];
    const auto& [name, entry] = by_offset[i];
    if (entry->begin < prev->end) {
      fail(path_, "tensor '" + *name + "' (bytes [" + std::to_string(entry->begin) + ", " + std::to_string(entry->end) +
                      ")) overlaps tensor '" + *prev_name + "' (bytes [" + std::to_string(prev->begin) + ", " +
                      std::to_string(prev->end) + ")): data_offsets must not overlap");
    }
  }
}

void SafetensorsFile::read_16(const std::string& name, const TensorEntry& entry, std::span<std::uint16_t> out) const {
  if (entry.dtype != "F16" && entry.dtype != "BF16") {
    fail(path_, "tensor '" + name + "' has dtype " + entry.dtype + ", not F16 or BF16");
  }
  std::memcpy(out.data(), file_.data() + entry.begin, out.size() * 2);
}

void SafetensorsFile::read_f32(const std::string& name, const TensorEntry& entry, std::span<float> out) const {
  const std::byte* src = file_.data() + entry.begin;
  const std::size_t n = out.size();
  if (entry.dtype == "F32") {
    std::memcpy(out.data(), src, n * 4);
  } else if (entry.dtype == "F16" || entry.dtype == "BF16") {
    const bool half = entry.dtype == "F16";
    for (std::size_t i = 0; i < n; ++i) {
      std::uint16_t bits = 0;
      std::memcpy(&bits, src + 2 * i, 2);
      out[i] = half ? f16_to_f32(bits) : bf16_to_f32(bits);
    }
  } else {
    fail(path_, "tensor '" + name + "' has dtype " + entry.dtype + "; only F32, F16 and BF16 are supported");
  }
}

}  // namespace swarm::model::detail
