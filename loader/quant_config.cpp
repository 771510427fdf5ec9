#include "loader/quant_config.h"

#include "engine/error.h"

namespace nibble {

void QuantConfig::validate() const {
  if (!enabled) return;
  if (blocksize < 64 || blocksize > 4096 || (blocksize & (blocksize - 1)) != 0)
    fail("blocksize " + std::to_string(blocksize) +
         " is not supported: use a power of two from 64 to 4096 (bitsandbytes' 4-bit block sizes)");
  for (const std::string& m : skip_modules)
    if (m.empty()) fail("an empty name in the modules to skip would match nothing; remove it");
}

std::string QuantConfig::describe() const {
  if (!enabled) return "no quantization (16/32-bit weights as stored)";
  std::string s = type == QuantType::NF4 ? "nf4" : "fp4";
  if (double_quant) s += " + double quant";
  s += ", " + std::string(compute_dtype_name(compute)) + " compute, blocksize " +
       std::to_string(blocksize);
  return s;
}

}  // namespace nibble
