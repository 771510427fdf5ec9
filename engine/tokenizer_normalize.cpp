#include "engine/tokenizer_normalize.h"

#include <memory>
#include <optional>

#include "engine/error.h"
#include "engine/tokenizer_pattern.h"
#include "engine/tokenizer_unicode.h"
#include "engine/unicode_normalize.h"

namespace nibble {

namespace {

std::optional<unicode::NormalForm> normal_form(const std::string& type) {
  using unicode::NormalForm;
  if (type == "NFC") return NormalForm::NFC;
  if (type == "NFD") return NormalForm::NFD;
  if (type == "NFKC") return NormalForm::NFKC;
  if (type == "NFKD") return NormalForm::NFKD;
  return std::nullopt;
}

}  // namespace

Normalizer::Normalizer(const nlohmann::json& spec, const std::string& origin) {
  if (!spec.is_null()) add(spec, origin);
}

void Normalizer::add(const nlohmann::json& spec, const std::string& origin) {
  const std::string type = spec.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const auto& inner : spec.at("normalizers")) add(inner, origin);
  } else if (type == "Prepend") {
    steps_.push_back([prepend = spec.at("prepend").get<std::string>()](std::string& text) {
      if (!text.empty()) text.insert(0, prepend);
    });
  } else if (type == "Replace") {
    auto pattern = std::make_shared<Pattern>(spec.at("pattern"), origin);
    steps_.push_back([pattern, content = spec.at("content").get<std::string>()](std::string& text) {
      text = pattern->replace_all(text, content);
    });
  } else if (type == "Strip") {
    const bool left = spec.value("strip_left", true), right = spec.value("strip_right", true);
    steps_.push_back([left, right](std::string& text) {
      size_t begin = 0, end = text.size();
      if (left)
        for (size_t i = 0; i < text.size();) {
          const int cp = unicode::next_codepoint(text, i);
          if (cp < 0 || !unicode::is_whitespace(char32_t(cp))) break;
          begin = i;
        }
      if (right)
        while (end > begin) {  // step back over whole characters
          size_t start = end - 1;
          while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
          size_t i = start;
          const int cp = unicode::next_codepoint(text, i);
          if (cp < 0 || !unicode::is_whitespace(char32_t(cp))) break;
          end = start;
        }
      text = text.substr(begin, end - begin);
    });
  } else if (const auto form = normal_form(type)) {
    steps_.push_back([form = *form](std::string& text) { text = unicode::normalize(text, form); });
  } else if (type == "Lowercase") {
    steps_.push_back([](std::string& text) { text = unicode::lowercase(text); });
  } else {
    // Precompiled (a SentencePiece charsmap), BertNormalizer, StripAccents, Nmt: not needed by
    // the Llama-family tokenizers we load.
    fail(origin + ": normalizer '" + type +
         "' is not supported (supported: Sequence, Prepend, Replace, Strip, NFC, NFD, NFKC, NFKD, "
         "Lowercase)");
  }
}

}  // namespace nibble
