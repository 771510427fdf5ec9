// UTF-8 and Unicode helpers the tokenizers need, with the exact semantics of the Rust functions
// Hugging Face `tokenizers` relies on (char::is_whitespace, String::from_utf8_lossy).
#pragma once
#include <array>
#include <string>
#include <string_view>

namespace nibble::unicode {

// The code point starting at s[i]; advances i past it. An invalid sequence yields -1 and
// advances one byte.
int next_codepoint(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);

// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t cp);
// Rust's char::is_alphanumeric (Alphabetic or Numeric).
bool is_alphanumeric(char32_t cp);

bool is_valid_utf8(std::string_view bytes);
// String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string to_valid_utf8(std::string_view bytes);
// Whether the text ends with U+FFFD (what a decode of a cut multi-byte character ends with).
bool ends_with_replacement(std::string_view text);

// Every occurrence of `from` (non-empty) replaced by `to`.
std::string replace_all(std::string_view text, std::string_view from, std::string_view to);

// GPT-2's byte-level alphabet: every byte as a printable code point, UTF-8 encoded.
const std::array<std::string, 256>& byte_to_unicode();
// The inverse: the byte a code point of that alphabet stands for, or -1.
int unicode_to_byte(char32_t cp);

}  // namespace nibble::unicode
