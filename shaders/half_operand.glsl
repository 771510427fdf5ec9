// Matmul operands as float16 bits for the cooperative-matrix prompt GEMM (matmul_coopmat*.comp),
// exactly the values the scalar path multiplies (round_operand / round_dequantized). The
// including shader declares the specialization constant ROUND first:
//   1 (float16 compute): rounded to nearest even like round_f16, exact in float16;
//   2 (bfloat16 compute): bfloat16 values, which float16 holds exactly while their magnitude is
//     in [2^-17, 65504] (docs/VULKAN.md states what happens outside).

// An activation as the compute dtype, still in float32 (the float16 rounding happens in
// half2_bits).
float x_operand(float v) { return ROUND == 2 ? round_bf16(v) : v; }

// Two operands as one word of float16 bits, `a` in the low half. For ROUND 2 the values are
// bfloat16 already, so any conversion rounding mode gives the same bits in the float16 range.
uint half2_bits(float a, float b) {
  if (ROUND == 1) return f32_to_f16_bits(a) | (f32_to_f16_bits(b) << 16);
  return packHalf2x16(vec2(a, b));
}
