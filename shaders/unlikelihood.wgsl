// unlikelihood: token-level unlikelihood loss (METHOD.md §4, UL baseline), per row n:
//   p = softmax(logits[n]), y = targets[n], q = 1 − p_y, losses[n] = −log(max(q, EPS)), EPS = 1e-5.
// q is computed without cancellation as Σ_{v≠y} exp(z_v) / Σ_v exp(z_v) (two running logsumexps,
// one over the whole row and one over v ≠ y), never as 1 − p_y in f32.
// dlogits[n, v] = weights[n] · p_y(δ_vy − p_v)/q  =  weights[n] · (v = y ? p_y : −p_y · p_v/q),
// with p_v/q = exp(z_v − lse_{v≠y}) (the softmax over v ≠ y): no division by a small q.
// The gradient is 0 where the clamp is active (q < EPS), where weights[n] = 0, and where the target
// is ≥ V (ignored row, loss 0, as crossentropy).
// unlikelihood_forward           bindings: 0 params {N, V, accumulate}, 1 losses (N), 2 logits (N,V),
//                                3 targets (N) u32
// unlikelihood_forward_backward  bindings: as unlikelihood_forward, 4 dlogits (N,V) = or +=
//                                (accumulate), 5 weights (N)
// One workgroup per row (row = wg.x + wg.y · nwg.x); WG a power of two.

override WG: u32 = 256;
const LOWEST: f32 = -0x1.fffffep+127f; // not −inf: merging two empty threads must not give inf − inf
const EPS: f32 = 1e-5;

struct Params { N: u32, V: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read_write> losses: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;

var<workgroup> red: array<vec4f, WG>;

// Adds x to a running (max, Σ exp(x − max)) pair.
fn online(ms: vec2f, x: f32) -> vec2f {
  if (x > ms.x) { return vec2f(x, ms.y * exp(ms.x - x) + 1.0); }
  return vec2f(ms.x, ms.y + exp(x - ms.x));
}

fn merge(u: vec2f, w: vec2f) -> vec2f {
  let m = max(u.x, w.x);
  return vec2f(m, u.y * exp(u.x - m) + w.y * exp(w.x - m));
}

struct Row { m: f32, s: f32, mx: f32, sx: f32, py: f32, q: f32 }

// The row's (max, Σexp) over all v and over v ≠ y, p_y and q = 1 − p_y, shared by the workgroup;
// thread 0 writes the row's loss.
fn row_stats(row: u32, lid: u32) -> Row {
  let base = row * pc.V;
  let y = targets[row];
  var all = vec2f(LOWEST, 0.0);
  var other = vec2f(LOWEST, 0.0);
  for (var i = lid; i < pc.V; i += WG) {
    let z = logits[base + i];
    all = online(all, z);
    if (i != y) { other = online(other, z); }
  }
  red[lid] = vec4f(all, other);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let u = red[lid];
      let w = red[lid + k];
      red[lid] = vec4f(merge(u.xy, w.xy), merge(u.zw, w.zw));
    }
    workgroupBarrier();
  }
  let r = red[0];
  var py = 0.0;
  var q = 0.0;
  if (y < pc.V) {
    py = exp(logits[base + y] - r.x) / r.y;
    q = r.w * exp(r.z - r.x) / r.y; // Σ_{v≠y} e^z / Σ_v e^z; 0 when V = 1
  }
  if (lid == 0u) { losses[row] = select(0.0, -log(max(q, EPS)), y < pc.V); }
  return Row(r.x, r.y, r.z, r.w, py, q);
}

@compute @workgroup_size(WG)
fn unlikelihood_forward(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= pc.N) { return; }
  _ = row_stats(row, lid.x);
}

@compute @workgroup_size(WG)
fn unlikelihood_forward_backward(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= pc.N) { return; }
  let r = row_stats(row, lid.x);
  let base = row * pc.V;
  let y = targets[row];
  let w = weights[row];
  let skip = w == 0.0 || y >= pc.V || r.q < EPS;
  let inv = 1.0 / r.sx;
  for (var i = lid.x; i < pc.V; i += WG) {
    let other = -r.py * exp(logits[base + i] - r.mx) * inv; // −p_y · p_v / q
    let g = select(w * select(other, r.py, i == y), 0.0, skip);
    if (pc.accumulate != 0u) { dlogits[base + i] += g; } else { dlogits[base + i] = g; }
  }
}
