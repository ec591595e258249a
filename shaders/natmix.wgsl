// natmix: the mixing core of NAT's dynamic integration unit (METHOD.md §1), per row r:
//   e_pos = q·kpos, e_neg = q·kneg (no scaling), a = softmax([e_pos, e_neg])[1] = sigmoid(e_neg − e_pos),
//   α = a − 0.5, out = base + (1 − α)·vpos + α·vneg.
// Shapes: q, kpos, kneg (N,U); vpos, vneg, base, out (N,C); alpha (N).
// All entry points share params {N, U, C, accumulate} at binding 0.
// natmix_forward[_serial]      1 out (N,C), 2 alpha (N), 3 q, 4 kpos, 5 kneg, 6 vpos, 7 vneg, 8 base
// natmix_backward_k[_serial]   1 dkpos (N,U), 2 dkneg (N,U), 3 dout (N,C), 4 vpos, 5 vneg, 6 alpha, 7 q
//                              dkpos = −g·q, dkneg = g·q
// natmix_backward_q[_serial]   1 dq (N,U), 2 kpos, 3 dout, 4 vpos, 5 vneg, 6 alpha, 7 kneg
//                              dq = g·(kneg − kpos)
// natmix_backward_v            1 dvpos (N,C), 2 dvneg (N,C), 3 dout (N,C), 4 alpha (N)
//                              dvpos = (1 − α)·dout, dvneg = α·dout
// with g = dα·a(1 − a) = dα·(0.5 + α)(0.5 − α), dα = Σ_c dout·(vneg − vpos). Gradients are written
// or added (accumulate). Both row kernels of the backward recompute dα, so no scratch is needed and
// every entry point stays within 8 storage buffers (WebGPU's default limit).
// Row kernels: one workgroup per row (row = wg.x + wg.y · nwg.x), or, for _serial (CPU
// implementations, where a barrier is a fiber switch), one thread per row without barriers
// (row = gid.x + gid.y · nwg.x · WG). natmix_backward_v: one thread per element, same 2D grid.

override WG: u32 = 64;

struct Params { N: u32, U: u32, C: u32, accumulate: u32 }

@group(0) @binding(0) var<uniform> pc: Params;

var<workgroup> red2: array<vec2f, WG>;
var<workgroup> red1: array<f32, WG>;

fn row_of_group(wg: vec3u, nwg: vec3u) -> u32 { return wg.x + wg.y * nwg.x; }
fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// α = sigmoid(d) − 0.5 = sign(d) · (1 − t) / (2 (1 + t)) with t = exp(−|d|) ≤ 1: never overflows.
fn alpha_of(d: f32) -> f32 {
  let t = exp(-abs(d));
  let h = (1.0 - t) / (2.0 + 2.0 * t);
  return select(-h, h, d >= 0.0);
}

// a(1 − a) with a = 0.5 + α.
fn slope(alpha: f32) -> f32 { return (0.5 + alpha) * (0.5 - alpha); }

// ---- forward ----

@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> f_alpha: array<f32>;
@group(0) @binding(3) var<storage, read> f_q: array<f32>;
@group(0) @binding(4) var<storage, read> f_kpos: array<f32>;
@group(0) @binding(5) var<storage, read> f_kneg: array<f32>;
@group(0) @binding(6) var<storage, read> f_vpos: array<f32>;
@group(0) @binding(7) var<storage, read> f_vneg: array<f32>;
@group(0) @binding(8) var<storage, read> f_base: array<f32>;

// (e_pos, e_neg) partial sums over u = start, start + stride, ...
fn energies(row: u32, start: u32, stride: u32) -> vec2f {
  let qb = row * pc.U;
  var e = vec2f(0.0);
  for (var i = start; i < pc.U; i += stride) {
    e += f_q[qb + i] * vec2f(f_kpos[qb + i], f_kneg[qb + i]);
  }
  return e;
}

fn mix_row(row: u32, a: f32, start: u32, stride: u32) {
  let cb = row * pc.C;
  for (var i = start; i < pc.C; i += stride) {
    f_out[cb + i] = f_base[cb + i] + (1.0 - a) * f_vpos[cb + i] + a * f_vneg[cb + i];
  }
}

@compute @workgroup_size(WG)
fn natmix_forward(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let row = row_of_group(wg, nwg);
  if (row >= pc.N) { return; }
  red2[lid.x] = energies(row, lid.x, WG);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid.x < k) { red2[lid.x] += red2[lid.x + k]; }
    workgroupBarrier();
  }
  let e = red2[0];
  let a = alpha_of(e.y - e.x);
  if (lid.x == 0u) { f_alpha[row] = a; }
  mix_row(row, a, lid.x, WG);
}

@compute @workgroup_size(WG)
fn natmix_forward_serial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = index(gid, nwg);
  if (row >= pc.N) { return; }
  let e = energies(row, 0u, 1u);
  let a = alpha_of(e.y - e.x);
  f_alpha[row] = a;
  mix_row(row, a, 0u, 1u);
}

// ---- backward: the two row kernels share bindings 3..6 ----

@group(0) @binding(3) var<storage, read> b_dout: array<f32>;
@group(0) @binding(4) var<storage, read> b_vpos: array<f32>;
@group(0) @binding(5) var<storage, read> b_vneg: array<f32>;
@group(0) @binding(6) var<storage, read> b_alpha: array<f32>;

// Partial dα = Σ_c dout·(vneg − vpos) over c = start, start + stride, ...
fn dalpha(row: u32, start: u32, stride: u32) -> f32 {
  let cb = row * pc.C;
  var acc = 0.0;
  for (var i = start; i < pc.C; i += stride) {
    acc += b_dout[cb + i] * (b_vneg[cb + i] - b_vpos[cb + i]);
  }
  return acc;
}

// g = d(e_neg) = −d(e_pos) of the row, shared by the workgroup.
fn row_g(row: u32, lid: u32) -> f32 {
  red1[lid] = dalpha(row, lid, WG);
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k >>= 1u) {
    if (lid < k) { red1[lid] += red1[lid + k]; }
    workgroupBarrier();
  }
  return red1[0] * slope(b_alpha[row]);
}

@group(0) @binding(1) var<storage, read_write> bk_dkpos: array<f32>;
@group(0) @binding(2) var<storage, read_write> bk_dkneg: array<f32>;
@group(0) @binding(7) var<storage, read> bk_q: array<f32>;

fn write_dk(row: u32, g: f32, start: u32, stride: u32) {
  let ub = row * pc.U;
  for (var i = start; i < pc.U; i += stride) {
    let gq = g * bk_q[ub + i];
    if (pc.accumulate != 0u) {
      bk_dkpos[ub + i] -= gq;
      bk_dkneg[ub + i] += gq;
    } else {
      bk_dkpos[ub + i] = -gq;
      bk_dkneg[ub + i] = gq;
    }
  }
}

@compute @workgroup_size(WG)
fn natmix_backward_k(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let row = row_of_group(wg, nwg);
  if (row >= pc.N) { return; }
  write_dk(row, row_g(row, lid.x), lid.x, WG);
}

@compute @workgroup_size(WG)
fn natmix_backward_k_serial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = index(gid, nwg);
  if (row >= pc.N) { return; }
  write_dk(row, dalpha(row, 0u, 1u) * slope(b_alpha[row]), 0u, 1u);
}

@group(0) @binding(1) var<storage, read_write> bq_dq: array<f32>;
@group(0) @binding(2) var<storage, read> bq_kpos: array<f32>;
@group(0) @binding(7) var<storage, read> bq_kneg: array<f32>;

fn write_dq(row: u32, g: f32, start: u32, stride: u32) {
  let ub = row * pc.U;
  for (var i = start; i < pc.U; i += stride) {
    let d = g * (bq_kneg[ub + i] - bq_kpos[ub + i]);
    if (pc.accumulate != 0u) { bq_dq[ub + i] += d; } else { bq_dq[ub + i] = d; }
  }
}

@compute @workgroup_size(WG)
fn natmix_backward_q(
  @builtin(workgroup_id) wg: vec3u,
  @builtin(num_workgroups) nwg: vec3u,
  @builtin(local_invocation_id) lid: vec3u,
) {
  let row = row_of_group(wg, nwg);
  if (row >= pc.N) { return; }
  write_dq(row, row_g(row, lid.x), lid.x, WG);
}

@compute @workgroup_size(WG)
fn natmix_backward_q_serial(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let row = index(gid, nwg);
  if (row >= pc.N) { return; }
  write_dq(row, dalpha(row, 0u, 1u) * slope(b_alpha[row]), 0u, 1u);
}

// ---- backward: value gradients, element-wise ----

@group(0) @binding(1) var<storage, read_write> bv_dvpos: array<f32>;
@group(0) @binding(2) var<storage, read_write> bv_dvneg: array<f32>;
@group(0) @binding(4) var<storage, read> bv_alpha: array<f32>;

@compute @workgroup_size(WG)
fn natmix_backward_v(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pc.N * pc.C) { return; }
  let a = bv_alpha[i / pc.C];
  let d = b_dout[i];
  if (pc.accumulate != 0u) {
    bv_dvpos[i] += (1.0 - a) * d;
    bv_dvneg[i] += a * d;
  } else {
    bv_dvpos[i] = (1.0 - a) * d;
    bv_dvneg[i] = a * d;
  }
}
