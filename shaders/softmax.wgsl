// softmax: probabilities or log-probabilities of each row, and their backwards.
// softmax_forward       bindings: 0 params {N, V, temperature}, 1 out (N,V), 2 inp (N,V)
//                       out = softmax(inp / temperature)
// log_softmax_forward   bindings: 0 params {N, V}, 1 out (N,V), 2 inp (N,V)    out = log softmax(inp)
// softmax_backward      bindings: 0 params {N, V, accumulate, temperature}, 1 dinp (N,V), 2 dout (N,V),
//                       3 out (N,V) probs        dinp = or += out · (dout − Σ dout·out) / temperature
// log_softmax_backward  bindings: 0 params {N, V, accumulate}, 1 dinp (N,V), 2 dout (N,V),
//                       3 out (N,V) log-probs    dinp = or += dout − exp(out) · Σ dout
// One workgroup per row (V up to 32000), strided loop. The forwards keep the running max and
// Σ exp(x − max) per thread (one read of the row), then merge the pairs across the workgroup.
// WG must be a power of two.

override WG: u32 = 256;
const LOWEST: f32 = -0x1.fffffep+127f; // not −inf: merging two empty threads must not give inf − inf

struct Fwd { N: u32, V: u32, temperature: f32 }
struct LogFwd { N: u32, V: u32 }
struct Bwd { N: u32, V: u32, accumulate: u32, temperature: f32 }
struct LogBwd { N: u32, V: u32, accumulate: u32 }

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

// Row (max, Σ exp(x − max)) from each thread's pair; every thread gets the result.
fn reduce_max_sum(lid: u32, ms: vec2f) -> vec2f {
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
  workgroupBarrier();
  return r;
}

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red_s[lid] = v;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red_s[lid] += red_s[lid + k]; }
    workgroupBarrier();
  }
  let r = red_s[0];
  workgroupBarrier();
  return r;
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;

@compute @workgroup_size(WG)
fn softmax_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let base = wg.x * pf.V;
  var ms = vec2f(LOWEST, 0.0);
  for (var i = lid.x; i < pf.V; i += WG) { ms = online(ms, f_inp[base + i] / pf.temperature); }
  let r = reduce_max_sum(lid.x, ms);
  let inv = 1.0 / r.y;
  for (var i = lid.x; i < pf.V; i += WG) {
    f_out[base + i] = exp(f_inp[base + i] / pf.temperature - r.x) * inv;
  }
}

@group(0) @binding(0) var<uniform> pl: LogFwd;
@group(0) @binding(1) var<storage, read_write> l_out: array<f32>;
@group(0) @binding(2) var<storage, read> l_inp: array<f32>;

@compute @workgroup_size(WG)
fn log_softmax_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let base = wg.x * pl.V;
  var ms = vec2f(LOWEST, 0.0);
  for (var i = lid.x; i < pl.V; i += WG) { ms = online(ms, l_inp[base + i]); }
  let r = reduce_max_sum(lid.x, ms);
  let lse = r.x + log(r.y);
  for (var i = lid.x; i < pl.V; i += WG) { l_out[base + i] = l_inp[base + i] - lse; }
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_out: array<f32>;

@compute @workgroup_size(WG)
fn softmax_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let base = wg.x * pb.V;
  var dot = 0.0;
  for (var i = lid.x; i < pb.V; i += WG) { dot += b_dout[base + i] * b_out[base + i]; }
  let total = reduce_sum(lid.x, dot);
  for (var i = lid.x; i < pb.V; i += WG) {
    let g = b_out[base + i] * (b_dout[base + i] - total) / pb.temperature;
    if (pb.accumulate != 0u) { b_dinp[base + i] += g; } else { b_dinp[base + i] = g; }
  }
}

@group(0) @binding(0) var<uniform> pg: LogBwd;
@group(0) @binding(1) var<storage, read_write> g_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> g_dout: array<f32>;
@group(0) @binding(3) var<storage, read> g_out: array<f32>;

@compute @workgroup_size(WG)
fn log_softmax_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let base = wg.x * pg.V;
  var sum = 0.0;
  for (var i = lid.x; i < pg.V; i += WG) { sum += g_dout[base + i]; }
  let total = reduce_sum(lid.x, sum);
  for (var i = lid.x; i < pg.V; i += WG) {
    let g = g_dout[base + i] - exp(g_out[base + i]) * total;
    if (pg.accumulate != 0u) { g_dinp[base + i] += g; } else { g_dinp[base + i] = g; }
  }
}
