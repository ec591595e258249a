// attention: causal grouped-query self-attention for training (llm.c style). Query head h reads
// kv head h / (NH / NKV); scale = 1/sqrt(HS). Shapes: q, out, dout, dq (B,T,NH,HS);
// k, v, dk, dv (B,T,NKV,HS); att, datt (B,NH,T,T).
// attention_forward         bindings: 0 params, 1 out, 2 att (softmax probs, 0 above the diagonal),
//                           3 q, 4 k, 5 v                          workgroups (T, B·NH): one per query row
// attention_backward_query  bindings: 0 params, 1 dq, 2 datt (scratch: ends holding dpreatt),
//                           3 dout, 4 k, 5 v, 6 att                workgroups (T, B·NH)
// attention_backward_kv     bindings: 0 params, 1 dk, 2 dv, 3 datt (dpreatt), 4 dout, 5 q, 6 att
//                           workgroups (T, B·NKV): one per key row, summing its group's query heads
//                           in a fixed order (deterministic, no atomics).
// dq, dk, dv = or += (accumulate). A workgroup's own att/datt row goes through global memory
// (storageBarrier), so T has no shared-memory limit.

override WG: u32 = 64;
const NEG_BIG: f32 = -3.0e38;

struct Params { B: u32, T: u32, NH: u32, NKV: u32, HS: u32, scale: f32, accumulate: u32 }

var<workgroup> red: array<f32, WG>;

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

@group(0) @binding(0) var<uniform> pf: Params;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_att: array<f32>;
@group(0) @binding(3) var<storage, read> f_q: array<f32>;
@group(0) @binding(4) var<storage, read> f_k: array<f32>;
@group(0) @binding(5) var<storage, read> f_v: array<f32>;

@compute @workgroup_size(WG)
fn attention_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let T = pf.T; let HS = pf.HS; let t = wg.x;
  let b = wg.y / pf.NH; let kvh = (wg.y % pf.NH) / (pf.NH / pf.NKV);
  let qo = (b * T + t) * pf.NH * HS + (wg.y % pf.NH) * HS;
  let ao = (wg.y * T + t) * T;
  var mx = NEG_BIG;
  for (var t2 = lid.x; t2 < T; t2 += WG) {
    if (t2 > t) { f_att[ao + t2] = 0.0; continue; }
    let ko = ((b * T + t2) * pf.NKV + kvh) * HS;
    var s = 0.0;
    for (var d = 0u; d < HS; d++) { s += f_q[qo + d] * f_k[ko + d]; }
    s *= pf.scale;
    f_att[ao + t2] = s;
    mx = max(mx, s);
  }
  let m = reduce(lid.x, mx, true);
  var sum = 0.0;
  for (var t2 = lid.x; t2 <= t; t2 += WG) {
    let e = exp(f_att[ao + t2] - m);
    f_att[ao + t2] = e;
    sum += e;
  }
  let inv = 1.0 / reduce(lid.x, sum, false);
  for (var t2 = lid.x; t2 <= t; t2 += WG) { f_att[ao + t2] *= inv; }
  storageBarrier();
  for (var d = lid.x; d < HS; d += WG) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc += f_att[ao + t2] * f_v[((b * T + t2) * pf.NKV + kvh) * HS + d]; }
    f_out[qo + d] = acc;
  }
}

@group(0) @binding(0) var<uniform> pq: Params;
@group(0) @binding(1) var<storage, read_write> q_dq: array<f32>;
@group(0) @binding(2) var<storage, read_write> q_datt: array<f32>;
@group(0) @binding(3) var<storage, read> q_dout: array<f32>;
@group(0) @binding(4) var<storage, read> q_k: array<f32>;
@group(0) @binding(5) var<storage, read> q_v: array<f32>;
@group(0) @binding(6) var<storage, read> q_att: array<f32>;

// datt = dout·v; dpreatt = att ⊙ (datt − Σ att·datt) (softmax backward); dq = scale · dpreatt · k.
@compute @workgroup_size(WG)
fn attention_backward_query(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let T = pq.T; let HS = pq.HS; let t = wg.x;
  let b = wg.y / pq.NH; let kvh = (wg.y % pq.NH) / (pq.NH / pq.NKV);
  let qo = (b * T + t) * pq.NH * HS + (wg.y % pq.NH) * HS;
  let ao = (wg.y * T + t) * T;
  var dot = 0.0;
  for (var t2 = lid.x; t2 <= t; t2 += WG) {
    let vo = ((b * T + t2) * pq.NKV + kvh) * HS;
    var da = 0.0;
    for (var d = 0u; d < HS; d++) { da += q_dout[qo + d] * q_v[vo + d]; }
    q_datt[ao + t2] = da;
    dot += q_att[ao + t2] * da;
  }
  let s = reduce(lid.x, dot, false);
  for (var t2 = lid.x; t2 <= t; t2 += WG) { q_datt[ao + t2] = q_att[ao + t2] * (q_datt[ao + t2] - s); }
  storageBarrier();
  for (var d = lid.x; d < HS; d += WG) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc += q_datt[ao + t2] * q_k[((b * T + t2) * pq.NKV + kvh) * HS + d]; }
    let g = acc * pq.scale;
    if (pq.accumulate != 0u) { q_dq[qo + d] += g; } else { q_dq[qo + d] = g; }
  }
}

@group(0) @binding(0) var<uniform> pk: Params;
@group(0) @binding(1) var<storage, read_write> k_dk: array<f32>;
@group(0) @binding(2) var<storage, read_write> k_dv: array<f32>;
@group(0) @binding(3) var<storage, read> k_datt: array<f32>;
@group(0) @binding(4) var<storage, read> k_dout: array<f32>;
@group(0) @binding(5) var<storage, read> k_q: array<f32>;
@group(0) @binding(6) var<storage, read> k_att: array<f32>;

// dk = scale · Σ_h Σ_{t ≥ t2} dpreatt · q;  dv = Σ_h Σ_{t ≥ t2} att · dout  (h over the group).
@compute @workgroup_size(WG)
fn attention_backward_kv(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let T = pk.T; let HS = pk.HS; let NH = pk.NH; let t2 = wg.x;
  let b = wg.y / pk.NKV; let kvh = wg.y % pk.NKV; let G = NH / pk.NKV;
  let ko = ((b * T + t2) * pk.NKV + kvh) * HS;
  for (var d = lid.x; d < HS; d += WG) {
    var gk = 0.0;
    var gv = 0.0;
    for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
      for (var t = t2; t < T; t++) {
        let a = ((b * NH + h) * T + t) * T + t2;
        let qo = ((b * T + t) * NH + h) * HS + d;
        gk += k_datt[a] * k_q[qo];
        gv += k_att[a] * k_dout[qo];
      }
    }
    gk *= pk.scale;
    if (pk.accumulate != 0u) { k_dk[ko + d] += gk; k_dv[ko + d] += gv; } else { k_dk[ko + d] = gk; k_dv[ko + d] = gv; }
  }
}

// ---- Software GPUs (SwiftShader: a thread is one SIMD lane of a CPU core, and a workgroup barrier
// is a fiber switch): a thread per (b, h, query row t), the row's softmax computed serially, no
// barrier, no workgroup memory. Threads run t fastest (a SIMD group's rows have similar lengths),
// WG per workgroup over a 2D grid x·y; threads past B·NH·T return. One exp per position: the
// scores go to att, then exp(s − max) overwrites them, then the row is normalised in place.
// attention_forward_serial         bindings as attention_forward             any HS
// attention_backward_query_serial  bindings as attention_backward_query      any HS
// attention_forward_serial4, attention_backward_query_serial4: the same for HS = 4·HS4 ≤ 16, with
// q / dout and the row's output in vec4 registers (HS4 is a pipeline constant: unused lanes fold away).

override HS4: u32 = 2;

// (b·NH + h, t) of this thread, or t = T when past the end.
fn serial_row(wg: vec3u, nwg: vec3u, lid: u32, p: Params) -> vec2u {
  let i = (wg.y * nwg.x + wg.x) * WG + lid;
  if (i >= p.B * p.NH * p.T) { return vec2u(0u, p.T); }
  return vec2u(i / p.T, i % p.T);
}

@compute @workgroup_size(WG)
fn attention_forward_serial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                            @builtin(local_invocation_index) lid: u32) {
  let r = serial_row(wg, nwg, lid, pf);
  let T = pf.T; let HS = pf.HS; let bh = r.x; let t = r.y;
  if (t >= T) { return; }
  let b = bh / pf.NH; let h = bh % pf.NH; let kvh = h / (pf.NH / pf.NKV);
  let qo = ((b * T + t) * pf.NH + h) * HS;
  let ao = (bh * T + t) * T;
  let rs = pf.NKV * HS; // stride between positions of k, v
  let kb = b * T * rs + kvh * HS;
  var m = NEG_BIG;
  for (var t2 = 0u; t2 <= t; t2++) {
    var s = 0.0;
    for (var d = 0u; d < HS; d++) { s += f_q[qo + d] * f_k[kb + t2 * rs + d]; }
    s *= pf.scale;
    f_att[ao + t2] = s;
    m = max(m, s);
  }
  var l = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) { let e = exp(f_att[ao + t2] - m); f_att[ao + t2] = e; l += e; }
  let inv = 1.0 / l;
  for (var t2 = 0u; t2 <= t; t2++) { f_att[ao + t2] *= inv; }
  for (var t2 = t + 1u; t2 < T; t2++) { f_att[ao + t2] = 0.0; }
  for (var d = 0u; d < HS; d++) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc += f_att[ao + t2] * f_v[kb + t2 * rs + d]; }
    f_out[qo + d] = acc;
  }
}

@compute @workgroup_size(WG)
fn attention_backward_query_serial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                   @builtin(local_invocation_index) lid: u32) {
  let r = serial_row(wg, nwg, lid, pq);
  let T = pq.T; let HS = pq.HS; let bh = r.x; let t = r.y;
  if (t >= T) { return; }
  let b = bh / pq.NH; let h = bh % pq.NH; let kvh = h / (pq.NH / pq.NKV);
  let qo = ((b * T + t) * pq.NH + h) * HS;
  let ao = (bh * T + t) * T;
  let rs = pq.NKV * HS;
  let kb = b * T * rs + kvh * HS;
  var dot = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    var da = 0.0;
    for (var d = 0u; d < HS; d++) { da += q_dout[qo + d] * q_v[kb + t2 * rs + d]; }
    q_datt[ao + t2] = da;
    dot += q_att[ao + t2] * da;
  }
  for (var t2 = 0u; t2 <= t; t2++) { q_datt[ao + t2] = q_att[ao + t2] * (q_datt[ao + t2] - dot); }
  for (var d = 0u; d < HS; d++) {
    var acc = 0.0;
    for (var t2 = 0u; t2 <= t; t2++) { acc += q_datt[ao + t2] * q_k[kb + t2 * rs + d]; }
    let g = acc * pq.scale;
    if (pq.accumulate != 0u) { q_dq[qo + d] += g; } else { q_dq[qo + d] = g; }
  }
}

@group(0) @binding(1) var<storage, read_write> f4_out: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> f4_q: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> f4_k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> f4_v: array<vec4<f32>>;

// Up to four vec4s of one row (plain variables: a dynamically indexed array lands in memory).
struct Row4 { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }

fn dot_fk(x: Row4, o: u32) -> f32 {
  var s = dot(x.a, f4_k[o]);
  if (HS4 > 1u) { s += dot(x.b, f4_k[o + 1u]); }
  if (HS4 > 2u) { s += dot(x.c, f4_k[o + 2u]); }
  if (HS4 > 3u) { s += dot(x.d, f4_k[o + 3u]); }
  return s;
}

@compute @workgroup_size(WG)
fn attention_forward_serial4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                             @builtin(local_invocation_index) lid: u32) {
  let r = serial_row(wg, nwg, lid, pf);
  let T = pf.T; let bh = r.x; let t = r.y;
  if (t >= T) { return; }
  let b = bh / pf.NH; let h = bh % pf.NH; let kvh = h / (pf.NH / pf.NKV);
  let qo = ((b * T + t) * pf.NH + h) * HS4; // in vec4s
  let ao = (bh * T + t) * T;
  let rs = pf.NKV * HS4;
  let kb = b * T * rs + kvh * HS4;
  var q: Row4;
  q.a = f4_q[qo];
  if (HS4 > 1u) { q.b = f4_q[qo + 1u]; }
  if (HS4 > 2u) { q.c = f4_q[qo + 2u]; }
  if (HS4 > 3u) { q.d = f4_q[qo + 3u]; }
  var m = NEG_BIG;
  for (var t2 = 0u; t2 <= t; t2++) {
    let s = dot_fk(q, kb + t2 * rs) * pf.scale;
    f_att[ao + t2] = s;
    m = max(m, s);
  }
  var l = 0.0;
  var o: Row4;
  for (var t2 = 0u; t2 <= t; t2++) {
    let e = exp(f_att[ao + t2] - m);
    f_att[ao + t2] = e;
    l += e;
    let vo = kb + t2 * rs;
    o.a += e * f4_v[vo];
    if (HS4 > 1u) { o.b += e * f4_v[vo + 1u]; }
    if (HS4 > 2u) { o.c += e * f4_v[vo + 2u]; }
    if (HS4 > 3u) { o.d += e * f4_v[vo + 3u]; }
  }
  let inv = 1.0 / l;
  for (var t2 = 0u; t2 <= t; t2++) { f_att[ao + t2] *= inv; }
  for (var t2 = t + 1u; t2 < T; t2++) { f_att[ao + t2] = 0.0; }
  f4_out[qo] = o.a * inv;
  if (HS4 > 1u) { f4_out[qo + 1u] = o.b * inv; }
  if (HS4 > 2u) { f4_out[qo + 2u] = o.c * inv; }
  if (HS4 > 3u) { f4_out[qo + 3u] = o.d * inv; }
}

@group(0) @binding(1) var<storage, read_write> q4_dq: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> q4_dout: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> q4_k: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> q4_v: array<vec4<f32>>;

fn dot_qv(x: Row4, o: u32) -> f32 {
  var s = dot(x.a, q4_v[o]);
  if (HS4 > 1u) { s += dot(x.b, q4_v[o + 1u]); }
  if (HS4 > 2u) { s += dot(x.c, q4_v[o + 2u]); }
  if (HS4 > 3u) { s += dot(x.d, q4_v[o + 3u]); }
  return s;
}

fn put_dq(o: u32, g: vec4<f32>) {
  if (pq.accumulate != 0u) { q4_dq[o] += g; } else { q4_dq[o] = g; }
}

@compute @workgroup_size(WG)
fn attention_backward_query_serial4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                    @builtin(local_invocation_index) lid: u32) {
  let r = serial_row(wg, nwg, lid, pq);
  let T = pq.T; let bh = r.x; let t = r.y;
  if (t >= T) { return; }
  let b = bh / pq.NH; let h = bh % pq.NH; let kvh = h / (pq.NH / pq.NKV);
  let qo = ((b * T + t) * pq.NH + h) * HS4;
  let ao = (bh * T + t) * T;
  let rs = pq.NKV * HS4;
  let kb = b * T * rs + kvh * HS4;
  var dout: Row4;
  dout.a = q4_dout[qo];
  if (HS4 > 1u) { dout.b = q4_dout[qo + 1u]; }
  if (HS4 > 2u) { dout.c = q4_dout[qo + 2u]; }
  if (HS4 > 3u) { dout.d = q4_dout[qo + 3u]; }
  var dot = 0.0;
  for (var t2 = 0u; t2 <= t; t2++) {
    let da = dot_qv(dout, kb + t2 * rs);
    q_datt[ao + t2] = da;
    dot += q_att[ao + t2] * da;
  }
  var g: Row4;
  for (var t2 = 0u; t2 <= t; t2++) {
    let dp = q_att[ao + t2] * (q_datt[ao + t2] - dot);
    q_datt[ao + t2] = dp;
    let ko = kb + t2 * rs;
    g.a += dp * q4_k[ko];
    if (HS4 > 1u) { g.b += dp * q4_k[ko + 1u]; }
    if (HS4 > 2u) { g.c += dp * q4_k[ko + 2u]; }
    if (HS4 > 3u) { g.d += dp * q4_k[ko + 3u]; }
  }
  put_dq(qo, g.a * pq.scale);
  if (HS4 > 1u) { put_dq(qo + 1u, g.b * pq.scale); }
  if (HS4 > 2u) { put_dq(qo + 2u, g.c * pq.scale); }
  if (HS4 > 3u) { put_dq(qo + 3u, g.d * pq.scale); }
}

// attention_backward_kv_serial   bindings as attention_backward_kv; a thread per (b, kv head, key
//                                row t2, d), d fastest (no barrier either way: this only drops the
//                                GPU kernel's per-row workgroups, each a scheduled task on a CPU).
// attention_backward_kv_serial4  a thread per (b, kv head, t2) with its dk, dv rows in vec4
//                                registers (HS = 4·HS4 ≤ 16).
@compute @workgroup_size(WG)
fn attention_backward_kv_serial(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                @builtin(local_invocation_index) lid: u32) {
  let T = pk.T; let HS = pk.HS; let NH = pk.NH; let G = NH / pk.NKV;
  let i = (wg.y * nwg.x + wg.x) * WG + lid;
  if (i >= pk.B * pk.NKV * T * HS) { return; }
  let d = i % HS; let row = i / HS; // row = (b · NKV + kvh) · T + t2
  let t2 = row % T; let b = row / (pk.NKV * T); let kvh = (row / T) % pk.NKV;
  var gk = 0.0;
  var gv = 0.0;
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t = t2; t < T; t++) {
      let a = ((b * NH + h) * T + t) * T + t2;
      let qo = ((b * T + t) * NH + h) * HS + d;
      gk += k_datt[a] * k_q[qo];
      gv += k_att[a] * k_dout[qo];
    }
  }
  gk *= pk.scale;
  let ko = ((b * T + t2) * pk.NKV + kvh) * HS + d;
  if (pk.accumulate != 0u) { k_dk[ko] += gk; k_dv[ko] += gv; } else { k_dk[ko] = gk; k_dv[ko] = gv; }
}

@group(0) @binding(1) var<storage, read_write> k4_dk: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> k4_dv: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> k4_dout: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> k4_q: array<vec4<f32>>;

fn put_dkv(o: u32, gk: vec4<f32>, gv: vec4<f32>) {
  if (pk.accumulate != 0u) { k4_dk[o] += gk; k4_dv[o] += gv; } else { k4_dk[o] = gk; k4_dv[o] = gv; }
}

@compute @workgroup_size(WG)
fn attention_backward_kv_serial4(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                 @builtin(local_invocation_index) lid: u32) {
  let T = pk.T; let NH = pk.NH; let G = NH / pk.NKV;
  let row = (wg.y * nwg.x + wg.x) * WG + lid; // (b · NKV + kvh) · T + t2
  if (row >= pk.B * pk.NKV * T) { return; }
  let t2 = row % T; let b = row / (pk.NKV * T); let kvh = (row / T) % pk.NKV;
  var gk: Row4;
  var gv: Row4;
  for (var h = kvh * G; h < (kvh + 1u) * G; h++) {
    for (var t = t2; t < T; t++) {
      let a = ((b * NH + h) * T + t) * T + t2;
      let qo = ((b * T + t) * NH + h) * HS4;
      let dp = k_datt[a]; let at = k_att[a];
      gk.a += dp * k4_q[qo]; gv.a += at * k4_dout[qo];
      if (HS4 > 1u) { gk.b += dp * k4_q[qo + 1u]; gv.b += at * k4_dout[qo + 1u]; }
      if (HS4 > 2u) { gk.c += dp * k4_q[qo + 2u]; gv.c += at * k4_dout[qo + 2u]; }
      if (HS4 > 3u) { gk.d += dp * k4_q[qo + 3u]; gv.d += at * k4_dout[qo + 3u]; }
    }
  }
  let ko = ((b * T + t2) * pk.NKV + kvh) * HS4;
  put_dkv(ko, gk.a * pk.scale, gv.a);
  if (HS4 > 1u) { put_dkv(ko + 1u, gk.b * pk.scale, gv.b); }
  if (HS4 > 2u) { put_dkv(ko + 2u, gk.c * pk.scale, gv.c); }
  if (HS4 > 3u) { put_dkv(ko + 3u, gk.d * pk.scale, gv.d); }
}
