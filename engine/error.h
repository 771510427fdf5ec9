// One error type for everything a user can cause (bad files, bad flags, no memory): the CLI prints
// its message and exits with code 2. Bugs stay asserts.
#pragma once
#include <stdexcept>
#include <string>

namespace nibble {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] inline void fail(const std::string& message) {
  throw Error(message);
}

}  // namespace nibble
