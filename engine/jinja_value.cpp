#include "engine/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "engine/tokenizer_unicode.h"

namespace nibble::jinja {

const Value* Dict::find(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Dict::set(const std::string& key, Value value) {
  for (auto& [k, v] : items)
    if (k == key) {
      v = std::move(value);
      return;
    }
  items.emplace_back(key, std::move(value));
}

std::string type_name(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "undefined";
    case Value::Kind::None:
      return "NoneType";
    case Value::Kind::Bool:
      return "bool";
    case Value::Kind::Int:
      return "int";
    case Value::Kind::Float:
      return "float";
    case Value::Kind::String:
      return "str";
    case Value::Kind::List:
      return "list";
    case Value::Kind::Dict:
      return v.dict->is_namespace ? "Namespace" : "dict";
    case Value::Kind::Function:
      return "function";
  }
  return "?";
}

bool truthy(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
    case Value::Kind::None:
      return false;
    case Value::Kind::Bool:
      return v.b;
    case Value::Kind::Int:
      return v.i != 0;
    case Value::Kind::Float:
      return v.f != 0;
    case Value::Kind::String:
      return !v.s.empty();
    case Value::Kind::List:
      return !v.list->empty();
    case Value::Kind::Dict:
      return v.dict->is_namespace || !v.dict->items.empty();
    case Value::Kind::Function:
      return true;
  }
  return false;
}

double as_double(const Value& v) {
  if (v.kind == Value::Kind::Float) return v.f;
  if (v.kind == Value::Kind::Int) return double(v.i);
  if (v.kind == Value::Kind::Bool) return v.b ? 1 : 0;
  template_fail("expected a number, got " + type_name(v));
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind != Value::Kind::Float && b.kind != Value::Kind::Float)
      return (a.kind == Value::Kind::Bool ? a.b : a.i) == (b.kind == Value::Kind::Bool ? b.b : b.i);
    return as_double(a) == as_double(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Value::Kind::String:
      return a.s == b.s;
    case Value::Kind::List:
      return a.list->size() == b.list->size() &&
             std::equal(a.list->begin(), a.list->end(), b.list->begin(), equals);
    case Value::Kind::Dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->items.size() != b.dict->items.size()) return false;
      for (const auto& [k, v] : a.dict->items) {
        const Value* other = b.dict->find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    case Value::Kind::Function:
      return a.fn == b.fn;
    default:
      return true;  // undefined == undefined, None == None
  }
}

namespace {

std::string float_repr(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, f);
  std::string s(buf, end);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string string_repr(const std::string& s) {
  const char quote =
      s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (unsigned char c : s) {
    if (c == quote || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out + quote;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

void write_json(const Value& v, int indent, bool sort_keys, int depth, std::string& out) {
  const auto newline = [&](int level) {
    if (indent < 0) return;
    out += '\n';
    out.append(size_t(indent * level), ' ');
  };
  const char* comma = indent < 0 ? ", " : ",";
  switch (v.kind) {
    case Value::Kind::None:
      out += "null";
      break;
    case Value::Kind::Bool:
      out += v.b ? "true" : "false";
      break;
    case Value::Kind::Int:
      out += std::to_string(v.i);
      break;
    case Value::Kind::Float:
      out += std::isnan(v.f)   ? "NaN"
             : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity")
                               : float_repr(v.f);
      break;
    case Value::Kind::String:
      out += json_string(v.s);
      break;
    case Value::Kind::List:
      if (v.list->empty()) {
        out += "[]";
        break;
      }
      out += '[';
      for (size_t i = 0; i < v.list->size(); ++i) {
        if (i) out += comma;
        newline(depth + 1);
        write_json((*v.list)[i], indent, sort_keys, depth + 1, out);
      }
      newline(depth);
      out += ']';
      break;
    case Value::Kind::Dict: {
      auto items = v.dict->items;
      if (items.empty()) {
        out += "{}";
        break;
      }
      if (sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](auto& a, auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += comma;
        newline(depth + 1);
        out += json_string(items[i].first) + ": ";
        write_json(items[i].second, indent, sort_keys, depth + 1, out);
      }
      newline(depth);
      out += '}';
      break;
    }
    default:
      template_fail("Object of type " + type_name(v) + " is not JSON serializable");
  }
}

}  // namespace

std::string repr(const Value& v) {
  switch (v.kind) {
    case Value::Kind::String:
      return string_repr(v.s);
    case Value::Kind::List: {
      std::string out = "[";
      for (size_t i = 0; i < v.list->size(); ++i) out += (i ? ", " : "") + repr((*v.list)[i]);
      return out + "]";
    }
    case Value::Kind::Dict: {
      if (v.dict->is_namespace) return "<Namespace>";
      std::string out = "{";
      for (size_t i = 0; i < v.dict->items.size(); ++i)
        out += (i ? ", " : "") + string_repr(v.dict->items[i].first) + ": " +
               repr(v.dict->items[i].second);
      return out + "}";
    }
    default:
      return str(v);
  }
}

std::string str(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return "";
    case Value::Kind::None:
      return "None";
    case Value::Kind::Bool:
      return v.b ? "True" : "False";
    case Value::Kind::Int:
      return std::to_string(v.i);
    case Value::Kind::Float:
      return float_repr(v.f);
    case Value::Kind::String:
      return v.s;
    case Value::Kind::Function:
      return "<function>";
    default:
      return repr(v);
  }
}

std::string to_json(const Value& v, int indent, bool sort_keys) {
  std::string out;
  write_json(v, indent, sort_keys, 0, out);
  return out;
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    unicode::next_codepoint(s, i);
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

List iterate(const Value& v) {
  switch (v.kind) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::List:
      return *v.list;
    case Value::Kind::String: {
      List out;
      for (std::string& c : code_points(v.s)) out.emplace_back(std::move(c));
      return out;
    }
    case Value::Kind::Dict: {
      List out;
      for (const auto& item : v.dict->items) out.emplace_back(item.first);
      return out;
    }
    default:
      template_fail("'" + type_name(v) + "' object is not iterable");
  }
}

}  // namespace nibble::jinja
