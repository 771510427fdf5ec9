// The {"String": ...} / {"Regex": ...} patterns of tokenizer.json (Split, Replace), and how a Split
// pre-tokenizer cuts a text around the matches.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer_regex.h"

namespace nibble {

// HF's SplitDelimiterBehavior.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
SplitBehavior parse_split_behavior(const std::string& name, const std::string& origin);

class Pattern {
 public:
  Pattern(const nlohmann::json& pattern, const std::string& origin);
  // A literal string pattern.
  static Pattern literal(std::string_view text, const std::string& origin);

  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const {
    return regex_.find_all(text);
  }
  std::string replace_all(std::string_view text, std::string_view content) const;
  // The non-empty pieces of `text` cut around the matches as `behavior` says (inverted: the
  // non-matching stretches play the role of the matches).
  std::vector<std::string> split(std::string_view text, SplitBehavior behavior, bool invert) const;

 private:
  explicit Pattern(Regex regex) : regex_(std::move(regex)) {}
  Regex regex_;
};

}  // namespace nibble
