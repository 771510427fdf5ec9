#include "engine/tokenizer_decode.h"

#include <memory>

#include "engine/error.h"
#include "engine/tokenizer_pattern.h"
#include "engine/tokenizer_unicode.h"

namespace nibble {
namespace {

constexpr const char* kReplacementChar = "\xEF\xBF\xBD";

// "<0xAB>" → 0xAB, else -1.
int byte_token_value(const std::string& token) {
  if (token.size() != 6 || !token.starts_with("<0x") || token.back() != '>') return -1;
  int value = 0;
  for (char c : token.substr(3, 2)) {
    const int digit = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// Runs of byte tokens become their UTF-8 text, or one U+FFFD per byte when not valid UTF-8.
void byte_fallback(std::vector<std::string>& tokens) {
  std::vector<std::string> out;
  std::string bytes;
  const auto flush = [&] {
    if (bytes.empty()) return;
    if (unicode::is_valid_utf8(bytes))
      out.push_back(bytes);
    else
      for (size_t i = 0; i < bytes.size(); ++i) out.push_back(kReplacementChar);
    bytes.clear();
  };
  for (std::string& token : tokens) {
    const int value = byte_token_value(token);
    if (value >= 0) {
      bytes += char(value);
    } else {
      flush();
      out.push_back(std::move(token));
    }
  }
  flush();
  tokens = std::move(out);
}

// All tokens' characters mapped back to bytes (characters outside the alphabet keep their own
// UTF-8 bytes, token-wise as HF), then made valid UTF-8.
void byte_level(std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens) {
    std::string mapped;
    bool all_mapped = true;
    for (size_t i = 0; i < token.size() && all_mapped;) {
      const int cp = unicode::next_codepoint(token, i);
      const int b = cp < 0 ? -1 : unicode::unicode_to_byte(char32_t(cp));
      if (b < 0) all_mapped = false;
      mapped += char(b);
    }
    bytes += all_mapped ? mapped : token;
  }
  tokens = {unicode::to_valid_utf8(bytes)};
}

// Removes up to `start` leading and `stop` trailing copies of `content` from each token.
void strip(std::vector<std::string>& tokens, const std::string& content, int start, int stop) {
  for (std::string& token : tokens) {
    size_t begin = 0, end = token.size();
    for (int i = 0; i < start && token.compare(begin, content.size(), content) == 0 && begin < end;
         ++i)
      begin += content.size();
    for (int i = 0; i < stop && end >= begin + content.size() &&
                    token.compare(end - content.size(), content.size(), content) == 0;
         ++i)
      end -= content.size();
    token = token.substr(begin, end - begin);
  }
}

}  // namespace

Decoder::Decoder(const nlohmann::json& spec, const std::string& origin) {
  if (spec.is_null())
    join_with_spaces_ = true;
  else
    add(spec, origin);
}

void Decoder::add(const nlohmann::json& spec, const std::string& origin) {
  const std::string type = spec.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& inner : spec.at("decoders")) add(inner, origin);
  } else if (type == "Replace") {
    auto pattern = std::make_shared<const Pattern>(spec.at("pattern"), origin);
    steps_.push_back([pattern, content = spec.at("content").get<std::string>()](
                         std::vector<std::string>& tokens) {
      for (std::string& token : tokens) token = pattern->replace_all(token, content);
    });
  } else if (type == "ByteFallback") {
    steps_.push_back(byte_fallback);
  } else if (type == "Fuse") {
    steps_.push_back([](std::vector<std::string>& tokens) {
      std::string all;
      for (const std::string& t : tokens) all += t;
      tokens = {std::move(all)};
    });
  } else if (type == "Strip") {
    const std::string content = spec.at("content").get<std::string>();
    if (content.empty()) fail(origin + ": Strip decoder needs a non-empty content");
    steps_.push_back([content, start = spec.value("start", 0),
                      stop = spec.value("stop", 0)](std::vector<std::string>& tokens) {
      strip(tokens, content, start, stop);
    });
  } else if (type == "ByteLevel") {
    steps_.push_back(byte_level);
  } else if (type == "Metaspace") {
    const std::string replacement = spec.value("replacement", "\xE2\x96\x81");
    std::string scheme = spec.value("prepend_scheme", "");
    if (scheme.empty()) scheme = spec.value("add_prefix_space", true) ? "always" : "never";
    // As HF: every replacement character becomes a space, except in the first token, where
    // (unless prepend_scheme is "never") they are dropped: they were the prepended prefix.
    steps_.push_back([replacement,
                      drop_first = scheme != "never"](std::vector<std::string>& tokens) {
      for (size_t i = 0; i < tokens.size(); ++i)
        tokens[i] = unicode::replace_all(tokens[i], replacement, i == 0 && drop_first ? "" : " ");
    });
  } else {
    fail(origin + ": decoder '" + type +
         "' is not supported (supported: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, "
         "Metaspace)");
  }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  for (const Step& step : steps_) step(tokens);
  std::string out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i > 0 && join_with_spaces_) out += ' ';
    out += tokens[i];
  }
  return out;
}

}  // namespace nibble
