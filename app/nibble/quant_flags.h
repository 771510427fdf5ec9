// The quantization flags every model-loading command shares; they mirror BitsAndBytesConfig.
#pragma once
#include "app/nibble/args.h"
#include "loader/quant_config.h"

namespace nibble::cli {

// Takes --quant nf4|fp4|none, --double-quant / --no-double-quant, --compute-dtype bf16|fp16|fp32,
// --blocksize N and --skip-modules a,b from `args`; unset flags keep the seed's defaults
// (nf4, double quant, bf16 compute, blocksize 64, skip lm_head). Returns a validated config.
QuantConfig quant_from_flags(Args& args);

extern const char* const kQuantFlagsHelp;

}  // namespace nibble::cli
