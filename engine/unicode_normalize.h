// Unicode normalization forms and lowercasing on UTF-8 text, through ICU, as Hugging Face
// `tokenizers` does them: normal forms with the Unicode 9.0 tables of its
// unicode-normalization-alignments crate, lowercasing as Rust's char::to_lowercase.
#pragma once
#include <string>
#include <string_view>

namespace nibble::unicode {

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// `text` in the given normalization form (characters assigned after Unicode 9.0 unchanged). Invalid
// UTF-8 first becomes U+FFFD, as with String::from_utf8_lossy.
std::string normalize(std::string_view text, NormalForm form);

// Each code point replaced by its full lowercase mapping, without context or locale (as Rust's
// char::to_lowercase: 'Σ' is always 'σ', 'İ' becomes "i\u0307"). Invalid UTF-8 as above. ICU 72
// has Unicode 15.0 case data; Rust's is newer, so the case pairs added since (Unicode 16: 55 code
// points, e.g. U+A7CB) are left as they are here.
std::string lowercase(std::string_view text);

}  // namespace nibble::unicode
