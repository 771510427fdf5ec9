// Reading one element of a weight of any storage kind, as float32 rounded to the compute dtype.
// The including shader declares the specialization constants WKIND and ROUND first.
//   WKIND: 0 float32, 1 float16, 2 bfloat16, 3 4-bit with float32 absmax, 4 4-bit with
//          double-quantized absmax (u8 index into the 256-entry nested code, scaled per group)
//   ROUND: 0 none, 1 float16, 2 bfloat16 (the 4-bit matmul's bnb_4bit_compute_dtype)
// NF4 and FP4 differ only in their 16-entry code table, which is data.

// Where the parts of a weight live inside its one allocation (offsets in 32-bit words, except
// `absmax`, which counts bytes for the u8 double-quantized form).
struct Weight {
  Words data;
  uint values;
  uint absmax;
  uint nested_absmax;
  uint code;  // 16 code floats, then the 256 nested code floats when double quantized
  uint blocksize;
  uint nested_blocksize;
  float offset;
};

// SHARED_CODES (defined by the including shader, after its local_size): the code tables are
// read from shared memory, which stage_codes() fills, rather than from the weight's memory.
#ifdef SHARED_CODES
shared float code[16];
shared float nested_code[256];
#define CODE_AT(w, q) code[q]
#define NESTED_CODE_AT(w, q) nested_code[q]

// Every invocation of the workgroup calls it (it ends with a barrier).
void stage_codes(Weight w) {
  const uint t = gl_LocalInvocationID.x;
  if (t < 16) code[t] = uintBitsToFloat(w.data.v[w.code + t]);
  if (WKIND == 4)
    for (uint i = t; i < 256; i += gl_WorkGroupSize.x)
      nested_code[i] = uintBitsToFloat(w.data.v[w.code + 16 + i]);
  barrier();
}
#endif

// Where the code tables are read from otherwise: the weight's memory, unless the including
// shader defined these first.
#ifndef CODE_AT
#define CODE_AT(w, q) uintBitsToFloat(w.data.v[w.code + (q)])
#endif
#ifndef NESTED_CODE_AT
#define NESTED_CODE_AT(w, q) uintBitsToFloat(w.data.v[w.code + 16u + (q)])
#endif

float round_operand(float v) {
  if (ROUND == 1) return round_f16(v);
  if (ROUND == 2) return round_bf16(v);
  return v;
}

// round_operand() of a dequantized 4-bit value: |code| <= 1 times a finite absmax is finite,
// so the NaN case of the bfloat16 rounding can be skipped (hot in the decode matvec).
float round_dequantized(float v) {
  if (ROUND == 2) {
    const uint u = floatBitsToUint(v);
    return uintBitsToFloat((u + 0x7fffu + bitfieldExtract(u, 16, 1)) & 0xffff0000u);
  }
  return round_operand(v);
}

// A double-quantized absmax from its nested code value (the block's u8 index looked up in the
// nested code) and its group's scale.
float nested_absmax(Weight w, float nested_code, uint group) {
  const float scale = uintBitsToFloat(w.data.v[w.nested_absmax + group]);
  precise float absmax = nested_code * scale;  // no fused multiply-add: match the host's rounding
  precise float shifted = absmax + w.offset;
  return shifted;
}

// The absmax of block `block`, whose double-quantization group is `group` (block /
// nested_blocksize: a caller that knows the sizes are powers of two passes a shift's result).
float block_absmax_in(Weight w, uint block, uint group) {
  if (WKIND == 3) return uintBitsToFloat(w.data.v[w.absmax + block]);
  return nested_absmax(w, NESTED_CODE_AT(w, byte_at(w.data, w.absmax + block)), group);
}

// The 4-bit code in bits [shift, shift + 4) of `word` times its block's absmax, in float32 (as
// weight_value_f32), for shaders that decode a word of 8 codes at a time.
float q4_value(Weight w, uint word, uint shift, float absmax) {
  precise float v = CODE_AT(w, bitfieldExtract(word, int(shift), 4)) * absmax;
  return v;
}

float block_absmax(Weight w, uint block) {
  return block_absmax_in(w, block, WKIND == 4 ? block / w.nested_blocksize : 0u);
}

// Element `e` of the row-major weight, 4-bit ones dequantized in float32.
float weight_value_f32(Weight w, uint e) {
  if (WKIND == 0) return uintBitsToFloat(w.data.v[w.values + e]);
  if (WKIND == 1) return f16_at(w.data, 2u * w.values + e);
  if (WKIND == 2) return bf16_at(w.data, 2u * w.values + e);
  const uint packed = byte_at(w.data, 4u * w.values + (e >> 1));
  const uint q = (e & 1u) != 0u ? packed & 15u : packed >> 4;  // even element in the high nibble
  precise float v = CODE_AT(w, q) * block_absmax(w, e / w.blocksize);
  return v;
}

// Element `e` as a matmul operand: 4-bit ones rounded to the compute dtype, as bitsandbytes
// dequantizes a weight to it before a matmul.
float weight_value(Weight w, uint e) {
  const float v = weight_value_f32(w, e);
  return WKIND >= 3 ? round_dequantized(v) : v;
}
