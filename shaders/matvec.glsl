// out[j] = sum_k round(x[k]) * w[j, k] for one activation row (decode), included by matvec.comp
// (shared-memory reduction) and matvec_subgroup.comp (subgroup shuffles; needs subgroup
// capabilities, which SPIR-V declares module-wide, hence two modules rather than a
// specialization constant).
// As bitsandbytes' GEMV for one token, the 4-bit weight is not rounded to the compute dtype (only
// x is): w[j, k] = code[q] * absmax in float32, and a block's absmax is factored out of its sum.
// That is 2 instructions and a shared-memory read per weight instead of 7, which is what bounds
// this kernel (on the H100, 4096 x 4096: 513 -> 620 GB/s; docs/PERF.md, "Decode").
// Each workgroup computes ROWS output columns; every invocation strides over k for all of them,
// so each has ROWS (twice that for SwiGLU) coalesced loads in flight; float32 accumulation; one
// reduction at the end.
// VEC: the weight's rows are whole 16-byte chunks (32 4-bit, 8 16-bit or 4 float32 values) and
// x is 16-byte aligned: both are read with 16-byte loads, x is rounded once per chunk for all
// rows, and the 4-bit absmax is decoded once per chunk (4-bit blocksizes are powers of two from
// 32, so a chunk never straddles blocks) with the 16-entry code table in shared memory.
// NORM fuses the rms_norm before the product: x is read as g * (x * scale), scale =
// 1 / sqrt(mean(x²) + eps), as shaders/rms_norm.comp computes it, with every workgroup summing
// the squares itself (x is at most a few 10 KB, read from cache), saving a dispatch and a barrier;
// the backend uses it where X16 does not apply (float32 compute, 16-bit weights).
// NORM - 1 is the storage kind of g (WKIND's 0, 1, 2).
// The 4-bit absmax of each row's chunk is decoded before the chunk's weights are loaded: a
// double-quantized one is a chain of dependent loads (the u8 index, then its nested code value),
// which then overlaps the weights' latency instead of following the chunk's arithmetic (H100:
// 7B tg128 +1.5 %, TinyLlama +2.5 %; docs/PERF.md, "Decode"). NESTED_SHARED stages the 256
// nested code values in shared memory, where the backend finds a workgroup's weights large
// enough to pay for it (7B: a further +1 %; TinyLlama's 2 048-wide rows lose 3 % with it).
// X16 (4-bit VEC only): x is given as its operands already rounded to the compute dtype, packed
// two 16-bit values per word in ROUND's format (rms_norm.comp's OPERAND, or OUT16 below): an
// invocation then reads 64 bytes of x per chunk instead of 128 and rounds nothing. x's loads
// are a quarter of this kernel's time (docs/PERF.md, "Decode"), so this is worth a dispatch of
// its own for the norm, which the x16 product can no longer fuse.
// OUT16 also stores the results, as X16 operands, at `out16`: for the next product, which
// takes this one's output as its x (SwiGLU's output is the down projection's).
// EPILOGUE fuses what follows the product in the model, saving a dispatch and a barrier:
//   0: out = s;  1: out += s (the residual connection);  2: out = silu(s) * s_up, where s_up is
//   the same row of a second weight `up` (the MLP's gate and up projections in one pass).
// The next rms_norm, folded into the residual product before it and the products after it
// (decode, bfloat16 operands), saves the norm's dispatch and barrier (two per layer):
//   NORM_SUMS, with EPILOGUE 1 and OUT16: the operands stored are g * out (g: the norm's weight,
//   of storage kind NORM - 1), not yet scaled, and each workgroup adds the sum of its outputs'
//   squares, in fixed point, to one of SUM_COPIES copies of a sum at `up`'s data (128 bytes
//   apart, so that the atomics of a product's workgroups spread over the L2 cache's slices):
//   four 21-bit digits of units 2^-32, 2^-11, 2^10 and 2^31, each added to a 32-bit word of
//   its own, which 2^11 workgroups per copy cannot overflow, so no carries. Integer additions
//   are exact in any order, so every run gives the same scale (a float atomic add would not).
//   (64-bit atomics took 8 registers more on the H100: 72, a second wave for the 4096-row
//   products; atomics on one sum, or carried between words, cost more than the norm saved.)
//   X_SCALE, with X16: x's operands are such g * x, and the sums multiply by the scale,
//   1 / sqrt(mean(x²) + eps), found from the copies at `norm` summed in a fixed order.
//   Rounding g * x rather than g * x * scale to bfloat16 changes each operand by at most its
//   rounding's half ulp.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
layout(constant_id = 2) const bool VEC = false;
layout(constant_id = 3) const uint EPILOGUE = 0;
layout(constant_id = 4) const uint ROWS = 4;
layout(constant_id = 5) const uint WG = 128;  // a power of two
layout(constant_id = 6) const uint NORM = 0;
layout(constant_id = 7) const bool X16 = false;
layout(constant_id = 8) const bool OUT16 = false;
layout(constant_id = 9) const bool NESTED_SHARED = false;  // WKIND 4 with VEC only
layout(constant_id = 10) const bool X_SCALE = false;
layout(constant_id = 11) const bool NORM_SUMS = false;
// CODE_SPEC (4-bit VEC): the 16-entry code table is the specialization constants CODE_0..15
// (every weight read shares it), so that staging it costs no load before the barrier.
layout(constant_id = 12) const bool CODE_SPEC = false;
layout(constant_id = 13) const float CODE_0 = 0.0;
layout(constant_id = 14) const float CODE_1 = 0.0;
layout(constant_id = 15) const float CODE_2 = 0.0;
layout(constant_id = 16) const float CODE_3 = 0.0;
layout(constant_id = 17) const float CODE_4 = 0.0;
layout(constant_id = 18) const float CODE_5 = 0.0;
layout(constant_id = 19) const float CODE_6 = 0.0;
layout(constant_id = 20) const float CODE_7 = 0.0;
layout(constant_id = 21) const float CODE_8 = 0.0;
layout(constant_id = 22) const float CODE_9 = 0.0;
layout(constant_id = 23) const float CODE_10 = 0.0;
layout(constant_id = 24) const float CODE_11 = 0.0;
layout(constant_id = 25) const float CODE_12 = 0.0;
layout(constant_id = 26) const float CODE_13 = 0.0;
layout(constant_id = 27) const float CODE_14 = 0.0;
layout(constant_id = 28) const float CODE_15 = 0.0;
const bool NORM_IN = NORM != 0 && !NORM_SUMS;  // NORM: the norm before the product
const uint NW = EPILOGUE == 2 ? 2 : 1;          // weights read
layout(local_size_x_id = 5) in;

shared float code[NW][16];  // the VEC path's code tables (the scalar path reads them in place)
shared float nested[NW][NESTED_SHARED ? 256 : 1];
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight w;
  Weight up;  // EPILOGUE 2 only; NORM_SUMS: its data holds the fixed-point sums
  Floats out_;
  Floats x;
  uint n;  // output columns = weight rows
  uint k;
  Words norm;  // g (NORM), or the fixed-point sums (X_SCALE)
  float eps;
  uint pad;
  Words out16;  // OUT16 only
} p;

shared float sums[NW * ROWS][WG];  // per invocation, or per subgroup (at most WG of them)
shared float norm_sums[WG];
shared float results[ROWS];  // OUT16: the workgroup's outputs, stored as pairs

const uint PER_CHUNK = WKIND >= 3 ? 32 : WKIND == 0 ? 4 : 8;  // values per 16 bytes

Weight weight_of(uint wi) {
  if (wi == 0) return p.w;
  return p.up;
}

float lo16(uint word) { return WKIND == 1 ? unpackHalf2x16(word).x : uintBitsToFloat(word << 16); }
float hi16(uint word) {
  return WKIND == 1 ? unpackHalf2x16(word).y : uintBitsToFloat(word & 0xffff0000u);
}

// The 16-byte chunk `c` of weight `wi`'s row-major values dotted with x[k0..], which the
// caller loaded and rounded once for all rows; 4-bit chunks without their block's absmax.
float chunk_dot(uint wi, uvec4 c, float xs[32]) {
  float acc = 0.0;
  if (WKIND == 0) {
    [[unroll]] for (uint i = 0; i < 4; ++i) acc += xs[i] * uintBitsToFloat(c[i]);
  } else if (WKIND <= 2) {
    [[unroll]] for (uint i = 0; i < 4; ++i) acc += xs[2 * i] * lo16(c[i]) + xs[2 * i + 1] * hi16(c[i]);
  } else {
    // Byte b of word i holds elements 8i + 2b (high nibble) and 8i + 2b + 1 (low nibble). Both
    // nibbles of all 4 bytes are masked at once, four times over, so that a byte extraction is
    // the lookup's byte offset into the table (H100 4096 x 4096: 13.3 -> 12.9 us against a
    // bitfieldExtract per nibble; the offsets +1 % on tg128 against plain indices).
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      const uint hi = (c[i] >> 2) & 0x3c3c3c3cu, lo = (c[i] << 2) & 0x3c3c3c3cu;
      [[unroll]] for (uint b = 0; b < 4; ++b)
        acc += xs[8 * i + 2 * b] * code[wi][((hi >> (8 * b)) & 0xffu) >> 2] +
               xs[8 * i + 2 * b + 1] * code[wi][((lo >> (8 * b)) & 0xffu) >> 2];
    }
  }
  return acc;
}

// The absmax of weight wi's block holding element e (4-bit VEC: power-of-two block sizes, so
// shifts rather than two integer divisions per chunk).
float chunk_absmax(uint wi, uint e) {
  Weight w = weight_of(wi);
  const uint block = e >> findLSB(w.blocksize);
  const uint group = block >> findLSB(w.nested_blocksize);
  if (!NESTED_SHARED) return block_absmax_in(w, block, group);
  return nested_absmax(w, nested[wi][byte_at(w.data, w.absmax + block)], group);
}

float silu(float g) { return g / (1.0 + exp(-g)); }

// Stores output j (the workgroup's row r); returns what it stored.
float finish(uint j, float s, float s_up) {
  float v = s;
  if (EPILOGUE == 1) v += p.out_.v[j];
  if (EPILOGUE == 2) v = silu(s) * s_up;
  p.out_.v[j] = v;
  return v;
}

const uint SUM_COPIES = 16, SUM_STRIDE = 32;  // words between copies
// The sum's digits' units, least significant first.
const float DIGIT_UNIT[4] = {1.0 / 4294967296.0, 1.0 / 2048.0, 1024.0, 2147483648.0};

// The squares of the workgroup's outputs (results[]), added to a copy of the fixed-point sum.
// A workgroup's sum saturates at 2^52 (x beyond ~3e7 in size).
void add_squares(uint j0) {
  float ss = 0.0;
  for (uint r = 0; r < ROWS && j0 + r < p.n; ++r) ss += results[r] * results[r];
  float rest = min(ss, 4.5e15);
  const uint at = (group_index() % SUM_COPIES) * SUM_STRIDE;
  [[unroll]] for (int i = 3; i >= 0; --i) {
    const uint digit = uint(rest * (1.0 / DIGIT_UNIT[i]));  // powers of two: exact
    rest -= float(digit) * DIGIT_UNIT[i];  // exact: the digit is rest's leading bits
    atomicAdd(p.up.data.v[at + i], digit);
  }
}

float norm_weight(uint i) {
  if (NORM == 1) return uintBitsToFloat(p.norm.v[i]);
  if (NORM == 2) return f16_at(p.norm, i);
  return bf16_at(p.norm, i);
}

// OUT16: every invocation calls it after results[] holds the workgroup's outputs (NORM_SUMS:
// the operands are g * out; g is read only here, after the product's loop).
void store_operands(uint j0) {
  barrier();
  const uint t = gl_LocalInvocationID.x;
  if (t < ROWS / 2 && j0 + 2 * t < p.n) {
    const uint j = j0 + 2 * t;
    float lo = results[2 * t], hi = j + 1 < p.n ? results[2 * t + 1] : 0.0;
    if (NORM_SUMS) {
      lo *= norm_weight(j);
      hi *= j + 1 < p.n ? norm_weight(j + 1) : 0.0;
    }
    p.out16.v[j / 2] = operand_pair(lo, hi, ROUND);
  }
  if (NORM_SUMS && t == ROWS / 2) add_squares(j0);
}

// X_SCALE: the folded norm's scale, from the sums the residual product before left (an
// invocation that stores an output calls it).
float folded_scale() {
  if (!X_SCALE) return 1.0;
  float ss = 0.0;
  for (uint c = 0; c < SUM_COPIES; ++c) {
    const uvec4 d = UVec4s(p.norm).v[c * SUM_STRIDE / 4];
    ss += float(d.x) * DIGIT_UNIT[0] + float(d.y) * DIGIT_UNIT[1] + float(d.z) * DIGIT_UNIT[2] +
          float(d.w) * DIGIT_UNIT[3];
  }
  return 1.0 / sqrt(ss / float(p.k) + p.eps);
}

// The workgroup's sum of v (every invocation calls it).
float workgroup_sum(float v) {
  const uint t = gl_LocalInvocationID.x;
#if SUBGROUP_REDUCE
  v = subgroupAdd(v);
  if (subgroupElect()) norm_sums[gl_SubgroupID] = v;
  barrier();
  float s = 0.0;
  for (uint g = 0; g < gl_NumSubgroups; ++g) s += norm_sums[g];
  return s;
#else
  norm_sums[t] = v;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) norm_sums[t] += norm_sums[t + s];
    barrier();
  }
  return norm_sums[0];
#endif
}

// 1 / sqrt(mean(x²) + eps), or 1 without NORM.
float norm_scale() {
  if (!NORM_IN) return 1.0;
  float ss = 0.0;
  if (VEC) {
    for (uint i = gl_LocalInvocationID.x; i < p.k / 4; i += WG) {
      const vec4 v = Vec4s(p.x).v[i];
      ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
  } else {
    for (uint i = gl_LocalInvocationID.x; i < p.k; i += WG) ss += p.x.v[i] * p.x.v[i];
  }
  return 1.0 / sqrt(workgroup_sum(ss) / float(p.k) + p.eps);
}

// g[e..e + 4) for e a multiple of 4 (VEC: one 16- or 8-byte load).
vec4 norm_weights4(uint e) {
  if (NORM == 1) return Vec4s(p.norm).v[e / 4];
  const uvec2 u = UVec2s(p.norm).v[e / 4];
  if (NORM == 2) return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
  return vec4(uintBitsToFloat(u.x << 16), uintBitsToFloat(u.x & 0xffff0000u),
              uintBitsToFloat(u.y << 16), uintBitsToFloat(u.y & 0xffff0000u));
}

// x[i] as the product's operand: normalized with NORM, then rounded to the compute dtype.
float operand(float x, uint i, float scale) {
  return round_operand(NORM_IN ? norm_weight(i) * (x * scale) : x);
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint j0 = group_index() * ROWS;
  if (j0 >= p.n) return;  // uniform over the workgroup
  if (WKIND >= 3 && t < 16 * NW) {
    const float spec_code[16] = {CODE_0, CODE_1, CODE_2,  CODE_3,  CODE_4,  CODE_5,  CODE_6,  CODE_7,
                                 CODE_8, CODE_9, CODE_10, CODE_11, CODE_12, CODE_13, CODE_14, CODE_15};
    Weight w = weight_of(t / 16);
    code[t / 16][t % 16] =
        CODE_SPEC ? spec_code[t % 16] : uintBitsToFloat(w.data.v[w.code + t % 16]);
  }
  if (NESTED_SHARED)
    for (uint i = t; i < 256 * NW; i += WG) {
      Weight w = weight_of(i / 256);
      nested[i / 256][i % 256] = uintBitsToFloat(w.data.v[w.code + 16 + i % 256]);
    }
  const float scale = norm_scale();     // its barrier also publishes the code tables
  if (WKIND >= 3 && !NORM_IN) barrier();
  float acc[NW * ROWS];
  [[unroll]] for (uint r = 0; r < NW * ROWS; ++r) acc[r] = 0.0;
  if (VEC) {
    for (uint c = t; c < p.k / PER_CHUNK; c += WG) {
      float absmax[NW * ROWS];
      if (WKIND >= 3)
        [[unroll]] for (uint r = 0; r < ROWS; ++r)
          [[unroll]] for (uint wi = 0; wi < NW; ++wi)
            absmax[wi * ROWS + r] =
                j0 + r < p.n ? chunk_absmax(wi, (j0 + r) * p.k + c * PER_CHUNK) : 0.0;
      // Issue every row's 16-byte load before any arithmetic, so they are in flight together.
      uvec4 chunks[NW * ROWS];
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        [[unroll]] for (uint wi = 0; wi < NW; ++wi) {
          Weight w = weight_of(wi);
          chunks[wi * ROWS + r] = j0 + r < p.n
              ? UVec4s(w.data).v[w.values / 4 + ((j0 + r) * p.k) / PER_CHUNK + c]
              : uvec4(0);
        }
      float xs[32];
      if (X16) {
        [[unroll]] for (uint i = 0; i < 4; ++i) {
          const uvec4 u = UVec4s(p.x).v[c * 4 + i];
          [[unroll]] for (uint h = 0; h < 4; ++h) {
            const vec2 pair = ROUND == 1 ? unpackHalf2x16(u[h])
                                         : vec2(uintBitsToFloat(u[h] << 16),
                                                uintBitsToFloat(u[h] & 0xffff0000u));
            xs[8 * i + 2 * h] = pair.x;
            xs[8 * i + 2 * h + 1] = pair.y;
          }
        }
      } else {
        [[unroll]] for (uint i = 0; i < PER_CHUNK / 4; ++i) {
          const uint e = c * PER_CHUNK + 4 * i;
          vec4 v = Vec4s(p.x).v[e / 4];
          if (NORM_IN) v = norm_weights4(e) * (v * scale);
          xs[4 * i] = round_operand(v.x);
          xs[4 * i + 1] = round_operand(v.y);
          xs[4 * i + 2] = round_operand(v.z);
          xs[4 * i + 3] = round_operand(v.w);
        }
      }
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        [[unroll]] for (uint wi = 0; wi < NW; ++wi)
          if (j0 + r < p.n) {
            const float s = chunk_dot(wi, chunks[wi * ROWS + r], xs);
            acc[wi * ROWS + r] += WKIND >= 3 ? absmax[wi * ROWS + r] * s : s;
          }
    }
  } else {
    for (uint i = t; i < p.k; i += WG) {
      const float xi = operand(p.x.v[i], i, scale);
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        [[unroll]] for (uint wi = 0; wi < NW; ++wi)
          if (j0 + r < p.n) acc[wi * ROWS + r] += xi * weight_value_f32(weight_of(wi), (j0 + r) * p.k + i);
    }
  }
#if SUBGROUP_REDUCE
  // The subgroup's NW * ROWS sums at once: each step keeps half of the remaining values and adds
  // the other half from the lane `o` away, which keeps the other half of its own; then lane
  // r * (subgroup size / R) holds sum r. R - 1 + log2(subgroup size / R) shuffles instead of
  // R * log2(subgroup size) with a subgroupAdd per sum (H100 7B: products 3-7 % faster, tg128
  // +2 %; docs/PERF.md "Decode", session 6). R is a power of two (ROWS 2 or 4), at most 8: the
  // host takes this path where subgroups have at least 8 lanes.
  const uint R = NW * ROWS;
  const uint lane = gl_SubgroupInvocationID, stride = gl_SubgroupSize / R;
  [[unroll]] for (uint h = R / 2; h > 0; h /= 2) {
    const uint o = stride * h;
    const bool upper = (lane & o) != 0;
    [[unroll]] for (uint i = 0; i < h; ++i) {
      const float keep = upper ? acc[i + h] : acc[i], give = upper ? acc[i] : acc[i + h];
      acc[i] = keep + subgroupShuffleXor(give, o);
    }
  }
  for (uint o = stride / 2; o > 0; o /= 2) acc[0] += subgroupShuffleXor(acc[0], o);
  if (lane % stride == 0) sums[lane / stride][gl_SubgroupID] = acc[0];
  const float xs = t < ROWS ? folded_scale() : 1.0;  // its load, before the barrier's wait
  barrier();
  if (t < ROWS && j0 + t < p.n) {
    float s[NW];
    [[unroll]] for (uint wi = 0; wi < NW; ++wi) {
      s[wi] = 0.0;
      for (uint g = 0; g < gl_NumSubgroups; ++g) s[wi] += sums[wi * ROWS + t][g];
    }
    const float v = finish(j0 + t, s[0] * xs, s[NW - 1] * xs);
    if (OUT16) results[t] = v;
  }
  if (OUT16) store_operands(j0);
#else
  [[unroll]] for (uint r = 0; r < NW * ROWS; ++r) sums[r][t] = acc[r];
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s)
      [[unroll]] for (uint r = 0; r < NW * ROWS; ++r) sums[r][t] += sums[r][t + s];
    barrier();
  }
  if (t < ROWS && j0 + t < p.n) {
    const float xs = folded_scale();
    const float v = finish(j0 + t, sums[t][0] * xs, sums[(NW - 1) * ROWS + t][0] * xs);
    if (OUT16) results[t] = v;
  }
  if (OUT16) store_operands(j0);
#endif
}
