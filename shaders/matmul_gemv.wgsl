// matmul, decode kernels for small B (≤ 16): out (B,N) = or += inp (B,K) · Wᵀ, memory-bound.
// A workgroup holds RPW rows of W × TPR threads. A row's TPR threads split K (vec4 / whole-block
// loads) and keep BT batch sums each in registers, so every weight is read once for all B rows;
// then one barrier, and a row's TPR partial sums are added in a fixed order (deterministic).
// Grid: x·y = ceil(N / RPW) row groups (2D past 65535, rows past N do nothing), z = ceil(B / BT).
// matmul_forward_gemv    bindings: 0 params {B,K,N,accumulate}, 1 out (B,N), 2 inp (B,K/4) vec4,
//                        3 weight (N,K/4) vec4<f32>                                 K % 4 == 0
// matmul_forward_gemv_q  bindings: 0 params, 1 out, 2 inp, 3 quants (vec4<u32> view of the weight),
//                        4 scales (u32 view of the same buffer)      DTYPE 8 (q8_0) | 4 (q4_0)

override TPR: u32 = 16; // threads per row
override RPW: u32 = 4; // rows per workgroup
override BT: u32 = 1; // batch rows per workgroup, ≤ BT_MAX
override DTYPE: u32 = 8;
const BT_MAX = 16u;

struct Params { B: u32, K: u32, N: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> inp: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(4) var<storage, read> ws: array<u32>;

var<workgroup> part: array<array<f32, BT_MAX>, TPR * RPW>;

fn row_of(wg: vec3u, nwg: vec3u, r: u32) -> u32 { return (wg.y * nwg.x + wg.x) * RPW + r; }

// out[b0 + b, n] = or += Σ over the row's threads of acc[b].
fn finish(acc: ptr<function, array<f32, BT_MAX>>, n: u32, b0: u32, j: u32, r: u32) {
  for (var b = 0u; b < BT; b++) { part[r * TPR + j][b] = (*acc)[b]; }
  workgroupBarrier();
  for (var b = j; b < BT; b += TPR) {
    if (n < p.N && b0 + b < p.B) {
      var s = 0.0;
      for (var t = 0u; t < TPR; t++) { s += part[r * TPR + t][b]; }
      let o = (b0 + b) * p.N + n;
      if (p.accumulate != 0u) { out[o] += s; } else { out[o] = s; }
    }
  }
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_id) lid: vec3u) {
  let n = row_of(wg, nwg, lid.y);
  let b0 = wg.z * BT;
  let K4 = p.K / 4u;
  let end = select(0u, K4, n < p.N);
  var acc: array<f32, BT_MAX>;
  for (var k4 = lid.x; k4 < end; k4 += TPR) {
    let wv = w[n * K4 + k4];
    for (var b = 0u; b < BT; b++) {
      let x = inp[min(b0 + b, p.B - 1u) * K4 + k4]; // batch rows past B: computed, never written
      acc[b] += dot(wv, x);
    }
  }
  finish(&acc, n, b0, lid.x, lid.y);
}

fn i8x4(u: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(u) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
fn nib(u: u32, s: u32) -> vec4<f32> { // nibbles at bits s, s+8, s+16, s+24, minus 8
  return vec4<f32>((vec4<u32>(u) >> (vec4<u32>(0u, 8u, 16u, 24u) + s)) & vec4<u32>(15u)) - 8.0;
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv_q(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_id) lid: vec3u) {
  let n = row_of(wg, nwg, lid.y);
  let b0 = wg.z * BT;
  let K4 = p.K / 4u;
  let KB = p.K / 32u; // blocks per row
  let scales = p.N * KB * DTYPE; // first scale word: after N·K (q8_0) or N·K/2 (q4_0) quant bytes
  let end = select(0u, KB, n < p.N);
  var acc: array<f32, BT_MAX>;
  for (var kb = lid.x; kb < end; kb += TPR) {
    let g = n * KB + kb; // block index
    let d = unpack2x16float(ws[scales + g / 2u])[g & 1u];
    var q: array<vec4<f32>, 8>; // the block's 32 quants in k order
    if (DTYPE == 8u) {
      let lo = wq[2u * g];
      let hi = wq[2u * g + 1u];
      q[0] = i8x4(lo.x); q[1] = i8x4(lo.y); q[2] = i8x4(lo.z); q[3] = i8x4(lo.w);
      q[4] = i8x4(hi.x); q[5] = i8x4(hi.y); q[6] = i8x4(hi.z); q[7] = i8x4(hi.w);
    } else {
      let u = wq[g]; // byte j: element j (low nibble), element j + 16 (high nibble)
      q[0] = nib(u.x, 0u); q[1] = nib(u.y, 0u); q[2] = nib(u.z, 0u); q[3] = nib(u.w, 0u);
      q[4] = nib(u.x, 4u); q[5] = nib(u.y, 4u); q[6] = nib(u.z, 4u); q[7] = nib(u.w, 4u);
    }
    for (var b = 0u; b < BT; b++) {
      let x0 = min(b0 + b, p.B - 1u) * K4 + kb * 8u;
      var s = 0.0;
      for (var i = 0u; i < 8u; i++) { s += dot(q[i], inp[x0 + i]); }
      acc[b] += d * s;
    }
  }
  finish(&acc, n, b0, lid.x, lid.y);
}
