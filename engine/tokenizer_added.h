// tokenizer.json's "added_tokens": strings matched in the input before the model sees it (the
// special tokens, e.g. "<|eot_id|>"), with HF's lstrip / rstrip / single_word options.
#pragma once
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nibble {

struct AddedToken {
  std::string content;
  int id = -1;
  bool special = false;
  bool lstrip = false;       // swallows the whitespace before it
  bool rstrip = false;       // swallows the whitespace after it
  bool single_word = false;  // matches only when not inside a word
  bool normalized = false;   // matched in the normalized text rather than the raw input
};

// A stretch of the input: either plain text or one added token.
struct TextPiece {
  std::string text;
  int token_id = -1;  // >= 0: an added token
  bool at_start = false;
};

// Finds a set of added tokens in text, leftmost-longest as HF's Aho-Corasick matcher.
class AddedTokenMatcher {
 public:
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  // Splits one plain-text piece; added-token pieces pass through.
  void split(const TextPiece& piece, std::vector<TextPiece>& out) const;

 private:
  const AddedToken* longest_at(std::string_view text, size_t pos) const;
  std::vector<AddedToken> tokens_;
  std::unordered_map<unsigned char, std::vector<size_t>> by_first_byte_;  // longest first
};

}  // namespace nibble
