#include "engine/jinja_render.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <unordered_map>

#include "engine/jinja_builtins.h"

namespace nibble::jinja {
namespace {

constexpr size_t kMaxOutput = 64u << 20;        // a chat prompt; more means a runaway template
constexpr int64_t kMaxIterations = 10'000'000;  // loop bodies run in one render, ditto

// Whether v holds the dict d at any depth. Namespaces are the only values a template changes,
// and only by assigning an attribute; refusing an assignment that would make one hold itself
// keeps every value acyclic, so that its shared pointers free it.
bool holds(const Value& v, const Dict& d) {
  if (v.is_dict())
    return v.dict.get() == &d ||
           std::any_of(v.dict->items.begin(), v.dict->items.end(),
                       [&](const auto& item) { return holds(item.second, d); });
  if (v.is_list())
    return std::any_of(v.list->begin(), v.list->end(), [&](const Value& x) { return holds(x, d); });
  return false;
}

// Strings and lists built by ~ and + obey the output's limit.
const Value& bounded(const Value& v) {
  if ((v.is_string() && v.s.size() > kMaxOutput) ||
      (v.is_list() && v.list->size() > kMaxOutput / 16))
    template_fail("value larger than 64 MiB");
  return v;
}

class Renderer {
 public:
  explicit Renderer(const std::vector<std::pair<std::string, Value>>& variables) {
    scopes_.emplace_back();
    for (auto& [k, v] : global_functions().items) scopes_.back()[k] = v;
    for (const auto& [k, v] : variables) scopes_.back()[k] = v;
    scopes_.emplace_back();  // the template's own top-level sets
  }

  std::string run(const Body& body) {
    exec(body);
    return std::move(out_);
  }

 private:
  enum class Flow { Normal, Break, Continue };

  Flow exec(const Body& body) {
    for (const StmtPtr& s : body) {
      const Flow flow = exec_located(*s);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  // Adds the template line to the first error raised under this statement.
  Flow exec_located(const Stmt& s) {
    try {
      return exec(s);
    } catch (const TemplateError& e) {
      if (e.located) throw;
      throw TemplateError("chat template line " + std::to_string(s.line) + ": " + e.what(), true);
    }
  }

  Flow exec(const Stmt& s) {
    switch (s.kind) {
      case Stmt::Kind::Text:
        emit(s.text);
        return Flow::Normal;
      case Stmt::Kind::Output:
        emit(str(eval(*s.exprs[0])));
        return Flow::Normal;
      case Stmt::Kind::If:
        for (size_t i = 0; i < s.exprs.size(); ++i)
          if (truthy(eval(*s.exprs[i]))) return exec(s.bodies[i]);
        return s.bodies.size() > s.exprs.size() ? exec(s.bodies.back()) : Flow::Normal;
      case Stmt::Kind::For:
        exec_for(s);
        return Flow::Normal;
      case Stmt::Kind::Set:
        exec_set(s);
        return Flow::Normal;
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::Block:
        return exec(s.bodies[0]);
    }
    return Flow::Normal;
  }

  void emit(const std::string& text) {
    out_ += text;
    if (out_.size() > kMaxOutput) template_fail("output larger than 64 MiB");
  }

  void exec_set(const Stmt& s) {
    Value value;
    if (s.exprs.empty()) {  // {% set x %}...{% endset %}
      std::string saved = std::move(out_);
      out_.clear();
      exec(s.bodies[0]);
      value = Value(std::move(out_));
      out_ = std::move(saved);
    } else {
      value = eval(*s.exprs[0]);
    }
    if (s.names.size() == 1) {
      scopes_.back()[s.names[0]] = std::move(value);
      return;
    }
    const Value target = lookup(s.names[0]);
    if (!target.is_dict() || !target.dict->is_namespace)
      template_fail("cannot assign attribute on non-namespace object '" + s.names[0] + "'");
    if (holds(value, *target.dict))
      template_fail("cannot assign namespace '" + s.names[0] + "' into itself");
    target.dict->set(s.names[1], std::move(value));
  }

  void exec_for(const Stmt& s) {
    List items;
    {
      for (Value& item : iterate(eval(*s.exprs[0]))) {  // an undefined sequence is empty
        if (s.exprs[1]) {  // the loop filter sees the item but not `loop`
          scopes_.emplace_back();
          bind(s.names, item);
          const bool keep = truthy(eval(*s.exprs[1]));
          scopes_.pop_back();
          if (!keep) continue;
        }
        items.push_back(std::move(item));
      }
    }
    if (items.empty()) {
      exec(s.bodies[1]);
      return;
    }
    const int64_t n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
      if (++iterations_ > kMaxIterations)
        template_fail("template runs too long (over 10 million loop iterations)");
      auto loop = std::make_shared<Dict>();
      loop->set("index0", Value(i));
      loop->set("index", Value(i + 1));
      loop->set("revindex0", Value(n - i - 1));
      loop->set("revindex", Value(n - i));
      loop->set("first", Value(i == 0));
      loop->set("last", Value(i == n - 1));
      loop->set("length", Value(n));
      loop->set("previtem", i > 0 ? items[size_t(i - 1)] : undefined("there is no previous item"));
      loop->set("nextitem", i + 1 < n ? items[size_t(i + 1)] : undefined("there is no next item"));
      scopes_.emplace_back();
      scopes_.back()["loop"] = Value(loop);
      bind(s.names, items[size_t(i)]);
      const Flow flow = exec(s.bodies[0]);
      scopes_.pop_back();
      if (flow == Flow::Break) break;
    }
  }

  void bind(const std::vector<std::string>& names, const Value& item) {
    if (names.size() == 1) {
      scopes_.back()[names[0]] = item;
      return;
    }
    const List parts = iterate(item);
    if (parts.size() != names.size())
      template_fail("cannot unpack " + std::to_string(parts.size()) + " values into " +
                    std::to_string(names.size()) + " loop variables");
    for (size_t i = 0; i < names.size(); ++i) scopes_.back()[names[i]] = parts[i];
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto found = it->find(name);
      if (found != it->end()) return found->second;
    }
    return undefined("'" + name + "' is undefined");
  }

  static const Value& defined(const Value& v) {
    if (v.is_undefined()) template_fail(v.s.empty() ? "undefined value" : v.s);
    return v;
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal:
        return e.value;
      case Expr::Kind::Name:
        return lookup(e.name);
      case Expr::Kind::Attr:
        return get_item(eval(*e.args[0]), Value(e.name), true);
      case Expr::Kind::Index:
        return get_item(eval(*e.args[0]), eval(*e.args[1]), false);
      case Expr::Kind::Slice:
        return slice(e);
      case Expr::Kind::Call:
        return call(e);
      case Expr::Kind::Filter: {
        const Value subject = eval(*e.args[0]);
        auto [args, kwargs] = eval_args(e);
        return apply_filter(e.name, subject, args, kwargs);
      }
      case Expr::Kind::Test: {
        const Value subject = eval(*e.args[0]);
        auto [args, kwargs] = eval_args(e);
        return Value(apply_test(e.name, subject, args) != e.negated);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!truthy(v));
        defined(v);
        if (v.kind == Value::Kind::Float) return Value(e.name == "-" ? -v.f : v.f);
        if (!v.is_number())
          template_fail("bad operand type for unary " + e.name + ": '" + type_name(v) + "'");
        const int64_t n = v.kind == Value::Kind::Bool ? v.b : v.i;
        return Value(e.name == "-" ? -n : n);
      }
      case Expr::Kind::Binary:
        return binary(e);
      case Expr::Kind::Ternary:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2])
                         : undefined(
                               "the inline if expression evaluated to false and no else section "
                               "was defined");
      case Expr::Kind::List: {
        List out;
        for (const ExprPtr& item : e.args) out.push_back(eval(*item));
        return Value(std::move(out));
      }
      case Expr::Kind::Dict: {
        auto d = std::make_shared<Dict>();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value key = eval(*e.args[i]);
          if (!key.is_string())
            template_fail("dict keys must be strings here, got " + type_name(key));
          d->set(key.s, eval(*e.args[i + 1]));
        }
        return Value(d);
      }
    }
    return Value();
  }

  std::pair<Args, Kwargs> eval_args(const Expr& e) {
    Args args;
    for (size_t i = 1; i < e.args.size(); ++i) args.push_back(eval(*e.args[i]));
    Kwargs kwargs;
    for (const auto& [k, v] : e.kwargs) kwargs.emplace_back(k, eval(*v));
    return {std::move(args), std::move(kwargs)};
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    auto [args, kwargs] = eval_args(e);
    if (callee.kind == Expr::Kind::Attr) {  // obj.method(...)
      const Value object = eval(*callee.args[0]);
      if (object.is_dict()) {
        const Value* member = object.dict->find(callee.name);
        if (member && member->kind == Value::Kind::Function) return (*member->fn)(args, kwargs);
      }
      return call_method(object, callee.name, args, kwargs);
    }
    const Value fn = eval(callee);
    if (fn.kind != Value::Kind::Function) {
      defined(fn);
      template_fail("'" + type_name(fn) + "' object is not callable");
    }
    return (*fn.fn)(args, kwargs);
  }

  // obj.name and obj[key], as Jinja's getattr/getitem: missing entries are undefined.
  static Value get_item(const Value& object, const Value& key, bool as_attribute) {
    defined(object);
    const std::string shown = as_attribute ? key.s : repr(key);
    if (object.is_dict() && key.is_string()) {
      const Value* found = object.dict->find(key.s);
      if (found) return *found;
      return undefined("'" + type_name(object) + " object' has no attribute " +
                       (as_attribute ? "'" + key.s + "'" : repr(key)));
    }
    Value index = key;
    int64_t digits = 0;  // x.0 indexes like x[0]; a number past int64 finds nothing
    if (as_attribute && !key.s.empty() && std::isdigit(static_cast<unsigned char>(key.s[0])) &&
        std::from_chars(key.s.data(), key.s.data() + key.s.size(), digits).ec == std::errc())
      index = Value(digits);
    if ((object.is_list() || object.is_string()) &&
        (index.kind == Value::Kind::Int || index.kind == Value::Kind::Bool)) {
      const List seq = object.is_list() ? *object.list : iterate(object);
      int64_t i = index.kind == Value::Kind::Bool ? index.b : index.i;
      if (i < 0) i += int64_t(seq.size());
      if (i >= 0 && i < int64_t(seq.size())) return seq[size_t(i)];
      return undefined(type_name(object) + " object has no element " + str(index));
    }
    return undefined("'" + type_name(object) + " object' has no attribute " +
                     (as_attribute ? "'" + shown + "'" : shown));
  }

  Value slice(const Expr& e) {
    const Value object = defined(eval(*e.args[0]));
    if (!object.is_list() && !object.is_string())
      template_fail("'" + type_name(object) + "' object is not subscriptable");
    const List seq = iterate(object);
    const int64_t n = int64_t(seq.size());
    const auto part = [&](size_t k) -> std::optional<int64_t> {
      if (!e.args[k]) return std::nullopt;
      const Value v = eval(*e.args[k]);
      if (v.is_none()) return std::nullopt;
      if (v.kind != Value::Kind::Int) template_fail("slice indices must be integers or None");
      return v.i;
    };
    const int64_t step = part(3).value_or(1);
    if (step == 0) template_fail("slice step cannot be zero");
    // Python's PySlice_AdjustIndices.
    const auto clamp = [&](std::optional<int64_t> v, int64_t fallback) {
      if (!v) return fallback;
      int64_t x = *v < 0 ? *v + n : *v;
      if (step > 0) return std::clamp<int64_t>(x, 0, n);
      return std::clamp<int64_t>(x, -1, n - 1);
    };
    const int64_t start = clamp(part(1), step > 0 ? 0 : n - 1);
    const int64_t stop = clamp(part(2), step > 0 ? n : -1);
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
      out.push_back(seq[size_t(i)]);
    if (!object.is_string()) return Value(std::move(out));
    std::string s;
    for (const Value& c : out) s += c.s;
    return Value(s);
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    const Value a = eval(*e.args[0]);
    if (op == "and") return truthy(a) ? eval(*e.args[1]) : a;
    if (op == "or") return truthy(a) ? a : eval(*e.args[1]);
    const Value b = eval(*e.args[1]);
    if (op == "==") return Value(equals(a, b));
    if (op == "!=") return Value(!equals(a, b));
    if (op == "~") return bounded(Value(str(a) + str(b)));
    if (op == "in" || op == "not in")
      return Value(apply_test("in", a, {defined(b)}) == (op == "in"));
    if (op == "<") return Value(apply_test("<", defined(a), {defined(b)}));
    if (op == ">") return Value(apply_test(">", defined(a), {defined(b)}));
    if (op == "<=") return Value(apply_test("<=", defined(a), {defined(b)}));
    if (op == ">=") return Value(apply_test(">=", defined(a), {defined(b)}));
    return bounded(arithmetic(op, defined(a), defined(b)));
  }

  static Value arithmetic(const std::string& op, const Value& a, const Value& b) {
    const auto unsupported = [&]() -> Value {
      template_fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" +
                    type_name(b) + "'");
    };
    if (op == "+" && a.is_string() && b.is_string()) return Value(a.s + b.s);
    if (op == "+" && a.is_list() && b.is_list()) {
      List out = *a.list;
      out.insert(out.end(), b.list->begin(), b.list->end());
      return Value(std::move(out));
    }
    if (op == "*" && (a.is_string() || a.is_list()) &&
        (b.kind == Value::Kind::Int || b.kind == Value::Kind::Bool)) {
      const int64_t times = b.kind == Value::Kind::Bool ? b.b : b.i;
      const size_t unit = a.is_string() ? a.s.size() : a.list->size();
      // Checked by division: unit * times can wrap, and an empty unit must not loop `times` times
      // (fuzz_chat_template: '' * 99999999999999 ran for minutes).
      if (times <= 0 || unit == 0) return a.is_string() ? Value(std::string()) : Value(List());
      if (size_t(times) > (a.is_string() ? kMaxOutput : kMaxOutput / 16) / unit)
        template_fail("repetition result too large");
      if (a.is_string()) {
        std::string out;
        for (int64_t i = 0; i < times; ++i) out += a.s;
        return Value(out);
      }
      List out;
      for (int64_t i = 0; i < times; ++i) out.insert(out.end(), a.list->begin(), a.list->end());
      return Value(std::move(out));
    }
    if (!a.is_number() || !b.is_number()) return unsupported();
    const bool floats = a.kind == Value::Kind::Float || b.kind == Value::Kind::Float || op == "/";
    if (floats) {
      const double x = as_double(a), y = as_double(b);
      if ((op == "/" || op == "//" || op == "%") && y == 0) template_fail("division by zero");
      if (op == "+") return Value(x + y);
      if (op == "-") return Value(x - y);
      if (op == "*") return Value(x * y);
      if (op == "/") return Value(x / y);
      if (op == "//") return Value(std::floor(x / y));
      if (op == "%") return Value(x - std::floor(x / y) * y);
      if (op == "**") return Value(std::pow(x, y));
      return unsupported();
    }
    const int64_t x = a.kind == Value::Kind::Bool ? a.b : a.i,
                  y = b.kind == Value::Kind::Bool ? b.b : b.i;
    if ((op == "//" || op == "%") && y == 0) template_fail("integer division or modulo by zero");
    if (op == "+") return Value(int64_t(uint64_t(x) + uint64_t(y)));
    if (op == "-") return Value(int64_t(uint64_t(x) - uint64_t(y)));
    if (op == "*") return Value(int64_t(uint64_t(x) * uint64_t(y)));
    if (op == "//" || op == "%") {  // Python floors
      int64_t q = x / y;
      if ((x % y != 0) && ((x < 0) != (y < 0))) --q;
      return op == "//" ? Value(q) : Value(int64_t(x - q * y));
    }
    if (op == "**") {
      if (y < 0) return Value(std::pow(double(x), double(y)));
      int64_t r = 1;
      for (int64_t i = 0; i < y && i < 64; ++i) r = int64_t(uint64_t(r) * uint64_t(x));
      return Value(r);
    }
    return unsupported();
  }

  std::vector<std::unordered_map<std::string, Value>> scopes_;
  std::string out_;
  int64_t iterations_ = 0;
};

}  // namespace

std::string render(const Body& body, const std::vector<std::pair<std::string, Value>>& variables) {
  return Renderer(variables).run(body);
}

}  // namespace nibble::jinja
