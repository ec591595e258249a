// residual: the residual stream's element-wise adds.
// residual_forward   bindings: 0 params {N}, 1 out (N), 2 a (N), 3 b (N)            out = a + b
// residual_backward  bindings: 0 params {N, accumulate}, 1 da (N), 2 db (N), 3 dout (N)
//                    da, db = or += dout (accumulate)
// residual_add_inplace    bindings: 0 params {N}, 1 x (N), 2 y (N)                  x += y
// residual_scale_inplace  bindings: 0 params {N, s: f32}, 1 x (N)                   x *= s
// residual_add_inplace4   as residual_add_inplace on vec4s, params {N / 4}        N % 4 == 0
// One thread per element; the grid is 2D when N / WG exceeds the per-dimension limit
// (element i = gid.x + gid.y · nwg.x · WG, see grid() in src/engine/ops/residual.ts).
// Y_T (ops/act.ts): the add_inplace kernels' y, f32 or f16 (x, the residual stream, stays f32).

override WG: u32 = 256;

struct Fwd { N: u32 }
struct Bwd { N: u32, accumulate: u32 }
struct Scale { N: u32, s: f32 }

fn index(gid: vec3u, nwg: vec3u) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(0) var<uniform> pf: Fwd;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_a: array<f32>;
@group(0) @binding(3) var<storage, read> f_b: array<f32>;

@compute @workgroup_size(WG)
fn residual_forward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pf.N) { return; }
  f_out[i] = f_a[i] + f_b[i];
}

@group(0) @binding(0) var<uniform> pb: Bwd;
@group(0) @binding(1) var<storage, read_write> b_da: array<f32>;
@group(0) @binding(2) var<storage, read_write> b_db: array<f32>;
@group(0) @binding(3) var<storage, read> b_dout: array<f32>;

@compute @workgroup_size(WG)
fn residual_backward(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pb.N) { return; }
  let g = b_dout[i];
  if (pb.accumulate != 0u) {
    b_da[i] += g;
    b_db[i] += g;
  } else {
    b_da[i] = g;
    b_db[i] = g;
  }
}

@group(0) @binding(0) var<uniform> pa: Fwd;
@group(0) @binding(1) var<storage, read_write> a_x: array<f32>;
@group(0) @binding(2) var<storage, read> a_y: array<Y_T>;

@compute @workgroup_size(WG)
fn residual_add_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pa.N) { return; }
  a_x[i] += f32(a_y[i]);
}

// residual_add_inplace4  as residual_add_inplace over N / 4 vec4s (N % 4 == 0; params N = N / 4)
@group(0) @binding(0) var<uniform> pa4: Fwd;
@group(0) @binding(1) var<storage, read_write> a4_x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> a4_y: array<vec4<Y_T>>;

@compute @workgroup_size(WG)
fn residual_add_inplace4(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= pa4.N) { return; }
  a4_x[i] += vec4<f32>(a4_y[i]);
}

@group(0) @binding(0) var<uniform> ps: Scale;
@group(0) @binding(1) var<storage, read_write> s_x: array<f32>;

@compute @workgroup_size(WG)
fn residual_scale_inplace(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = index(gid, nwg);
  if (i >= ps.N) { return; }
  s_x[i] *= ps.s;
}
