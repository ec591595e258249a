// bias: a per-feature bias added to every row.
// bias_forward   bindings: 0 params {N, C}, 1 x (N,C) read_write, 2 b (C)      x[n,c] += b[c]
// bias_backward  bindings: 0 params {N, C}, 1 db (C) read_write, 2 dout (N,C)  db[c] += Σ_n dout[n,c]
// bias_forward: one thread per element; bias_backward: one thread per column, summing the rows in
// order (deterministic, no atomics). 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Params { N: u32, C: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read_write> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_b: array<f32>;

@compute @workgroup_size(WG)
fn bias_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pc.N * pc.C) { return; }
  f_x[i] += f_b[i % pc.C];
}

@group(0) @binding(1) var<storage, read_write> b_db: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;

@compute @workgroup_size(WG)
fn bias_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let c = index(gid, nwg);
  if (c >= pc.C) { return; }
  var acc = 0.0;
  for (var n = 0u; n < pc.N; n++) { acc += b_dout[n * pc.C + c]; }
  b_db[c] += acc;
}
