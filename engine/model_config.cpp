#include "engine/model_config.h"

#include <cmath>
#include <numbers>

namespace nibble {

// As transformers' _compute_default_rope_parameters and _compute_llama3_parameters.
std::vector<float> rope_inv_freq(const ModelConfig& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    inv[size_t(i)] = float(1.0 / std::pow(double(c.rope_theta), double(2 * i) / c.head_dim));
  if (!c.rope_scaling || c.rope_scaling->type != "llama3") return inv;

  const RopeScaling& s = *c.rope_scaling;
  const double old_ctx = s.original_max_position_embeddings;
  const double low_wavelen = old_ctx / s.low_freq_factor;
  const double high_wavelen = old_ctx / s.high_freq_factor;
  for (float& f : inv) {
    const double wavelen = 2.0 * std::numbers::pi / f;
    if (wavelen > low_wavelen) {
      f = float(f / s.factor);
    } else if (wavelen >= high_wavelen) {
      const double smooth =
          (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = float((1.0 - smooth) * f / s.factor + smooth * f);
    }
  }
  return inv;
}

}  // namespace nibble
