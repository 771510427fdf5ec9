#include "app/nibble/args.h"

#include <algorithm>
#include <charconv>

#include "engine/error.h"

namespace nibble::cli {

std::optional<std::string> Args::get(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    auto it = std::find(argv_.begin(), argv_.end(), name);
    if (it == argv_.end()) continue;
    if (it + 1 == argv_.end())
      fail(std::string(name) + " needs a value (see nibble " + command_ + " --help)");
    std::string value = *(it + 1);
    argv_.erase(it, it + 2);
    return value;
  }
  return std::nullopt;
}

std::string Args::get_or(std::initializer_list<const char*> names, const std::string& fallback) {
  return get(names).value_or(fallback);
}

int Args::get_int(std::initializer_list<const char*> names, int fallback) {
  auto v = get(names);
  if (!v) return fallback;
  int out = 0;
  auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || end != v->data() + v->size())
    fail(std::string(*names.begin()) + " expects an integer, got '" + *v + "'");
  return out;
}

float Args::get_float(std::initializer_list<const char*> names, float fallback) {
  auto v = get(names);
  if (!v) return fallback;
  try {
    size_t used = 0;
    const float out = std::stof(*v, &used);
    if (used == v->size()) return out;
  } catch (const std::exception&) {
  }
  fail(std::string(*names.begin()) + " expects a number, got '" + *v + "'");
}

bool Args::flag(std::initializer_list<const char*> names) {
  bool found = false;
  for (const char* name : names) {
    auto it = std::find(argv_.begin(), argv_.end(), name);
    if (it != argv_.end()) {
      argv_.erase(it);
      found = true;
    }
  }
  return found;
}

void Args::finish() const {
  if (!argv_.empty())
    fail("unknown argument '" + argv_.front() + "' (see nibble " + command_ + " --help)");
}

}  // namespace nibble::cli
