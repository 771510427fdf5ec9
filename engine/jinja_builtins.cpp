#include "engine/jinja_builtins.h"

#include <locale.h>
#include <algorithm>
#include <clocale>
#include <ctime>
#include <cwctype>

#include "engine/error.h"
#include "engine/tokenizer_unicode.h"

namespace nibble::jinja {
namespace {

constexpr size_t kMaxBuilt = 64u << 20;  // bytes or items one call may build: templates are small
const Value kNoValue;                    // an argument not given

// Python's str.isspace.
bool is_py_space(int cp) {
  return cp >= 0 && (unicode::is_whitespace(char32_t(cp)) || (cp >= 0x1C && cp <= 0x1F));
}

const Value& arg(const Args& args, const Kwargs& kwargs, size_t index, const char* name,
                 const Value& fallback) {
  for (const auto& [k, v] : kwargs)
    if (k == name) return v;
  return index < args.size() ? args[index] : fallback;
}

const std::string& need_string(const Value& v, const std::string& what) {
  if (!v.is_string()) {
    if (v.is_undefined()) template_fail(v.s);
    template_fail(what + " expects a string, got " + type_name(v));
  }
  return v.s;
}

int64_t need_int(const Value& v, const std::string& what) {
  if (v.kind == Value::Kind::Int) return v.i;
  if (v.kind == Value::Kind::Bool) return v.b;
  template_fail(what + " expects an integer, got " + type_name(v));
}

// Unicode case mapping through the C.UTF-8 locale's tables (no global locale is touched).
std::string map_case(const std::string& s, bool upper) {
  static locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    const int cp = unicode::next_codepoint(s, i);
    if (cp < 0) {
      out += s.substr(start, i - start);
      continue;
    }
    wint_t mapped = wint_t(cp);
    if (utf8)
      mapped = upper ? towupper_l(mapped, utf8) : towlower_l(mapped, utf8);
    else if (cp < 0x80)
      mapped = wint_t(upper ? std::toupper(cp) : std::tolower(cp));
    unicode::append_utf8(out, char32_t(mapped));
  }
  return out;
}

std::string capitalize(const std::string& s) {
  const std::vector<std::string> cps = code_points(s);
  if (cps.empty()) return s;
  std::string rest;
  for (size_t i = 1; i < cps.size(); ++i) rest += cps[i];
  return map_case(cps[0], true) + map_case(rest, false);
}

// Jinja's title filter: each word (split at whitespace and -([{<) capitalized.
std::string title(const std::string& s) {
  std::string out, word;
  for (const std::string& c : code_points(s)) {
    size_t i = 0;
    const int cp = unicode::next_codepoint(c, i);
    if (is_py_space(cp) ||
        (c.size() == 1 && std::string_view("-([{<").find(c[0]) != std::string_view::npos)) {
      out += capitalize(word) + c;
      word.clear();
    } else {
      word += c;
    }
  }
  return out + capitalize(word);
}

// str.strip / lstrip / rstrip, on whitespace or on the characters of `chars`.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::vector<std::string> cps = code_points(s);
  std::vector<std::string> set;
  if (chars.is_string()) set = code_points(chars.s);
  const auto strippable = [&](const std::string& c) {
    if (chars.is_string()) return std::find(set.begin(), set.end(), c) != set.end();
    size_t i = 0;
    return is_py_space(unicode::next_codepoint(c, i));
  };
  size_t begin = 0, end = cps.size();
  while (left && begin < end && strippable(cps[begin])) ++begin;
  while (right && end > begin && strippable(cps[end - 1])) --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) out += cps[i];
  return out;
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {  // runs of whitespace, ends ignored
    std::string word;
    bool in_word = false;
    for (const std::string& c : code_points(s)) {
      size_t i = 0;
      const bool space = is_py_space(unicode::next_codepoint(c, i));
      if (space && in_word && (maxsplit < 0 || int64_t(out.size()) < maxsplit)) {
        out.emplace_back(word);
        word.clear();
        in_word = false;
      } else if (!space || in_word) {
        word += c;
        in_word = true;
      }
    }
    if (in_word) out.emplace_back(strip(word, Value(), false, true));
    return Value(std::move(out));
  }
  const std::string& delim = need_string(sep, "split");
  if (delim.empty()) template_fail("empty separator");
  size_t pos = 0;
  for (size_t hit; (hit = s.find(delim, pos)) != std::string::npos &&
                   (maxsplit < 0 || int64_t(out.size()) < maxsplit);
       pos = hit + delim.size())
    out.emplace_back(s.substr(pos, hit - pos));
  out.emplace_back(s.substr(pos));
  return Value(std::move(out));
}

Value replace(const std::string& s, const Value& from, const Value& to, const Value& count) {
  const std::string& a = need_string(from, "replace");
  const std::string& b = need_string(to, "replace");
  int64_t left = count.is_undefined() || count.is_none() ? -1 : need_int(count, "replace");
  std::string out;
  if (a.empty()) {  // Python inserts between every character
    for (const std::string& c : code_points(s)) {
      if (left != 0) out += b, --left;
      out += c;
    }
    if (left != 0) out += b;
    return Value(out);
  }
  size_t pos = 0;
  for (size_t hit; left != 0 && (hit = s.find(a, pos)) != std::string::npos;
       pos = hit + a.size(), --left) {
    out += s.substr(pos, hit - pos) + b;
    if (out.size() > kMaxBuilt) template_fail("replace result too large");
  }
  return Value(out + s.substr(pos));
}

bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
  if (affix.is_list()) {
    for (const Value& a : *affix.list)
      if (starts_or_ends(s, a, start)) return true;
    return false;
  }
  const std::string& x = need_string(affix, start ? "startswith" : "endswith");
  return start ? s.starts_with(x) : s.ends_with(x);
}

Value length(const Value& v) {
  switch (v.kind) {
    case Value::Kind::String:
      return Value(int64_t(code_points(v.s).size()));
    case Value::Kind::List:
      return Value(int64_t(v.list->size()));
    case Value::Kind::Dict:
      return Value(int64_t(v.dict->items.size()));
    case Value::Kind::Undefined:
      return Value(0);
    default:
      template_fail("object of type '" + type_name(v) + "' has no len()");
  }
}

Value items(const Value& v) {
  if (v.is_undefined()) return Value(List{});
  if (!v.is_dict()) template_fail("items() needs a mapping, got " + type_name(v));
  List out;
  for (const auto& [k, val] : v.dict->items) out.emplace_back(List{Value(k), val});
  return Value(std::move(out));
}

// Jinja's attribute lookup for map/selectattr: dotted paths through dicts.
Value attribute(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (pos <= path.size()) {
    const size_t dot = std::min(path.find('.', pos), path.size());
    const std::string key = path.substr(pos, dot - pos);
    const Value* found = cur.is_dict() ? cur.dict->find(key) : nullptr;
    cur = found ? *found
                : undefined("'" + type_name(cur) + " object' has no attribute '" + key + "'");
    pos = dot + 1;
  }
  return cur;
}

// select/reject/selectattr/rejectattr: keep items whose test (or truthiness) gives `keep`.
Value select(const Value& seq, const Args& args, bool by_attribute, bool keep) {
  List out;
  for (const Value& item : iterate(seq)) {
    size_t next = 0;
    Value subject = item;
    if (by_attribute) {
      if (args.empty()) template_fail("selectattr needs an attribute name");
      subject = attribute(item, need_string(args[0], "selectattr"));
      next = 1;
    }
    bool pass;
    if (args.size() > next) {
      Args test_args(args.begin() + std::ptrdiff_t(next) + 1, args.end());
      pass = apply_test(need_string(args[next], "select"), subject, test_args);
    } else {
      pass = truthy(subject);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value(std::move(out));
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    const double x = as_double(a), y = as_double(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.s.compare(b.s);
  template_fail(std::string("'") + op + "' not supported between instances of '" + type_name(a) +
                "' and '" + type_name(b) + "'");
}

}  // namespace

Value undefined(const std::string& why) {
  Value v(Value::Kind::Undefined);
  v.s = why;
  return v;
}

Value apply_filter(const std::string& name, const Value& v, const Args& args,
                   const Kwargs& kwargs) {
  const auto a = [&](size_t i, const char* key) -> const Value& {
    return arg(args, kwargs, i, key, kNoValue);
  };
  if (name == "default" || name == "d") {
    const bool boolean = truthy(a(1, "boolean"));
    return (v.is_undefined() || (boolean && !truthy(v)))
               ? arg(args, kwargs, 0, "default_value", Value(""))
               : v;
  }
  if (name == "safe") return v;
  if (name == "length" || name == "count") return length(v);
  if (name == "string") return Value(str(v));
  if (name == "list") return Value(iterate(v));
  if (name == "items") return items(v);
  if (name == "tojson") {
    if (truthy(a(0, "ensure_ascii"))) template_fail("tojson(ensure_ascii=True) is not supported");
    const Value& indent = a(1, "indent");
    if (!a(2, "separators").is_undefined() && !a(2, "separators").is_none())
      template_fail("tojson(separators=...) is not supported");
    return Value(
        to_json(v, indent.is_undefined() || indent.is_none() ? -1 : int(need_int(indent, "tojson")),
                truthy(a(3, "sort_keys"))));
  }
  if (name == "first" || name == "last") {
    const List seq = iterate(v);
    if (seq.empty()) return undefined(std::string("No ") + name + " item, sequence was empty.");
    return name == "first" ? seq.front() : seq.back();
  }
  if (name == "join") {
    const Value& sep_value = a(0, "d");
    const std::string sep = sep_value.is_undefined() ? "" : need_string(sep_value, "join");
    const Value& attr = a(1, "attribute");
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      out += (first ? "" : sep) +
             str(attr.is_undefined() ? item : attribute(item, need_string(attr, "join")));
      first = false;
      if (out.size() > kMaxBuilt) template_fail("join result too large");
    }
    return Value(out);
  }
  if (name == "reverse") {
    if (v.is_string()) {
      std::vector<std::string> cps = code_points(v.s);
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value(out);
    }
    List seq = iterate(v);
    std::reverse(seq.begin(), seq.end());
    return Value(std::move(seq));
  }
  if (name == "map") {
    List out;
    const Value& attr = a(99, "attribute");
    for (const Value& item : iterate(v)) {
      if (!attr.is_undefined())
        out.push_back(attribute(item, need_string(attr, "map")));
      else if (!args.empty())
        out.push_back(apply_filter(need_string(args[0], "map"), item,
                                   Args(args.begin() + 1, args.end()), {}));
      else
        out.push_back(item);
    }
    return Value(std::move(out));
  }
  if (name == "select" || name == "reject") return select(v, args, false, name == "select");
  if (name == "selectattr" || name == "rejectattr")
    return select(v, args, true, name == "selectattr");
  if (name == "int") {
    if (v.kind == Value::Kind::Float) return Value(int64_t(v.f));
    if (v.is_number()) return Value(need_int(v, "int"));
    if (v.is_string()) {
      try {
        size_t used = 0;
        const long long n = std::stoll(strip(v.s, Value(), true, true), &used);
        return Value(int64_t(n));
      } catch (const std::exception&) {
      }
    }
    return arg(args, kwargs, 0, "default", Value(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value(as_double(v));
    if (v.is_string()) {
      try {
        return Value(std::stod(v.s));
      } catch (const std::exception&) {
      }
    }
    return arg(args, kwargs, 0, "default", Value(0.0));
  }
  if (name == "abs") {
    if (v.kind == Value::Kind::Float) return Value(v.f < 0 ? -v.f : v.f);
    const int64_t n = need_int(v, "abs");
    return Value(n < 0 ? -n : n);
  }
  // The rest work on strings.
  const std::string& s = need_string(v, "filter '" + name + "'");
  if (name == "trim") return Value(strip(s, a(0, "chars"), true, true));
  if (name == "upper") return Value(map_case(s, true));
  if (name == "lower") return Value(map_case(s, false));
  if (name == "capitalize") return Value(capitalize(s));
  if (name == "title") return Value(title(s));
  if (name == "replace") return replace(s, a(0, "old"), a(1, "new"), a(2, "count"));
  template_fail("unknown filter '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, const Args& args) {
  const auto other = [&]() -> const Value& {
    if (args.empty()) template_fail("test '" + name + "' needs an argument");
    return args[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.kind == Value::Kind::Bool;
  if (name == "true") return v.kind == Value::Kind::Bool && v.b;
  if (name == "false") return v.kind == Value::Kind::Bool && !v.b;
  if (name == "integer") return v.kind == Value::Kind::Int;
  if (name == "float") return v.kind == Value::Kind::Float;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_list() || v.is_dict() || v.is_string() || v.is_undefined();
  if (name == "sequence") return v.is_list() || v.is_dict() || v.is_string();
  if (name == "callable") return v.kind == Value::Kind::Function;
  if (name == "odd" || name == "even") return (need_int(v, name) % 2 != 0) == (name == "odd");
  if (name == "divisibleby") {
    const int64_t d = need_int(other(), name);
    if (d == 0) template_fail("divisibleby 0");
    return need_int(v, name) % d == 0;
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other());
  if (name == "ne" || name == "!=") return !equals(v, other());
  if (name == "lt" || name == "lessthan" || name == "<") return compare(v, other(), "<") < 0;
  if (name == "le" || name == "<=") return compare(v, other(), "<=") <= 0;
  if (name == "gt" || name == "greaterthan" || name == ">") return compare(v, other(), ">") > 0;
  if (name == "ge" || name == ">=") return compare(v, other(), ">=") >= 0;
  if (name == "in") {
    for (const Value& item : iterate(other()))
      if (equals(item, v)) return true;
    return other().is_string() && v.is_string() && other().s.find(v.s) != std::string::npos;
  }
  if (name == "lower") return v.is_string() && map_case(v.s, false) == v.s;
  if (name == "upper") return v.is_string() && map_case(v.s, true) == v.s;
  template_fail("unknown test '" + name + "'");
}

Value call_method(const Value& obj, const std::string& name, const Args& args,
                  const Kwargs& kwargs) {
  const auto a = [&](size_t i, const char* key) -> const Value& {
    return arg(args, kwargs, i, key, kNoValue);
  };
  if (obj.is_string()) {
    const std::string& s = obj.s;
    if (name == "strip") return Value(strip(s, a(0, "chars"), true, true));
    if (name == "lstrip") return Value(strip(s, a(0, "chars"), true, false));
    if (name == "rstrip") return Value(strip(s, a(0, "chars"), false, true));
    if (name == "startswith") return Value(starts_or_ends(s, a(0, "prefix"), true));
    if (name == "endswith") return Value(starts_or_ends(s, a(0, "suffix"), false));
    if (name == "split") {
      const Value& max = a(1, "maxsplit");
      return split(s, a(0, "sep"), max.is_undefined() ? -1 : need_int(max, "split"));
    }
    if (name == "upper") return Value(map_case(s, true));
    if (name == "lower") return Value(map_case(s, false));
    if (name == "capitalize") return Value(capitalize(s));
    if (name == "title") return Value(title(s));
    if (name == "replace") return replace(s, a(0, "old"), a(1, "new"), a(2, "count"));
    if (name == "find") {
      const size_t at = s.find(need_string(a(0, "sub"), "find"));
      return Value(at == std::string::npos ? int64_t(-1)
                                           : int64_t(code_points(s.substr(0, at)).size()));
    }
    if (name == "count") {
      const std::string& sub = need_string(a(0, "sub"), "count");
      if (sub.empty()) return Value(int64_t(code_points(s).size() + 1));
      int64_t n = 0;
      for (size_t pos = s.find(sub); pos != std::string::npos; pos = s.find(sub, pos + sub.size()))
        ++n;
      return Value(n);
    }
    if (name == "join") {
      std::string out;
      bool first = true;
      for (const Value& item : iterate(a(0, "iterable"))) {
        out += (first ? "" : s) + need_string(item, "join");
        first = false;
      }
      return Value(out);
    }
  } else if (obj.is_dict() && !obj.dict->is_namespace) {
    if (name == "items") return items(obj);
    if (name == "keys") return Value(iterate(obj));
    if (name == "values") {
      List out;
      for (const auto& item : obj.dict->items) out.push_back(item.second);
      return Value(std::move(out));
    }
    if (name == "get") {
      const Value* found = obj.dict->find(need_string(a(0, "key"), "get"));
      return found ? *found : arg(args, kwargs, 1, "default", Value::none());
    }
  } else if (obj.is_undefined()) {
    template_fail(obj.s);
  }
  template_fail("'" + type_name(obj) + "' object has no method '" + name + "'");
}

Dict global_functions() {
  Dict g;
  g.set("raise_exception", Value(Function([](const Args& args, const Kwargs&) -> Value {
          // The template's own message, for the user: no "chat template line" prefix.
          throw Error(args.empty() ? "chat template raised an exception" : str(args[0]));
        })));
  g.set("namespace", Value(Function([](const Args& args, const Kwargs& kwargs) {
          auto ns = std::make_shared<Dict>();
          ns->is_namespace = true;
          for (const Value& init : args)
            if (init.is_dict())
              for (const auto& [k, v] : init.dict->items) ns->set(k, v);
          for (const auto& [k, v] : kwargs) ns->set(k, v);
          return Value(ns);
        })));
  g.set("dict", Value(Function([](const Args&, const Kwargs& kwargs) {
          auto d = std::make_shared<Dict>();
          for (const auto& [k, v] : kwargs) d->set(k, v);
          return Value(d);
        })));
  g.set("range", Value(Function([](const Args& args, const Kwargs&) {
          if (args.empty() || args.size() > 3) template_fail("range expects 1 to 3 integers");
          int64_t start = 0, stop = need_int(args[0], "range"), step = 1;
          if (args.size() > 1) start = stop, stop = need_int(args[1], "range");
          if (args.size() > 2) step = need_int(args[2], "range");
          if (step == 0) template_fail("range() arg 3 must not be zero");
          List out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (out.size() >= kMaxBuilt / 64) template_fail("range too large");
            out.emplace_back(i);
          }
          return Value(std::move(out));
        })));
  g.set("strftime_now", Value(Function([](const Args& args, const Kwargs&) {
          const std::string& format = need_string(args.empty() ? Value() : args[0], "strftime_now");
          const std::time_t now = std::time(nullptr);
          std::tm local{};
          localtime_r(&now, &local);
          char buf[256];
          const size_t n = std::strftime(buf, sizeof buf, format.c_str(), &local);
          return Value(std::string(buf, n));
        })));
  return g;
}

}  // namespace nibble::jinja
