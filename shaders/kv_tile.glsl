// A prompt attention's tile of the float16 KV cache, staged in shared memory one tile ahead:
// kv_tile_load() issues the global loads of the next tile into registers right after the tile
// before has been published, kv_tile_store() writes them to ks/vs once every subgroup is done
// with that one, so that the loads' latency overlaps its arithmetic rather than following it
// (H100 7B pp512 after 4 096 tokens +0.5-0.9 %: the loop was mostly not waiting on memory;
// docs/PERF.md "Prefill", session 15).
// The including shader declares TILE (positions per tile), WG, CHUNKS (16-byte chunks per
// key/value row), KV_ROW (uvec4 per staged row) and the shared arrays ks, vs, and has the push
// constants k_cache, v_cache and kv_cols (in halves; a multiple of 8, checked by the host).
const uint KV_LOADS = (TILE * CHUNKS + WG - 1) / WG;  // 16-byte chunks per invocation
uvec4 next_k[KV_LOADS], next_v[KV_LOADS];

// Cache positions [tile, tile + TILE) of KV head chunk `head_chunk` (kv_head * CHUNKS) into
// next_k/next_v; positions from `end` on as zeros.
void kv_tile_load(uint tile, uint end, uint head_chunk) {
  [[unroll]] for (uint u = 0; u < KV_LOADS; ++u) {
    const uint i = gl_LocalInvocationID.x + u * WG;
    const uint j = tile + i / CHUNKS, at = j * (p.kv_cols / 8) + head_chunk + i % CHUNKS;
    const bool load = i < TILE * CHUNKS && j < end;
    next_k[u] = load ? UVec4s(p.k_cache).v[at] : uvec4(0);
    next_v[u] = load ? UVec4s(p.v_cache).v[at] : uvec4(0);
  }
}

// next_k/next_v into the staged rows (the caller's barrier then publishes them).
void kv_tile_store() {
  [[unroll]] for (uint u = 0; u < KV_LOADS; ++u) {
    const uint i = gl_LocalInvocationID.x + u * WG;
    if (i < TILE * CHUNKS) {
      ks[(i / CHUNKS) * KV_ROW + i % CHUNKS] = next_k[u];
      vs[(i / CHUNKS) * KV_ROW + i % CHUNKS] = next_v[u];
    }
  }
}
