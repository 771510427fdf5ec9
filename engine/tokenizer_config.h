// What the tokenizer and the chat template both read from tokenizer_config.json.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace nibble {

// A special token ("bos_token", "eos_token") as a string, given either as a string or as
// {"content": ...}; "" when absent.
inline std::string config_token(const nlohmann::json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const auto& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

}  // namespace nibble
