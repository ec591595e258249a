// matmul weights as the files store them, dequantized inside the kernels: DTYPE 1 = MLC q4f16_1
// (web-llm), 2 = GGUF Q4_K, 3 = GGUF Q6_K. GPU layouts: src/engine/quant-gpu.ts (header).
// Not a kernel of its own: ops/matmul.ts appends this file to matmul.wgsl and matmul_gemv.wgsl,
// which provide p {B, K, N, accumulate}, `override DTYPE`, wq_word(i) (weight u32 word i) and
// wq_vec(i) (weight vec4<u32> number i); f16_bits(h) comes from f16.wgsl, put in front of all three.
//
// A unit is 32 weights of one row, dequantized: q4f16_1 one scale group; q4_k / q6_k one eighth of
// a 256-value super-block. Its values lie in four runs of 8 consecutive k (two vec4s each), starting
// at the vec4 indices o.x, o.y, o.z, o.w along the row: q[2r], q[2r + 1] are the run at o[r].
// Every value is exactly the CPU reference's (quant-k.ts dequantizeQ4_K / dequantizeQ6_K,
// mlc-quant.ts dequantizeMlcQ4): products of an f16 scale and small integers are exact in f32,
// and Q4_K's one subtraction rounds once, as in C.

struct Unit { q: array<vec4<f32>, 8>, o: vec4<u32> }

// f16 number i of the halves packed two per u32 from word `base` on (low half first).
fn half_at(base: u32, i: u32) -> f32 {
  return f16_bits((wq_word(base + i / 2u) >> (16u * (i & 1u))) & 0xffffu);
}

// ---- q4f16_1: N·K/8 nibble words (element k of a row in word k/8, nibble k%8), then the f16
// scale of every group of 32 (N·K/32 of them); value = (q − 7)·scale.
fn q4f_scale(g: u32) -> f32 { return half_at(p.N * p.K / 8u, g); }
fn nib8(u: u32, s: u32) -> vec4<f32> { // nibbles at bits s, s+4, s+8, s+12: 4 consecutive elements
  return vec4<f32>((vec4<u32>(u) >> (vec4<u32>(0u, 4u, 8u, 12u) + s)) & vec4<u32>(15u));
}
fn unit_q4f(n: u32, u: u32) -> Unit {
  let g = n * (p.K / 32u) + u;
  let q = wq_vec(g); // word j: elements 8j .. 8j + 7
  let s = q4f_scale(g);
  let o = 8u * u;
  return Unit(array<vec4<f32>, 8>(
    (nib8(q.x, 0u) - 7.0) * s, (nib8(q.x, 16u) - 7.0) * s, (nib8(q.y, 0u) - 7.0) * s, (nib8(q.y, 16u) - 7.0) * s,
    (nib8(q.z, 0u) - 7.0) * s, (nib8(q.z, 16u) - 7.0) * s, (nib8(q.w, 0u) - 7.0) * s, (nib8(q.w, 16u) - 7.0) * s),
    vec4<u32>(o, o + 2u, o + 4u, o + 6u));
}

// ---- q4_k: GGUF's 144-byte super-blocks (36 words): word 0 = d | dmin << 16, words 1–3 the packed
// 6-bit scales/mins (vec4 m = words 0–3), words 4–35 the quants; value = (d·sc_j)·q − dmin·m_j.
// (sc_j, m_j) of sub-block j (ggml's get_scale_min_k4 on the 12 bytes).
fn q4k_sm(m: vec4<u32>, j: u32) -> vec2<f32> {
  if (j < 4u) { return vec2<f32>(f32((m.y >> (8u * j)) & 63u), f32((m.z >> (8u * j)) & 63u)); }
  let s = 8u * (j - 4u);
  return vec2<f32>(f32(((m.w >> s) & 15u) | (((m.y >> (s + 6u)) & 3u) << 4u)),
                   f32(((m.w >> (s + 4u)) & 15u) | (((m.z >> (s + 6u)) & 3u) << 4u)));
}
fn nib4(u: u32, s: u32) -> vec4<f32> { // nibbles at bits s, s+8, s+16, s+24: 4 consecutive bytes
  return vec4<f32>((vec4<u32>(u) >> (vec4<u32>(0u, 8u, 16u, 24u) + s)) & vec4<u32>(15u));
}
// Unit t of a super-block: quant bytes 16t .. 16t + 15 (one vec4<u32>; group g = t/2 of 64 values,
// half t%2): low nibbles are values 64g + 16(t%2) + 0..15 (sub-block 2g), high nibbles the same
// + 32 (sub-block 2g + 1). Consecutive threads read consecutive vec4s.
fn unit_q4k(n: u32, u: u32) -> Unit {
  let sb = n * (p.K / 256u) + u / 8u;
  let t = u % 8u;
  let g = t / 2u;
  let m = wq_vec(9u * sb);
  let d = f16_bits(m.x & 0xffffu);
  let dmin = f16_bits(m.x >> 16u);
  let a = q4k_sm(m, 2u * g);
  let b = q4k_sm(m, 2u * g + 1u);
  let d0 = d * a.x; let m0 = dmin * a.y;
  let d1 = d * b.x; let m1 = dmin * b.y;
  let q = wq_vec(9u * sb + 1u + t);
  let o = 64u * (u / 8u) + 16u * g + 4u * (t % 2u);
  return Unit(array<vec4<f32>, 8>(
    nib4(q.x, 0u) * d0 - m0, nib4(q.y, 0u) * d0 - m0, nib4(q.z, 0u) * d0 - m0, nib4(q.w, 0u) * d0 - m0,
    nib4(q.x, 4u) * d1 - m1, nib4(q.y, 4u) * d1 - m1, nib4(q.z, 4u) * d1 - m1, nib4(q.w, 4u) * d1 - m1),
    vec4<u32>(o, o + 2u, o + 8u, o + 10u));
}

// ---- q6_k: every super-block's ql (128 bytes), qh (64), int8 scales (16) as 52 words, then the
// f16 d of every block; value = (d·sc)·(q − 32), q = 4 bits of ql | 2 bits of qh << 4.
fn q6k_d(sb: u32) -> f32 { return half_at(52u * (p.N * (p.K / 256u)), sb); }
fn i8_at(u: u32, byte: u32) -> f32 { return f32(bitcast<i32>(u << (24u - 8u * byte)) >> 24u); }
// q − 32 of 4 values: ql word l (nibbles at bit s of each byte), qh word h (2 bits at hs of each byte).
fn q6_run(l: u32, s: u32, h: u32, hs: u32) -> vec4<f32> {
  let sh = vec4<u32>(0u, 8u, 16u, 24u);
  let lo = (vec4<u32>(l) >> (sh + s)) & vec4<u32>(15u);
  let hi = (vec4<u32>(h) >> (sh + hs)) & vec4<u32>(3u);
  return vec4<f32>(lo | (hi << vec4<u32>(4u))) - 32.0;
}
// Unit t of a super-block: half hh = t/4 (128 values), l0 = 8·(t%4): values l0 .. l0+7 of the
// half and the same + 32, + 64, + 96 (ql[l0..] and ql[32+l0..], low then high nibbles; qh[l0..]).
fn unit_q6k(n: u32, u: u32) -> Unit {
  let sb = n * (p.K / 256u) + u / 8u;
  let t = u % 8u;
  let hh = t / 4u;
  let l4 = 2u * (t % 4u); // l0 / 4
  let base = 52u * sb;
  let a = base + 16u * hh + l4;
  let la = wq_word(a); let lb = wq_word(a + 1u); let lc = wq_word(a + 8u); let ld = wq_word(a + 9u);
  let c = base + 32u + 8u * hh + l4;
  let h0 = wq_word(c); let h1 = wq_word(c + 1u);
  let s0 = wq_word(base + 48u + 2u * hh); // scale bytes 8hh .. 8hh + 3
  let s1 = wq_word(base + 49u + 2u * hh); // 8hh + 4 .. 8hh + 7
  let is = l4 / 4u; // l0 / 16
  let d = q6k_d(sb);
  let d0 = d * i8_at(s0, is); let d1 = d * i8_at(s0, is + 2u);
  let d2 = d * i8_at(s1, is); let d3 = d * i8_at(s1, is + 2u);
  let o = 64u * (u / 8u) + 32u * hh + l4;
  return Unit(array<vec4<f32>, 8>(
    q6_run(la, 0u, h0, 0u) * d0, q6_run(lb, 0u, h1, 0u) * d0, q6_run(lc, 0u, h0, 2u) * d1, q6_run(ld, 0u, h1, 2u) * d1,
    q6_run(la, 4u, h0, 4u) * d2, q6_run(lb, 4u, h1, 4u) * d2, q6_run(lc, 4u, h0, 6u) * d3, q6_run(ld, 4u, h1, 6u) * d3),
    vec4<u32>(o, o + 8u, o + 16u, o + 24u));
}

// Unit u (k = 32u ..) of row n.
fn unit_at(n: u32, u: u32) -> Unit {
  if (DTYPE == 1u) { return unit_q4f(n, u); }
  if (DTYPE == 2u) { return unit_q4k(n, u); }
  return unit_q6k(n, u);
}

// W[n, k .. k + 3], k % 4 == 0 (the input-gradient kernels' loads).
fn w4_at(n: u32, k: u32) -> vec4<f32> {
  if (DTYPE == 1u) {
    let i = n * p.K + k;
    return (nib8(wq_word(i / 8u), 4u * (i % 8u)) - 7.0) * q4f_scale(i / 32u);
  }
  let sb = n * (p.K / 256u) + k / 256u;
  let r = k % 256u;
  if (DTYPE == 2u) {
    let m = wq_vec(9u * sb);
    let j = r / 32u;
    let sm = q4k_sm(m, j);
    let q = nib4(wq_word(36u * sb + 4u + 8u * (j / 2u) + (r % 32u) / 4u), 4u * (j % 2u));
    return q * (f16_bits(m.x & 0xffffu) * sm.x) - f16_bits(m.x >> 16u) * sm.y;
  }
  let hh = r / 128u;
  let run = (r % 128u) / 32u; // values 32·run + l of the half
  let l = r % 32u;
  let base = 52u * sb;
  let ql = wq_word(base + 16u * hh + 8u * (run % 2u) + l / 4u);
  let qh = wq_word(base + 32u + 8u * hh + l / 4u);
  let si = 8u * hh + l / 16u + 2u * run; // its scale byte
  let sc = i8_at(wq_word(base + 48u + si / 4u), si % 4u);
  return q6_run(ql, 4u * (run / 2u), qh, 2u * run) * (q6k_d(sb) * sc);
}

// W[n, k] (the tiled kernels' loads).
fn w1_at(n: u32, k: u32) -> f32 { return w4_at(n, k & ~3u)[k & 3u]; }
