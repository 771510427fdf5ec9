// safetensors files read through mmap, every header field validated (dtype, shape, offsets inside
// the data section, no overlaps, header length inside the file).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/dtype.h"

namespace nibble {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;  // F32, F16, BF16, U8, I32 (others are rejected)
  std::vector<int64_t> shape;
  // Inside the mmap. Aligned to the element size in files HF or nibble wrote; the format does not
  // promise it, so readers of other files copy (memcpy) rather than cast.
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // for error messages
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::filesystem::path& path);
  // Parses an in-memory image (fuzzing, tests); `bytes` must outlive the object.
  static std::shared_ptr<SafetensorsFile> parse(const uint8_t* bytes, size_t size,
                                                const std::string& origin);
  ~SafetensorsFile();

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  size_t file_size() const { return map_size_; }  // header and data, in bytes

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors to `path` atomically (a temporary file renamed on success), wider dtypes first so
// that each tensor's data is aligned to its element size (as Hugging Face's writer does).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace nibble
