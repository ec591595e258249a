// meanpool: masked mean over tokens (the ranker's sequence embedding).
// meanpool_forward   bindings: 0 params {B, T, C}, 1 out (B,C), 2 inp (B,T,C), 3 mask (B,T)
//                    out[b,c] = Σ_t mask[b,t]·inp[b,t,c] / max(1, Σ_t mask[b,t])
// meanpool_backward  bindings: 0 params {B, T, C, accumulate}, 1 dinp (B,T,C), 2 dout (B,C),
//                    3 mask (B,T)      dinp[b,t,c] = or += (accumulate) mask[b,t]·dout[b,c] / max(1, Σ mask)
// One thread per (b, c), looping over t (reads along c are coalesced); 2D grid past the
// per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Fwd { B: u32, T: u32, C: u32 }
struct Bwd { B: u32, T: u32, C: u32, accumulate: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;
@group(0) @binding(3) var<storage, read> f_mask: array<f32>;

@compute @workgroup_size(WG)
fn meanpool_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.B * pf.C) { return; }
  let b = i / pf.C;
  let c = i % pf.C;
  var count = 0.0;
  var acc = 0.0;
  for (var t = 0u; t < pf.T; t++) {
    let m = f_mask[b * pf.T + t];
    count += m;
    acc += m * f_inp[(b * pf.T + t) * pf.C + c];
  }
  f_out[i] = acc / max(1.0, count);
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_mask: array<f32>;

@compute @workgroup_size(WG)
fn meanpool_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.B * pb.C) { return; }
  let b = i / pb.C;
  let c = i % pb.C;
  var count = 0.0;
  for (var t = 0u; t < pb.T; t++) { count += b_mask[b * pb.T + t]; }
  let d = b_dout[i] / max(1.0, count);
  for (var t = 0u; t < pb.T; t++) {
    let j = (b * pb.T + t) * pb.C + c;
    let g = b_mask[b * pb.T + t] * d;
    if (pb.accumulate != 0u) { b_dinp[j] += g; } else { b_dinp[j] = g; }
  }
}
