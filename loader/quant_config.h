// The C++ BitsAndBytesConfig: which weights become 4-bit at load time, and how.
#pragma once
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/quant.h"

namespace nibble {

struct QuantConfig {
  bool enabled = true;  // --quant none turns it off
  QuantType type = QuantType::NF4;
  bool double_quant = true;
  ComputeDType compute = ComputeDType::BF16;
  int blocksize = 64;
  std::vector<std::string> skip_modules = {"lm_head"};

  void validate() const;         // clear error for an invalid combination (e.g. blocksize 100)
  std::string describe() const;  // "nf4 + double quant, bf16 compute, blocksize 64"
};

}  // namespace nibble
