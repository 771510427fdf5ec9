#include "app/chat/load_estimate.h"

#include <unistd.h>

#include "engine/error.h"
#include "engine/model.h"
#include "loader/model_folder.h"

namespace nibble::chat {

LoadEstimate estimate_load(const std::filesystem::path& dir, const QuantConfig& quant, int context,
                           DType kv_dtype) {
  if (!std::filesystem::is_directory(dir)) fail(dir.string() + " is not a folder");
  const ModelFolder folder = ModelFolder::open(dir);
  if (!std::filesystem::exists(dir / "tokenizer.json"))
    fail(dir.string() + " has no tokenizer.json");
  ModelOptions options;
  options.context = context;
  options = Model::resolve(folder.config(), options);
  return {folder.config(), options.context, plan_memory(folder, quant, options, kv_dtype)};
}

uint64_t host_memory_bytes() {
  return uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGE_SIZE));
}

}  // namespace nibble::chat
