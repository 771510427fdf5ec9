// Fuzzes the config.json parser: a ModelConfig that keeps the promises the model code relies on
// (positive sizes, heads that divide, an even head_dim), or nibble::Error.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/error.h"
#include "loader/model_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const nibble::ModelConfig c = nibble::parse_model_config(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
    const bool sane =
        c.vocab_size > 0 && c.hidden_size > 0 && c.intermediate_size > 0 &&
        c.num_hidden_layers > 0 && c.num_attention_heads > 0 && c.num_key_value_heads > 0 &&
        c.head_dim > 0 && c.head_dim % 2 == 0 &&
        c.num_attention_heads % c.num_key_value_heads == 0 && c.max_position_embeddings > 0 &&
        c.rms_norm_eps > 0 && c.rope_theta > 0 && c.sliding_window >= 0 &&
        (!c.rope_scaling || (c.rope_scaling->factor > 0 &&
                             c.rope_scaling->high_freq_factor > c.rope_scaling->low_freq_factor));
    if (!sane) std::abort();
  } catch (const nibble::Error&) {
  }
  return 0;
}
