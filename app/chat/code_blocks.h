// Markdown-ish fenced code blocks: a message's text cut into prose and ``` code ``` pieces.
#pragma once
#include <string_view>
#include <vector>

namespace nibble::chat {

struct TextBlock {
  bool code = false;
  std::string_view language;  // after the opening fence, e.g. "cpp"; empty for prose
  std::string_view text;      // without the fences
};

// A fence is a line starting with ```. An unclosed fence (an answer still being written) runs to
// the end, so code looks like code while it streams.
std::vector<TextBlock> split_code_blocks(std::string_view text);

}  // namespace nibble::chat
