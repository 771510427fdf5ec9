#include "engine/tokenizer_added.h"

#include <algorithm>

#include "engine/tokenizer_unicode.h"

namespace nibble {
namespace {

// The code point that ends at `end` (exclusive), or -1.
int codepoint_before(std::string_view s, size_t end) {
  if (end == 0) return -1;
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80) --start;
  return unicode::next_codepoint(s, start);
}

int codepoint_at(std::string_view s, size_t pos) {
  return pos < s.size() ? unicode::next_codepoint(s, pos) : -1;
}

bool is_space(int cp) {
  return cp >= 0 && unicode::is_whitespace(char32_t(cp));
}
bool is_word_char(int cp) {
  return cp >= 0 && unicode::is_alphanumeric(char32_t(cp));
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  for (size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(i);
  for (auto& [byte, list] : by_first_byte_)
    std::stable_sort(list.begin(), list.end(), [&](size_t a, size_t b) {
      return tokens_[a].content.size() > tokens_[b].content.size();
    });
}

const AddedToken* AddedTokenMatcher::longest_at(std::string_view text, size_t pos) const {
  auto it = by_first_byte_.find(static_cast<unsigned char>(text[pos]));
  if (it == by_first_byte_.end()) return nullptr;
  for (size_t i : it->second)
    if (text.substr(pos).starts_with(tokens_[i].content)) return &tokens_[i];
  return nullptr;
}

// As HF's AddedVocabulary::find_matches: a rejected single_word match is skipped whole; lstrip
// takes the whitespace back to the previous cut, rstrip the whitespace that follows.
void AddedTokenMatcher::split(const TextPiece& piece, std::vector<TextPiece>& out) const {
  if (piece.token_id >= 0 || tokens_.empty()) {
    out.push_back(piece);
    return;
  }
  const std::string_view text = piece.text;
  size_t cut = 0;  // end of the last emitted piece
  const auto emit_text = [&](size_t end) {
    if (end > cut)
      out.push_back({std::string(text.substr(cut, end - cut)), -1, piece.at_start && cut == 0});
  };
  for (size_t pos = 0; pos < text.size();) {
    const AddedToken* token = longest_at(text, pos);
    if (!token) {
      ++pos;
      continue;
    }
    size_t start = pos, stop = pos + token->content.size();
    if (token->single_word &&
        (is_word_char(codepoint_before(text, start)) || is_word_char(codepoint_at(text, stop)))) {
      pos = stop;
      continue;
    }
    if (token->lstrip)
      while (start > cut && is_space(codepoint_before(text, start))) {
        size_t back = start - 1;
        while ((static_cast<unsigned char>(text[back]) & 0xC0) == 0x80) --back;
        start = back;
      }
    if (token->rstrip)
      while (is_space(codepoint_at(text, stop))) {
        size_t next = stop;
        unicode::next_codepoint(text, next);
        stop = next;
      }
    emit_text(start);
    out.push_back(
        {std::string(text.substr(start, stop - start)), token->id, piece.at_start && start == 0});
    cut = pos = stop;
  }
  emit_text(text.size());
}

}  // namespace nibble
