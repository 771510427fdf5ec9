// The filters, tests, methods and global functions chat templates call, with the behaviour of
// Jinja2 and of the Python str/dict methods they reach.
#pragma once
#include <string>

#include "engine/jinja_value.h"

namespace nibble::jinja {

Value apply_filter(const std::string& name, const Value& value, const Args& args,
                   const Kwargs& kwargs);
bool apply_test(const std::string& name, const Value& value, const Args& args);
// `object.name(args)` for strings, dicts and lists.
Value call_method(const Value& object, const std::string& name, const Args& args,
                  const Kwargs& kwargs);
// raise_exception, namespace, range, dict, strftime_now: the globals transformers provides.
Dict global_functions();

// An Undefined value that remembers why (the message any use of it fails with).
Value undefined(const std::string& why);

}  // namespace nibble::jinja
