#include "loader/folder_weights.h"

#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "loader/bnb_checkpoint.h"
#include "loader/quantize.h"

namespace nibble {

namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A vector [n] is the same as [1, n].
bool shape_matches(const std::vector<int64_t>& shape, int64_t rows, int64_t cols) {
  if (shape.size() == 1) return rows == 1 && shape[0] == cols;
  return shape.size() == 2 && shape[0] == rows && shape[1] == cols;
}

void check_shape(const std::string& name, const std::string& file,
                 const std::vector<int64_t>& shape, int64_t rows, int64_t cols) {
  if (!shape_matches(shape, rows, cols))
    fail("tensor " + name + " in " + file + " has shape " + shape_text(shape) +
         ", config.json implies " + shape_text({rows, cols}));
}

// transformers' llm_int8_skip_modules: an entry names a module or a dotted part of its path
// ("lm_head", "mlp", "layers.0.self_attn").
bool skipped(const std::string& weight_name, const std::vector<std::string>& skip_modules) {
  std::string module = weight_name;
  if (module.size() > 7 && module.compare(module.size() - 7, 7, ".weight") == 0)
    module.resize(module.size() - 7);
  const std::string dotted = "." + module + ".";
  for (const std::string& m : skip_modules)
    if (dotted.find("." + m + ".") != std::string::npos) return true;
  return false;
}

}  // namespace

FolderWeights::FolderWeights(const ModelFolder& folder, const QuantConfig& quant, QuantizeIn where)
    : folder_(folder), quant_(quant), where_(where) {
  quant_.validate();
}

bool FolderWeights::has(const std::string& name) const {
  return folder_.find(name) != nullptr;
}

HostWeight FolderWeights::get(const std::string& name, int64_t rows, int64_t cols,
                              bool quantizable) {
  const TensorInfo* t = folder_.find(name);
  if (!t) fail("tensor " + name + " is missing from " + folder_.dir().string());

  HostWeight w;
  w.name = name;
  w.rows = rows;
  w.cols = cols;
  w.compute = quant_.compute;

  // A bitsandbytes 4-bit checkpoint: read the stored codes as they are.
  const TensorLookup find = [&](const std::string& n) { return folder_.find(n); };
  if (find_bnb_quant_state(find, name)) {
    auto state = std::make_shared<QuantState>(read_bnb_quant_state(find, name));
    check_shape(name, t->file, state->shape, rows, cols);
    w.dtype = packed_dtype(state->type);
    w.data = t->data;  // the mmap, which the folder keeps alive
    w.nbytes = t->nbytes;
    w.quant = std::move(state);
    return w;
  }

  check_shape(name, t->file, t->shape, rows, cols);
  if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
    fail("tensor " + name + " in " + t->file + " has dtype " + std::string(dtype_name(t->dtype)) +
         "; weights must be F32, F16 or BF16");
  w.dtype = t->dtype;
  w.data = t->data;
  w.nbytes = t->nbytes;
  // safetensors allows any offset; backends read elements in place, so give them aligned data.
  if (reinterpret_cast<uintptr_t>(t->data) % dtype_size(t->dtype) != 0) {
    auto copy = std::make_shared<std::vector<uint8_t>>(t->data, t->data + t->nbytes);
    w.data = copy->data();
    w.owner = std::move(copy);
  }
  if (!quantizable || !quant_.enabled || skipped(name, quant_.skip_modules)) return w;

  const QuantSpec spec{quant_.type, quant_.blocksize, quant_.double_quant};
  if (where_ == QuantizeIn::Loader) return quantize_on_host(w, spec);
  w.quantize_to = spec;
  return w;
}

}  // namespace nibble
