// swiglu (LLaMA FFN gate): out = silu(gate) · up, silu(x) = x · sigmoid(x), element-wise.
// swiglu_forward   bindings: 0 params {N}, 1 out (N), 2 gate (N), 3 up (N)
// swiglu_forward4  as swiglu_forward on vec4s, params {N / 4}                  N % 4 == 0
// swiglu_backward  bindings: 0 params {N, accumulate}, 1 dgate (N), 2 dup (N), 3 dout (N),
//                  4 gate (N), 5 up (N)     dgate, dup = or += (accumulate)
//   dgate = dout · up · s · (1 + g · (1 − s)),  dup = dout · g · s,  s = sigmoid(g)
// One thread per element; 2D grid past the per-dimension limit (i = gid.x + gid.y · nwg.x · WG).
// ACT_T (ops/act.ts): the forwards' element type (out, gate, up), f32 or f16; computed in f32.

override WG: u32 = 256;

struct Fwd { N: u32 }
struct Bwd { N: u32, accumulate: u32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// exp of −|x| only, so neither tail overflows
fn sigmoid(x: f32) -> f32 {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<ACT_T>;
@group(0) @binding(2) var<storage, read> f_gate: array<ACT_T>;
@group(0) @binding(3) var<storage, read> f_up: array<ACT_T>;

@compute @workgroup_size(WG)
fn swiglu_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N) { return; }
  let g = f32(f_gate[i]);
  f_out[i] = ACT_T(g * sigmoid(g) * f32(f_up[i]));
}

// swiglu_forward4  as swiglu_forward on vec4s (N % 4 == 0; params N = N / 4)
fn sigmoid4(x: vec4<f32>) -> vec4<f32> {
  let e = exp(-abs(x));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= vec4<f32>(0.0));
}
@group(0) @binding(0) var<uniform> pf4: Fwd;
@group(0) @binding(1) var<storage, read_write> f4_out: array<vec4<ACT_T>>;
@group(0) @binding(2) var<storage, read> f4_gate: array<vec4<ACT_T>>;
@group(0) @binding(3) var<storage, read> f4_up: array<vec4<ACT_T>>;

@compute @workgroup_size(WG)
fn swiglu_forward4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf4.N) { return; }
  let g = vec4<f32>(f4_gate[i]);
  f4_out[i] = vec4<ACT_T>(g * sigmoid4(g) * vec4<f32>(f4_up[i]));
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_dgate: array<f32>;
@group(0) @binding(2) var<storage, read_write> b_dup: array<f32>;
@group(0) @binding(3) var<storage, read> b_dout: array<f32>;
@group(0) @binding(4) var<storage, read> b_gate: array<f32>;
@group(0) @binding(5) var<storage, read> b_up: array<f32>;

@compute @workgroup_size(WG)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N) { return; }
  let g = b_gate[i];
  let d = b_dout[i];
  let s = sigmoid(g);
  let dg = d * b_up[i] * s * (1.0 + g * (1.0 - s));
  let du = d * g * s;
  if (pb.accumulate != 0u) {
    b_dgate[i] += dg;
    b_dup[i] += du;
  } else {
    b_dgate[i] = dg;
    b_dup[i] = du;
  }
}
