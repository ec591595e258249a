// nceweights: NCE's per-sequence β and per-token distillation weights (METHOD.md §2), from the
// per-token KL(p_N ‖ p_T) of the frozen negative and NAT models. No backward: β depends only on
// frozen models.
// nceweights_beta     bindings: 0 params {B, T, scale}, 1 beta (B), 2 kl (B·T), 3 mask (B·T)
//                     beta[b] = tanh(Σ_t mask·kl / Σ_t mask), 0 when Σ_t mask = 0
// nceweights_forward  bindings: 0 params {B, T, scale}, 1 weights (B·T), 2 beta (B), 3 mask (B·T)
//                     weights[b,t] = mask[b,t] · (0.5 + beta[b]) · scale
// nceweights_beta: one thread per sequence, summing t in order; nceweights_forward: one thread per
// token. 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Params { B: u32, T: u32, scale: f32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// tanh(x) = sign(x) · (1 − t)/(1 + t), t = exp(−2|x|) ≤ 1: no overflow for large |x|.
fn tanh_stable(x: f32) -> f32 {
  let t = exp(-2.0 * abs(x));
  let h = (1.0 - t) / (1.0 + t);
  return select(-h, h, x >= 0.0);
}

@group(0) @binding(0) var<uniform> pc: Params;

@group(0) @binding(1) var<storage, read_write> b_beta: array<f32>;
@group(0) @binding(2) var<storage, read> b_kl: array<f32>;
@group(0) @binding(3) var<storage, read> b_mask: array<f32>;

@compute @workgroup_size(WG)
fn nceweights_beta(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let b = index(gid, nwg);
  if (b >= pc.B) { return; }
  var sum = 0.0;
  var count = 0.0;
  for (var t = 0u; t < pc.T; t++) {
    let m = b_mask[b * pc.T + t];
    sum += m * b_kl[b * pc.T + t];
    count += m;
  }
  b_beta[b] = select(0.0, tanh_stable(sum / count), count > 0.0);
}

@group(0) @binding(1) var<storage, read_write> w_weights: array<f32>;
@group(0) @binding(2) var<storage, read> w_beta: array<f32>;
@group(0) @binding(3) var<storage, read> w_mask: array<f32>;

@compute @workgroup_size(WG)
fn nceweights_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pc.B * pc.T) { return; }
  w_weights[i] = w_mask[i] * (0.5 + w_beta[i / pc.T]) * pc.scale;
}
