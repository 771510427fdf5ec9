// A Hugging Face model folder: config.json, model.safetensors or a sharded
// model.safetensors.index.json with its shards (all mmapped), validated before anything is used.
#pragma once
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/dtype.h"
#include "engine/model_config.h"
#include "loader/safetensors.h"

namespace nibble {

class ModelFolder {
 public:
  // Throws nibble::Error naming the file (and tensor) for anything missing or malformed.
  static ModelFolder open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const std::string& config_json() const { return config_json_; }  // raw text, for re-export
  const TensorInfo* find(std::string_view name) const;             // nullptr if absent
  const TensorInfo& require(std::string_view name) const;          // error naming tensor and folder
  std::vector<const TensorInfo*> tensors() const;                  // in file order
  uint64_t total_bytes() const;                                    // of all tensors' data

 private:
  std::filesystem::path dir_;
  ModelConfig config_;
  std::string config_json_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
};

// Parses config.json text; `origin` (the file's path) is named in errors.
ModelConfig parse_model_config(std::string_view json_text, const std::string& origin);

// Parses model.safetensors.index.json text: its weight_map, tensor name -> shard file name (a
// plain file name inside the folder). `origin` is named in errors.
std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text,
                                                           const std::string& origin);

}  // namespace nibble
