// matmul, decode kernels for small B (≤ 16): out (B,N) = or += inp (B,K) · Wᵀ, memory-bound.
// A workgroup holds RPW rows of W × TPR threads. A row's TPR threads split K (vec4 / whole-block
// loads) and keep up to 16 batch sums each in four vec4 registers (BT = batch rows per workgroup),
// so every weight is read once for all B rows. TPR > 1: one barrier, then a row's TPR partial sums
// are added in a fixed order (deterministic). TPR = 1 (software GPUs, where a barrier is costly):
// each thread owns a whole row and no barrier is compiled in.
// Grid: x·y = ceil(N / RPW) row groups (2D past 65535, rows past N do nothing), z = ceil(B / BT).
// matmul_forward_gemv    bindings: 0 params {B,K,N,accumulate}, 1 out (B,N), 2 inp (B,K/4) vec4,
//                        3 weight (N,K/4) vec4<f32>                                 K % 4 == 0
// matmul_forward_gemv_q  bindings: 0 params, 1 out, 2 inp, 3 quants (vec4<u32> view of the weight),
//                        4 scales (u32 view of the same buffer)      DTYPE 8 (q8_0) | 4 (q4_0)
// matmul_forward_gemv_u  bindings as matmul_forward_gemv_q: 3 and 4 the weight as vec4<u32> and u32
//                        DTYPE 1 (q4f16_1) | 2 (q4_k) | 3 (q6_k); matmul_quant.wgsl appended; a
//                        row's TPR threads take its 32-value units in turn (K % 256 for q4_k/q6_k)
// f16_bits, i8x4 and nib: shaders/f16.wgsl, prepended.
// IN_T, OUT_T (ops/act.ts): inp's and out's element types, f32 or f16; loads widen to f32, sums
// are f32, each store rounds once.

override TPR: u32 = 16; // threads per row
override RPW: u32 = 4; // rows per workgroup
override BT: u32 = 1; // 1, 4, 8, 12 or 16 batch rows per workgroup
override DTYPE: u32 = 8;

struct Params { B: u32, K: u32, N: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<OUT_T>;
@group(0) @binding(2) var<storage, read> inp: array<vec4<IN_T>>;
@group(0) @binding(3) var<storage, read> w: array<vec4<f32>>; // f32 entry
@group(0) @binding(3) var<storage, read> wq: array<vec4<u32>>; // q entry
@group(0) @binding(4) var<storage, read> ws: array<u32>;

var<workgroup> part: array<array<vec4<f32>, 4>, TPR * RPW>;

// Batch sums of one thread: acc[i][j] is batch row b0 + 4i + j (plain variables, not an array:
// a dynamically indexed array lands in memory on some compilers).
struct Acc { a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32> }

fn row_of(wg: vec3u, nwg: vec3u, r: u32) -> u32 { return (wg.y * nwg.x + wg.x) * RPW + r; }

// inp vec4 number i of batch row b (rows past B read row B − 1: computed, never written).
fn x_at(b: u32, i: u32) -> vec4<f32> { return vec4<f32>(inp[min(b, p.B - 1u) * (p.K / 4u) + i]); }

// out[b0 + b, n] = or += Σ over the row's TPR threads of acc[b].
fn finish(acc: Acc, n: u32, b0: u32, j: u32, r: u32) {
  var a = array<vec4<f32>, 4>(acc.a0, acc.a1, acc.a2, acc.a3);
  if (TPR > 1u) {
    part[r * TPR + j] = a;
    workgroupBarrier();
  }
  for (var b = j; b < BT; b += TPR) {
    if (n < p.N && b0 + b < p.B) {
      var s = a[b / 4u][b % 4u];
      if (TPR > 1u) {
        s = 0.0;
        for (var t = 0u; t < TPR; t++) { s += part[r * TPR + t][b / 4u][b % 4u]; }
      }
      let o = (b0 + b) * p.N + n;
      if (p.accumulate != 0u) { out[o] = OUT_T(f32(out[o]) + s); } else { out[o] = OUT_T(s); }
    }
  }
}

// This thread's 4 weights against batch rows b .. b + 3.
fn dots(wv: vec4<f32>, b: u32, i: u32) -> vec4<f32> {
  return vec4<f32>(dot(wv, x_at(b, i)), dot(wv, x_at(b + 1u, i)), dot(wv, x_at(b + 2u, i)), dot(wv, x_at(b + 3u, i)));
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                       @builtin(local_invocation_id) lid: vec3u) {
  let n = row_of(wg, nwg, lid.y);
  let b0 = wg.z * BT;
  let K4 = p.K / 4u;
  let end = select(0u, K4, n < p.N);
  var acc: Acc;
  for (var i = lid.x; i < end; i += TPR) {
    let wv = w[n * K4 + i];
    if (BT == 1u) {
      acc.a0.x += dot(wv, x_at(b0, i));
    } else {
      acc.a0 += dots(wv, b0, i);
      if (BT > 4u) { acc.a1 += dots(wv, b0 + 4u, i); }
      if (BT > 8u) { acc.a2 += dots(wv, b0 + 8u, i); }
      if (BT > 12u) { acc.a3 += dots(wv, b0 + 12u, i); }
    }
  }
  finish(acc, n, b0, lid.x, lid.y);
}

// One block's 32 quants (k order) against 32 values of batch row b starting at vec4 number i.
fn bdot(q: array<vec4<f32>, 8>, b: u32, i: u32) -> f32 {
  return dot(q[0], x_at(b, i)) + dot(q[1], x_at(b, i + 1u)) + dot(q[2], x_at(b, i + 2u)) +
         dot(q[3], x_at(b, i + 3u)) + dot(q[4], x_at(b, i + 4u)) + dot(q[5], x_at(b, i + 5u)) +
         dot(q[6], x_at(b, i + 6u)) + dot(q[7], x_at(b, i + 7u));
}
fn bdots(q: array<vec4<f32>, 8>, b: u32, i: u32) -> vec4<f32> {
  return vec4<f32>(bdot(q, b, i), bdot(q, b + 1u, i), bdot(q, b + 2u, i), bdot(q, b + 3u, i));
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv_q(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_id) lid: vec3u) {
  let n = row_of(wg, nwg, lid.y);
  let b0 = wg.z * BT;
  let KB = p.K / 32u; // blocks per row
  let scales = p.N * KB * DTYPE; // first scale word: after N·K (q8_0) or N·K/2 (q4_0) quant bytes
  let end = select(0u, KB, n < p.N);
  var acc: Acc;
  for (var kb = lid.x; kb < end; kb += TPR) {
    let g = n * KB + kb; // block index
    let d = f16_bits((ws[scales + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
    var q: array<vec4<f32>, 8>;
    if (DTYPE == 8u) {
      let lo = wq[2u * g];
      let hi = wq[2u * g + 1u];
      q = array(i8x4(lo.x), i8x4(lo.y), i8x4(lo.z), i8x4(lo.w), i8x4(hi.x), i8x4(hi.y), i8x4(hi.z), i8x4(hi.w));
    } else {
      let u = wq[g]; // byte j: element j (low nibble), element j + 16 (high nibble)
      q = array(nib(u.x, 0u), nib(u.y, 0u), nib(u.z, 0u), nib(u.w, 0u), nib(u.x, 4u), nib(u.y, 4u), nib(u.z, 4u), nib(u.w, 4u));
    }
    let i = kb * 8u;
    if (BT == 1u) {
      acc.a0.x += d * bdot(q, b0, i);
    } else {
      acc.a0 += d * bdots(q, b0, i);
      if (BT > 4u) { acc.a1 += d * bdots(q, b0 + 4u, i); }
      if (BT > 8u) { acc.a2 += d * bdots(q, b0 + 8u, i); }
      if (BT > 12u) { acc.a3 += d * bdots(q, b0 + 12u, i); }
    }
  }
  finish(acc, n, b0, lid.x, lid.y);
}

// The weight's words for matmul_quant.wgsl.
fn wq_word(i: u32) -> u32 { return ws[i]; }
fn wq_vec(i: u32) -> vec4<u32> { return wq[i]; }

// One unit (32 dequantized weights in four runs) against batch row b.
fn udot(U: Unit, b: u32) -> f32 {
  return dot(U.q[0], x_at(b, U.o.x)) + dot(U.q[1], x_at(b, U.o.x + 1u)) +
         dot(U.q[2], x_at(b, U.o.y)) + dot(U.q[3], x_at(b, U.o.y + 1u)) +
         dot(U.q[4], x_at(b, U.o.z)) + dot(U.q[5], x_at(b, U.o.z + 1u)) +
         dot(U.q[6], x_at(b, U.o.w)) + dot(U.q[7], x_at(b, U.o.w + 1u));
}
fn udots(U: Unit, b: u32) -> vec4<f32> {
  return vec4<f32>(udot(U, b), udot(U, b + 1u), udot(U, b + 2u), udot(U, b + 3u));
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv_u(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_id) lid: vec3u) {
  let n = row_of(wg, nwg, lid.y);
  let b0 = wg.z * BT;
  let end = select(0u, p.K / 32u, n < p.N); // units per row
  var acc: Acc;
  for (var u = lid.x; u < end; u += TPR) {
    let U = unit_at(n, u);
    if (BT == 1u) {
      acc.a0.x += udot(U, b0);
    } else {
      acc.a0 += udots(U, b0);
      if (BT > 4u) { acc.a1 += udots(U, b0 + 4u); }
      if (BT > 8u) { acc.a2 += udots(U, b0 + 8u); }
      if (BT > 12u) { acc.a3 += udots(U, b0 + 12u); }
    }
  }
  finish(acc, n, b0, lid.x, lid.y);
}

// Software GPUs (SwiftShader: a thread is one SIMD lane of a CPU core, and a barrier is a fiber
// switch): each thread owns 4 weight rows × 4 batch rows, 16 sums, no workgroup memory. Per vec4
// of K it loads 4 weight and 4 input vec4s for 16 dot products (the row-per-thread shape loads
// 1 + 16 for 16). Grid: x·y = ceil(N / (4·RPW)) groups of RPW threads, z = ceil(B / 4).
// matmul_forward_gemv_rb bindings: as matmul_forward_gemv (f32 weights only).
struct Acc4 { b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32> } // b_i[j]: batch i, row j

@compute @workgroup_size(RPW)
fn matmul_forward_gemv_rb(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                          @builtin(local_invocation_id) lid: vec3u) {
  let n0 = ((wg.y * nwg.x + wg.x) * RPW + lid.x) * 4u;
  let b0 = wg.z * 4u;
  let K4 = p.K / 4u;
  let r0 = min(n0, p.N - 1u) * K4; // rows past N read row N − 1: computed, never written
  let r1 = min(n0 + 1u, p.N - 1u) * K4;
  let r2 = min(n0 + 2u, p.N - 1u) * K4;
  let r3 = min(n0 + 3u, p.N - 1u) * K4;
  let x0 = min(b0, p.B - 1u) * K4;
  let x1 = min(b0 + 1u, p.B - 1u) * K4;
  let x2 = min(b0 + 2u, p.B - 1u) * K4;
  let x3 = min(b0 + 3u, p.B - 1u) * K4;
  var acc: Acc4;
  for (var i = 0u; i < K4; i++) {
    let w0 = w[r0 + i]; let w1 = w[r1 + i]; let w2 = w[r2 + i]; let w3 = w[r3 + i];
    let a = vec4<f32>(inp[x0 + i]);
    acc.b0 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    let b = vec4<f32>(inp[x1 + i]);
    acc.b1 += vec4<f32>(dot(w0, b), dot(w1, b), dot(w2, b), dot(w3, b));
    let c = vec4<f32>(inp[x2 + i]);
    acc.b2 += vec4<f32>(dot(w0, c), dot(w1, c), dot(w2, c), dot(w3, c));
    let d = vec4<f32>(inp[x3 + i]);
    acc.b3 += vec4<f32>(dot(w0, d), dot(w1, d), dot(w2, d), dot(w3, d));
  }
  let rows = array<vec4<f32>, 4>(acc.b0, acc.b1, acc.b2, acc.b3);
  for (var bi = 0u; bi < 4u; bi++) {
    let b = b0 + bi;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (b < p.B && n < p.N) {
        let o = b * p.N + n;
        if (p.accumulate != 0u) { out[o] = OUT_T(f32(out[o]) + rows[bi][j]); } else { out[o] = OUT_T(rows[bi][j]); }
      }
    }
  }
}

// matmul_forward_gemv_rb8: as matmul_forward_gemv_rb with 8 batch rows per thread (B ≥ 8): per vec4
// of K, 4 weight + 8 input loads for 32 dot products (rb: 4 + 4 for 16). Grid z = ceil(B / 8).
struct Acc8 { b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>,
              b4: vec4<f32>, b5: vec4<f32>, b6: vec4<f32>, b7: vec4<f32> }

@compute @workgroup_size(RPW)
fn matmul_forward_gemv_rb8(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                           @builtin(local_invocation_id) lid: vec3u) {
  let n0 = ((wg.y * nwg.x + wg.x) * RPW + lid.x) * 4u;
  let b0 = wg.z * 8u;
  let K4 = p.K / 4u;
  let r0 = min(n0, p.N - 1u) * K4;
  let r1 = min(n0 + 1u, p.N - 1u) * K4;
  let r2 = min(n0 + 2u, p.N - 1u) * K4;
  let r3 = min(n0 + 3u, p.N - 1u) * K4;
  let x0 = min(b0, p.B - 1u) * K4;
  let x1 = min(b0 + 1u, p.B - 1u) * K4;
  let x2 = min(b0 + 2u, p.B - 1u) * K4;
  let x3 = min(b0 + 3u, p.B - 1u) * K4;
  let x4 = min(b0 + 4u, p.B - 1u) * K4;
  let x5 = min(b0 + 5u, p.B - 1u) * K4;
  let x6 = min(b0 + 6u, p.B - 1u) * K4;
  let x7 = min(b0 + 7u, p.B - 1u) * K4;
  var acc: Acc8;
  for (var i = 0u; i < K4; i++) {
    let w0 = w[r0 + i]; let w1 = w[r1 + i]; let w2 = w[r2 + i]; let w3 = w[r3 + i];
    var a = vec4<f32>(inp[x0 + i]);
    acc.b0 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x1 + i]);
    acc.b1 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x2 + i]);
    acc.b2 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x3 + i]);
    acc.b3 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x4 + i]);
    acc.b4 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x5 + i]);
    acc.b5 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x6 + i]);
    acc.b6 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
    a = vec4<f32>(inp[x7 + i]);
    acc.b7 += vec4<f32>(dot(w0, a), dot(w1, a), dot(w2, a), dot(w3, a));
  }
  let rows = array<vec4<f32>, 8>(acc.b0, acc.b1, acc.b2, acc.b3, acc.b4, acc.b5, acc.b6, acc.b7);
  for (var bi = 0u; bi < 8u; bi++) {
    let b = b0 + bi;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + j;
      if (b < p.B && n < p.N) {
        let o = b * p.N + n;
        if (p.accumulate != 0u) { out[o] = OUT_T(f32(out[o]) + rows[bi][j]); } else { out[o] = OUT_T(rows[bi][j]); }
      }
    }
  }
}

// matmul_forward_gemv_r: RT weight rows per thread (GPUs). A row's TPR threads split K in blocks of
// 32 values as the other kernels do, but a thread takes RT consecutive rows at once: per block it
// loads the RT rows' weights and each batch row's 32 inputs once, for RT·BT dot products (the
// other kernels load the inputs again for every weight row, which bounds them by load throughput,
// not by memory). Any weight type, K % 32 == 0: f32 read through the u32 view (bitcast), q8_0/q4_0
// as matmul_forward_gemv_q, q4f16_1/q4_k/q6_k as units (their run offsets depend on the unit only).
// Then as `finish`: one barrier, a row's TPR partial sums added in a fixed order.
// Grid: x·y = ceil(N / (RPW·RT)) workgroups, z = ceil(B / BT). Bindings as matmul_forward_gemv_q.
override RT: u32 = 2; // 1 to 4
var<workgroup> part_r: array<array<vec4<f32>, 4>, TPR * RPW * RT>;

// Block kb (k = 32kb ..) of row n, dequantized, as a Unit (runs at o; consecutive for f32/q8_0/q4_0).
fn wblock(n: u32, kb: u32) -> Unit {
  if (DTYPE == 1u || DTYPE == 2u || DTYPE == 3u) { return unit_at(n, kb); }
  let o = 8u * kb;
  let offs = vec4<u32>(o, o + 2u, o + 4u, o + 6u);
  if (DTYPE == 0u) {
    let i = n * (p.K / 4u) + o;
    return Unit(array<vec4<f32>, 8>(
      bitcast<vec4<f32>>(wq[i]), bitcast<vec4<f32>>(wq[i + 1u]), bitcast<vec4<f32>>(wq[i + 2u]), bitcast<vec4<f32>>(wq[i + 3u]),
      bitcast<vec4<f32>>(wq[i + 4u]), bitcast<vec4<f32>>(wq[i + 5u]), bitcast<vec4<f32>>(wq[i + 6u]), bitcast<vec4<f32>>(wq[i + 7u])), offs);
  }
  let g = n * (p.K / 32u) + kb;
  let d = f16_bits((ws[p.N * (p.K / 32u) * DTYPE + g / 2u] >> (16u * (g & 1u))) & 0xffffu);
  if (DTYPE == 8u) {
    let lo = wq[2u * g];
    let hi = wq[2u * g + 1u];
    return Unit(array<vec4<f32>, 8>(i8x4(lo.x) * d, i8x4(lo.y) * d, i8x4(lo.z) * d, i8x4(lo.w) * d,
                                    i8x4(hi.x) * d, i8x4(hi.y) * d, i8x4(hi.z) * d, i8x4(hi.w) * d), offs);
  }
  let u = wq[g];
  return Unit(array<vec4<f32>, 8>(nib(u.x, 0u) * d, nib(u.y, 0u) * d, nib(u.z, 0u) * d, nib(u.w, 0u) * d,
                                  nib(u.x, 4u) * d, nib(u.y, 4u) * d, nib(u.z, 4u) * d, nib(u.w, 4u) * d), offs);
}

@compute @workgroup_size(TPR, RPW)
fn matmul_forward_gemv_r(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
                         @builtin(local_invocation_id) lid: vec3u) {
  let n0 = row_of(wg, nwg, lid.y) * RT;
  let b0 = wg.z * BT;
  let end = select(0u, p.K / 32u, n0 < p.N);
  var acc: array<array<f32, 16>, 4>; // acc[r][b]: weight row n0 + r, batch row b0 + b
  for (var kb = lid.x; kb < end; kb += TPR) {
    var W: array<Unit, 4>;
    for (var r = 0u; r < RT; r++) { W[r] = wblock(min(n0 + r, p.N - 1u), kb); }
    let o = W[0].o;
    for (var b = 0u; b < BT; b++) {
      let x = array<vec4<f32>, 8>(x_at(b0 + b, o.x), x_at(b0 + b, o.x + 1u), x_at(b0 + b, o.y), x_at(b0 + b, o.y + 1u),
                                  x_at(b0 + b, o.z), x_at(b0 + b, o.z + 1u), x_at(b0 + b, o.w), x_at(b0 + b, o.w + 1u));
      for (var r = 0u; r < RT; r++) {
        acc[r][b] += dot(W[r].q[0], x[0]) + dot(W[r].q[1], x[1]) + dot(W[r].q[2], x[2]) + dot(W[r].q[3], x[3]) +
                     dot(W[r].q[4], x[4]) + dot(W[r].q[5], x[5]) + dot(W[r].q[6], x[6]) + dot(W[r].q[7], x[7]);
      }
    }
  }
  let slot = lid.y * RT;
  if (TPR > 1u) {
    for (var r = 0u; r < RT; r++) {
      let a = acc[r];
      part_r[(slot + r) * TPR + lid.x] = array<vec4<f32>, 4>(vec4<f32>(a[0], a[1], a[2], a[3]),
        vec4<f32>(a[4], a[5], a[6], a[7]), vec4<f32>(a[8], a[9], a[10], a[11]), vec4<f32>(a[12], a[13], a[14], a[15]));
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < RT; r++) {
    let n = n0 + r;
    for (var b = lid.x; b < BT; b += TPR) {
      if (n < p.N && b0 + b < p.B) {
        var s = acc[r][b];
        if (TPR > 1u) {
          s = 0.0;
          for (var t = 0u; t < TPR; t++) { s += part_r[(slot + r) * TPR + t][b / 4u][b % 4u]; }
        }
        let o = (b0 + b) * p.N + n;
        if (p.accumulate != 0u) { out[o] = OUT_T(f32(out[o]) + s); } else { out[o] = OUT_T(s); }
      }
    }
  }
}
