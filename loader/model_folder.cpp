#include "loader/model_folder.h"

#include <set>
#include <system_error>

#include "engine/error.h"
#include "loader/json_text.h"

namespace nibble {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kExpected =
    "a Hugging Face model folder holds config.json and model.safetensors (or "
    "model.safetensors.index.json and its shards)";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool is_empty_folder(const fs::path& dir) {
  std::error_code ec;
  return fs::is_empty(dir, ec) && !ec;
}

bool has_pytorch_weights(const fs::path& dir) {
  return is_file(dir / "pytorch_model.bin") || is_file(dir / "pytorch_model.bin.index.json");
}

}  // namespace

std::map<std::string, std::string> parse_safetensors_index(std::string_view json_text,
                                                           const std::string& origin) {
  const json j = parse_json(json_text, origin, "the shard index", nullptr);
  if (!j.is_object()) fail(origin + ": not a JSON object");
  const auto map = j.find("weight_map");
  if (map == j.end() || !map->is_object() || map->empty())
    fail(origin + ": \"weight_map\" is missing, empty, or not an object");
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : map->items()) {
    if (!shard.is_string())
      fail(origin + ": weight_map maps tensor \"" + tensor + "\" to " + shard.dump() +
           ", not to a file name");
    const std::string& file = shard.get_ref<const std::string&>();
    // Only files beside the index: a path elsewhere on disk is not part of the model.
    if (file.empty() || file == "." || file == ".." ||
        file.find_first_of("/\\") != std::string::npos)
      fail(origin + ": weight_map maps tensor \"" + tensor + "\" to \"" + file +
           "\", which is not a file name in the model folder");
    out[tensor] = file;
  }
  return out;
}

ModelFolder ModelFolder::open(const fs::path& dir) {
  const std::string name = dir.string();
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail("model folder " + name + " does not exist (" + kExpected + ")");
  if (!fs::is_directory(dir, ec)) fail(name + " is not a folder (" + kExpected + ")");

  ModelFolder folder;
  folder.dir_ = dir;
  const fs::path config = dir / "config.json";
  if (!is_file(config))
    fail(is_empty_folder(dir) ? "model folder " + name + " is empty (" + kExpected + ")"
                              : "model folder " + name + " has no config.json (" + kExpected + ")");
  folder.config_json_ = read_text_file(config.string());
  folder.config_ = parse_model_config(folder.config_json_, config.string());

  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (is_file(single)) {
    folder.files_.push_back(SafetensorsFile::open(single));
  } else if (is_file(index)) {
    const std::string origin = index.string();
    const std::map<std::string, std::string> weight_map =
        parse_safetensors_index(read_text_file(origin), origin);
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;  // by file name, in order
    for (const auto& [tensor, shard] : weight_map) {
      if (shards.count(shard)) continue;
      if (!is_file(dir / shard))
        fail(origin + " names shard " + shard + " (for tensor \"" + tensor +
             "\"), which is not in " + name);
      shards[shard] = SafetensorsFile::open(dir / shard);
    }
    for (const auto& [tensor, shard] : weight_map)
      if (!shards[shard]->find(tensor))
        fail(origin + " maps tensor \"" + tensor + "\" to " + shard + ", which does not hold it");
    for (auto& [file, shard] : shards) folder.files_.push_back(std::move(shard));
  } else {
    fail("model folder " + name + " has no model.safetensors or model.safetensors.index.json" +
         (has_pytorch_weights(dir) ? " (only PyTorch .bin weights: convert them to safetensors)"
                                   : ""));
  }

  // A tensor in two files would make find() depend on the order the files were opened.
  std::map<std::string_view, const std::string*> seen;
  for (const auto& file : folder.files_)
    for (const TensorInfo& t : file->tensors())
      if (const auto [it, fresh] = seen.emplace(t.name, &file->path()); !fresh)
        fail("tensor \"" + t.name + "\" is in both " + *it->second + " and " + file->path());
  return folder;
}

const TensorInfo* ModelFolder::find(std::string_view name) const {
  for (const auto& file : files_)
    if (const TensorInfo* t = file->find(name)) return t;
  return nullptr;
}

const TensorInfo& ModelFolder::require(std::string_view name) const {
  if (const TensorInfo* t = find(name)) return *t;
  fail("tensor \"" + std::string(name) + "\" is missing from the weights in " + dir_.string());
}

std::vector<const TensorInfo*> ModelFolder::tensors() const {
  std::vector<const TensorInfo*> out;
  for (const auto& file : files_)
    for (const TensorInfo& t : file->tensors()) out.push_back(&t);
  return out;
}

uint64_t ModelFolder::total_bytes() const {
  uint64_t n = 0;
  for (const auto& file : files_)
    for (const TensorInfo& t : file->tensors()) n += t.nbytes;
  return n;
}

}  // namespace nibble
