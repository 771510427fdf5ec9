#include "loader/bnb_checkpoint.h"

#include <charconv>
#include <cstring>

#include "engine/error.h"
#include "loader/json_text.h"

namespace nibble {

using nlohmann::json;

namespace {

std::string quant_type_name(QuantType t) {
  return t == QuantType::NF4 ? "nf4" : "fp4";
}

std::string where(const TensorInfo& t) {
  return "tensor " + t.name + " in " + t.file;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A block size from the JSON: an integer of at most 2^20 (bitsandbytes uses 32..4096), so that
// no later index arithmetic can overflow.
int block_size(const json& v, const std::string& what) {
  const int64_t n = json_integer(v, what);
  if (n < 1 || n > (int64_t(1) << 20)) fail(what + " is out of range (" + v.dump() + ")");
  return int(n);
}

// The original weight's shape: positive integers whose product stays below 2^48 elements, checked
// before anything multiplies them.
std::vector<int64_t> weight_shape(const json& v, const TensorInfo& st) {
  if (!v.is_array() || v.empty()) fail(where(st) + ": shape must be a non-empty list");
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (const json& d : v) {
    const int64_t n = json_integer(d, where(st) + ": shape entry");
    if (n <= 0 || n > (int64_t(1) << 48) / numel)
      fail(where(st) + ": invalid shape " + v.dump() + " in the quant state");
    numel *= n;
    shape.push_back(n);
  }
  return shape;
}

// Python's repr() of a double, which json.dumps writes: the shortest round-trip digits, fixed
// notation for decimal exponents -4..15 (always with a fractional part), else d.ddde+XX.
std::string python_float_repr(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string sci(buf, end);  // e.g. "-5.23834228515625e-02"
  const size_t e = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c >= '0' && c <= '9') digits += c;
  const int exponent = std::stoi(sci.substr(e + 1));
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(size_t(-exponent - 1), '0') + digits;
    } else {
      if (digits.size() < size_t(exponent) + 1)
        digits.append(size_t(exponent) + 1 - digits.size(), '0');
      const std::string frac = digits.substr(size_t(exponent) + 1);
      out += digits.substr(0, size_t(exponent) + 1) + "." + (frac.empty() ? "0" : frac);
    }
    return out;
  }
  out += digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
  const std::string exp_digits = std::to_string(std::abs(exponent));
  return out + "e" + (exponent < 0 ? "-" : "+") + (exp_digits.size() < 2 ? "0" : "") + exp_digits;
}

DType dtype_from_torch(const std::string& name, const TensorInfo& origin) {
  if (name == "bfloat16") return DType::BF16;
  if (name == "float16") return DType::F16;
  if (name == "float32") return DType::F32;
  fail(where(origin) + ": unsupported original dtype \"" + name + "\"");
}

const TensorInfo& companion(const TensorLookup& find, const std::string& weight_name,
                            const std::string& suffix, DType dtype, int64_t numel) {
  const std::string name = weight_name + "." + suffix;
  const TensorInfo* t = find(name);
  if (!t) fail("tensor " + name + " is missing (needed by the 4-bit weight " + weight_name + ")");
  if (t->dtype != dtype)
    fail(where(*t) + " has dtype " + std::string(dtype_name(t->dtype)) + ", expected " +
         std::string(dtype_name(dtype)));
  if (t->numel() != numel)
    fail(where(*t) + " has " + std::to_string(t->numel()) + " elements, expected " +
         std::to_string(numel));
  return *t;
}

template <typename T>
std::vector<T> values_of(const TensorInfo& t) {
  std::vector<T> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * sizeof(T));
  return v;
}

template <size_t N>
std::array<float, N> table_of(const TensorInfo& t) {
  std::array<float, N> a{};
  std::memcpy(a.data(), t.data, N * sizeof(float));
  return a;
}

}  // namespace

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::BF16:
      return "bfloat16";
    case DType::F16:
      return "float16";
    case DType::F32:
      return "float32";
    default:
      fail("no torch dtype for " + std::string(dtype_name(t)));
  }
}

const TensorInfo* find_bnb_quant_state(const TensorLookup& find, const std::string& weight_name) {
  for (const char* type : {"nf4", "fp4"})
    if (const TensorInfo* t = find(weight_name + ".quant_state.bitsandbytes__" + type)) return t;
  return nullptr;
}

QuantState read_bnb_quant_state(const TensorLookup& find, const std::string& weight_name) {
  const TensorInfo* state_tensor = find_bnb_quant_state(find, weight_name);
  if (!state_tensor) fail("tensor " + weight_name + " has no bitsandbytes quant_state beside it");
  const TensorInfo& st = *state_tensor;
  if (st.dtype != DType::U8) fail(where(st) + " must be U8 (UTF-8 JSON)");
  json j;
  try {
    j = json::parse(std::string(reinterpret_cast<const char*>(st.data), st.nbytes));
  } catch (const json::exception& e) {
    fail(where(st) + " does not hold valid JSON: " + e.what());
  }

  QuantState s;
  try {
    const std::string type = j.at("quant_type");
    if (type != "nf4" && type != "fp4") fail(where(st) + ": unknown quant_type \"" + type + "\"");
    if (st.name.substr(st.name.size() - 3) != type)
      fail(where(st) + ": its name and its quant_type \"" + type + "\" disagree");
    s.type = type == "nf4" ? QuantType::NF4 : QuantType::FP4;
    s.blocksize = block_size(j.at("blocksize"), where(st) + ": blocksize");
    s.dtype = dtype_from_torch(j.at("dtype"), st);
    s.shape = weight_shape(j.at("shape"), st);
    s.nested = j.contains("nested_offset");
    if (s.nested) {
      s.nested_blocksize = block_size(j.at("nested_blocksize"), where(st) + ": nested_blocksize");
      s.offset = json_float(j.at("nested_offset"), where(st) + ": nested_offset");
      if (j.value("nested_dtype", "float32") != "float32")
        fail(where(st) + ": nested_dtype must be float32");
    }
  } catch (const json::exception& e) {
    fail(where(st) + ": malformed quant state: " + e.what());
  }
  if (s.blocksize < 2 || s.blocksize % 2)
    fail(where(st) + ": invalid blocksize " + std::to_string(s.blocksize) + " in the quant state");

  const TensorInfo* packed = find(weight_name);
  if (!packed) fail("tensor " + weight_name + " is missing (its quant_state is present)");
  if (packed->dtype != DType::U8)
    fail(where(*packed) + " is stored 4-bit but has dtype " +
         std::string(dtype_name(packed->dtype)) +
         " (only bnb_4bit_quant_storage uint8 is supported)");
  if (packed->numel() != (s.numel() + 1) / 2)
    fail(where(*packed) + " holds " + std::to_string(packed->numel()) + " bytes, but shape " +
         shape_text(s.shape) + " packs into " + std::to_string((s.numel() + 1) / 2));

  s.code = table_of<16>(companion(find, weight_name, "quant_map", DType::F32, 16));
  const int64_t blocks = s.num_blocks();
  if (s.nested) {
    s.absmax_q = values_of<uint8_t>(companion(find, weight_name, "absmax", DType::U8, blocks));
    const int64_t nested_blocks = (blocks + s.nested_blocksize - 1) / s.nested_blocksize;
    s.nested_absmax =
        values_of<float>(companion(find, weight_name, "nested_absmax", DType::F32, nested_blocks));
    s.nested_code =
        table_of<256>(companion(find, weight_name, "nested_quant_map", DType::F32, 256));
  } else {
    s.absmax = values_of<float>(companion(find, weight_name, "absmax", DType::F32, blocks));
  }
  return s;
}

std::string bnb_quant_state_json(const QuantState& s) {
  std::string out = "{\"quant_type\": \"" + quant_type_name(s.type) +
                    "\", \"blocksize\": " + std::to_string(s.blocksize) + ", \"dtype\": \"" +
                    torch_dtype_name(s.dtype) + "\", \"shape\": " + shape_text(s.shape);
  if (s.nested)
    out += ", \"nested_blocksize\": " + std::to_string(s.nested_blocksize) +
           ", \"nested_dtype\": \"float32\", \"nested_offset\": " +
           python_float_repr(double(s.offset));
  return out + "}";
}

std::vector<TensorToWrite> bnb_tensors(const std::string& weight_name, const uint8_t* packed,
                                       const QuantState& s, std::string& json_storage) {
  json_storage = bnb_quant_state_json(s);
  const int64_t packed_bytes = (s.numel() + 1) / 2;
  std::vector<TensorToWrite> out;
  out.push_back({weight_name, DType::U8, {packed_bytes, 1}, packed, size_t(packed_bytes)});
  if (s.nested) {
    out.push_back({weight_name + ".absmax",
                   DType::U8,
                   {int64_t(s.absmax_q.size())},
                   s.absmax_q.data(),
                   s.absmax_q.size()});
    out.push_back({weight_name + ".nested_absmax",
                   DType::F32,
                   {int64_t(s.nested_absmax.size())},
                   s.nested_absmax.data(),
                   s.nested_absmax.size() * 4});
    out.push_back(
        {weight_name + ".nested_quant_map", DType::F32, {256}, s.nested_code.data(), 256 * 4});
  } else {
    out.push_back({weight_name + ".absmax",
                   DType::F32,
                   {int64_t(s.absmax.size())},
                   s.absmax.data(),
                   s.absmax.size() * 4});
  }
  out.push_back({weight_name + ".quant_map", DType::F32, {16}, s.code.data(), 16 * 4});
  out.push_back({weight_name + ".quant_state.bitsandbytes__" + quant_type_name(s.type),
                 DType::U8,
                 {int64_t(json_storage.size())},
                 json_storage.data(),
                 json_storage.size()});
  return out;
}

json bnb_quantization_config(const QuantConfig& q) {
  const char* compute = q.compute == ComputeDType::BF16  ? "bfloat16"
                        : q.compute == ComputeDType::F16 ? "float16"
                                                         : "float32";
  return json{{"quant_method", "bitsandbytes"},
              {"_load_in_4bit", true},
              {"_load_in_8bit", false},
              {"load_in_4bit", true},
              {"load_in_8bit", false},
              {"bnb_4bit_quant_type", quant_type_name(q.type)},
              {"bnb_4bit_use_double_quant", q.double_quant},
              {"bnb_4bit_compute_dtype", compute},
              {"bnb_4bit_quant_storage", "uint8"},
              {"llm_int8_skip_modules", q.skip_modules},
              {"llm_int8_threshold", 6.0},
              {"llm_int8_has_fp16_weight", false},
              {"llm_int8_enable_fp32_cpu_offload", false}};
}

}  // namespace nibble
