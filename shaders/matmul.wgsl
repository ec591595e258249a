// matmul, tiled kernels (any shape): forward for larger B, and both backwards.
//   out (B,N) = inp (B,K) · Wᵀ, W (N,K) f32 | q8_0 | q4_0 (DTYPE 0 | 8 | 4), dequantized while loading.
// matmul_forward          bindings: 0 params {B,K,N,accumulate}, 1 out (B,N) =/+=, 2 inp (B,K), 3 weight
// matmul_backward         bindings: 0 params, 1 dinp (B,K) =/+=, 2 dout (B,N), 3 weight   dinp = dout · W
// matmul_backward_weight  bindings: 0 params, 1 dweight (N,K) +=, 2 dout (B,N), 3 inp (B,K)   (f32 only)
//                         dweight += doutᵀ · inp
// The weight binding is array<u32>: f32 bits, or the quant layout of src/engine/quant.ts (quants,
// then f16 scales two per u32). Each entry computes C (M × NC) = Σ_r A(m,r) · Bt(c,r): a workgroup of
// TX × TY threads owns a (4·TY) × (4·TX) tile of C, 4×4 per thread; the reduction runs in chunks of
// TK staged in workgroup memory (rows padded by one vec4 against bank conflicts on transposed stores).

override TX: u32 = 16;
override TY: u32 = 16;
override TK: u32 = 16;
override DTYPE: u32 = 0;

struct Params { B: u32, K: u32, N: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c_out: array<f32>;
@group(0) @binding(2) var<storage, read> a_in: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> b_in: array<f32>;

var<workgroup> As: array<vec4<f32>, TK * (TY + 1u)>; // As[r][m]: A(m0 + m, r0 + r)
var<workgroup> Bs: array<vec4<f32>, TK * (TX + 1u)>; // Bs[r][c]: Bt(c0 + c, r0 + r)

fn put_a(m: u32, r: u32, v: f32) { As[r * (TY + 1u) + m / 4u][m % 4u] = v; }
fn put_b(c: u32, r: u32, v: f32) { Bs[r * (TX + 1u) + c / 4u][c % 4u] = v; }

// f16 bits -> f32 by hand: unpack2x16float may flush f16 subnormals (Vulkan allows it), and the
// blocks of tiny weights have subnormal scales. Scales are finite, so e = 31 is not handled.
fn f16_bits(h: u32) -> f32 {
  let e = (h >> 10u) & 31u;
  let m = select((h & 1023u) | 1024u, h & 1023u, e == 0u);
  let v = ldexp(f32(m), i32(max(e, 1u)) - 25);
  return select(v, -v, (h & 0x8000u) != 0u);
}

// W(n, k), dequantized (GGUF semantics: q8_0 q·d, q4_0 (q − 8)·d).
fn w_at(n: u32, k: u32) -> f32 {
  let i = n * p.K + k;
  if (DTYPE == 0u) { return bitcast<f32>(w[i]); }
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
      if (add) { c_out[o] += v[j]; } else { c_out[o] = v[j]; }
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
      if (ok) { v = a_in[(m0 + m) * p.K + r0 + r]; }
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
      if (ok) { v = a_in[(m0 + m) * p.N + r0 + r]; }
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
      if (ok) { v = a_in[(r0 + r) * p.N + m0 + m]; }
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
