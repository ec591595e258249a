// Column blocks of a row-major matrix, for matmuls with a weight split across buffers by rows
// (src/engine/ops/matmul.ts; the split itself: src/engine/backend/gpu.ts). A part holding weight
// rows [n0, n0 + n) produces / consumes columns [n0, n0 + n) of the (B, N) output / its gradient.
// cols_scatter  bindings: 0 params {B, n, N, n0, accumulate}, 1 dst (B,N), 2 src (B,n)
//               dst[b, n0 + j] = or += (accumulate) src[b, j]
// cols_gather   bindings: 0 params {B, n, N, n0, accumulate (unused)}, 1 dst (B,n), 2 src (B,N)
//               dst[b, j] = src[b, n0 + j]
// One thread per element of the (B, n) block; 2D grid past the per-dimension limit
// (i = gid.x + gid.y · nwg.x · WG).
// DST_T, SRC_T (ops/act.ts): dst's and src's element types, f32 or f16; with n = N and n0 = 0
// cols_scatter is a plain copy that converts (ops/matmul.ts `castInto`).

override WG: u32 = 256;

struct Params { B: u32, n: u32, N: u32, n0: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> dst: array<DST_T>;
@group(0) @binding(2) var<storage, read> src: array<SRC_T>;

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(WG)
fn cols_scatter(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.B * p.n) { return; }
  let o = (i / p.n) * p.N + p.n0 + i % p.n;
  if (p.accumulate != 0u) { dst[o] = DST_T(f32(dst[o]) + f32(src[i])); } else { dst[o] = DST_T(src[i]); }
}

@compute @workgroup_size(WG)
fn cols_gather(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= p.B * p.n) { return; }
  dst[i] = DST_T(src[(i / p.n) * p.N + p.n0 + i % p.n]);
}
