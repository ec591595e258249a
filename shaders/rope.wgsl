// rope: rotary position embedding, llama2.c run.c convention. Within each head of size HS the
// pair (2i, 2i+1) of a row at position pos rotates by angle = pos * freq,
// freq = 1 / theta^(2i/HS), all in f32 like run.c (and like ref/rope.ts for Float32Array).
// rope_forward          bindings: 0 params {N, NH, HS, theta}, 1 out (N,NH*HS), 2 inp (N,NH*HS),
//                       3 positions (N) u32
// rope_forward_inplace  bindings: 0 params {N, NH, HS, theta}, 1 x (N,NH*HS) rotated in place,
//                       2 positions (N) u32
// rope_backward         bindings: 0 params {N, NH, HS, theta, accumulate}, 1 dinp (N,NH*HS),
//                       2 dout (N,NH*HS), 3 positions (N)     dinp = or += rotation of dout by −angle
// One thread per pair; the 1-D thread index is spread over a 2-D grid (x · y workgroups).
// X_T (ops/act.ts): rope_forward_inplace's element type, f32 or f16 (the rotation is f32).

override WG: u32 = 64;

struct Params { N: u32, NH: u32, HS: u32, theta: f32, accumulate: u32 }

// cos and sin of the pair's angle. WGSL's sin/cos only promise 2^-11 on [-π, π] (SwiftShader's
// are off by ~2e-4 there) and angles reach pos ≈ 2048, so we reduce and evaluate ourselves with
// + − × only: a = k·π/2 + r with π/2 split in three (Cody–Waite; 1.5703125 has 8 significant bits,
// so k·C1 and a − k·C1 are exact for k < 2^16), then cephes' sinf/cosf polynomials on |r| ≤ π/4.
// Result within ~2e-7 of cos/sin of the f32 angle.
fn rope_cos_sin(pos: u32, pair: u32, HS: u32, theta: f32) -> vec2f {
  let freq = 1.0 / pow(theta, f32(2u * pair) / f32(HS));
  let a = f32(pos) * freq;
  let k = round(a * 0.63661977);
  let r = ((a - k * 1.5703125) - k * 4.838267923e-4) - k * 2.563344068e-12;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (u32(i32(k)) & 3u) {
    case 0u: { return vec2f(c, s); }
    case 1u: { return vec2f(-s, c); }
    case 2u: { return vec2f(-c, -s); }
    default: { return vec2f(s, -c); }
  }
}

// Maps a thread to (row, pair-in-row index, element offset); row == N means "no work".
fn rope_site(wg: vec3u, nwg: vec3u, lid: vec3u, p: Params) -> vec3u {
  let half = p.NH * p.HS / 2u;
  let idx = (wg.y * nwg.x + wg.x) * WG + lid.x;
  let row = idx / half;
  if (row >= p.N) { return vec3u(p.N, 0u, 0u); }
  let q = idx % half;
  return vec3u(row, q % (p.HS / 2u), row * half * 2u + 2u * q);
}

@group(0) @binding(0) var<uniform> pf: Params;
@group(0) @binding(1) var<storage, read_write> f_out: array<f32>;
@group(0) @binding(2) var<storage, read> f_inp: array<f32>;
@group(0) @binding(3) var<storage, read> f_pos: array<u32>;

@compute @workgroup_size(WG)
fn rope_forward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                @builtin(local_invocation_id) lid: vec3u) {
  let s = rope_site(wg, nwg, lid, pf);
  if (s.x >= pf.N) { return; }
  let cs = rope_cos_sin(f_pos[s.x], s.y, pf.HS, pf.theta);
  let v0 = f_inp[s.z];
  let v1 = f_inp[s.z + 1u];
  f_out[s.z] = v0 * cs.x - v1 * cs.y;
  f_out[s.z + 1u] = v0 * cs.y + v1 * cs.x;
}

@group(0) @binding(0) var<uniform> pi: Params;
@group(0) @binding(1) var<storage, read_write> i_x: array<X_T>;
@group(0) @binding(2) var<storage, read> i_pos: array<u32>;

@compute @workgroup_size(WG)
fn rope_forward_inplace(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                        @builtin(local_invocation_id) lid: vec3u) {
  let s = rope_site(wg, nwg, lid, pi);
  if (s.x >= pi.N) { return; }
  let cs = rope_cos_sin(i_pos[s.x], s.y, pi.HS, pi.theta);
  let v0 = f32(i_x[s.z]);
  let v1 = f32(i_x[s.z + 1u]);
  i_x[s.z] = X_T(v0 * cs.x - v1 * cs.y);
  i_x[s.z + 1u] = X_T(v0 * cs.y + v1 * cs.x);
}

@group(0) @binding(0) var<uniform> pb: Params;
@group(0) @binding(1) var<storage, read_write> b_dinp: array<f32>;
@group(0) @binding(2) var<storage, read> b_dout: array<f32>;
@group(0) @binding(3) var<storage, read> b_pos: array<u32>;

@compute @workgroup_size(WG)
fn rope_backward(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                 @builtin(local_invocation_id) lid: vec3u) {
  let s = rope_site(wg, nwg, lid, pb);
  if (s.x >= pb.N) { return; }
  let cs = rope_cos_sin(b_pos[s.x], s.y, pb.HS, pb.theta);
  let d0 = b_dout[s.z];
  let d1 = b_dout[s.z + 1u];
  var g = vec2f(d0 * cs.x + d1 * cs.y, d1 * cs.x - d0 * cs.y);
  if (pb.accumulate != 0u) { g += vec2f(b_dinp[s.z], b_dinp[s.z + 1u]); }
  b_dinp[s.z] = g.x;
  b_dinp[s.z + 1u] = g.y;
}
