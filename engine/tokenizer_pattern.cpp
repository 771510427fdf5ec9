#include "engine/tokenizer_pattern.h"

#include <algorithm>

#include "engine/error.h"

namespace nibble {
namespace {

std::string escape_regex(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-#/ ").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

Regex compile(const nlohmann::json& pattern, const std::string& origin) {
  if (pattern.is_object() && pattern.contains("String"))
    return Regex(escape_regex(pattern.at("String").get<std::string>()), origin);
  if (pattern.is_object() && pattern.contains("Regex"))
    return Regex(pattern.at("Regex").get<std::string>(), origin);
  fail(origin + ": a pattern must be {\"String\": ...} or {\"Regex\": ...}, got " + pattern.dump());
}

}  // namespace

SplitBehavior parse_split_behavior(const std::string& name, const std::string& origin) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  fail(origin + ": unknown split behavior '" + name + "'");
}

Pattern::Pattern(const nlohmann::json& pattern, const std::string& origin)
    : regex_(compile(pattern, origin)) {}

Pattern Pattern::literal(std::string_view text, const std::string& origin) {
  return Pattern(Regex(escape_regex(text), origin));
}

std::string Pattern::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t pos = 0;
  for (auto [begin, end] : find_all(text)) {
    out.append(text.substr(pos, begin - pos));
    out.append(content);
    pos = end;
  }
  out.append(text.substr(pos));
  return out;
}

// As HF's NormalizedString::split: first the text as alternating (range, is_match) stretches,
// then merged per behavior; ranges that are matches under Removed are dropped.
std::vector<std::string> Pattern::split(std::string_view text, SplitBehavior behavior,
                                        bool invert) const {
  struct Stretch {
    size_t begin, end;
    bool match;
  };
  std::vector<Stretch> stretches;
  size_t prev = 0;
  for (auto [begin, end] : find_all(text)) {
    if (prev != begin) stretches.push_back({prev, begin, invert});
    stretches.push_back({begin, end, !invert});
    prev = end;
  }
  if (prev != text.size()) stretches.push_back({prev, text.size(), invert});

  std::vector<Stretch> merged;  // `match` now means "drop"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const Stretch& s : stretches) merged.push_back({s.begin, s.end, s.match});
      break;
    case SplitBehavior::Isolated:
      for (const Stretch& s : stretches) merged.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Stretch& s : stretches) {
        if (s.match && !previous_match && !merged.empty())
          merged.back().end = s.end;
        else
          merged.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = stretches.rbegin(); it != stretches.rend(); ++it) {
        if (it->match && !previous_match && !merged.empty())
          merged.back().begin = it->begin;
        else
          merged.push_back({it->begin, it->end, false});
        previous_match = it->match;
      }
      std::reverse(merged.begin(), merged.end());
      break;
    case SplitBehavior::Contiguous:
      for (size_t i = 0; i < stretches.size(); ++i) {
        const Stretch& s = stretches[i];
        if (i > 0 && s.match == previous_match)
          merged.back().end = s.end;
        else
          merged.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
  }
  std::vector<std::string> pieces;
  for (const Stretch& s : merged)
    if (!s.match && s.end > s.begin) pieces.emplace_back(text.substr(s.begin, s.end - s.begin));
  return pieces;
}

}  // namespace nibble
