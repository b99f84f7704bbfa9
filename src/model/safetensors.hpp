#pragma once
// Internal: a read-only, memory-mapped safetensors file (8-byte little-endian header length,
// JSON header, raw little-endian data) and the fp16/bf16 -> fp32 conversions.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace swarm::model::detail {

/// IEEE 754 binary16 -> binary32, exact (subnormals, signed zeros, inf and NaN included).
[[nodiscard]] float f16_to_f32(std::uint16_t bits);
/// bfloat16 -> binary32: the upper half of the fp32 bit pattern.
[[nodiscard]] float bf16_to_f32(std::uint16_t bits);
/// binary32 -> bfloat16, rounded to nearest even (NaN stays NaN), as torch's .to(bfloat16).
[[nodiscard]] std::uint16_t f32_to_bf16(float value);
/// binary32 -> binary16, rounded to nearest even (overflow to inf), as torch's .to(float16).
[[nodiscard]] std::uint16_t f32_to_f16(float value);

/// "[64, 128]".
[[nodiscard]] std::string shape_string(std::span<const std::int64_t> shape);

/// One tensor's entry in a safetensors header; offsets are relative to the file start.
struct TensorEntry {
  std::string dtype;  // as written: "F32", "F16", "BF16", ...
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// A tensor to write: raw little-endian bytes of `dtype` ("F32", "F16", "BF16", ...).
struct RawTensor {
  std::string name;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<std::byte> data;
};

/// Writes a safetensors file (tensors in the given order, header padded to 8 bytes). Throws
/// CheckpointError naming the file when it cannot be written.
void write_safetensors(const std::filesystem::path& path, std::span<const RawTensor> tensors);

/// The bytes of fp32 values.
[[nodiscard]] std::vector<std::byte> f32_bytes(std::span<const float> values);

/// A read-only mapping of a whole file, unmapped on destruction.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  [[nodiscard]] const std::byte* data() const { return data_; }
  [[nodiscard]] std::size_t size() const { return size_; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

class SafetensorsFile {
 public:
  /// Maps the file and parses and checks its header; throws CheckpointError naming the file (and
  /// the tensor) for a bad header, an unknown dtype size mismatch or data past the end of file.
  explicit SafetensorsFile(std::filesystem::path path);

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] const std::map<std::string, TensorEntry>& tensors() const { return tensors_; }
  /// Converts `entry`'s data to fp32 into `out` (entry.shape elements); F32, F16, BF16 only.
  void read_f32(const std::string& name, const TensorEntry& entry, std::span<float> out) const;
  /// Copies a F16 or BF16 tensor's raw 16-bit words into `out` (entry.shape elements).
  void read_16(const std::string& name, const TensorEntry& entry, std::span<std::uint16_t> out) const;

 private:
  std::filesystem::path path_;
  MappedFile file_;
  std::map<std::string, TensorEntry> tensors_;
};

}  // namespace swarm::model::detail
