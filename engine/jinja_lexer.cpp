#include "engine/jinja_lexer.h"

#include <cstring>

#include "engine/jinja_value.h"
#include "engine/tokenizer_unicode.h"

namespace nibble::jinja {
namespace {

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_name_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string normalize_newlines(const std::string& source) {
  std::string out;
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (out.ends_with('\n')) out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) : src_(normalize_newlines(source)) {}

  std::vector<Token> run() {
    bool line_starting = true;  // the previous tag's end consumed a newline (or at the start)
    while (pos_ < src_.size()) {
      const size_t open = find_open(pos_);
      std::string text = src_.substr(pos_, open - pos_);
      if (open == std::string::npos) {
        add(Token::Kind::Text, text);
        break;
      }
      const char kind = src_[open + 1];
      const char marker = open + 2 < src_.size() ? src_[open + 2] : '\0';
      if (marker == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (kind != '{' &&
                 marker != '+') {  // lstrip_blocks: only blank before the tag on its line
        const size_t line_begin = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((line_begin > 0 || line_starting) &&
            text.find_first_not_of(" \t\f\v\r", line_begin) == std::string::npos)
          text.resize(line_begin);
      }
      add(Token::Kind::Text, text);
      line_ += count_newlines(pos_, open);
      pos_ = open + 2 + (marker == '-' || (marker == '+' && kind != '{'));
      if (kind == '#') {
        line_starting = skip_comment();
      } else {
        add(kind == '{' ? Token::Kind::VarBegin : Token::Kind::BlockBegin, "");
        line_starting = lex_tag(kind == '{' ? "}}" : "%}", kind == '%');
      }
    }
    tokens_.push_back({Token::Kind::End, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_open(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1))
      if (i + 1 < src_.size() && std::strchr("{%#", src_[i + 1])) return i;
    return std::string::npos;
  }
  int count_newlines(size_t from, size_t to) const {
    int n = 0;
    for (size_t i = from; i < to && i < src_.size(); ++i) n += src_[i] == '\n';
    return n;
  }
  void add(Token::Kind kind, std::string text) {
    if (kind == Token::Kind::Text && text.empty()) return;
    tokens_.push_back({kind, std::move(text), line_});
  }

  // After a tag's closer: `-` eats all whitespace, else trim_blocks eats one newline after a
  // block or comment. Returns whether what was eaten ended with a newline.
  bool after_tag(bool strip, bool keep, bool is_block) {
    const size_t start = pos_;
    if (strip)
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    else if (is_block && !keep && pos_ < src_.size() && src_[pos_] == '\n')
      ++pos_;
    line_ += count_newlines(start, pos_);
    return pos_ > start && src_[pos_ - 1] == '\n';
  }

  bool skip_comment() {
    const size_t close = src_.find("#}", pos_);
    if (close == std::string::npos)
      template_fail("line " + std::to_string(line_) + ": unclosed comment");
    const bool strip = close > pos_ && src_[close - 1] == '-';
    line_ += count_newlines(pos_, close);
    pos_ = close + 2;
    return after_tag(strip, false, true);
  }

  bool lex_tag(const char* closer, bool is_block) {
    int depth = 0;  // open brackets: a "}}" inside a dict literal does not end the tag
    for (;;) {
      while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
      if (pos_ >= src_.size())
        template_fail("line " + std::to_string(line_) + ": unclosed tag (missing '" + closer +
                      "')");
      const char c = src_[pos_];
      const bool marked = (c == '-' || c == '+') && src_.compare(pos_ + 1, 2, closer) == 0;
      if (depth == 0 && (marked || src_.compare(pos_, 2, closer) == 0)) {
        pos_ += marked ? 3 : 2;
        add(is_block ? Token::Kind::BlockEnd : Token::Kind::VarEnd, "");
        return after_tag(marked && c == '-', marked && c == '+', is_block);
      }
      if (is_name_start(c)) {
        const size_t start = pos_;
        while (pos_ < src_.size() && is_name_char(src_[pos_])) ++pos_;
        add(Token::Kind::Name, src_.substr(start, pos_ - start));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number();
      } else if (c == '\'' || c == '"') {
        lex_string(c);
      } else {
        static const char* ops[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                                    "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                    "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        bool found = false;
        for (const char* op : ops)
          if (src_.compare(pos_, std::strlen(op), op) == 0) {
            if (std::strchr("([{", op[0]) && !op[1]) ++depth;
            if (std::strchr(")]}", op[0]) && !op[1] && depth > 0) --depth;
            add(Token::Kind::Op, op);
            pos_ += std::strlen(op);
            found = true;
            break;
          }
        if (!found)
          template_fail("line " + std::to_string(line_) + ": unexpected character '" +
                        std::string(1, c) + "'");
      }
    }
  }

  void lex_number() {
    const size_t start = pos_;
    bool is_float = false;
    while (pos_ < src_.size() &&
           (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
      ++pos_;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      for (++pos_; pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]));)
        ++pos_;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t p = pos_ + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        for (pos_ = p; pos_ < src_.size() && std::isdigit(static_cast<unsigned char>(src_[pos_]));)
          ++pos_;
      }
    }
    std::string text = src_.substr(start, pos_ - start);
    std::erase(text, '_');
    add(is_float ? Token::Kind::Float : Token::Kind::Int, text);
  }

  // Python string-literal escapes.
  void lex_string(char quote) {
    std::string out;
    const int start_line = line_;
    for (++pos_;; ++pos_) {
      if (pos_ >= src_.size())
        template_fail("line " + std::to_string(start_line) + ": unterminated string");
      char c = src_[pos_];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\' || pos_ + 1 >= src_.size()) {
        out += c;
        continue;
      }
      c = src_[++pos_];
      const auto hex = [&](int digits) {
        if (pos_ + size_t(digits) >= src_.size())
          template_fail("line " + std::to_string(line_) + ": bad escape");
        const std::string h = src_.substr(pos_ + 1, size_t(digits));
        if (h.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
          template_fail("line " + std::to_string(line_) + ": bad escape \\" + std::string(1, c) +
                        h);
        pos_ += size_t(digits);
        unicode::append_utf8(out, char32_t(std::stoul(h, nullptr, 16)));
      };
      switch (c) {
        case 'n':
          out += '\n';
          break;
        case 't':
          out += '\t';
          break;
        case 'r':
          out += '\r';
          break;
        case '0':
          out += '\0';
          break;
        case 'a':
          out += '\a';
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'v':
          out += '\v';
          break;
        case '\\':
        case '\'':
        case '"':
          out += c;
          break;
        case '\n':
          ++line_;
          break;  // line continuation
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          out += '\\';
          out += c;  // Python keeps unknown escapes as written
      }
    }
    ++pos_;
    add(Token::Kind::String, out);
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> lex(const std::string& source) {
  return Lexer(source).run();
}

}  // namespace nibble::jinja
