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
// Every kernel has an _f16 twin (at the end) for a cache of f16 pairs packed in u32 words.
// ACT_T (ops/act.ts): the element type of q, k, v and out, f32 or f16; every sum is f32.

override WG: u32 = 64;
override HSMAX: u32 = 256;
const NEG_BIG: f32 = -3.0e38;

// slot0: the first slot this cache tensor holds (a cache split across bindings, by slots); rows
// of other slots are left alone (not written, their output untouched).
struct Params { R: u32, NH: u32, NKV: u32, HS: u32, maxT: u32, scale: f32, slot0: u32 }

@group(0) @binding(0) var<uniform> pw: Params;
@group(0) @binding(1) var<storage, read_write> w_kcache: array<f32>;
@group(0) @binding(2) var<storage, read_write> w_vcache: array<f32>;
@group(0) @binding(3) var<storage, read> w_k: array<ACT_T>;
@group(0) @binding(4) var<storage, read> w_v: array<ACT_T>;
@group(0) @binding(5) var<storage, read> w_info: array<u32>;

@compute @workgroup_size(WG)
fn kv_cache_write(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                  @builtin(local_invocation_id) lid: vec3u) {
  let C = pw.NKV * pw.HS;
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  let r = i / C;
  if (r >= pw.R) { return; }
  let seq = w_info[2u * r] - pw.slot0; // a slot below slot0 wraps past the cache: skipped
  let pos = w_info[2u * r + 1u];
  if (pos >= pw.maxT || seq >= arrayLength(&w_kcache) / (pw.maxT * C)) { return; }
  let dst = (seq * pw.maxT + pos) * C + i % C;
  w_kcache[dst] = f32(w_k[i]);
  w_vcache[dst] = f32(w_v[i]);
}

@group(0) @binding(0) var<uniform> pd: Params;
@group(0) @binding(1) var<storage, read_write> d_out: array<ACT_T>;
@group(0) @binding(2) var<storage, read> d_q: array<ACT_T>;
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
  // a row of another part of a split cache: the same (uniform) work on slot 0, nothing written
  let raw = d_info[2u * r] - pd.slot0;
  let mine = raw < arrayLength(&d_kcache) / (pd.maxT * pd.NKV * HS);
  let seq = select(0u, raw, mine);
  let pos = select(0u, min(d_info[2u * r + 1u], pd.maxT - 1u), mine);
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
      for (var d = 0u; d < HS; d++) { dot += f32(d_q[qo + d]) * d_kcache[ko + d]; }
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
  if (mine) { for (var d = lid.x; d < HS; d += WG) { d_out[qo + d] = ACT_T(acc[d] / l); } }
}

// attention_decode_serial  bindings as attention_decode; one thread per (row, head), no barriers.
// For CPU implementations (SwiftShader), where every workgroup barrier is a fiber switch: the
// thread runs the online softmax over positions itself and keeps its HS outputs privately.
@group(0) @binding(0) var<uniform> ps: Params;
@group(0) @binding(1) var<storage, read_write> s_out: array<ACT_T>;
@group(0) @binding(2) var<storage, read> s_q: array<ACT_T>;
@group(0) @binding(3) var<storage, read> s_kcache: array<f32>;
@group(0) @binding(4) var<storage, read> s_vcache: array<f32>;
@group(0) @binding(5) var<storage, read> s_info: array<u32>;

@compute @workgroup_size(WG)
fn attention_decode_serial(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ps.R * ps.NH) { return; }
  let HS = ps.HS; let h = i % ps.NH; let r = i / ps.NH;
  let seq = s_info[2u * r] - ps.slot0;
  if (seq >= arrayLength(&s_kcache) / (ps.maxT * ps.NKV * HS)) { return; } // another part's slot
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
    for (var d = 0u; d < HS; d++) { s += f32(s_q[qo + d]) * s_kcache[ko + d]; }
    s *= ps.scale;
    let mn = max(m, s);
    let corr = exp(m - mn);
    let p = exp(s - mn);
    l = l * corr + p;
    for (var d = 0u; d < HS; d++) { acc[d] = acc[d] * corr + p * s_vcache[ko + d]; }
    m = mn;
  }
  for (var d = 0u; d < HS; d++) { s_out[qo + d] = ACT_T(acc[d] / l); }
}

// attention_decode_serial4  bindings as attention_decode; the serial kernel for HS = 4·HS4 ≤ 16
// (tiny models on software GPUs): q, the running output and each k/v row live in vec4 registers
// (HS4 is a pipeline constant, so the unused lanes compile away), no private array in memory.
// The online softmax rescales only when the running max grows: one exp per position in the usual
// case instead of two (exp is a long routine on a CPU).
override HS4: u32 = 2;
@group(0) @binding(2) var<storage, read> s4_q: array<vec4<ACT_T>>;
@group(0) @binding(3) var<storage, read> s4_kcache: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> s4_vcache: array<vec4<f32>>;

// q·k of one cache row at vec4 offset o (the HS4 > n tests fold away: HS4 is a constant).
fn qk4(q: array<vec4<f32>, 4>, o: u32) -> f32 {
  var s = dot(q[0], s4_kcache[o]);
  if (HS4 > 1u) { s += dot(q[1], s4_kcache[o + 1u]); }
  if (HS4 > 2u) { s += dot(q[2], s4_kcache[o + 2u]); }
  if (HS4 > 3u) { s += dot(q[3], s4_kcache[o + 3u]); }
  return s;
}

@compute @workgroup_size(WG)
fn attention_decode_serial4(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ps.R * ps.NH) { return; }
  let h = i % ps.NH; let r = i / ps.NH;
  let seq = s_info[2u * r] - ps.slot0;
  if (seq >= arrayLength(&s4_kcache) / (ps.maxT * ps.NKV * HS4)) { return; } // another part's slot
  let pos = min(s_info[2u * r + 1u], ps.maxT - 1u);
  let kvh = h / (ps.NH / ps.NKV);
  let rs4 = ps.NKV * HS4;
  let base = seq * ps.maxT * rs4 + kvh * HS4;
  let qo = (r * ps.NH + h) * HS4;
  var q: array<vec4<f32>, 4>;
  q[0] = vec4<f32>(s4_q[qo]) * ps.scale;
  if (HS4 > 1u) { q[1] = vec4<f32>(s4_q[qo + 1u]) * ps.scale; }
  if (HS4 > 2u) { q[2] = vec4<f32>(s4_q[qo + 2u]) * ps.scale; }
  if (HS4 > 3u) { q[3] = vec4<f32>(s4_q[qo + 3u]) * ps.scale; }
  var m = NEG_BIG;
  var a0 = vec4<f32>(); var a1 = vec4<f32>(); var a2 = vec4<f32>(); var a3 = vec4<f32>();
  var l = 0.0;
  for (var t = 0u; t <= pos; t++) {
    let ko = base + t * rs4;
    let s = qk4(q, ko);
    if (s > m) { let c = exp(m - s); l *= c; a0 *= c; a1 *= c; a2 *= c; a3 *= c; m = s; }
    let p = exp(s - m);
    l += p;
    a0 += p * s4_vcache[ko];
    if (HS4 > 1u) { a1 += p * s4_vcache[ko + 1u]; }
    if (HS4 > 2u) { a2 += p * s4_vcache[ko + 2u]; }
    if (HS4 > 3u) { a3 += p * s4_vcache[ko + 3u]; }
  }
  let o = array<vec4<f32>, 4>(a0, a1, a2, a3);
  for (var j = 0u; j < HS4 * 4u; j++) { s_out[qo * 4u + j] = ACT_T(o[j / 4u][j % 4u] / l); }
}

// ---- f16 KV cache (src/engine/kvcache.ts): kcache, vcache hold u32 words of two f16 values,
// (S, maxT, NKV·HS/2) words, value 2i in the low half (pack2x16float's layout); HS is even (the
// caller checks). Values are read with unpack2x16float, all arithmetic stays f32. Core WGSL: no
// shader-f16 feature needed. The f16 kernels are the f32 ones with their loads unpacked.

// kv_f16: the f16 bits the cache stores for x, with integer operations so that every device stores
// the same bits (pack2x16float may round either way, flush subnormals, and leaves out-of-range
// values indeterminate): round to nearest even; |x| < 2^-14 → ±0 (no subnormal is ever stored,
// so unpack2x16float is exact everywhere); |x| ≥ 65520 and ±∞ → ±65504; NaN → 0x7e00.
fn kv_f16(x: f32) -> u32 {
  let b = bitcast<u32>(x);
  let s = (b >> 16u) & 0x8000u;
  let a = b & 0x7fffffffu;
  if (a > 0x7f800000u) { return 0x7e00u; }
  if (a >= 0x477ff000u) { return s | 0x7bffu; }
  if (a < 0x38800000u) { return s; }
  let r = a - 0x38000000u;
  let h = r >> 13u;
  let rem = r & 0x1fffu;
  return s | (h + select(0u, 1u, rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)));
}

// kv_cache_write_f16  bindings as kv_cache_write; one thread per word (a pair of values).
@group(0) @binding(1) var<storage, read_write> wh_kcache: array<u32>;
@group(0) @binding(2) var<storage, read_write> wh_vcache: array<u32>;
@group(0) @binding(3) var<storage, read> wh_k: array<vec2<ACT_T>>;
@group(0) @binding(4) var<storage, read> wh_v: array<vec2<ACT_T>>;

@compute @workgroup_size(WG)
fn kv_cache_write_f16(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_id) lid: vec3u) {
  let C2 = pw.NKV * pw.HS / 2u;
  let i = (wg.y * nwg.x + wg.x) * WG + lid.x;
  let r = i / C2;
  if (r >= pw.R) { return; }
  let seq = w_info[2u * r] - pw.slot0; // a slot below slot0 wraps past the cache: skipped
  let pos = w_info[2u * r + 1u];
  if (pos >= pw.maxT || seq >= arrayLength(&wh_kcache) / (pw.maxT * C2)) { return; }
  let dst = (seq * pw.maxT + pos) * C2 + i % C2;
  let k = vec2<f32>(wh_k[i]);
  let v = vec2<f32>(wh_v[i]);
  wh_kcache[dst] = kv_f16(k.x) | (kv_f16(k.y) << 16u);
  wh_vcache[dst] = kv_f16(v.x) | (kv_f16(v.y) << 16u);
}

// attention_decode_f16  attention_decode on an f16 cache: a thread owns pairs of dims of `acc`.
@group(0) @binding(3) var<storage, read> dh_kcache: array<u32>;
@group(0) @binding(4) var<storage, read> dh_vcache: array<u32>;

@compute @workgroup_size(WG)
fn attention_decode_f16(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let HS = pd.HS; let HS2 = HS / 2u; let h = wg.x; let r = wg.y;
  let raw = d_info[2u * r] - pd.slot0;
  let mine = raw < arrayLength(&dh_kcache) / (pd.maxT * pd.NKV * HS2);
  let seq = select(0u, raw, mine);
  let pos = select(0u, min(d_info[2u * r + 1u], pd.maxT - 1u), mine);
  let kvh = h / (pd.NH / pd.NKV);
  let qo = (r * pd.NH + h) * HS;
  let rs2 = pd.NKV * HS2; // words between cache positions
  let base2 = seq * pd.maxT * rs2 + kvh * HS2;
  for (var d2 = lid.x; d2 < HS2; d2 += WG) { acc[2u * d2] = 0.0; acc[2u * d2 + 1u] = 0.0; }
  var m = NEG_BIG;
  var l = 0.0;
  for (var c = 0u; c <= pos; c += WG) {
    let t2 = c + lid.x;
    var s = NEG_BIG;
    if (t2 <= pos) {
      let ko2 = base2 + t2 * rs2;
      var dot = 0.0;
      for (var d2 = 0u; d2 < HS2; d2++) {
        let kk = unpack2x16float(dh_kcache[ko2 + d2]);
        dot += f32(d_q[qo + 2u * d2]) * kk.x;
        dot += f32(d_q[qo + 2u * d2 + 1u]) * kk.y;
      }
      s = dot * pd.scale;
    }
    let mnew = max(m, reduce(lid.x, s, true));
    let p = select(0.0, exp(s - mnew), t2 <= pos);
    prob[lid.x] = p;
    let lc = reduce(lid.x, p, false);
    let corr = select(exp(m - mnew), 0.0, c == 0u);
    l = l * corr + lc;
    let n = min(WG, pos + 1u - c);
    for (var d2 = lid.x; d2 < HS2; d2 += WG) {
      var a = vec2<f32>(acc[2u * d2], acc[2u * d2 + 1u]) * corr;
      for (var j = 0u; j < n; j++) {
        a += prob[j] * unpack2x16float(dh_vcache[base2 + (c + j) * rs2 + d2]);
      }
      acc[2u * d2] = a.x;
      acc[2u * d2 + 1u] = a.y;
    }
    m = mnew;
  }
  if (mine) {
    for (var d2 = lid.x; d2 < HS2; d2 += WG) {
      d_out[qo + 2u * d2] = ACT_T(acc[2u * d2] / l);
      d_out[qo + 2u * d2 + 1u] = ACT_T(acc[2u * d2 + 1u] / l);
    }
  }
}

// attention_decode_serial_f16  attention_decode_serial on an f16 cache.
@group(0) @binding(3) var<storage, read> sh_kcache: array<u32>;
@group(0) @binding(4) var<storage, read> sh_vcache: array<u32>;

@compute @workgroup_size(WG)
fn attention_decode_serial_f16(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ps.R * ps.NH) { return; }
  let HS = ps.HS; let HS2 = HS / 2u; let h = i % ps.NH; let r = i / ps.NH;
  let seq = s_info[2u * r] - ps.slot0;
  if (seq >= arrayLength(&sh_kcache) / (ps.maxT * ps.NKV * HS / 2u)) { return; } // another part's slot
  let pos = min(s_info[2u * r + 1u], ps.maxT - 1u);
  let kvh = h / (ps.NH / ps.NKV);
  let qo = (r * ps.NH + h) * HS;
  let rs2 = ps.NKV * HS2;
  let base2 = seq * ps.maxT * rs2 + kvh * HS2;
  var acc: array<f32, 256>;
  for (var d = 0u; d < HS; d++) { acc[d] = 0.0; }
  var m = NEG_BIG;
  var l = 0.0;
  for (var t = 0u; t <= pos; t++) {
    let ko2 = base2 + t * rs2;
    var s = 0.0;
    for (var d2 = 0u; d2 < HS2; d2++) {
      let kk = unpack2x16float(sh_kcache[ko2 + d2]);
      s += f32(s_q[qo + 2u * d2]) * kk.x;
      s += f32(s_q[qo + 2u * d2 + 1u]) * kk.y;
    }
    s *= ps.scale;
    let mn = max(m, s);
    let corr = exp(m - mn);
    let p = exp(s - mn);
    l = l * corr + p;
    for (var d2 = 0u; d2 < HS2; d2++) {
      let vv = unpack2x16float(sh_vcache[ko2 + d2]);
      acc[2u * d2] = acc[2u * d2] * corr + p * vv.x;
      acc[2u * d2 + 1u] = acc[2u * d2 + 1u] * corr + p * vv.y;
    }
    m = mn;
  }
  for (var d = 0u; d < HS; d++) { s_out[qo + d] = ACT_T(acc[d] / l); }
}

// attention_decode_serial4_f16  attention_decode_serial4 on an f16 cache: 4 values are 2 words.
@group(0) @binding(3) var<storage, read> s4h_kcache: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> s4h_vcache: array<vec2<u32>>;

fn unpack4(w: vec2<u32>) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn qk4h(q: array<vec4<f32>, 4>, o: u32) -> f32 {
  var s = dot(q[0], unpack4(s4h_kcache[o]));
  if (HS4 > 1u) { s += dot(q[1], unpack4(s4h_kcache[o + 1u])); }
  if (HS4 > 2u) { s += dot(q[2], unpack4(s4h_kcache[o + 2u])); }
  if (HS4 > 3u) { s += dot(q[3], unpack4(s4h_kcache[o + 3u])); }
  return s;
}

@compute @workgroup_size(WG)
fn attention_decode_serial4_f16(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ps.R * ps.NH) { return; }
  let h = i % ps.NH; let r = i / ps.NH;
  let seq = s_info[2u * r] - ps.slot0;
  if (seq >= arrayLength(&s4h_kcache) / (ps.maxT * ps.NKV * HS4)) { return; } // another part's slot
  let pos = min(s_info[2u * r + 1u], ps.maxT - 1u);
  let kvh = h / (ps.NH / ps.NKV);
  let rs4 = ps.NKV * HS4;
  let base = seq * ps.maxT * rs4 + kvh * HS4;
  let qo = (r * ps.NH + h) * HS4;
  var q: array<vec4<f32>, 4>;
  q[0] = vec4<f32>(s4_q[qo]) * ps.scale;
  if (HS4 > 1u) { q[1] = vec4<f32>(s4_q[qo + 1u]) * ps.scale; }
  if (HS4 > 2u) { q[2] = vec4<f32>(s4_q[qo + 2u]) * ps.scale; }
  if (HS4 > 3u) { q[3] = vec4<f32>(s4_q[qo + 3u]) * ps.scale; }
  var m = NEG_BIG;
  var a0 = vec4<f32>(); var a1 = vec4<f32>(); var a2 = vec4<f32>(); var a3 = vec4<f32>();
  var l = 0.0;
  for (var t = 0u; t <= pos; t++) {
    let ko = base + t * rs4;
    let s = qk4h(q, ko);
    if (s > m) { let c = exp(m - s); l *= c; a0 *= c; a1 *= c; a2 *= c; a3 *= c; m = s; }
    let p = exp(s - m);
    l += p;
    a0 += p * unpack4(s4h_vcache[ko]);
    if (HS4 > 1u) { a1 += p * unpack4(s4h_vcache[ko + 1u]); }
    if (HS4 > 2u) { a2 += p * unpack4(s4h_vcache[ko + 2u]); }
    if (HS4 > 3u) { a3 += p * unpack4(s4h_vcache[ko + 3u]); }
  }
  let o = array<vec4<f32>, 4>(a0, a1, a2, a3);
  for (var j = 0u; j < HS4 * 4u; j++) { s_out[qo * 4u + j] = ACT_T(o[j / 4u][j % 4u] / l); }
}
