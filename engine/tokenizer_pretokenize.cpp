#include "engine/tokenizer_pretokenize.h"

#include <memory>

#include "engine/error.h"
#include "engine/tokenizer_pattern.h"
#include "engine/tokenizer_unicode.h"

namespace nibble {
namespace {

// GPT-2's pattern, which ByteLevel(use_regex=true) splits with.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Replaces each piece by its sub-pieces; only the first sub-piece keeps at_start.
template <typename Cut>
void split_each(std::vector<PreToken>& pieces, Cut cut) {
  std::vector<PreToken> out;
  out.reserve(pieces.size());
  for (PreToken& piece : pieces) {
    bool first = true;
    for (std::string& sub : cut(piece)) {
      out.push_back({std::move(sub), piece.at_start && first});
      first = false;
    }
  }
  pieces = std::move(out);
}

using Step = std::function<void(std::vector<PreToken>&)>;

Step split_step(std::shared_ptr<const Pattern> pattern, SplitBehavior behavior, bool invert) {
  return [pattern, behavior, invert](std::vector<PreToken>& pieces) {
    split_each(pieces, [&](const PreToken& p) { return pattern->split(p.text, behavior, invert); });
  };
}

Step metaspace_step(const nlohmann::json& spec, const std::string& origin) {
  const std::string replacement = spec.value("replacement", "\xE2\x96\x81");
  std::string scheme = spec.value("prepend_scheme", "");
  if (scheme.empty()) scheme = spec.value("add_prefix_space", true) ? "always" : "never";
  if (scheme != "always" && scheme != "first" && scheme != "never")
    fail(origin + ": unknown Metaspace prepend_scheme '" + scheme + "'");
  const bool split = spec.value("split", true);
  auto on_replacement = std::make_shared<const Pattern>(Pattern::literal(replacement, origin));
  return [=](std::vector<PreToken>& pieces) {
    split_each(pieces, [&](const PreToken& p) {
      std::string text = unicode::replace_all(p.text, " ", replacement);
      const bool prepend = scheme == "always" || (scheme == "first" && p.at_start);
      // As HF's NormalizedString::prepend, which does nothing to an empty string.
      if (prepend && !text.empty() && !text.starts_with(replacement)) text.insert(0, replacement);
      if (!split) return std::vector<std::string>{std::move(text)};
      return on_replacement->split(text, SplitBehavior::MergedWithNext, false);
    });
  };
}

Step byte_level_step(const nlohmann::json& spec, const std::string& origin) {
  const bool add_prefix_space = spec.value("add_prefix_space", true);
  std::shared_ptr<const Pattern> words;
  if (spec.value("use_regex", true))
    words = std::make_shared<const Pattern>(nlohmann::json{{"Regex", kGpt2Pattern}}, origin);
  return [=](std::vector<PreToken>& pieces) {
    split_each(pieces, [&](const PreToken& p) {
      std::string text = p.text;
      if (add_prefix_space && !text.empty() && !text.starts_with(' ')) text.insert(0, " ");
      std::vector<std::string> subs = words ? words->split(text, SplitBehavior::Isolated, false)
                                            : std::vector<std::string>{std::move(text)};
      const auto& table = unicode::byte_to_unicode();
      for (std::string& sub : subs) {
        std::string mapped;
        for (unsigned char b : sub) mapped += table[b];
        sub = std::move(mapped);
      }
      return subs;
    });
  };
}

}  // namespace

PreTokenizer::PreTokenizer(const nlohmann::json& spec, const std::string& origin) {
  if (!spec.is_null()) add(spec, origin);
}

void PreTokenizer::add(const nlohmann::json& spec, const std::string& origin) {
  const std::string type = spec.at("type").get<std::string>();
  const auto regex = [&](const char* pattern) {
    return std::make_shared<const Pattern>(nlohmann::json{{"Regex", pattern}}, origin);
  };
  if (type == "Sequence") {
    for (const auto& inner : spec.at("pretokenizers")) add(inner, origin);
  } else if (type == "Split") {
    steps_.push_back(
        split_step(std::make_shared<const Pattern>(spec.at("pattern"), origin),
                   parse_split_behavior(spec.at("behavior").get<std::string>(), origin),
                   spec.value("invert", false)));
  } else if (type == "Metaspace") {
    steps_.push_back(metaspace_step(spec, origin));
  } else if (type == "ByteLevel") {
    steps_.push_back(byte_level_step(spec, origin));
  } else if (type == "Digits") {
    // Rust's char::is_numeric is the N category; runs of them merge unless individual_digits.
    const bool individual = spec.value("individual_digits", false);
    steps_.push_back(
        split_step(regex(individual ? R"(\p{N})" : R"(\p{N}+)"), SplitBehavior::Isolated, false));
  } else if (type == "Whitespace") {
    steps_.push_back(split_step(regex(R"(\w+|[^\w\s]+)"), SplitBehavior::Removed, true));
  } else if (type == "WhitespaceSplit") {
    steps_.push_back(split_step(regex(R"(\s+)"), SplitBehavior::Removed, false));
  } else {
    fail(
        origin + ": pre_tokenizer '" + type +
        "' is not supported (supported: Sequence, Split, Metaspace, ByteLevel, Digits, Whitespace, "
        "WhitespaceSplit)");
  }
}

}  // namespace nibble
