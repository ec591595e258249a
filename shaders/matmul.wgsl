// matmul, tiled kernels (any shape): forward for larger B, and both backwards.
//   out (B,N) = inp (B,K) · Wᵀ, W (N,K) f32 | q8_0 | q4_0 (DTYPE 0 | 8 | 4), or as the files store it:
//   q4f16_1 | q4_k | q6_k (DTYPE 1 | 2 | 3, shaders/matmul_quant.wgsl appended), dequantized while loading.
// matmul_forward          bindings: 0 params {B,K,N,accumulate}, 1 out (B,N) =/+=, 2 inp (B,K), 3 weight
// matmul_backward         bindings: 0 params, 1 dinp (B,K) =/+=, 2 dout (B,N), 3 weight   dinp = dout · W
// matmul_backward_weight  bindings: 0 params, 1 dweight (N,K) +=, 2 dout (B,N), 3 inp (B,K)   (f32 only)
//                         dweight += doutᵀ · inp
// The weight binding is array<u32>: f32 bits, or the quant layout of src/engine/quant.ts (quants,
// then f16 scales two per u32) or src/engine/quant-gpu.ts (DTYPE 1–3); f16_bits, i8x4 and nib come
// from shaders/f16.wgsl, prepended. Each entry computes C (M × NC) = Σ_r A(m,r) · Bt(c,r): a workgroup of
// TX × TY threads owns a (4·TY) × (4·TX) tile of C, 4×4 per thread; the reduction runs in chunks of
// TK staged in workgroup memory (rows padded by one vec4 against bank conflicts on transposed stores).
// IN_T, OUT_T (ops/act.ts): the element types of bindings 2 (a_in / a4) and 1 (c_out), f32 or f16;
// loads widen to f32, sums are f32, each store rounds once. Only the forwards take f16.

override TX: u32 = 16;
override TY: u32 = 16;
override TK: u32 = 16;
override DTYPE: u32 = 0;

struct Params { B: u32, K: u32, N: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c_out: array<OUT_T>;
@group(0) @binding(2) var<storage, read> a_in: array<IN_T>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b_in: array<f32>;

var<workgroup> As: array<vec4<f32>, TK * (TY + 1u)>; // As[r][m]: A(m0 + m, r0 + r)
var<workgroup> Bs: array<vec4<f32>, TK * (TX + 1u)>; // Bs[r][c]: Bt(c0 + c, r0 + r)

fn put_a(m: u32, r: u32, v: f32) { As[r * (TY + 1u) + m / 4u][m % 4u] = v; }
fn put_b(c: u32, r: u32, v: f32) { Bs[r * (TX + 1u) + c / 4u][c % 4u] = v; }

// The weight's words for matmul_quant.wgsl.
fn wq_word(i: u32) -> u32 { return w[i]; }
fn wq_vec(i: u32) -> vec4<u32> { return vec4<u32>(w[4u * i], w[4u * i + 1u], w[4u * i + 2u], w[4u * i + 3u]); }

// W(n, k), dequantized (GGUF semantics: q8_0 q·d, q4_0 (q − 8)·d; DTYPE 1–3: matmul_quant.wgsl).
fn w_at(n: u32, k: u32) -> f32 {
  let i = n * p.K + k;
  if (DTYPE == 0u) { return bitcast<f32>(w[i]); }
  if (DTYPE < 4u) { return w1_at(n, k); }
  let g = i / 32u;
  let d = f16_bits((w[(p.N * p.K / 32u) * DTYPE + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
  if (DTYPE == 8u) { return f32((bitcast<i32>(w[i / 4u]) << (24u - 8u * (i % 4u))) >> 24u) * d; }
  let j = i % 32u;
  let byte = g * 16u + j % 16u;
  return f32(i32((w[byte / 4u] >> (8u * (byte % 4u) + 4u * (j / 16u))) & 15u) - 8) * d;
}

// A thread's 4×4 outputs: rows 4ty + 0..3, each a vec4 over columns 4tx + 0..3 (plain variables,
// not an array: a dynamically indexed array lands in memory on some compilers, SwiftShader's too).
struct Acc { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32> }

// acc[i][j] += Σ_r As[r][4ty + i] · Bs[r][4tx + j] over the staged chunk.
fn tile_mma(acc: ptr<function, Acc>, tx: u32, ty: u32) {
  for (var r = 0u; r < TK; r++) {
    let a = As[r * (TY + 1u) + ty];
    let b = Bs[r * (TX + 1u) + tx];
    (*acc).r0 += a.x * b;
    (*acc).r1 += a.y * b;
    (*acc).r2 += a.z * b;
    (*acc).r3 += a.w * b;
  }
}

// C[m, c0 + j] (M × NC) = or += v[j].
fn store_row(v: vec4<f32>, m: u32, c0: u32, M: u32, NC: u32, add: bool) {
  for (var j = 0u; j < 4u; j++) {
    let c = c0 + j;
    if (m < M && c < NC) {
      let o = m * NC + c;
      if (add) { c_out[o] = OUT_T(f32(c_out[o]) + v[j]); } else { c_out[o] = OUT_T(v[j]); }
    }
  }
}

fn tile_store(acc: Acc, m0: u32, c0: u32, M: u32, NC: u32, add: bool) {
  store_row(acc.r0, m0, c0, M, NC, add);
  store_row(acc.r1, m0 + 1u, c0, M, NC, add);
  store_row(acc.r2, m0 + 2u, c0, M, NC, add);
  store_row(acc.r3, m0 + 3u, c0, M, NC, add);
}

@compute @workgroup_size(TX, TY)
fn matmul_forward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
                  @builtin(local_invocation_index) t: u32) {
  let m0 = wg.y * 4u * TY; // batch rows b
  let c0 = wg.x * 4u * TX; // output features n
  var acc: Acc;
  for (var r0 = 0u; r0 < p.K; r0 += TK) {
    for (var e = t; e < 4u * TY * TK; e += TX * TY) {
      let m = e / TK; let r = e % TK; // consecutive threads read consecutive k
      let ok = m0 + m < p.B && r0 + r < p.K;
      var v = 0.0;
      if (ok) { v = f32(a_in[(m0 + m) * p.K + r0 + r]); }
      put_a(m, r, v);
    }
    for (var e = t; e < 4u * TX * TK; e += TX * TY) {
      let c = e / TK; let r = e % TK;
      let ok = c0 + c < p.N && r0 + r < p.K;
      var v = 0.0;
      if (ok) { v = w_at(c0 + c, r0 + r); }
      put_b(c, r, v);
    }
    workgroupBarrier();
    tile_mma(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  tile_store(acc, m0 + 4u * lid.y, c0 + 4u * lid.x, p.B, p.N, p.accumulate != 0u);
}

@compute @workgroup_size(TX, TY)
fn matmul_backward(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
                   @builtin(local_invocation_index) t: u32) {
  let m0 = wg.y * 4u * TY; // batch rows b
  let c0 = wg.x * 4u * TX; // input features k
  var acc: Acc;
  for (var r0 = 0u; r0 < p.N; r0 += TK) {
    for (var e = t; e < 4u * TY * TK; e += TX * TY) {
      let m = e / TK; let r = e % TK;
      let ok = m0 + m < p.B && r0 + r < p.N;
      var v = 0.0;
      if (ok) { v = f32(a_in[(m0 + m) * p.N + r0 + r]); }
      put_a(m, r, v);
    }
    for (var e = t; e < 4u * TX * TK; e += TX * TY) {
      let c = e % (4u * TX); let r = e / (4u * TX); // consecutive threads read consecutive k of W row n
      let ok = c0 + c < p.K && r0 + r < p.N;
      var v = 0.0;
      if (ok) { v = w_at(r0 + r, c0 + c); }
      put_b(c, r, v);
    }
    workgroupBarrier();
    tile_mma(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  tile_store(acc, m0 + 4u * lid.y, c0 + 4u * lid.x, p.B, p.K, p.accumulate != 0u);
}

@compute @workgroup_size(TX, TY)
fn matmul_backward_weight(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
                          @builtin(local_invocation_index) t: u32) {
  let m0 = wg.y * 4u * TY; // output features n
  let c0 = wg.x * 4u * TX; // input features k
  var acc: Acc;
  for (var r0 = 0u; r0 < p.B; r0 += TK) {
    for (var e = t; e < 4u * TY * TK; e += TX * TY) {
      let m = e % (4u * TY); let r = e / (4u * TY);
      let ok = m0 + m < p.N && r0 + r < p.B;
      var v = 0.0;
      if (ok) { v = f32(a_in[(r0 + r) * p.N + m0 + m]); }
      put_a(m, r, v);
    }
    for (var e = t; e < 4u * TX * TK; e += TX * TY) {
      let c = e % (4u * TX); let r = e / (4u * TX);
      let ok = c0 + c < p.K && r0 + r < p.B;
      var v = 0.0;
      if (ok) { v = b_in[(r0 + r) * p.K + c0 + c]; }
      put_b(c, r, v);
    }
    workgroupBarrier();
    tile_mma(&acc, lid.x, lid.y);
    workgroupBarrier();
  }
  tile_store(acc, m0 + 4u * lid.y, c0 + 4u * lid.x, p.N, p.K, true);
}

// ---- Software GPUs (SwiftShader: a thread is one SIMD lane of a CPU core, and a workgroup barrier
// is a fiber switch): register-blocked kernels with no workgroup memory and no barrier. A thread
// owns one 4×4 tile of C (M × NC) and reads its operands straight from global memory; rows and
// columns past the edge read the last one (computed, never stored). Threads run over the tiles
// column-tile first (i = mt · ceil(NC / 4) + ct), WG per workgroup, the workgroups as a 2D grid
// x·y (x up to the per-dimension limit; threads past the last tile return).
// matmul_forward_rb         bindings as matmul_forward, inp and weight as vec4<f32>   f32, K % 4 == 0
// matmul_forward_rb_q       bindings as matmul_forward, inp as vec4<f32>      q8_0 | q4_0 (K % 32 == 0)
// matmul_forward_rb1        bindings as matmul_forward (scalar loads)                f32, any K
// matmul_backward_rb        bindings as matmul_backward, all as vec4<f32>   f32, K and N % 4 == 0
// matmul_backward_rb_q      bindings as matmul_backward                  q8_0 | q4_0 (K % 32 == 0)
// matmul_backward_rb1       bindings as matmul_backward (scalar loads)           f32, any K and N
// matmul_forward_rb_u       bindings as matmul_forward, inp as vec4<f32>   q4f16_1 | q4_k | q6_k
// matmul_backward_rb_u      bindings as matmul_backward                    q4f16_1 | q4_k | q6_k
// matmul_backward_weight_rb   bindings as matmul_backward_weight, all as vec4<f32>  K and N % 4 == 0
// matmul_backward_weight_rb1  bindings as matmul_backward_weight (scalar loads)     any K and N

override WG: u32 = 64;

@group(0) @binding(2) var<storage, read> a4: array<vec4<IN_T>>;
@group(0) @binding(3) var<storage, read> b4: array<vec4<f32>>;

// The first C row m0 and column c0 of this thread's tile (m0 ≥ M: no tile).
fn rb_tile(wg: vec3u, nwg: vec3u, lid: u32, NC: u32) -> vec2u {
  let i = (wg.y * nwg.x + wg.x) * WG + lid;
  let nct = (NC + 3u) / 4u;
  return vec2u((i / nct) * 4u, (i % nct) * 4u);
}

// Row j of four starting at r0, clamped to the last of n rows.
fn rb_row(r0: u32, j: u32, n: u32) -> u32 { return min(r0 + j, n - 1u); }

fn dots4(a: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
}

@compute @workgroup_size(WG)
fn matmul_forward_rb(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                     @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.N);
  if (t.x >= p.B) { return; }
  let K4 = p.K / 4u;
  let x0 = rb_row(t.x, 0u, p.B) * K4; let x1 = rb_row(t.x, 1u, p.B) * K4;
  let x2 = rb_row(t.x, 2u, p.B) * K4; let x3 = rb_row(t.x, 3u, p.B) * K4;
  let r0 = rb_row(t.y, 0u, p.N) * K4; let r1 = rb_row(t.y, 1u, p.N) * K4;
  let r2 = rb_row(t.y, 2u, p.N) * K4; let r3 = rb_row(t.y, 3u, p.N) * K4;
  var acc: Acc;
  for (var k = 0u; k < K4; k++) {
    let w0 = b4[r0 + k]; let w1 = b4[r1 + k]; let w2 = b4[r2 + k]; let w3 = b4[r3 + k];
    acc.r0 += dots4(vec4<f32>(a4[x0 + k]), w0, w1, w2, w3);
    acc.r1 += dots4(vec4<f32>(a4[x1 + k]), w0, w1, w2, w3);
    acc.r2 += dots4(vec4<f32>(a4[x2 + k]), w0, w1, w2, w3);
    acc.r3 += dots4(vec4<f32>(a4[x3 + k]), w0, w1, w2, w3);
  }
  tile_store(acc, t.x, t.y, p.B, p.N, p.accumulate != 0u);
}

@compute @workgroup_size(WG)
fn matmul_forward_rb1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.N);
  if (t.x >= p.B) { return; }
  let x0 = rb_row(t.x, 0u, p.B) * p.K; let x1 = rb_row(t.x, 1u, p.B) * p.K;
  let x2 = rb_row(t.x, 2u, p.B) * p.K; let x3 = rb_row(t.x, 3u, p.B) * p.K;
  let r0 = rb_row(t.y, 0u, p.N) * p.K; let r1 = rb_row(t.y, 1u, p.N) * p.K;
  let r2 = rb_row(t.y, 2u, p.N) * p.K; let r3 = rb_row(t.y, 3u, p.N) * p.K;
  var acc: Acc;
  for (var k = 0u; k < p.K; k++) {
    let wv = vec4<f32>(b_in[r0 + k], b_in[r1 + k], b_in[r2 + k], b_in[r3 + k]);
    acc.r0 += f32(a_in[x0 + k]) * wv;
    acc.r1 += f32(a_in[x1 + k]) * wv;
    acc.r2 += f32(a_in[x2 + k]) * wv;
    acc.r3 += f32(a_in[x3 + k]) * wv;
  }
  tile_store(acc, t.x, t.y, p.B, p.N, p.accumulate != 0u);
}

// Quantized weights, one 32-value block at a time: the block's four scales once, then the raw
// quants against the inputs, scaled at the end of the block.
fn scale_at(g: u32) -> f32 {
  return f16_bits((w[(p.N * p.K / 32u) * DTYPE + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
}

@compute @workgroup_size(WG)
fn matmul_forward_rb_q(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.N);
  if (t.x >= p.B) { return; }
  let K4 = p.K / 4u; let KB = p.K / 32u;
  let x0 = rb_row(t.x, 0u, p.B) * K4; let x1 = rb_row(t.x, 1u, p.B) * K4;
  let x2 = rb_row(t.x, 2u, p.B) * K4; let x3 = rb_row(t.x, 3u, p.B) * K4;
  let g0 = rb_row(t.y, 0u, p.N) * KB; let g1 = rb_row(t.y, 1u, p.N) * KB;
  let g2 = rb_row(t.y, 2u, p.N) * KB; let g3 = rb_row(t.y, 3u, p.N) * KB;
  var acc: Acc;
  for (var kb = 0u; kb < KB; kb++) {
    // Initialised explicitly: a `var` without initializer in a loop body was not re-zeroed per
    // iteration on Dawn + SwiftShader (measured: the block sums ran on across blocks).
    var s = Acc();
    let i = kb * 8u;
    if (DTYPE == 8u) {
      for (var q = 0u; q < 8u; q++) {
        let w0 = i8x4(w[(g0 + kb) * 8u + q]); let w1 = i8x4(w[(g1 + kb) * 8u + q]);
        let w2 = i8x4(w[(g2 + kb) * 8u + q]); let w3 = i8x4(w[(g3 + kb) * 8u + q]);
        s.r0 += dots4(vec4<f32>(a4[x0 + i + q]), w0, w1, w2, w3);
        s.r1 += dots4(vec4<f32>(a4[x1 + i + q]), w0, w1, w2, w3);
        s.r2 += dots4(vec4<f32>(a4[x2 + i + q]), w0, w1, w2, w3);
        s.r3 += dots4(vec4<f32>(a4[x3 + i + q]), w0, w1, w2, w3);
      }
    } else {
      for (var q = 0u; q < 4u; q++) { // word q: elements 4q.. (low nibbles) and 16 + 4q.. (high)
        let u0 = w[(g0 + kb) * 4u + q]; let u1 = w[(g1 + kb) * 4u + q];
        let u2 = w[(g2 + kb) * 4u + q]; let u3 = w[(g3 + kb) * 4u + q];
        let l0 = nib(u0, 0u); let l1 = nib(u1, 0u); let l2 = nib(u2, 0u); let l3 = nib(u3, 0u);
        let h0 = nib(u0, 4u); let h1 = nib(u1, 4u); let h2 = nib(u2, 4u); let h3 = nib(u3, 4u);
        s.r0 += dots4(vec4<f32>(a4[x0 + i + q]), l0, l1, l2, l3) + dots4(vec4<f32>(a4[x0 + i + 4u + q]), h0, h1, h2, h3);
        s.r1 += dots4(vec4<f32>(a4[x1 + i + q]), l0, l1, l2, l3) + dots4(vec4<f32>(a4[x1 + i + 4u + q]), h0, h1, h2, h3);
        s.r2 += dots4(vec4<f32>(a4[x2 + i + q]), l0, l1, l2, l3) + dots4(vec4<f32>(a4[x2 + i + 4u + q]), h0, h1, h2, h3);
        s.r3 += dots4(vec4<f32>(a4[x3 + i + q]), l0, l1, l2, l3) + dots4(vec4<f32>(a4[x3 + i + 4u + q]), h0, h1, h2, h3);
      }
    }
    let d = vec4<f32>(scale_at(g0 + kb), scale_at(g1 + kb), scale_at(g2 + kb), scale_at(g3 + kb));
    acc.r0 += s.r0 * d; acc.r1 += s.r1 * d; acc.r2 += s.r2 * d; acc.r3 += s.r3 * d;
  }
  tile_store(acc, t.x, t.y, p.B, p.N, p.accumulate != 0u);
}

// dinp (B,K): a thread's 4 batch rows × 4 input features k0..k0+3; per 4 n, four dout vec4s
// (dout[b, n..n+3]) and four weight vec4s (W[n + i, k0..k0+3]).
@compute @workgroup_size(WG)
fn matmul_backward_rb(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                      @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.B) { return; }
  let K4 = p.K / 4u; let N4 = p.N / 4u; let kq = t.y / 4u;
  let x0 = rb_row(t.x, 0u, p.B) * N4; let x1 = rb_row(t.x, 1u, p.B) * N4;
  let x2 = rb_row(t.x, 2u, p.B) * N4; let x3 = rb_row(t.x, 3u, p.B) * N4;
  var acc: Acc;
  for (var n = 0u; n < N4; n++) {
    let o = 4u * n * K4 + kq;
    let w0 = b4[o]; let w1 = b4[o + K4]; let w2 = b4[o + 2u * K4]; let w3 = b4[o + 3u * K4];
    let d0 = vec4<f32>(a4[x0 + n]); let d1 = vec4<f32>(a4[x1 + n]); let d2 = vec4<f32>(a4[x2 + n]); let d3 = vec4<f32>(a4[x3 + n]);
    acc.r0 += d0.x * w0 + d0.y * w1 + d0.z * w2 + d0.w * w3;
    acc.r1 += d1.x * w0 + d1.y * w1 + d1.z * w2 + d1.w * w3;
    acc.r2 += d2.x * w0 + d2.y * w1 + d2.z * w2 + d2.w * w3;
    acc.r3 += d3.x * w0 + d3.y * w1 + d3.z * w2 + d3.w * w3;
  }
  tile_store(acc, t.x, t.y, p.B, p.K, p.accumulate != 0u);
}

@compute @workgroup_size(WG)
fn matmul_backward_rb1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.B) { return; }
  let x0 = rb_row(t.x, 0u, p.B) * p.N; let x1 = rb_row(t.x, 1u, p.B) * p.N;
  let x2 = rb_row(t.x, 2u, p.B) * p.N; let x3 = rb_row(t.x, 3u, p.B) * p.N;
  let k0 = rb_row(t.y, 0u, p.K); let k1 = rb_row(t.y, 1u, p.K);
  let k2 = rb_row(t.y, 2u, p.K); let k3 = rb_row(t.y, 3u, p.K);
  var acc: Acc;
  for (var n = 0u; n < p.N; n++) {
    let o = n * p.K;
    let wv = vec4<f32>(b_in[o + k0], b_in[o + k1], b_in[o + k2], b_in[o + k3]);
    acc.r0 += f32(a_in[x0 + n]) * wv;
    acc.r1 += f32(a_in[x1 + n]) * wv;
    acc.r2 += f32(a_in[x2 + n]) * wv;
    acc.r3 += f32(a_in[x3 + n]) * wv;
  }
  tile_store(acc, t.x, t.y, p.B, p.K, p.accumulate != 0u);
}

@compute @workgroup_size(WG)
fn matmul_backward_rb_q(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                        @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.B) { return; }
  let x0 = rb_row(t.x, 0u, p.B) * p.N; let x1 = rb_row(t.x, 1u, p.B) * p.N;
  let x2 = rb_row(t.x, 2u, p.B) * p.N; let x3 = rb_row(t.x, 3u, p.B) * p.N;
  // W[n, k0..k0+3] (k0 % 4 == 0) lie in one u32 of block n·KB + k0/32: q8_0 word (n·K + k0)/4;
  // q4_0 word 4·block + (j % 16)/4, nibbles at 4·(j / 16), j = k0 % 32.
  let KB = p.K / 32u; let kb = t.y / 32u; let j = t.y % 32u;
  let wq = select((j % 16u) / 4u, t.y / 4u, DTYPE == 8u); let sh = 4u * (j / 16u);
  var acc: Acc;
  for (var n = 0u; n < p.N; n++) {
    let g = n * KB + kb;
    var q: vec4<f32>;
    if (DTYPE == 8u) { q = i8x4(w[n * (p.K / 4u) + wq]); } else { q = nib(w[g * 4u + wq], sh); }
    let wv = q * scale_at(g);
    acc.r0 += f32(a_in[x0 + n]) * wv;
    acc.r1 += f32(a_in[x1 + n]) * wv;
    acc.r2 += f32(a_in[x2 + n]) * wv;
    acc.r3 += f32(a_in[x3 + n]) * wv;
  }
  tile_store(acc, t.x, t.y, p.B, p.K, p.accumulate != 0u);
}

// Weights as the files store them (matmul_quant.wgsl), one 32-value unit of 4 weight rows at a time.
// Σ over a unit of row U against the batch row whose first vec4 is a4[x].
fn udot4(U: Unit, x: u32) -> f32 {
  return dot(U.q[0], vec4<f32>(a4[x + U.o.x])) + dot(U.q[1], vec4<f32>(a4[x + U.o.x + 1u])) +
         dot(U.q[2], vec4<f32>(a4[x + U.o.y])) + dot(U.q[3], vec4<f32>(a4[x + U.o.y + 1u])) +
         dot(U.q[4], vec4<f32>(a4[x + U.o.z])) + dot(U.q[5], vec4<f32>(a4[x + U.o.z + 1u])) +
         dot(U.q[6], vec4<f32>(a4[x + U.o.w])) + dot(U.q[7], vec4<f32>(a4[x + U.o.w + 1u]));
}

@compute @workgroup_size(WG)
fn matmul_forward_rb_u(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.N);
  if (t.x >= p.B) { return; }
  let K4 = p.K / 4u;
  let x0 = rb_row(t.x, 0u, p.B) * K4; let x1 = rb_row(t.x, 1u, p.B) * K4;
  let x2 = rb_row(t.x, 2u, p.B) * K4; let x3 = rb_row(t.x, 3u, p.B) * K4;
  let n0 = rb_row(t.y, 0u, p.N); let n1 = rb_row(t.y, 1u, p.N);
  let n2 = rb_row(t.y, 2u, p.N); let n3 = rb_row(t.y, 3u, p.N);
  var acc: Acc;
  for (var u = 0u; u < p.K / 32u; u++) {
    let U0 = unit_at(n0, u); let U1 = unit_at(n1, u); let U2 = unit_at(n2, u); let U3 = unit_at(n3, u);
    acc.r0 += vec4<f32>(udot4(U0, x0), udot4(U1, x0), udot4(U2, x0), udot4(U3, x0));
    acc.r1 += vec4<f32>(udot4(U0, x1), udot4(U1, x1), udot4(U2, x1), udot4(U3, x1));
    acc.r2 += vec4<f32>(udot4(U0, x2), udot4(U1, x2), udot4(U2, x2), udot4(U3, x2));
    acc.r3 += vec4<f32>(udot4(U0, x3), udot4(U1, x3), udot4(U2, x3), udot4(U3, x3));
  }
  tile_store(acc, t.x, t.y, p.B, p.N, p.accumulate != 0u);
}

@compute @workgroup_size(WG)
fn matmul_backward_rb_u(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                        @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.B) { return; }
  let x0 = rb_row(t.x, 0u, p.B) * p.N; let x1 = rb_row(t.x, 1u, p.B) * p.N;
  let x2 = rb_row(t.x, 2u, p.B) * p.N; let x3 = rb_row(t.x, 3u, p.B) * p.N;
  var acc: Acc;
  for (var n = 0u; n < p.N; n++) {
    let wv = w4_at(n, t.y);
    acc.r0 += f32(a_in[x0 + n]) * wv;
    acc.r1 += f32(a_in[x1 + n]) * wv;
    acc.r2 += f32(a_in[x2 + n]) * wv;
    acc.r3 += f32(a_in[x3 + n]) * wv;
  }
  tile_store(acc, t.x, t.y, p.B, p.K, p.accumulate != 0u);
}

// dweight (N,K) +=: a thread's 4 output features n0.. × 4 input features k0..; per batch row b,
// dout[b, n0..n0+3] and inp[b, k0..k0+3].
@compute @workgroup_size(WG)
fn matmul_backward_weight_rb(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                             @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.N) { return; }
  let K4 = p.K / 4u; let N4 = p.N / 4u; let kq = t.y / 4u; let nq = t.x / 4u;
  var acc: Acc;
  for (var b = 0u; b < p.B; b++) {
    let dv = vec4<f32>(a4[b * N4 + nq]);
    let iv = b4[b * K4 + kq];
    acc.r0 += dv.x * iv;
    acc.r1 += dv.y * iv;
    acc.r2 += dv.z * iv;
    acc.r3 += dv.w * iv;
  }
  tile_store(acc, t.x, t.y, p.N, p.K, true);
}

@compute @workgroup_size(WG)
fn matmul_backward_weight_rb1(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                              @builtin(local_invocation_index) lid: u32) {
  let t = rb_tile(wg, nwg, lid, p.K);
  if (t.x >= p.N) { return; }
  let n0 = rb_row(t.x, 0u, p.N); let n1 = rb_row(t.x, 1u, p.N);
  let n2 = rb_row(t.x, 2u, p.N); let n3 = rb_row(t.x, 3u, p.N);
  let k0 = rb_row(t.y, 0u, p.K); let k1 = rb_row(t.y, 1u, p.K);
  let k2 = rb_row(t.y, 2u, p.K); let k3 = rb_row(t.y, 3u, p.K);
  var acc: Acc;
  for (var b = 0u; b < p.B; b++) {
    let o = b * p.N; let ok = b * p.K;
    let iv = vec4<f32>(b_in[ok + k0], b_in[ok + k1], b_in[ok + k2], b_in[ok + k3]);
    acc.r0 += f32(a_in[o + n0]) * iv;
    acc.r1 += f32(a_in[o + n1]) * iv;
    acc.r2 += f32(a_in[o + n2]) * iv;
    acc.r3 += f32(a_in[o + n3]) * iv;
  }
  tile_store(acc, t.x, t.y, p.N, p.K, true);
}
