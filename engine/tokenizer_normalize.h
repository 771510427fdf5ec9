// tokenizer.json's "normalizer": the rewrite applied to each stretch of text between added tokens
// before pre-tokenization (e.g. Llama 2's Prepend "▁" + Replace " " → "▁").
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nibble {

class Normalizer {
 public:
  // `spec` is the JSON value (null: no normalization); `origin` names the file in errors.
  Normalizer(const nlohmann::json& spec, const std::string& origin);
  void apply(std::string& text) const {
    for (const auto& step : steps_) step(text);
  }
  bool empty() const { return steps_.empty(); }

 private:
  void add(const nlohmann::json& spec, const std::string& origin);
  std::vector<std::function<void(std::string&)>> steps_;
};

}  // namespace nibble
