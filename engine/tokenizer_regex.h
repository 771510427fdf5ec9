// A compiled Unicode regex (PCRE2 with UTF + UCP, JIT when available) for the patterns in
// tokenizer.json, which Hugging Face runs with Oniguruma: the pre-tokenizer patterns of GPT-2,
// Llama 3 and Qwen2 mean the same in both.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nibble {

class Regex {
 public:
  // `origin` names where the pattern came from in the error a bad pattern raises.
  Regex(const std::string& pattern, const std::string& origin);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Non-overlapping, non-empty matches as [begin, end) byte ranges, left to right. The text
  // must be valid UTF-8.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // Whether the pattern matches at the start of the text.
  bool matches_at_start(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble
