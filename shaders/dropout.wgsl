// dropout: counter-based mask, no mask buffer. Element i is kept iff hash(seed, i) ≥ threshold,
// threshold = ceil(p · 2³²) (i.e. hash / 2³² ≥ p); kept values are scaled by 1 / (1 − p).
// hash(seed, i) = pcg(i ^ pcg(seed)), pcg = the PCG-RXS-M-XS hash of Jarzynski & Olano (JCGT 2020);
// ref/dropout.ts computes the same u32 arithmetic, so the masks are bit-identical.
// dropout_forward   bindings: 0 params {N, threshold, seed, scale: f32}, 1 out (N), 2 inp (N)
// dropout_backward  bindings: 0 params {N, threshold, seed, scale: f32, accumulate}, 1 dinp (N),
//                   2 dout (N)     dinp = or += (accumulate) dout · keep · scale
// One thread per element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Fwd { N: u32, threshold: u32, seed: u32, scale: f32 }
struct Bwd { N: u32, threshold: u32, seed: u32, scale: f32, accumulate: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

fn keep_scale(seed: u32, i: u32, threshold: u32, scale: f32) -> f32 {
  return select(0.0, scale, pcg(i ^ pcg(seed)) >= threshold);
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;

@compute @workgroup_size(WG)
fn dropout_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N) { return; }
  f_out[i] = f_inp[i] * keep_scale(pf.seed, i, pf.threshold, pf.scale);
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;

@compute @workgroup_size(WG)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N) { return; }
  let g = b_dout[i] * keep_scale(pb.seed, i, pb.threshold, pb.scale);
  if (pb.accumulate != 0u) { b_dinp[i] += g; } else { b_dinp[i] = g; }
}
