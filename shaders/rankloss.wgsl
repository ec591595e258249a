// rankloss: the ranker's cubic pairwise loss (METHOD.md §3) and the sigmoid that turns its logits
// into scores. s = sigmoid(z), computed with 1 − s = sigmoid(−z) directly (no cancellation).
// rankloss_forward           bindings: 0 params {P, weight}, 1 losses (P), 2 zpos (P), 3 zneg (P)
//                            losses[i] = (1 − s⁺)³ + (s⁻)³
// rankloss_forward_backward  bindings: as rankloss_forward, 4 dzpos (P), 5 dzneg (P)  (written)
//                            dzpos = −3·weight·s⁺·(1 − s⁺)³, dzneg = 3·weight·(s⁻)³·(1 − s⁻)
// sigmoid_forward            bindings: 0 params {N}, 1 out (N), 2 inp (N)     out = sigmoid(inp)
// One thread per element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).

override WG: u32 = 256;

struct Loss { P: u32, weight: f32 }
struct Sig { N: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// (sigmoid(z), 1 − sigmoid(z)); exp only ever sees −|z|.
fn sigmoid2(z: f32) -> vec2f {
  let t = exp(-abs(z));
  let r = 1.0 / (1.0 + t);
  return select(vec2f(t * r, r), vec2f(r, t * r), z >= 0.0);
}

@group(0) @binding(0) var<uniform> pl: Loss;
@group(0) @binding(1) var<storage, read_write> losses: array<f32>;
@group(0) @binding(2) var<storage, read> zpos: array<f32>;
@group(0) @binding(3) var<storage, read> zneg: array<f32>;
@group(0) @binding(4) var<storage, read_write> dzpos: array<f32>;
@group(0) @binding(5) var<storage, read_write> dzneg: array<f32>;

@compute @workgroup_size(WG)
fn rankloss_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pl.P) { return; }
  let u = sigmoid2(zpos[i]).y; // 1 − s⁺
  let s = sigmoid2(zneg[i]).x; // s⁻
  losses[i] = u * u * u + s * s * s;
}

@compute @workgroup_size(WG)
fn rankloss_forward_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pl.P) { return; }
  let sp = sigmoid2(zpos[i]);
  let sn = sigmoid2(zneg[i]);
  let u3 = sp.y * sp.y * sp.y;
  let s3 = sn.x * sn.x * sn.x;
  losses[i] = u3 + s3;
  dzpos[i] = -3.0 * pl.weight * sp.x * u3;
  dzneg[i] = 3.0 * pl.weight * s3 * sn.y;
}

@group(0) @binding(0) var<uniform> ps: Sig;
@group(0) @binding(1) var<storage, read_write> s_out: array<f32>;
@group(0) @binding(2) var<storage, read> s_inp: array<f32>;

@compute @workgroup_size(WG)
fn sigmoid_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= ps.N) { return; }
  s_out[i] = sigmoid2(s_inp[i]).x;
}
