// The values a chat template computes with, with Python's semantics where templates can tell
// (str() and repr() printing, equality, truthiness, code-point strings). Lists and dicts are
// shared and never mutated, except namespaces, which `{% set ns.x = ... %}` writes through.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"

namespace nibble::jinja {

// A template mistake found while parsing or rendering; the renderer prefixes the template line.
struct TemplateError : Error {
  explicit TemplateError(const std::string& message, bool located = false)
      : Error(message), located(located) {}
  bool located;
};
[[noreturn]] inline void template_fail(const std::string& message) {
  throw TemplateError(message);
}

struct Value;
using List = std::vector<Value>;
struct Dict;
using Args = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(const Args&, const Kwargs&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::shared_ptr<const List> list;
  std::shared_ptr<Dict> dict;
  std::shared_ptr<const Function> fn;

  static Value none() { return Value{Kind::None}; }
  Value() = default;
  explicit Value(Kind k) : kind(k) {}
  Value(bool v) : kind(Kind::Bool), b(v) {}
  Value(int v) : kind(Kind::Int), i(v) {}
  Value(int64_t v) : kind(Kind::Int), i(v) {}
  Value(double v) : kind(Kind::Float), f(v) {}
  Value(std::string v) : kind(Kind::String), s(std::move(v)) {}
  Value(const char* v) : kind(Kind::String), s(v) {}
  Value(List v) : kind(Kind::List), list(std::make_shared<const List>(std::move(v))) {}
  Value(std::shared_ptr<Dict> d) : kind(Kind::Dict), dict(std::move(d)) {}
  Value(Function f) : kind(Kind::Function), fn(std::make_shared<const Function>(std::move(f))) {}

  bool is_undefined() const { return kind == Kind::Undefined; }
  bool is_none() const { return kind == Kind::None; }
  bool is_string() const { return kind == Kind::String; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_list() const { return kind == Kind::List; }
  bool is_dict() const { return kind == Kind::Dict; }
};

// Insertion-ordered, as Python dicts.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value value);
};

std::string type_name(const Value& v);
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python's str() and repr().
std::string str(const Value& v);
std::string repr(const Value& v);
// json.dumps(v, ensure_ascii=False, indent=indent) (indent < 0: None).
std::string to_json(const Value& v, int indent, bool sort_keys);

// Strings as Python sees them: sequences of code points.
std::vector<std::string> code_points(const std::string& s);
// The items a `for` loop or a filter iterates: list items, dict keys, string characters.
List iterate(const Value& v);
double as_double(const Value& v);

}  // namespace nibble::jinja
