// kl: per-row KL divergence between two distributions given as logits, and the soft-target
// cross-entropy for distillation (gradient to the student only).
// kl_forward                  out[n] = Σ_v p(v) · (log p(v) − log q(v)), p = softmax(a), q = softmax(b)
// soft_crossentropy_forward   losses[n] = −Σ_v p_T(v) · log p_S(v), p_T = softmax(a), p_S = softmax(b)
// soft_crossentropy_forward_backward   the same, and dlogits[n] = or += (accumulate) weights[n]·(p_S − p_T)
// bindings: 0 params {N, V, accumulate}, 1 out/losses (N), 2 a = logitsP / logitsTeacher (N,V),
//           3 b = logitsQ / logitsStudent (N,V), 4 dlogits (N,V) (student), 5 weights (N)
// Logs come from log-softmax (x − logsumexp), never log(p + 1e-7): exact where p underflows to 0
// (the term is then 0 · finite = 0). One workgroup per row; WG a power of two.

override WG: u32 = 256;
const LOWEST: f32 = -0x1.fffffep+127f; // not −inf: merging two empty threads must not give inf − inf

struct Params { N: u32, V: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;

var<workgroup> red_ms: array<vec4f, WG>;
var<workgroup> red_sum: array<f32, WG>;

// Adds x to a running (max, Σ exp(x − max)) pair.
fn online(ms: vec2f, x: f32) -> vec2f {
  if (x > ms.x) { return vec2f(x, ms.y * exp(ms.x - x) + 1.0); }
  return vec2f(ms.x, ms.y + exp(x - ms.x));
}

fn merge(u: vec2f, w: vec2f) -> vec2f {
  let m = max(u.x, w.x);
  return vec2f(m, u.y * exp(u.x - m) + w.y * exp(w.x - m));
}

// logsumexp of row `row` of a and of b, shared by the workgroup.
fn row_lse(row: u32, lid: u32) -> vec2f {
  let base = row * pc.V;
  var ma = vec2f(LOWEST, 0.0);
  var mb = vec2f(LOWEST, 0.0);
  for (var i = lid; i < pc.V; i += WG) {
    ma = online(ma, a[base + i]);
    mb = online(mb, b[base + i]);
  }
  red_ms[lid] = vec4f(ma, mb);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let u = red_ms[lid];
      let w = red_ms[lid + k];
      red_ms[lid] = vec4f(merge(u.xy, w.xy), merge(u.zw, w.zw));
    }
    workgroupBarrier();
  }
  let r = red_ms[0];
  return vec2f(r.x + log(r.y), r.z + log(r.w));
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red_sum[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red_sum[lid] += red_sum[lid + k]; }
    workgroupBarrier();
  }
  return red_sum[0];
}

@compute @workgroup_size(WG)
fn kl_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let base = wg.x * pc.V;
  let lse = row_lse(wg.x, lid.x);
  var acc = 0.0;
  for (var i = lid.x; i < pc.V; i += WG) {
    let logp = a[base + i] - lse.x;
    acc += exp(logp) * (logp - (b[base + i] - lse.y));
  }
  let total = reduce_sum(lid.x, acc);
  if (lid.x == 0u) { out[wg.x] = total; }
}

// Thread 0 writes the row's loss; returns the row's two logsumexps.
fn soft_loss(row: u32, lid: u32) -> vec2f {
  let base = row * pc.V;
  let lse = row_lse(row, lid);
  var acc = 0.0;
  for (var i = lid; i < pc.V; i += WG) { acc -= exp(a[base + i] - lse.x) * (b[base + i] - lse.y); }
  let total = reduce_sum(lid, acc);
  if (lid == 0u) { out[row] = total; }
  return lse;
}

@compute @workgroup_size(WG)
fn soft_crossentropy_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  _ = soft_loss(wg.x, lid.x);
}

@compute @workgroup_size(WG)
fn soft_crossentropy_forward_backward(
  @builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
) {
  let base = wg.x * pc.V;
  let lse = soft_loss(wg.x, lid.x);
  let w = weights[wg.x];
  for (var i = lid.x; i < pc.V; i += WG) {
    let g = select(w * (exp(b[base + i] - lse.y) - exp(a[base + i] - lse.x)), 0.0, w == 0.0);
    if (pc.accumulate != 0u) { dlogits[base + i] += g; } else { dlogits[base + i] = g; }
  }
}
