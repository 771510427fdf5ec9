#include "engine/tokenizer_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine/error.h"

namespace nibble {
namespace {

// Oniguruma's Unicode \w (HF's regex engine) is UTS #18's: Alphabetic | Mark | Decimal_Number |
// Connector_Punctuation | Join_Control; PCRE2's under UCP is Letter | Number | "_". Rewrite \w
// and \W to mean what tokenizer.json patterns were written for. (\d and \s agree.)
std::string onig_to_pcre2(const std::string& pattern) {
  static const std::string word = R"(\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control})";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char next = pattern[++i];
      if (next == 'w')
        out += in_class ? word : "[" + word + "]";
      else if (next == 'W' && !in_class)
        out += "[^" + word + "]";
      else
        out += {c, next};
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a literal ]
      continue;
    }
    if (c == ']') in_class = false;
    out += c;
  }
  return out;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  ~Impl() { pcre2_code_free(code); }

  // Runs one match from `start`; returns the match range or nullopt-like {npos, npos}.
  std::pair<size_t, size_t> match(std::string_view text, size_t start, uint32_t options) const {
    // Match data per call keeps Regex usable from several threads at once.
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    int rc =
        pcre2_match(code, subject, text.size(), start, options | PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // the interpreter has no such small stack limit
      rc = pcre2_match(code, subject, text.size(), start,
                       options | PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
    std::pair<size_t, size_t> out{std::string_view::npos, std::string_view::npos};
    if (rc >= 0) {
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      out = {ov[0], ov[1]};
    } else if (rc != PCRE2_ERROR_NOMATCH) {
      pcre2_match_data_free(md);
      fail("regex match failed (PCRE2 error " + std::to_string(rc) + ")");
    }
    pcre2_match_data_free(md);
    return out;
  }
};

Regex::Regex(const std::string& pattern, const std::string& origin)
    : impl_(std::make_unique<Impl>()) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  const std::string converted = onig_to_pcre2(pattern);
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(converted.data()), converted.size(),
                              PCRE2_UTF | PCRE2_UCP, &err, &err_offset, nullptr);
  if (!impl_->code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(err, message, sizeof message);
    fail(origin + ": bad regex '" + pattern + "' at offset " + std::to_string(err_offset) + ": " +
         reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(impl_->code,
                    PCRE2_JIT_COMPLETE);  // a speed-up only; the interpreter is the fallback
}

Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;
Regex::~Regex() = default;

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    auto [begin, end] = impl_->match(text, pos, 0);
    if (begin == std::string_view::npos) break;
    if (end > begin) {
      out.emplace_back(begin, end);
      pos = end;
    } else {  // an empty match: step over one whole character
      pos = begin + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
  return out;
}

bool Regex::matches_at_start(std::string_view text) const {
  return impl_->match(text, 0, PCRE2_ANCHORED).first != std::string_view::npos;
}

}  // namespace nibble
