// elu (alpha = 1): out = x for x > 0, exp(x) − 1 otherwise.
// elu_forward   bindings: 0 params {N}, 1 out (N), 2 inp (N)
// elu_backward  bindings: 0 params {N, accumulate}, 1 dinp (N), 2 dout (N), 3 inp (N)
//               dinp = or += (accumulate) dout · (x > 0 ? 1 : exp(x))
// One thread per element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Fwd { N: u32 }
struct Bwd { N: u32, accumulate: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;

@compute @workgroup_size(WG)
fn elu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N) { return; }
  let x = f_inp[i];
  // min() keeps exp() away from overflow on the branch select() discards
  f_out[i] = select(exp(min(x, 0.0)) - 1.0, x, x > 0.0);
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_inp: array<f32>;

@compute @workgroup_size(WG)
fn elu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N) { return; }
  let x = b_inp[i];
  let g = b_dout[i] * select(exp(min(x, 0.0)), 1.0, x > 0.0);
  if (pb.accumulate != 0u) { b_dinp[i] += g; } else { b_dinp[i] = g; }
}
