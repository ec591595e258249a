// rmsnorm: out = x / sqrt(mean(x²) + eps) * w, per row.
// rmsnorm_forward   bindings: 0 params {N, C, eps}, 1 out (N,C), 2 rstd (N), 3 inp (N,C), 4 weight (C)
// rmsnorm_backward  bindings: 0 params {N, C, accumulate}, 1 dinp (N,C), 2 dout (N,C), 3 inp (N,C),
//                   4 weight (C), 5 rstd (N)      dinp = or += (accumulate)
// rmsnorm_backward_weight  bindings: 0 params {N, C}, 1 dweight (C) +=, 2 dout, 3 inp, 4 rstd
// One workgroup per row for the row kernels; one thread per column for dweight (no atomics,
// deterministic order).
// OUT_T (ops/act.ts): the forwards' output element type, f32 or f16 (stored once, rounded); the
// sums are f32 either way.

override WG: u32 = 64;

struct Fwd { N: u32, C: u32, eps: f32 }
struct Bwd { N: u32, C: u32, accumulate: u32 }
struct BwdW { N: u32, C: u32 }

var<workgroup> red: array<f32, WG>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) { red[lid] += red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<OUT_T>;
@group(0) @binding(2) var<storage, read_write> f_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> f_inp: array<f32>;
@group(0) @binding(4) var<storage, read> f_w: array<f32>;

@compute @workgroup_size(WG)
fn rmsnorm_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.x;
  let base = row * pf.C;
  var ss = 0.0;
  for (var i = lid.x; i < pf.C; i += WG) { let v = f_inp[base + i]; ss += v * v; }
  let total = reduce_sum(lid.x, ss);
  let r = inverseSqrt(total / f32(pf.C) + pf.eps);
  for (var i = lid.x; i < pf.C; i += WG) { f_out[base + i] = OUT_T(f_inp[base + i] * r * f_w[i]); }
  if (lid.x == 0u) { f_rstd[row] = r; }
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_inp: array<f32>;
@group(0) @binding(4) var<storage, read> b_w: array<f32>;
@group(0) @binding(5) var<storage, read> b_rstd: array<f32>;

@compute @workgroup_size(WG)
fn rmsnorm_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let row = wg.x;
  let base = row * pb.C;
  let r = b_rstd[row];
  var dot = 0.0;
  for (var i = lid.x; i < pb.C; i += WG) { dot += b_dout[base + i] * b_w[i] * b_inp[base + i]; }
  let total = reduce_sum(lid.x, dot);
  let k = r * r * r * total / f32(pb.C);
  for (var i = lid.x; i < pb.C; i += WG) {
    let g = r * b_w[i] * b_dout[base + i] - k * b_inp[base + i];
    if (pb.accumulate != 0u) { b_dinp[base + i] += g; } else { b_dinp[base + i] = g; }
  }
}

@group(0) @binding(0) var<uniform> pw: BwdW;
@group(0) @binding(1) var<storage, read_write> w_dw: array<f32>;
@group(0) @binding(2) var<storage, read> w_dout: array<f32>;
@group(0) @binding(3) var<storage, read> w_inp: array<f32>;
@group(0) @binding(4) var<storage, read> w_rstd: array<f32>;

@compute @workgroup_size(WG)
fn rmsnorm_backward_weight(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= pw.C) { return; }
  var acc = 0.0;
  for (var row = 0u; row < pw.N; row++) {
    acc += w_dout[row * pw.C + i] * w_inp[row * pw.C + i] * w_rstd[row];
  }
  w_dw[i] += acc;
}

// rmsnorm_forward_serial  bindings as rmsnorm_forward; one thread per row, no barriers (for CPU
// implementations such as SwiftShader, where a barrier is a fiber switch).
@group(0) @binding(0) var<uniform> ps: Fwd;
@group(0) @binding(1) var<storage, read_write> s_out: array<OUT_T>;
@group(0) @binding(2) var<storage, read_write> s_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> s_inp: array<f32>;
@group(0) @binding(4) var<storage, read> s_w: array<f32>;

@compute @workgroup_size(WG)
fn rmsnorm_forward_serial(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= ps.N) { return; }
  let base = row * ps.C;
  var ss = 0.0;
  for (var i = 0u; i < ps.C; i++) { let v = s_inp[base + i]; ss += v * v; }
  let r = inverseSqrt(ss / f32(ps.C) + ps.eps);
  for (var i = 0u; i < ps.C; i++) { s_out[base + i] = OUT_T(s_inp[base + i] * r * s_w[i]); }
  s_rstd[row] = r;
}

// rmsnorm_forward_serial4  as rmsnorm_forward_serial for C % 4 == 0: vec4 loads and stores, a
// quarter of the loop trips (the software GPU's cost per row is the loop, not the arithmetic).
@group(0) @binding(0) var<uniform> ps4: Fwd;
@group(0) @binding(1) var<storage, read_write> s4_out: array<vec4<OUT_T>>;
@group(0) @binding(2) var<storage, read_write> s4_rstd: array<f32>;
@group(0) @binding(3) var<storage, read> s4_inp: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> s4_w: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn rmsnorm_forward_serial4(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= ps4.N) { return; }
  let C4 = ps4.C / 4u;
  let base = row * C4;
  var ss = vec4<f32>(0.0);
  for (var i = 0u; i < C4; i++) { let v = s4_inp[base + i]; ss += v * v; }
  let r = inverseSqrt((ss.x + ss.y + ss.z + ss.w) / f32(ps4.C) + ps4.eps);
  for (var i = 0u; i < C4; i++) { s4_out[base + i] = vec4<OUT_T>(s4_inp[base + i] * r * s4_w[i]); }
  s4_rstd[row] = r;
}

// rmsnorm_backward_serial  bindings as rmsnorm_backward; one thread per row, no barriers (the
// dweight kernel above already runs a thread per column over the rows in order).
@group(0) @binding(0) var<uniform> pbs: Bwd;
@group(0) @binding(1) var<storage, read_write> bs_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> bs_dout: array<f32>;
@group(0) @binding(3) var<storage, read> bs_inp: array<f32>;
@group(0) @binding(4) var<storage, read> bs_w: array<f32>;
@group(0) @binding(5) var<storage, read> bs_rstd: array<f32>;

@compute @workgroup_size(WG)
fn rmsnorm_backward_serial(@builtin(global_invocation_id) gid: vec3u) {
  let row = gid.x;
  if (row >= pbs.N) { return; }
  let base = row * pbs.C;
  let r = bs_rstd[row];
  var dot = 0.0;
  for (var i = 0u; i < pbs.C; i++) { dot += bs_dout[base + i] * bs_w[i] * bs_inp[base + i]; }
  let k = r * r * r * dot / f32(pbs.C);
  for (var i = 0u; i < pbs.C; i++) {
    let g = r * bs_w[i] * bs_dout[base + i] - k * bs_inp[base + i];
    if (pbs.accumulate != 0u) { bs_dinp[base + i] += g; } else { bs_dinp[base + i] = g; }
  }
}
