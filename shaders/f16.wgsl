// Helpers shared by the kernels that read quantized weights: ops/embedding.ts and ops/matmul.ts put
// this file in front of shaders/embedding.wgsl, matmul.wgsl and matmul_gemv.wgsl. No bindings, no
// entry points.

// f16 bits -> f32 by hand: unpack2x16float may flush f16 subnormals (Vulkan allows it), and the
// blocks of tiny weights have subnormal scales. Scales are finite, so e = 31 is not handled.
fn f16_bits(h: u32) -> f32 {
  let e = (h >> 10u) & 31u;
  let m = select((h & 1023u) | 1024u, h & 1023u, e == 0u);
  let v = ldexp(f32(m), i32(max(e, 1u)) - 25);
  return select(v, -v, (h & 0x8000u) != 0u);
}

// The four signed bytes of a q8_0 word, low byte first.
fn i8x4(u: u32) -> vec4<f32> {
  return vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(u) << vec4<u32>(24u, 16u, 8u, 0u)) >> vec4<u32>(24u));
}
fn nib(u: u32, s: u32) -> vec4<f32> { // q4_0 nibbles at bits s, s+8, s+16, s+24, minus 8
  return vec4<f32>((vec4<u32>(u) >> (vec4<u32>(0u, 8u, 16u, 24u) + s)) & vec4<u32>(15u)) - 8.0;
}
