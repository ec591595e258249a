// embedding: token-embedding lookup and its scatter-add gradient.
// embedding_forward   bindings: 0 params {N, C, row0, rows}, 1 out (N,C), 2 tokens u32 (N),
//                     3 wte (rows,C), table rows [row0, row0 + rows);
//                     out[n] = wte[tokens[n] − row0]
// embedding_forward_q the same with wte as array<u32> in the quantized layout of src/engine/quant.ts
//                     (DTYPE 8 = q8_0, 4 = q4_0: every block's quants, then the f16 scales two per
//                     u32), dequantized while gathering (GGUF semantics: q8_0 q·d, q4_0 (q − 8)·d;
//                     C a multiple of 32). A quantized table is frozen: it has no backward.
// A whole table is row0 = 0, rows = V. A table split across buffers by rows (the split:
// src/engine/backend/gpu.ts) takes one dispatch per part (src/engine/ops/embedding.ts): a token
// outside the part's rows is skipped (another part's dispatch writes its row), so the dispatches
// together write every output row once (every token < V). f16_bits: shaders/f16.wgsl, prepended.
// embedding_backward  bindings: 0 params {N, C, V}, 1 dwte (V,C) +=, 2 dout (N,C), 3 tokens u32 (N)
// Backward without float atomics, deterministic: one thread per (n, c); only a token's first
// occurrence in `tokens` does the work, summing dout over all its occurrences in order, so every
// dwte element has exactly one writer. O(N²·C), independent of V (N is a training batch).
// Tokens ≥ V are skipped by the backward. One thread per element; 2D grid past the per-dimension
// limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;
override DTYPE: u32 = 8;

struct Fwd { N: u32, C: u32, row0: u32, rows: u32 }
struct Bwd { N: u32, C: u32, V: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_tokens: array<u32>;
@group(0) @binding(3) var<storage, read> f_wte: array<f32>;
@group(0) @binding(3) var<storage, read> q_wte: array<u32>;

// The table row of output element i: ≥ rows when its token is in another part (a token below row0
// wraps around to a large u32).
fn table_row(i: u32) -> u32 { return f_tokens[i / pf.C] - pf.row0; }

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N * pf.C) { return; }
  let r = table_row(i);
  if (r >= pf.rows) { return; }
  f_out[i] = f_wte[r * pf.C + i % pf.C];
}

@compute @workgroup_size(WG)
fn embedding_forward_q(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N * pf.C) { return; }
  let r = table_row(i);
  if (r >= pf.rows) { return; }
  let e = r * pf.C + i % pf.C; // element of the (rows, C) table
  let g = e / 32u; // its block
  let d = f16_bits((q_wte[(pf.rows * pf.C / 32u) * DTYPE + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
  if (DTYPE == 8u) {
    f_out[i] = f32((bitcast<i32>(q_wte[e / 4u]) << (24u - 8u * (e % 4u))) >> 24u) * d;
  } else {
    let j = e % 32u;
    let byte = g * 16u + j % 16u; // byte j % 16 of the block: element j in the low nibble, j + 16 high
    f_out[i] = f32(i32((q_wte[byte / 4u] >> (8u * (byte % 4u) + 4u * (j / 16u))) & 15u) - 8) * d;
  }
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dwte: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_tokens: array<u32>;

@compute @workgroup_size(WG)
fn embedding_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N * pb.C) { return; }
  let n = i / pb.C;
  let c = i % pb.C;
  let tok = b_tokens[n];
  if (tok >= pb.V) { return; }
  for (var m = 0u; m < n; m++) {
    if (b_tokens[m] == tok) { return; } // an earlier occurrence owns this row
  }
  var acc = 0.0;
  for (var m = n; m < pb.N; m++) {
    if (b_tokens[m] == tok) { acc += b_dout[m * pb.C + c]; }
  }
  b_dwte[tok * pb.C + c] += acc;
}
