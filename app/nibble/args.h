// llama.cpp-style flags: `-m DIR`, `--model DIR`, `-n 64`, `--flag`. Each command takes what it
// knows with get/flag and calls finish(), which rejects anything left over.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace nibble::cli {

class Args {
 public:
  Args(std::string command, std::vector<std::string> argv)
      : command_(std::move(command)), argv_(std::move(argv)) {}

  // The value of the first of `names` present (e.g. {"-m", "--model"}), removed from the list.
  std::optional<std::string> get(std::initializer_list<const char*> names);
  std::string get_or(std::initializer_list<const char*> names, const std::string& fallback);
  int get_int(std::initializer_list<const char*> names, int fallback);
  float get_float(std::initializer_list<const char*> names, float fallback);
  // Whether a value-less flag is present (removed from the list).
  bool flag(std::initializer_list<const char*> names);
  bool wants_help() { return flag({"-h", "--help"}); }
  void finish() const;  // error on unknown flags or stray arguments

  const std::string& command() const { return command_; }

 private:
  std::string command_;
  std::vector<std::string> argv_;
};

}  // namespace nibble::cli
