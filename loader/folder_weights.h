// The WeightSource of a model folder: checks each tensor's shape against config.json, quantizes
// the decoder's linear weights as QuantConfig says (streaming from the mmap), or reads weights a
// bitsandbytes-style 4-bit checkpoint already holds without re-quantizing.
#pragma once
#include "engine/weights.h"
#include "loader/model_folder.h"
#include "loader/quant_config.h"

namespace nibble {

// Who turns a weight into 4-bit: FolderWeights itself (get returns the packed weight), or the
// backend it is uploaded to (get returns the 16/32-bit weight with `quantize_to` set, for
// Backend::upload_quantized; the Vulkan backend then quantizes on the GPU while streaming).
enum class QuantizeIn { Loader, Backend };

class FolderWeights final : public WeightSource {
 public:
  FolderWeights(const ModelFolder& folder, const QuantConfig& quant,
                QuantizeIn where = QuantizeIn::Loader);
  bool has(const std::string& name) const override;
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override;

 private:
  const ModelFolder& folder_;
  QuantConfig quant_;
  QuantizeIn where_;
};

}  // namespace nibble
