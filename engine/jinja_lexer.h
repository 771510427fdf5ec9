// Splits a Jinja template into text and tag tokens, applying the whitespace rules of the
// environment transformers renders chat templates in: trim_blocks, lstrip_blocks, `-`/`+`
// markers, newlines normalized and one trailing newline dropped (keep_trailing_newline=False).
#pragma once
#include <string>
#include <vector>

namespace nibble::jinja {

struct Token {
  enum class Kind {
    Text,
    VarBegin,
    VarEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Int,
    Float,
    Op,
    End
  };
  Kind kind;
  std::string text;  // Text content, name, operator, unescaped string, or number spelling
  int line;
};

std::vector<Token> lex(const std::string& source);

}  // namespace nibble::jinja
