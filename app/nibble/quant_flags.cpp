#include "app/nibble/quant_flags.h"

#include "engine/error.h"

namespace nibble::cli {

const char* const kQuantFlagsHelp =
    "\nquantization (like BitsAndBytesConfig; defaults are nf4, double quant, bf16, 64, lm_head):\n"
    "  --quant nf4|fp4|none   4-bit type of the decoder's linear weights, or none for 16-bit\n"
    "  --double-quant         quantize the absmax too (about 4.13 instead of 4.5 bits/weight)\n"
    "  --no-double-quant      keep one float32 absmax per block\n"
    "  --compute-dtype bf16|fp16|fp32   operand rounding of the 4-bit matmul\n"
    "  --blocksize N          weights per absmax: a power of two from 64 to 4096\n"
    "  --skip-modules a,b     modules kept 16-bit (replaces the default lm_head)\n";

namespace {

std::vector<std::string> split_commas(const std::string& list) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) out.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

QuantConfig quant_from_flags(Args& args) {
  QuantConfig q;
  if (auto type = args.get({"--quant"})) {
    if (*type == "nf4") {
      q.type = QuantType::NF4;
    } else if (*type == "fp4") {
      q.type = QuantType::FP4;
    } else if (*type == "none") {
      q.enabled = false;
    } else {
      fail("--quant expects nf4, fp4 or none, got '" + *type + "'");
    }
  }
  const bool dq_on = args.flag({"--double-quant"}), dq_off = args.flag({"--no-double-quant"});
  if (dq_on && dq_off) fail("--double-quant and --no-double-quant contradict each other");
  if (dq_off) q.double_quant = false;
  if (auto compute = args.get({"--compute-dtype"})) {
    if (*compute == "bf16" || *compute == "bfloat16") {
      q.compute = ComputeDType::BF16;
    } else if (*compute == "fp16" || *compute == "float16") {
      q.compute = ComputeDType::F16;
    } else if (*compute == "fp32" || *compute == "float32") {
      q.compute = ComputeDType::F32;
    } else {
      fail("--compute-dtype expects bf16, fp16 or fp32, got '" + *compute + "'");
    }
  }
  q.blocksize = args.get_int({"--blocksize"}, q.blocksize);
  if (auto skip = args.get({"--skip-modules"})) q.skip_modules = split_commas(*skip);
  if (!q.enabled && (dq_on || dq_off))
    fail("--quant none keeps weights 16-bit: --double-quant/--no-double-quant do not apply");
  q.validate();
  return q;
}

}  // namespace nibble::cli
