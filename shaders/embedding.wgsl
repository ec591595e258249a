// embedding: token-embedding lookup and its scatter-add gradient.
// embedding_forward   bindings: 0 params {N, C}, 1 out (N,C), 2 tokens u32 (N), 3 wte (V,C)
//                     out[n] = wte[tokens[n]]
// embedding_backward  bindings: 0 params {N, C, V}, 1 dwte (V,C) +=, 2 dout (N,C), 3 tokens u32 (N)
// Backward without float atomics, deterministic: one thread per (n, c); only a token's first
// occurrence in `tokens` does the work, summing dout over all its occurrences in order, so every
// dwte element has exactly one writer. O(N²·C), independent of V (N is a training batch).
// Tokens ≥ V are skipped by the backward. One thread per element; 2D grid past the per-dimension
// limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Fwd { N: u32, C: u32 }
struct Bwd { N: u32, C: u32, V: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_tokens: array<u32>;
@group(0) @binding(3) var<storage, read> f_wte: array<f32>;

@compute @workgroup_size(WG)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N * pf.C) { return; }
  let n = i / pf.C;
  let c = i % pf.C;
  f_out[i] = f_wte[f_tokens[n] * pf.C + c];
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
