// The defaults of Backend's optional ops: upload_quantized's host fallback, for backends that
// do not quantize themselves; sample for those that do not sample.
#include "engine/backend.h"

#include "engine/error.h"
#include "engine/sampler.h"
#include "loader/quantize.h"

namespace nibble {

Tensor Backend::upload_quantized(const HostWeight& w, const QuantSpec& spec) {
  return upload_weight(quantize_on_host(w, spec));
}

void Backend::sample(Tensor, Tensor, const SamplerConfig&) {
  fail("internal error: the " + name() + " backend does not sample (can_sample)");
}

}  // namespace nibble
