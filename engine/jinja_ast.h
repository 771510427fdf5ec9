// The parsed form of a chat template: statements holding expressions.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja_value.h"

namespace nibble::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,  // value
    Name,     // name
    Attr,     // args[0].name
    Index,    // args[0][args[1]]
    Slice,    // args[0][args[1]:args[2]:args[3]] (null parts absent)
    Call,     // args[0](args[1..], kwargs)
    Filter,   // args[0] | name(args[1..], kwargs)
    Test,     // args[0] is [not] name(args[1..])
    Unary,    // name: "not", "-", "+"; args[0]
    Binary,   // name: operator or "and"/"or"/"in"/"not in"; args[0], args[1]
    Ternary,  // args[1] if args[0] else args[2] (args[2] may be null)
    List,     // [args...] and tuples
    Dict,     // {kwargs keys are unused; args alternate key, value}
  };
  Kind kind;
  int line = 0;
  Value value;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,    // text
    Output,  // {{ exprs[0] }}
    If,      // exprs: conditions; bodies: one per condition, then else (maybe empty)
    For,  // names: targets; exprs[0]: iterable, exprs[1]: filter (may be null); bodies: body, else
    Set,  // names: [variable] or [namespace, attribute]; exprs[0] value, or bodies[0] (block set)
    Break,
    Continue,
    Block,  // bodies[0] rendered in place ({% generation %})
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::vector<std::string> names;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
};

// Parses a whole template; a syntax error fails with the line.
Body parse_template(const std::string& source);

}  // namespace nibble::jinja
