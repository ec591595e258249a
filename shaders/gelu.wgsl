// gelu: the exact erf GELU, out = 0.5·x·(1 + erf(x/√2)) = 0.5·x·erfc(−x/√2).
// gelu_forward   bindings: 0 params {N}, 1 out (N), 2 inp (N)
// gelu_backward  bindings: 0 params {N, accumulate}, 1 dinp (N), 2 dout (N), 3 inp (N)
//                dinp = or += (accumulate) dout · (0.5·erfc(−x/√2) + x·φ(x))
// WGSL has no erf: erfc is Numerical Recipes' erfcc (Chebyshev fit, fractional error < 1.2e-7
// everywhere), so the negative tail keeps relative accuracy instead of cancelling in 1 + erf.
// One thread per element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Fwd { N: u32 }
struct Bwd { N: u32, accumulate: u32 }

const SQRT1_2: f32 = 0.70710678118654752;
const INV_SQRT_2PI: f32 = 0.39894228040143268;

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn erfc(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let p = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
          t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
  let r = t * exp(-z * z + p);
  return select(r, 2.0 - r, x < 0.0);
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;

@compute @workgroup_size(WG)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N) { return; }
  let x = f_inp[i];
  f_out[i] = 0.5 * x * erfc(-x * SQRT1_2);
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_inp: array<f32>;

@compute @workgroup_size(WG)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N) { return; }
  let x = b_inp[i];
  let g = b_dout[i] * (0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * exp(-0.5 * x * x));
  if (pb.accumulate != 0u) { b_dinp[i] += g; } else { b_dinp[i] = g; }
}
