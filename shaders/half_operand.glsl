// Matmul operands as float16 bits for the cooperative-matrix prompt GEMM (matmul_coopmat*.comp),
// exactly the values the scalar path multiplies (round_operand / round_dequantized). The
// including shader declares the specialization constant ROUND and includes weight.glsl first:
//   1 (float16 compute): rounded to nearest even like round_f16, exact in float16;
//   2 (bfloat16 compute): bfloat16 values, which float16 holds exactly while their magnitude is
//     in [2^-17, 65504]; weights enter scaled by W_SCALE = 2^8 and the GEMM's sums leave scaled
//     by 2^-8 (both exact), so that weights of magnitude [2^-25, 256] stay exact (docs/VULKAN.md
//     states what happens outside these ranges).
const float W_SCALE = ROUND == 2 ? 256.0 : 1.0;

// An activation as the compute dtype, still in float32 (the float16 rounding happens in
// half2_bits).
float x_operand(float v) { return ROUND == 2 ? round_bf16(v) : v; }

// A weight value from weight_value() as the GEMM's operand.
float w_operand(float v) { return v * W_SCALE; }

#ifdef CODE_AT  // the shader decodes weights (weight.glsl, push constant `p.w`)
// The 4-bit value in bits [shift, shift + 4) of `word` dequantized and rounded like
// weight_value(), as the GEMM's operand (ROUND 1 leaves the rounding to half2_bits).
float q4_operand(uint word, uint shift, float absmax) {
  const float v = q4_value(p.w, word, shift, absmax);
  return ROUND == 2 ? round_dequantized(v) * W_SCALE : v;
}
#endif

// Two operands as one word of float16 bits, `a` in the low half. For ROUND 2 the values are
// bfloat16 already, so any conversion rounding mode gives the same bits in the float16 range.
// half2_bits(x_operand(a), x_operand(b)) is common.glsl's gemm_operand_pair(a, b, ROUND), which
// the ops that write activations use; the GEMM keeps this form because its compiled loop moves
// with any change to the code it includes (docs/PERF.md "Prefill", session 6).
uint half2_bits(float a, float b) {
  if (ROUND == 1) return f32_to_f16_bits(a) | (f32_to_f16_bits(b) << 16);
  return packHalf2x16(vec2(a, b));
}
