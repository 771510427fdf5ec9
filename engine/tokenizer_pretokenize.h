// tokenizer.json's "pre_tokenizer": cuts normalized text into the words BPE sees (Metaspace,
// ByteLevel, Split by regex, Digits, Whitespace, and Sequences of them).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nibble {

struct PreToken {
  std::string text;
  bool at_start;  // begins at offset 0 of the input (Metaspace's prepend_scheme "first")
};

class PreTokenizer {
 public:
  // `spec` is the JSON value (null: the whole text is one word); `origin` names the file in errors.
  PreTokenizer(const nlohmann::json& spec, const std::string& origin);
  void apply(std::vector<PreToken>& pieces) const {
    for (const auto& step : steps_) step(pieces);
  }

 private:
  void add(const nlohmann::json& spec, const std::string& origin);
  std::vector<std::function<void(std::vector<PreToken>&)>> steps_;
};

}  // namespace nibble
