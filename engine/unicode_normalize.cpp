#include "engine/unicode_normalize.h"

#include <memory>
#include <vector>

#include <unicode/normalizer2.h>
#include <unicode/uniset.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include "engine/error.h"
#include "engine/tokenizer_unicode.h"

namespace nibble::unicode {

namespace {

// HF normalizes with the unicode-normalization-alignments crate, whose tables are Unicode 9.0:
// characters assigned since (e.g. U+32FF ㋿) have no decomposition there and pass unchanged.
// ICU's normalizer filtered to the characters of Unicode 9.0 does the same: the others are copied
// as they are and act as boundaries, as a combining-class-0 character without decomposition does
// in the old tables. (Composition stability means no new composite is built from old characters.)
class Hf9Normalizers {
 public:
  Hf9Normalizers() {
    UErrorCode status = U_ZERO_ERROR;
    unicode_9_.applyPattern(icu::UnicodeString(u"[:Age=9.0:]"), status);
    unicode_9_.freeze();
    const icu::Normalizer2* bases[] = {
        icu::Normalizer2::getNFCInstance(status), icu::Normalizer2::getNFDInstance(status),
        icu::Normalizer2::getNFKCInstance(status), icu::Normalizer2::getNFKDInstance(status)};
    if (U_FAILURE(status))
      fail(std::string("ICU has no Unicode normalization data (") + u_errorName(status) + ")");
    for (const icu::Normalizer2* base : bases)
      filtered_.push_back(std::make_unique<icu::FilteredNormalizer2>(*base, unicode_9_));
  }
  const icu::Normalizer2& operator[](NormalForm form) const { return *filtered_[size_t(form)]; }

 private:
  icu::UnicodeSet unicode_9_;
  std::vector<std::unique_ptr<icu::FilteredNormalizer2>> filtered_;  // indexed by NormalForm
};

const icu::Normalizer2& instance(NormalForm form) {
  static const Hf9Normalizers normalizers;
  return normalizers[form];
}

}  // namespace

std::string normalize(std::string_view text, NormalForm form) {
  if (!is_valid_utf8(text)) return normalize(to_valid_utf8(text), form);
  const icu::Normalizer2& normalizer = instance(form);
  const icu::StringPiece piece(text.data(), int32_t(text.size()));
  UErrorCode status = U_ZERO_ERROR;
  if (normalizer.isNormalizedUTF8(piece, status) && U_SUCCESS(status)) return std::string(text);
  status = U_ZERO_ERROR;
  const icu::UnicodeString result =
      normalizer.normalize(icu::UnicodeString::fromUTF8(piece), status);
  if (U_FAILURE(status)) fail(std::string("Unicode normalization failed: ") + u_errorName(status));
  std::string out;
  result.toUTF8String(out);
  return out;
}

std::string lowercase(std::string_view text) {
  if (!is_valid_utf8(text)) return lowercase(to_valid_utf8(text));
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const int cp = next_codepoint(text, i);  // valid text: never -1
    if (cp < 0x80) {                         // ASCII: the common case, no ICU call
      out += char(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
      continue;
    }
    // One code point at a time under the root locale: the full mapping (SpecialCasing
    // included) with no context, which is what makes 'Σ' map to 'σ' everywhere, as in Rust.
    UChar source[2], lower[8];
    int32_t length = 0;
    U16_APPEND_UNSAFE(source, length, cp);
    UErrorCode status = U_ZERO_ERROR;
    const int32_t n = u_strToLower(lower, 8, source, length, "", &status);
    if (U_FAILURE(status)) fail(std::string("Unicode lowercasing failed: ") + u_errorName(status));
    for (int32_t k = 0; k < n;) {
      UChar32 c;
      U16_NEXT_UNSAFE(lower, k, c);
      append_utf8(out, char32_t(c));
    }
  }
  return out;
}

}  // namespace nibble::unicode
