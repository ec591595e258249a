// embedding gather from one part of a table split across buffers by rows (src/engine/ops/embedding.ts;
// the split itself: src/engine/backend/gpu.ts). The part holds table rows [row0, row0 + rows);
// a token outside that range is skipped (another part's dispatch writes its row), so the parts'
// dispatches together write every output row once (every token < V).
// embedding_part    bindings: 0 params {N, C, row0, rows}, 1 out (N,C), 2 tokens u32 (N),
//                   3 part (rows,C) f32;  out[n] = part[tokens[n] − row0]
// embedding_part_q  the same with the part as array<u32> in the quantized layout of
//                   src/engine/quant.ts (DTYPE 8 = q8_0, 4 = q4_0: every block's quants, then the
//                   f16 scales two per u32), dequantized while gathering (GGUF semantics: q8_0
//                   q·d, q4_0 (q − 8)·d; C a multiple of 32), exactly as shaders/embedding.wgsl.
// One thread per output element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;
override DTYPE: u32 = 8;

struct Params { N: u32, C: u32, row0: u32, rows: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> tokens: array<u32>;
@group(0) @binding(3) var<storage, read> part: array<f32>;
@group(0) @binding(3) var<storage, read> qpart: array<u32>;

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// The part's row of output element i: ≥ rows when its token is in another part (a token below
// row0 wraps around to a large u32).
fn part_row(i: u32) -> u32 { return tokens[i / p.C] - p.row0; }

@compute @workgroup_size(WG)
fn embedding_part(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.N * p.C) { return; }
  let r = part_row(i);
  if (r >= p.rows) { return; }
  out[i] = part[r * p.C + i % p.C];
}

// f16 bits -> f32 by hand (as in matmul.wgsl): unpack2x16float may flush f16 subnormals, and the
// blocks of tiny weights have subnormal scales. Scales are finite, so e = 31 is not handled.
fn f16_bits(h: u32) -> f32 {
  let e = (h >> 10u) & 31u;
  let m = select((h & 1023u) | 1024u, h & 1023u, e == 0u);
  let v = ldexp(f32(m), i32(max(e, 1u)) - 25);
  return select(v, -v, (h & 0x8000u) != 0u);
}

@compute @workgroup_size(WG)
fn embedding_part_q(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.N * p.C) { return; }
  let r = part_row(i);
  if (r >= p.rows) { return; }
  let e = r * p.C + i % p.C; // element of the (rows, C) part
  let g = e / 32u; // its block
  let d = f16_bits((qpart[(p.rows * p.C / 32u) * DTYPE + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
  if (DTYPE == 8u) {
    out[i] = f32((bitcast<i32>(qpart[e / 4u]) << (24u - 8u * (e % 4u))) >> 24u) * d;
  } else {
    let j = e % 32u;
    let byte = g * 16u + j % 16u; // byte j % 16 of the block: element j in the low nibble, j + 16 high
    out[i] = f32(i32((qpart[byte / 4u] >> (8u * (byte % 4u) + 4u * (j / 16u))) & 15u) - 8) * d;
  }
}
