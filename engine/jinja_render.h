// Renders a parsed chat template: Jinja2's scoping (a for loop's body gets a fresh scope each
// iteration; if does not scope), its loop variable, break/continue, and namespaces.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/jinja_ast.h"

namespace nibble::jinja {

// `variables` are the template's globals (messages, bos_token, ...), besides the global
// functions. Mistakes fail with nibble::Error naming the template line; raise_exception fails
// with the template's own message.
std::string render(const Body& body, const std::vector<std::pair<std::string, Value>>& variables);

}  // namespace nibble::jinja
