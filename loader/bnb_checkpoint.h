// The bitsandbytes serialized 4-bit layout (QuantState.as_dict(packed=True), as transformers saves
// it): a packed weight `W` stored as U8 [(n + 1) / 2, 1] with companions `W.absmax`,
// `W.quant_map`, `W.nested_absmax`, `W.nested_quant_map` and `W.quant_state.bitsandbytes__nf4`
// (or `__fp4`), a U8 tensor holding the JSON of the non-tensor fields.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "engine/quant.h"
#include "loader/quant_config.h"
#include "loader/safetensors.h"

namespace nibble {

// Finds a tensor by its full name; nullptr if absent.
using TensorLookup = std::function<const TensorInfo*(const std::string&)>;

// The quant-state tensor stored beside `weight_name`, if the weight is stored 4-bit.
const TensorInfo* find_bnb_quant_state(const TensorLookup& find, const std::string& weight_name);

// Reads and validates the state of the packed weight `weight_name`, whose companions are named
// `<weight_name>.absmax` etc. Errors name the tensor and its file.
QuantState read_bnb_quant_state(const TensorLookup& find, const std::string& weight_name);

// The JSON bitsandbytes packs into the quant-state tensor, byte for byte (json.dumps order and
// spacing, Python's float repr for nested_offset).
std::string bnb_quant_state_json(const QuantState& s);

// The tensors that store one packed weight, ready for write_safetensors. They point into
// `packed`, `s` and `json_storage` (which receives the quant-state JSON): keep those alive.
std::vector<TensorToWrite> bnb_tensors(const std::string& weight_name, const uint8_t* packed,
                                       const QuantState& s, std::string& json_storage);

// config.json's `quantization_config` for a checkpoint quantized as `q` (transformers' fields).
nlohmann::json bnb_quantization_config(const QuantConfig& q);

// torch's name of a weight dtype ("bfloat16", "float16", "float32").
std::string torch_dtype_name(DType t);

}  // namespace nibble
