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
