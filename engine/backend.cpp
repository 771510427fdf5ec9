// The host fallback of Backend::upload_quantized, for backends that do not quantize themselves.
#include "engine/backend.h"

#include "loader/quantize.h"

namespace nibble {

Tensor Backend::upload_quantized(const HostWeight& w, const QuantSpec& spec) {
  return upload_weight(quantize_on_host(w, spec));
}

}  // namespace nibble
