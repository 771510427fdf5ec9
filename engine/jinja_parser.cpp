// Recursive-descent parser for the Jinja subset, with Jinja2's operator precedence (lowest
// first): `x if c else y`, or, and, not, comparisons and `in`, + -, ~, * / // %, **, unary - +,
// then postfix `.a` `[i]` `[a:b]` `(...)`, `|filter` and `is test`.
#include <charconv>
#include <cstdlib>

#include "engine/jinja_ast.h"
#include "engine/jinja_lexer.h"

namespace nibble::jinja {
namespace {

using TK = Token::Kind;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Body parse() {
    std::string end;
    return parse_body({}, end);
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  [[noreturn]] void error(const std::string& message) const {
    throw TemplateError("chat template line " + std::to_string(cur().line) + ": " + message, true);
  }
  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TK::End:
        return "end of template";
      case TK::VarEnd:
        return "'}}'";
      case TK::BlockEnd:
        return "'%}'";
      case TK::String:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }
  bool is_op(const char* op) const { return cur().kind == TK::Op && cur().text == op; }
  bool is_name(const char* name) const { return cur().kind == TK::Name && cur().text == name; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    ++i_;
    return true;
  }
  bool accept_name(const char* name) {
    if (!is_name(name)) return false;
    ++i_;
    return true;
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().kind != TK::Name) error("expected a name, got " + describe(cur()));
    return t_[i_++].text;
  }
  void expect_block_end() {
    if (cur().kind != TK::BlockEnd) error("expected '%}', got " + describe(cur()));
    ++i_;
  }
  ExprPtr node(Expr::Kind kind, std::string name = {}) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = cur().line;
    e->name = std::move(name);
    return e;
  }
  ExprPtr binary(std::string op, ExprPtr a, ExprPtr b) {
    auto e = node(Expr::Kind::Binary, std::move(op));
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  // Statements until one of `ends` (e.g. "endif", "else"); its name goes to `end`, whose tag
  // the caller finishes reading.
  Body parse_body(const std::vector<std::string>& ends, std::string& end) {
    Body body;
    for (;;) {
      const Token& tok = cur();
      if (tok.kind == TK::End) {
        if (ends.empty()) return body;
        error("missing '{% " + ends.back() + " %}' (template ended)");
      }
      if (tok.kind == TK::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->line = tok.line;
        s->text = tok.text;
        body.push_back(std::move(s));
        ++i_;
      } else if (tok.kind == TK::VarBegin) {
        ++i_;
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->line = tok.line;
        s->exprs.push_back(parse_expr());
        if (cur().kind != TK::VarEnd) error("expected '}}', got " + describe(cur()));
        ++i_;
        body.push_back(std::move(s));
      } else if (tok.kind == TK::BlockBegin) {
        ++i_;
        const std::string name = expect_name();
        for (const std::string& e : ends)
          if (name == e) {
            end = name;
            return body;
          }
        body.push_back(parse_statement(name, tok.line));
      } else {
        error("unexpected " + describe(tok));
      }
    }
  }

  StmtPtr parse_statement(const std::string& name, int line) {
    DepthGuard guard(*this);
    auto s = std::make_unique<Stmt>();
    s->line = line;
    std::string end;
    if (name == "if") {
      s->kind = Stmt::Kind::If;
      s->exprs.push_back(parse_expr());
      expect_block_end();
      for (;;) {
        s->bodies.push_back(parse_body({"elif", "else", "endif"}, end));
        if (end == "elif") {
          s->exprs.push_back(parse_expr());
          expect_block_end();
        } else if (end == "else") {
          expect_block_end();
          s->bodies.push_back(parse_body({"endif"}, end));
          expect_block_end();
          break;
        } else {
          expect_block_end();
          break;
        }
      }
    } else if (name == "for") {
      s->kind = Stmt::Kind::For;
      const bool paren = accept_op("(");
      do s->names.push_back(expect_name());
      while (accept_op(","));
      if (paren) expect_op(")");
      if (!accept_name("in")) error("expected 'in' in for loop, got " + describe(cur()));
      s->exprs.push_back(parse_or());  // `if` here starts the loop filter, not a ternary
      s->exprs.push_back(accept_name("if") ? parse_expr() : nullptr);
      if (is_name("recursive")) error("recursive loops are not supported");
      expect_block_end();
      ++loop_depth_;
      s->bodies.push_back(parse_body({"else", "endfor"}, end));
      --loop_depth_;
      expect_block_end();
      s->bodies.emplace_back();
      if (end == "else") {
        s->bodies.back() = parse_body({"endfor"}, end);
        expect_block_end();
      }
    } else if (name == "set") {
      s->kind = Stmt::Kind::Set;
      s->names.push_back(expect_name());
      if (accept_op(".")) s->names.push_back(expect_name());
      if (is_op(",")) error("tuple assignment in set is not supported");
      if (accept_op("=")) {
        s->exprs.push_back(parse_expr());
        expect_block_end();
      } else {
        expect_block_end();
        s->bodies.push_back(parse_body({"endset"}, end));
        expect_block_end();
      }
    } else if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) error("'" + name + "' outside a loop");
      s->kind = name == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      expect_block_end();
    } else if (name == "generation") {  // transformers' assistant-mask marker: renders its body
      s->kind = Stmt::Kind::Block;
      expect_block_end();
      s->bodies.push_back(parse_body({"endgeneration"}, end));
      expect_block_end();
    } else {
      error("unknown or unsupported tag '" + name + "'");
    }
    return s;
  }

  // Bounds the parser's (and so the renderer's) recursion on hostile input like "((((...".
  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p(p) {
      if (++p.depth_ > 200) p.error("expression or block nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
    Parser& p;
  };

  ExprPtr parse_expr() {  // conditional expression
    DepthGuard guard(*this);
    ExprPtr e = parse_or();
    while (accept_name("if")) {
      auto t = node(Expr::Kind::Ternary);
      t->args.push_back(parse_or());  // the condition
      t->args.push_back(std::move(e));
      t->args.push_back(accept_name("else") ? parse_expr() : nullptr);
      e = std::move(t);
    }
    return e;
  }

 private:
  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (accept_name("or")) e = binary("or", std::move(e), parse_and());
    return e;
  }
  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (accept_name("and")) e = binary("and", std::move(e), parse_not());
    return e;
  }
  ExprPtr parse_not() {
    DepthGuard guard(*this);
    if (is_name("not")) {
      auto e = node(Expr::Kind::Unary, "not");
      ++i_;
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }
  ExprPtr parse_compare() {
    ExprPtr e = parse_math1();
    for (;;) {
      std::string op;
      if (cur().kind == TK::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                   cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = t_[i_++].text;
      } else if (accept_name("in")) {
        op = "in";
      } else if (is_name("not") && peek().kind == TK::Name && peek().text == "in") {
        i_ += 2;
        op = "not in";
      } else {
        return e;
      }
      e = binary(op, std::move(e), parse_math1());
    }
  }
  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = t_[i_++].text;
      e = binary(op, std::move(e), parse_concat());
    }
    return e;
  }
  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (accept_op("~")) e = binary("~", std::move(e), parse_math2());
    return e;
  }
  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = t_[i_++].text;
      e = binary(op, std::move(e), parse_pow());
    }
    return e;
  }
  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (accept_op("**")) e = binary("**", std::move(e), parse_unary(true));
    return e;
  }
  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = node(Expr::Kind::Unary, t_[i_++].text);
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    return with_filter ? parse_filters(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& tok = cur();
    if (tok.kind == TK::Name) {
      ++i_;
      auto e = node(Expr::Kind::Literal);
      if (tok.text == "true" || tok.text == "True")
        e->value = Value(true);
      else if (tok.text == "false" || tok.text == "False")
        e->value = Value(false);
      else if (tok.text == "none" || tok.text == "None")
        e->value = Value::none();
      else {
        e->kind = Expr::Kind::Name;
        e->name = tok.text;
      }
      return e;
    }
    if (tok.kind == TK::String) {
      std::string s;
      while (cur().kind == TK::String) s += t_[i_++].text;  // adjacent literals concatenate
      auto e = node(Expr::Kind::Literal);
      e->value = Value(std::move(s));
      return e;
    }
    if (tok.kind == TK::Int || tok.kind == TK::Float) {
      ++i_;
      auto e = node(Expr::Kind::Literal);
      if (tok.kind == TK::Int) {
        int64_t v = 0;
        auto [p, ec] = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        if (ec != std::errc()) error("integer literal out of range: " + tok.text);
        e->value = Value(v);
      } else {
        // As Python reads it: out of range is inf or 0 (std::stod would throw).
        e->value = Value(std::strtod(tok.text.c_str(), nullptr));
      }
      return e;
    }
    if (accept_op("(")) {
      ExprPtr first = parse_expr();
      if (accept_op(")")) return first;
      auto tuple = node(Expr::Kind::List);
      tuple->args.push_back(std::move(first));
      while (accept_op(",")) {
        if (is_op(")")) break;
        tuple->args.push_back(parse_expr());
      }
      expect_op(")");
      return tuple;
    }
    if (accept_op("[")) {
      auto list = node(Expr::Kind::List);
      while (!is_op("]")) {
        list->args.push_back(parse_expr());
        if (!accept_op(",")) break;
      }
      expect_op("]");
      return list;
    }
    if (accept_op("{")) {
      auto dict = node(Expr::Kind::Dict);
      while (!is_op("}")) {
        dict->args.push_back(parse_expr());
        expect_op(":");
        dict->args.push_back(parse_expr());
        if (!accept_op(",")) break;
      }
      expect_op("}");
      return dict;
    }
    error("unexpected " + describe(tok) + " in expression");
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      if (accept_op(".")) {
        auto a = node(Expr::Kind::Attr);
        if (cur().kind == TK::Int)
          a->name = t_[i_++].text;  // x.0 means x[0]
        else
          a->name = expect_name();
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (accept_op("[")) {
        e = parse_subscript(std::move(e));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target) {
    auto e = node(Expr::Kind::Index);
    e->args.push_back(std::move(target));
    ExprPtr parts[3];
    int colons = 0;
    if (!is_op(":")) parts[0] = parse_expr();
    while (colons < 2 && accept_op(":")) {
      ++colons;
      if (!is_op(":") && !is_op("]")) parts[colons] = parse_expr();
    }
    expect_op("]");
    if (colons == 0) {
      e->args.push_back(std::move(parts[0]));
    } else {
      e->kind = Expr::Kind::Slice;
      for (auto& p : parts) e->args.push_back(std::move(p));
    }
    return e;
  }

  // `(args, key=value)` appended to e's args and kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().kind == TK::Name && peek().kind == TK::Op && peek().text == "=") {
        std::string key = t_[i_].text;
        i_ += 2;
        e.kwargs.emplace_back(std::move(key), parse_expr());
      } else {
        if (!e.kwargs.empty()) error("positional argument after keyword argument");
        e.args.push_back(parse_expr());
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(Expr::Kind::Call);
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filters(ExprPtr e) {
    for (;;) {
      if (accept_op("|")) {
        auto f = node(Expr::Kind::Filter, expect_name());
        f->args.push_back(std::move(e));
        if (is_op("(")) parse_call_args(*f);
        e = std::move(f);
      } else if (accept_name("is")) {
        auto t = node(Expr::Kind::Test);
        t->negated = accept_name("not");
        t->name = expect_name();
        t->args.push_back(std::move(e));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((cur().kind == TK::Name || cur().kind == TK::String || cur().kind == TK::Int ||
                    cur().kind == TK::Float || is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and") && !is_name("is") &&
                   !is_name("if") && !is_name("in") && !is_name("not")) {
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int loop_depth_ = 0;  // for bodies being parsed: where break/continue may appear
  int depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) {
  std::vector<Token> tokens;
  try {
    tokens = lex(source);
  } catch (const TemplateError& e) {
    throw TemplateError(std::string("chat template ") + e.what(), true);
  }
  return Parser(std::move(tokens)).parse();
}

}  // namespace nibble::jinja
