// The `nibble` subcommands register themselves here; main() only dispatches.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "app/nibble/args.h"

namespace nibble::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `nibble --help`
  std::string usage;    // the text of `nibble NAME --help`
  std::function<int(Args&)> run;
};

std::vector<Command>& commands();

struct RegisterCommand {
  explicit RegisterCommand(Command c) { commands().push_back(std::move(c)); }
};

}  // namespace nibble::cli
