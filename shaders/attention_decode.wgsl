// attention against a KV cache (inference: batched decode and prefill, one kernel). The cache of
// one layer is kcache, vcache (S, maxT, NKV, HS): S sequence slots of maxT positions. A batch has
// R query rows; rowInfo (2R) u32 = [seq0, pos0, seq1, pos1, ...]: row r is token pos_r of slot
// seq_r and attends to that slot's positions 0..pos_r (causality comes from pos alone, so a
// prompt of length P is P rows at positions 0..P-1, written to the cache first).
// kv_cache_write    bindings: 0 params, 1 kcache, 2 vcache, 3 k (R,NKV*HS), 4 v (R,NKV*HS), 5 rowInfo
//                   one thread per element over a 2-D grid; rows outside the cache are skipped.
// attention_decode  bindings: 0 params, 1 out (R,NH*HS), 2 q (R,NH*HS), 3 kcache, 4 vcache, 5 rowInfo
//                   workgroups (NH, R): one per (row, head). Positions go by in chunks of WG
//                   with an online (flash-style) softmax, so pos has no shared-memory limit; each
//                   thread keeps the running sum of its own dims of v in `acc`. pos is clamped
//                   to maxT − 1 (the caller checks positions; the kernel never reads another slot).

override WG: u32 = 64;
override HSMAX: u32 = 256;
const NEG_BIG: f32 = -3.0e38;

struct Params { R: u32, NH: u32, NKV: u32, HS: u32, maxT: u32, scale: f32 }

@group(0) @binding(0) var<uniform> pw: Params;
@group(0) @binding(1) var<storage, read_write> w_kcache: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_vcache: array<f32>;
@group(0) @binding(3) var<storage, read> w_k: array<f32>;
@group(0) @binding(4) var<storage, read> w_v: array<f32>;
@group(0) @binding(5) var<storage, read> w_info: array<u32>;

@compute @workgroup_size(WG)
fn kv_cache_write(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_id) lid: vec3u) {
  let C = pw.NKV * pw.HS;
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  let r = i / C;
  if (r >= pw.R) { return; }
  let seq = w_info[2u * r];
  let pos = w_info[2u * r + 1u];
  if (pos >= pw.maxT || seq >= arrayLength(&w_kcache) / (pw.maxT * C)) { return; }
  let dst = (seq * pw.maxT + pos) * C + i % C;
  w_kcache[dst] = w_k[i];
  w_vcache[dst] = w_v[i];
}

@group(0) @binding(0) var<uniform> pd: Params;
@group(0) @binding(1) var<storage, read_write> d_out: array<f32>;
@group(0) @binding(2) var<storage, read> d_q: array<f32>;
@group(0) @binding(3) var<storage, read> d_kcache: array<f32>;
@group(0) @binding(4) var<storage, read> d_vcache: array<f32>;
@group(0) @binding(5) var<storage, read> d_info: array<u32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> prob: array<f32, WG>;
var<workgroup> acc: array<f32, HSMAX>;

fn reduce(lid: u32, v: f32, is_max: bool) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] = select(red[lid] + red[lid + s], max(red[lid], red[lid + s]), is_max); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@compute @workgroup_size(WG)
fn attention_decode(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let HS = pd.HS; let h = wg.x; let r = wg.y;
  let seq = d_info[2u * r];
  let pos = min(d_info[2u * r + 1u], pd.maxT - 1u);
  let kvh = h / (pd.NH / pd.NKV);
  let qo = (r * pd.NH + h) * HS;
  let rs = pd.NKV * HS; // stride between cache positions
  let base = seq * pd.maxT * rs + kvh * HS;
  for (var d = lid.x; d < HS; d += WG) { acc[d] = 0.0; }
  var m = NEG_BIG; // running max and sum of exp(score − m)
  var l = 0.0;
  for (var c = 0u; c <= pos; c += WG) {
    let t2 = c + lid.x;
    var s = NEG_BIG;
    if (t2 <= pos) {
      let ko = base + t2 * rs;
      var dot = 0.0;
      for (var d = 0u; d < HS; d++) { dot += d_q[qo + d] * d_kcache[ko + d]; }
      s = dot * pd.scale;
    }
    let mnew = max(m, reduce(lid.x, s, true));
    let p = select(0.0, exp(s - mnew), t2 <= pos);
    prob[lid.x] = p;
    let lc = reduce(lid.x, p, false); // its barriers also publish prob
    let corr = select(exp(m - mnew), 0.0, c == 0u);
    l = l * corr + lc;
    let n = min(WG, pos + 1u - c);
    for (var d = lid.x; d < HS; d += WG) {
      var a = acc[d] * corr;
      for (var j = 0u; j < n; j++) { a += prob[j] * d_vcache[base + (c + j) * rs + d]; }
      acc[d] = a;
    }
    m = mnew;
  }
  for (var d = lid.x; d < HS; d += WG) { d_out[qo + d] = acc[d] / l; }
}

// attention_decode_serial  bindings as attention_decode; one thread per (row, head), no barriers.
// For CPU implementations (SwiftShader), where every workgroup barrier is a fiber switch: the
// thread runs the online softmax over positions itself and keeps its HS outputs privately.
@group(0) @binding(0) var<uniform> ps: Params;
@group(0) @binding(1) var<storage, read_write> s_out: array<f32>;
@group(0) @binding(2) var<storage, read> s_q: array<f32>;
@group(0) @binding(3) var<storage, read> s_kcache: array<f32>;
@group(0) @binding(4) var<storage, read> s_vcache: array<f32>;
@group(0) @binding(5) var<storage, read> s_info: array<u32>;

@compute @workgroup_size(WG)
fn attention_decode_serial(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ps.R * ps.NH) { return; }
  let HS = ps.HS; let h = i % ps.NH; let r = i / ps.NH;
  let seq = s_info[2u * r];
  let pos = min(s_info[2u * r + 1u], ps.maxT - 1u);
  let kvh = h / (ps.NH / ps.NKV);
  let qo = (r * ps.NH + h) * HS;
  let rs = ps.NKV * HS;
  let base = seq * ps.maxT * rs + kvh * HS;
  var acc: array<f32, 256>; // private arrays need a constant size: HS ≤ 256 (checked by the caller)
  for (var d = 0u; d < HS; d++) { acc[d] = 0.0; }
  var m = NEG_BIG;
  var l = 0.0;
  for (var t = 0u; t <= pos; t++) {
    let ko = base + t * rs;
    var s = 0.0;
    for (var d = 0u; d < HS; d++) { s += s_q[qo + d] * s_kcache[ko + d]; }
    s *= ps.scale;
    let mn = max(m, s);
    let corr = exp(m - mn);
    let p = exp(s - mn);
    l = l * corr + p;
    for (var d = 0u; d < HS; d++) { acc[d] = acc[d] * corr + p * s_vcache[ko + d]; }
    m = mn;
  }
  for (var d = 0u; d < HS; d++) { s_out[qo + d] = acc[d] / l; }
}
