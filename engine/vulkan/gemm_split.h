#pragma once
// How the prompt GEMM (shaders/matmul_coopmat.comp) spreads its output tiles over a device whose
// multiprocessors each run one tile's workgroup at a time. A product of T tiles on W
// multiprocessors runs ceil(T / W) waves of equal length; the last is often part empty (the 7B's
// 11008-wide products: 344 tiles on the H100's 132, 2.6 waves run as 3). The column tiles that
// fill whole waves run as they are; the rest run their k range in parts, each part a workgroup
// of its own, whose sums shaders/sum_parts.comp adds after (in part order: deterministic).
#include <cstdint>

namespace nibble::vk {

struct GemmSplit {
  uint32_t whole_columns = 0;  // the first column tiles, run whole
  uint32_t parts = 1;          // k parts of the other column tiles (1: they run whole too)
  uint32_t part_slices = 0;    // k slices per part; the last part takes what is left
};

// For `row_tiles` x `column_tiles` tiles of `slices` k slices each on `wave` multiprocessors (0:
// unknown, nothing is split).
GemmSplit plan_gemm_split(uint32_t row_tiles, uint32_t column_tiles, uint32_t slices,
                          uint32_t wave);

}  // namespace nibble::vk
