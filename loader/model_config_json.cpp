// parse_model_config: config.json to ModelConfig, with the defaults transformers' LlamaConfig and
// MistralConfig use and the sanity checks the model code relies on (sizes positive, heads divide).
#include <climits>
#include <cmath>

#include "engine/error.h"
#include "loader/json_text.h"
#include "loader/model_folder.h"

namespace nibble {

using nlohmann::json;

namespace {

constexpr const char* kSupported = "LlamaForCausalLM, MistralForCausalLM";

// Typed access to the fields of one JSON object; errors name the file and the field.
class Fields {
 public:
  Fields(const json& object, std::string origin, std::string prefix = "")
      : object_(object), origin_(std::move(origin)), prefix_(std::move(prefix)) {}

  // Absent and null both mean "use the default".
  const json* find(const char* key) const {
    const auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void bad(const char* key, const std::string& expected) const {
    const json* v = find(key);
    fail(origin_ + ": \"" + prefix_ + key + "\" must be " + expected +
         (v ? " (it is " + v->dump() + ")" : " (it is missing)"));
  }
  int positive_int(const char* key, std::optional<int> fallback = std::nullopt) const {
    const json* v = find(key);
    if (!v && fallback) return *fallback;
    if (!v || !v->is_number_integer() || v->get<int64_t>() <= 0 || v->get<int64_t>() > INT_MAX)
      bad(key, "a positive integer");
    return int(v->get<int64_t>());
  }
  float positive_float(const char* key, std::optional<float> fallback = std::nullopt) const {
    const json* v = find(key);
    if (!v && fallback) return *fallback;
    // Checked after rounding to float: 1e-86 is positive but becomes 0 (found by
    // fuzz_model_config).
    const float f = v && v->is_number() ? float(v->get<double>()) : 0.0f;
    if (!(f > 0) || !std::isfinite(f)) bad(key, "a positive number that fits a float");
    return f;
  }
  bool boolean(const char* key, bool fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_boolean()) bad(key, "true or false");
    return v->get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    const json* v = find(key);
    if (!v) return fallback;
    if (!v->is_string()) bad(key, "a string");
    return v->get<std::string>();
  }
  // A token id or a list of them (eos_token_id is a list in Llama 3's config).
  std::vector<int> token_ids(const char* key) const {
    const json* v = find(key);
    if (!v) return {};
    const json list = v->is_array() ? *v : json::array({*v});
    std::vector<int> ids;
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT_MAX)
        bad(key, "a token id or a list of token ids");
      ids.push_back(int(id.get<int64_t>()));
    }
    return ids;
  }

 private:
  const json& object_;
  std::string origin_, prefix_;
};

std::string architecture_of(const json& j, const std::string& origin) {
  const auto it = j.find("architectures");
  if (it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || !(*it)[0].is_string())
      fail(origin + ": \"architectures\" must be a list of names (it is " + it->dump() + ")");
    return (*it)[0].get<std::string>();
  }
  // Some hand-written configs give only model_type.
  const auto type = j.find("model_type");
  if (type != j.end() && *type == "llama") return "LlamaForCausalLM";
  if (type != j.end() && *type == "mistral") return "MistralForCausalLM";
  fail(origin + ": no \"architectures\" (supported: " + kSupported + ")");
}

// rope_scaling (transformers 4.x) or rope_parameters (transformers 5): `default` means none.
std::optional<RopeScaling> rope_scaling_of(const json& rope, const std::string& origin,
                                           const std::string& key) {
  if (!rope.is_object()) fail(origin + ": \"" + key + "\" must be an object or null");
  const Fields f(rope, origin, key + ".");
  const std::string type = f.string("rope_type", f.string("type", "default"));
  if (type == "default") return std::nullopt;
  if (type != "llama3")
    fail(origin + ": " + key + " type \"" + type + "\" is not supported (supported: llama3)");
  RopeScaling s;
  s.type = type;
  s.factor = f.positive_float("factor");
  s.low_freq_factor = f.positive_float("low_freq_factor");
  s.high_freq_factor = f.positive_float("high_freq_factor");
  s.original_max_position_embeddings = f.positive_int("original_max_position_embeddings");
  if (!(s.high_freq_factor > s.low_freq_factor))
    fail(origin + ": " + key + ".high_freq_factor must be larger than low_freq_factor");
  return s;
}

}  // namespace

ModelConfig parse_model_config(std::string_view json_text, const std::string& origin) {
  const json j = parse_json(json_text, origin, "config", nullptr);
  if (!j.is_object()) fail(origin + ": not a JSON object");

  ModelConfig c;
  c.architecture = architecture_of(j, origin);
  if (c.architecture != "LlamaForCausalLM" && c.architecture != "MistralForCausalLM")
    fail("unsupported architecture " + c.architecture + " in " + origin +
         " (supported: " + kSupported + ")");

  const Fields f(j, origin);
  c.vocab_size = f.positive_int("vocab_size");
  c.hidden_size = f.positive_int("hidden_size");
  c.intermediate_size = f.positive_int("intermediate_size");
  c.num_hidden_layers = f.positive_int("num_hidden_layers");
  c.num_attention_heads = f.positive_int("num_attention_heads");
  c.num_key_value_heads = f.positive_int("num_key_value_heads", c.num_attention_heads);
  if (!f.find("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    fail(origin + ": hidden_size " + std::to_string(c.hidden_size) +
         " is not a multiple of num_attention_heads " + std::to_string(c.num_attention_heads));
  c.head_dim = f.positive_int("head_dim", c.hidden_size / c.num_attention_heads);
  c.max_position_embeddings = f.positive_int("max_position_embeddings", c.max_position_embeddings);
  c.rms_norm_eps = f.positive_float("rms_norm_eps", c.rms_norm_eps);
  c.rope_theta = f.positive_float("rope_theta", c.rope_theta);
  if (const json* rope = f.find("rope_scaling")) {
    c.rope_scaling = rope_scaling_of(*rope, origin, "rope_scaling");
  } else if (const json* params = f.find("rope_parameters")) {
    c.rope_scaling = rope_scaling_of(*params, origin, "rope_parameters");
    c.rope_theta =
        Fields(*params, origin, "rope_parameters.").positive_float("rope_theta", c.rope_theta);
  }
  c.tie_word_embeddings = f.boolean("tie_word_embeddings", c.tie_word_embeddings);
  if (const json* w = f.find("sliding_window"))
    c.sliding_window =
        (w->is_number_integer() && w->get<int64_t>() == 0) ? 0 : f.positive_int("sliding_window");
  c.torch_dtype = f.string("torch_dtype", f.string("dtype", c.torch_dtype));
  c.bos_token_ids = f.token_ids("bos_token_id");
  c.eos_token_ids = f.token_ids("eos_token_id");

  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(origin + ": num_attention_heads " + std::to_string(c.num_attention_heads) +
         " is not a multiple of num_key_value_heads " + std::to_string(c.num_key_value_heads));
  if (c.head_dim % 2 != 0)
    fail(origin + ": head_dim " + std::to_string(c.head_dim) + " is odd (RoPE rotates pairs)");
  if (int64_t(c.num_attention_heads) * c.head_dim > INT_MAX)
    fail(origin + ": num_attention_heads * head_dim is too large");
  return c;
}

}  // namespace nibble
