// tokenizer.json's "decoder": turns the vocabulary entries of a sequence of ids back into text
// (Replace "▁" → " ", ByteFallback, Fuse, Strip, ByteLevel, Metaspace, and Sequences of them).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace nibble {

class Decoder {
 public:
  // `spec` is the JSON value (null: tokens joined by spaces, as HF); `origin` names the file.
  Decoder(const nlohmann::json& spec, const std::string& origin);
  std::string decode(std::vector<std::string> tokens) const;

 private:
  void add(const nlohmann::json& spec, const std::string& origin);
  using Step = std::function<void(std::vector<std::string>&)>;
  std::vector<Step> steps_;
  bool join_with_spaces_ = false;
};

}  // namespace nibble
