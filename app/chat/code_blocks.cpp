#include "app/chat/code_blocks.h"

namespace nibble::chat {

namespace {

std::string_view trim_newlines(std::string_view s) {
  while (!s.empty() && (s.front() == '\n' || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Position of the next line that starts with ``` at or after `from`, or npos.
size_t find_fence(std::string_view text, size_t from) {
  for (size_t at = text.find("```", from); at != std::string_view::npos;
       at = text.find("```", at + 1))
    if (at == 0 || text[at - 1] == '\n') return at;
  return std::string_view::npos;
}

}  // namespace

std::vector<TextBlock> split_code_blocks(std::string_view text) {
  std::vector<TextBlock> blocks;
  auto add_prose = [&](std::string_view s) {
    s = trim_newlines(s);
    if (!s.empty()) blocks.push_back({false, {}, s});
  };
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t open = find_fence(text, pos);
    if (open == std::string_view::npos) break;
    add_prose(text.substr(pos, open - pos));
    size_t line_end = text.find('\n', open);
    if (line_end == std::string_view::npos) line_end = text.size();
    const std::string_view language = text.substr(open + 3, line_end - open - 3);
    const size_t body = std::min(line_end + 1, text.size());
    const size_t close = find_fence(text, body);
    const size_t body_end = close == std::string_view::npos ? text.size() : close;
    blocks.push_back({true, language, trim_newlines(text.substr(body, body_end - body))});
    if (close == std::string_view::npos) return blocks;
    const size_t after = text.find('\n', close);
    pos = after == std::string_view::npos ? text.size() : after + 1;
  }
  if (pos < text.size()) add_prose(text.substr(pos));
  return blocks;
}

}  // namespace nibble::chat
