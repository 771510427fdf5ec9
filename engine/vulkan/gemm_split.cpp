#include "engine/vulkan/gemm_split.h"

namespace nibble::vk {

namespace {
constexpr uint32_t kMaxParts = 16;
constexpr uint32_t kMinPartSlices = 4;
// Costs in k slices of one tile's loop (H100: about 1.3 us): a workgroup's first loads and its
// stores, and the sum of one wave of parts (132 x 64 KiB read at about 3 TB/s).
constexpr double kTileOverhead = 2, kSumPerWave = 2.5;
}  // namespace

GemmSplit plan_gemm_split(uint32_t row_tiles, uint32_t column_tiles, uint32_t slices,
                          uint32_t wave) {
  GemmSplit plan{column_tiles, 1, slices};
  if (wave == 0 || row_tiles == 0 || column_tiles == 0 || slices == 0) return plan;
  const uint64_t tiles = uint64_t(row_tiles) * column_tiles;
  const uint32_t whole = uint32_t(tiles / wave * wave / row_tiles);
  const uint64_t rest = uint64_t(column_tiles - whole) * row_tiles;
  // The rest's time when its k range runs in parts of `per` slices: waves of parts, then the sum.
  auto cost = [&](uint32_t per) {
    const uint64_t parts = (slices + per - 1) / per, groups = rest * parts;
    return double((groups + wave - 1) / wave) * (per + kTileOverhead) +
           (parts > 1 ? kSumPerWave * double(groups) / wave : 0.0);
  };
  uint32_t best = slices;
  for (uint32_t parts = 2; parts <= kMaxParts; ++parts) {
    const uint32_t per = (slices + parts - 1) / parts;
    if (per < kMinPartSlices) break;
    if (cost(per) < cost(best)) best = per;
  }
  if (rest == 0 || best == slices) return plan;
  return GemmSplit{whole, (slices + best - 1) / best, best};
}

}  // namespace nibble::vk
