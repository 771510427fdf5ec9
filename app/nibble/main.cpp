// nibble: run Hugging Face Llama-family checkpoints, 4-bit quantized at load time.
#include <iostream>

#include "app/nibble/command.h"
#include "engine/error.h"

namespace nibble::cli {
std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}
}  // namespace nibble::cli

int main(int argc, char** argv) {
  using namespace nibble::cli;
  auto& all = commands();
  const std::string name = argc > 1 ? argv[1] : "--help";
  if (name == "-h" || name == "--help" || name == "help") {
    std::cout << "usage: nibble COMMAND [options]   (nibble COMMAND --help for its options)\n\n";
    for (const Command& c : all)
      std::cout << "  " << c.name << std::string(16 - std::min<size_t>(15, c.name.size()), ' ')
                << c.summary << "\n";
    return argc > 1 ? 0 : 2;
  }
  for (const Command& c : all) {
    if (c.name != name) continue;
    Args args(name, std::vector<std::string>(argv + 2, argv + argc));
    if (args.wants_help()) {
      std::cout << c.usage;
      return 0;
    }
    try {
      return c.run(args);
    } catch (const nibble::Error& e) {
      std::cerr << "error: " << e.what() << "\n";
      return 2;
    } catch (const std::bad_alloc&) {
      std::cerr << "error: out of host memory\n";
      return 2;
    } catch (const std::exception& e) {
      // Anything a check missed still ends as one message, never as a crash.
      std::cerr << "error: " << e.what() << "\n";
      return 2;
    }
  }
  std::cerr << "error: unknown command '" << name << "' (see nibble --help)\n";
  return 2;
}
