// crossentropy: fused classifier loss (llm.c's idea): the loss of each row and the gradient of its
// logits in one kernel, so the probabilities are never stored.
// crossentropy_forward           bindings: 0 params {N, V}, 1 losses (N), 2 logits (N,V), 3 targets (N) u32
// crossentropy_forward_backward  bindings: 0 params {N, V}, 1 losses (N), 2 logits (N,V), 3 targets (N) u32,
//                                4 dlogits (N,V), 5 weights (N)
// losses[n] = −log softmax(logits[n])[targets[n]]  (unweighted)
// dlogits[n] = weights[n] · (softmax(logits[n]) − onehot(targets[n]))  (written, not added)
// A target ≥ V (e.g. −100 as u32, PyTorch's ignore_index) gives loss 0 and dlogits 0; weight 0
// gives dlogits 0 and the row's true loss. One workgroup per row; WG a power of two.

override WG: u32 = 256;
const LOWEST: f32 = -0x1.fffffep+127f; // not −inf: merging two empty threads must not give inf − inf

struct Params { N: u32, V: u32 }

@group(0) @binding(0) var<uniform> pc: Params;
@group(0) @binding(1) var<storage, read_write> losses: array<f32>;
@group(0) @binding(2) var<storage, read> logits: array<f32>;
@group(0) @binding(3) var<storage, read> targets: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read> weights: array<f32>;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

// Adds x to a running (max, Σ exp(x − max)) pair.
fn online(ms: vec2f, x: f32) -> vec2f {
  if (x > ms.x) { return vec2f(x, ms.y * exp(ms.x - x) + 1.0); }
  return vec2f(ms.x, ms.y + exp(x - ms.x));
}

fn merge(a: vec2f, b: vec2f) -> vec2f {
  let m = max(a.x, b.x);
  return vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
}

// The row's (max, Σ exp(x − max)), shared by the workgroup; thread 0 writes the row's loss.
fn row_loss(row: u32, lid: u32) -> vec2f {
  let base = row * pc.V;
  var ms = vec2f(LOWEST, 0.0);
  for (var i = lid; i < pc.V; i += WG) { ms = online(ms, logits[base + i]); }
  red_m[lid] = ms.x;
  red_s[lid] = ms.y;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) {
      let r = merge(vec2f(red_m[lid], red_s[lid]), vec2f(red_m[lid + k], red_s[lid + k]));
      red_m[lid] = r.x;
      red_s[lid] = r.y;
    }
    workgroupBarrier();
  }
  let r = vec2f(red_m[0], red_s[0]);
  let t = targets[row];
  if (lid == 0u) {
    var loss = 0.0;
    if (t < pc.V) { loss = r.x + log(r.y) - logits[base + t]; }
    losses[row] = loss;
  }
  return r;
}

@compute @workgroup_size(WG)
fn crossentropy_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  _ = row_loss(wg.x, lid.x);
}

@compute @workgroup_size(WG)
fn crossentropy_forward_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.x;
  let r = row_loss(row, lid.x);
  let base = row * pc.V;
  let t = targets[row];
  let w = weights[row];
  let skip = w == 0.0 || t >= pc.V;
  let inv = 1.0 / r.y;
  for (var i = lid.x; i < pc.V; i += WG) {
    let p = exp(logits[base + i] - r.x) * inv;
    let g = w * (p - select(0.0, 1.0, i == t));
    dlogits[base + i] = select(g, 0.0, skip);
  }
}

// ---- Software GPUs (SwiftShader: a thread is one SIMD lane of a CPU core, and a workgroup barrier
// is a fiber switch): a thread per row, serially over the vocabulary, no barrier. One exp per
// logit: the max first, then exp(x − max) goes to dlogits and is rescaled in place.
// crossentropy_forward_serial, crossentropy_forward_backward_serial: bindings as above; WG threads
// per workgroup over a 2D grid x·y, threads past N return.

fn serial_index(wg: vec3u, nwg: vec3u, lid: u32) -> u32 { return (wg.y * nwg.x + wg.x) * WG + lid; }

fn row_max(base: u32) -> f32 {
  var m = LOWEST;
  for (var i = 0u; i < pc.V; i++) { m = max(m, logits[base + i]); }
  return m;
}

// losses[row] from the row's max and Σ exp(x − max).
fn put_loss(row: u32, m: f32, s: f32) {
  let t = targets[row];
  var loss = 0.0;
  if (t < pc.V) { loss = m + log(s) - logits[row * pc.V + t]; }
  losses[row] = loss;
}

@compute @workgroup_size(WG)
fn crossentropy_forward_serial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                               @builtin(local_invocation_index) lid: u32) {
  let row = serial_index(wg, nwg, lid);
  if (row >= pc.N) { return; }
  let base = row * pc.V;
  let m = row_max(base);
  var s = 0.0;
  for (var i = 0u; i < pc.V; i++) { s += exp(logits[base + i] - m); }
  put_loss(row, m, s);
}

@compute @workgroup_size(WG)
fn crossentropy_forward_backward_serial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                        @builtin(local_invocation_index) lid: u32) {
  let row = serial_index(wg, nwg, lid);
  if (row >= pc.N) { return; }
  let base = row * pc.V;
  let m = row_max(base);
  var s = 0.0;
  for (var i = 0u; i < pc.V; i++) { let e = exp(logits[base + i] - m); dlogits[base + i] = e; s += e; }
  put_loss(row, m, s);
  let t = targets[row];
  let w = weights[row];
  let skip = w == 0.0 || t >= pc.V;
  let inv = 1.0 / s;
  for (var i = 0u; i < pc.V; i++) {
    let g = w * (dlogits[base + i] * inv - select(0.0, 1.0, i == t));
    dlogits[base + i] = select(g, 0.0, skip);
  }
}
