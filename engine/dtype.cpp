#include "engine/dtype.h"

namespace nibble {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
    case DType::I32:
      return "I32";
    case DType::U8:
      return "U8";
    case DType::NF4:
      return "NF4";
    case DType::FP4:
      return "FP4";
  }
  return "?";
}

std::string_view compute_dtype_name(ComputeDType t) {
  switch (t) {
    case ComputeDType::F32:
      return "fp32";
    case ComputeDType::F16:
      return "fp16";
    case ComputeDType::BF16:
      return "bf16";
  }
  return "?";
}

}  // namespace nibble
