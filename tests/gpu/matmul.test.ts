import { describe, expect, it } from 'vitest';
import type { Gpu } from '../../src/engine/gpu/gpu.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import * as gpuOp from '../../src/engine/ops/matmul.ts';
import { dequantize, quantize, uploadWeight, type QuantDType } from '../../src/engine/quant.ts';
import * as ref from '../../src/engine/ref/matmul.ts';
import { checkOp } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

type WDType = 'f32' | QuantDType;
const VARIANTS: gpuOp.MatmulVariant[] = ['tiled', 'blocked'];

/** The reference's weight: the values the kernel multiplies with (dequantized for q types). */
function refWeight(dtype: WDType, w: Float32Array): Float32Array {
  return dtype === 'f32' ? w : dequantize(dtype, quantize(dtype, w), w.length);
}

// (B, K, N): every B in {1, 3, 16, 37}, K in {32, 96, 256}, N in {1, 5, 64, 100}; none is a
// multiple of the tiles (32 or 64 rows) except where the sizes say so.
const SHAPES = [
  [1, 32, 1],
  [1, 256, 100],
  [1, 96, 64],
  [3, 96, 5],
  [3, 32, 64],
  [16, 256, 64],
  [16, 96, 100],
  [8, 32, 5],
  [11, 96, 100],
  [37, 32, 5],
  [37, 256, 100],
  [37, 96, 1],
] as const;

async function run(gpu: Gpu, dtype: WDType, B: number, K: number, N: number, xScale = 1): Promise<void> {
  const tag = dtype === 'f32' ? 'matmul' : `matmul_${dtype}`;
  const w = randArray(Float32Array, N * K, 1).map((v) => v / xScale);
  const x = randArray(Float32Array, B * K, 2).map((v) => v * xScale);
  const dout = randArray(Float32Array, B * N, 3).map((v) => v * xScale);
  const prevOut = randArray(Float32Array, B * N, 4);
  const prevDinp = randArray(Float32Array, B * K, 5);
  const wr = refWeight(dtype, w);

  const out = new Float32Array(B * N);
  ref.matmulForward(out, x, wr, B, K, N);
  const outAcc = new Float32Array(prevOut);
  ref.matmulForward(outAcc, x, wr, B, K, N, true);
  const dinp = new Float32Array(B * K);
  ref.matmulBackwardInput(dinp, dout, wr, B, K, N, false);
  const dinpAcc = new Float32Array(prevDinp);
  ref.matmulBackwardInput(dinpAcc, dout, wr, B, K, N, true);

  await gpu.checked(async () => {
    const made: Tensor[] = [];
    const t = (shape: number[], data: Float32Array, label: string): Tensor => {
      const r = gpu.fromData(shape, data, label);
      made.push(r);
      return r;
    };
    const tw = uploadWeight(gpu, dtype, w, N, K, 'w');
    made.push(tw);
    const tx = t([B, K], x, 'x'),
      tdout = t([B, N], dout, 'dout');
    const dx = t([B, K], prevDinp, 'dx'),
      dxAcc = t([B, K], prevDinp, 'dxAcc');
    const fwd: [Tensor, Float32Array][] = [];
    const forward = (expected: Float32Array, f: (o: Tensor) => void): void => {
      const o = t([B, N], prevOut, 'out');
      f(o);
      fwd.push([o, expected]);
    };
    forward(out, (o) => gpuOp.matmulForward(gpu, o, tx, tw, B, K, N)); // the kernel matmulForward picks
    forward(outAcc, (o) => gpuOp.matmulForward(gpu, o, tx, tw, B, K, N, true));
    for (const variant of VARIANTS) {
      // the any-B kernels: workgroup-tiled (GPUs) and register-blocked (software GPUs)
      forward(out, (o) => gpuOp.matmulForwardTiled(gpu, o, tx, tw, B, K, N, false, variant));
      forward(outAcc, (o) => gpuOp.matmulForwardTiled(gpu, o, tx, tw, B, K, N, true, variant));
    }
    if (K % 4 === 0) {
      // the decode kernels: a thread per row, 4 rows × 4 batch rows per thread (SwiftShader's; f32
      // only, quantized weights fall back to a thread per row), and 16 threads + barrier (GPUs)
      forward(out, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, false, { TPR: 1, RPW: 64 }));
      forward(out, (o) =>
        gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, false, { TPR: 1, RPW: 8, blocked: true }),
      );
      forward(outAcc, (o) =>
        gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, true, { TPR: 1, RPW: 2, blocked: true }),
      );
      forward(out, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, false, { TPR: 16, RPW: 4 }));
      forward(outAcc, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, true, { TPR: 16, RPW: 4 }));
      // RT weight rows per thread (K % 32 == 0; other K take the one-row kernel): N not a multiple
      // of RT, fewer batch rows than BT, one thread per row (no barrier)
      for (const cfg of [
        { TPR: 16, RPW: 4, RT: 2 },
        { TPR: 8, RPW: 2, RT: 4, BT: 8 },
        { TPR: 1, RPW: 4, RT: 3, BT: 4 },
      ]) {
        forward(out, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, false, cfg));
        forward(outAcc, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, true, cfg));
      }
    }
    for (const [o, expected] of fwd) checkOp(`${tag}_forward`, await gpu.read(o), expected);
    gpuOp.matmulBackwardInput(gpu, dx, tdout, tw, B, K, N, false); // the device's variant
    gpuOp.matmulBackwardInput(gpu, dxAcc, tdout, tw, B, K, N, true);
    checkOp(`${tag}_backward`, await gpu.read(dx), dinp);
    checkOp(`${tag}_backward`, await gpu.read(dxAcc), dinpAcc);
    for (const variant of VARIANTS) {
      gpu.upload(dx, new Float32Array(B * K).fill(NaN)); // written, not added
      gpuOp.matmulBackwardInput(gpu, dx, tdout, tw, B, K, N, false, variant);
      checkOp(`${tag}_backward(${variant})`, await gpu.read(dx), dinp, tolFor(`${tag}_backward`));
      gpu.upload(dxAcc, prevDinp);
      gpuOp.matmulBackwardInput(gpu, dxAcc, tdout, tw, B, K, N, true, variant);
      checkOp(`${tag}_backward(${variant})`, await gpu.read(dxAcc), dinpAcc, tolFor(`${tag}_backward`));
    }

    if (dtype === 'f32') {
      const prevDw = randArray(Float32Array, N * K, 6);
      const dw = new Float32Array(prevDw);
      ref.matmulBackwardWeight(dw, dout, x, B, K, N);
      const tdw = t([N, K], prevDw, 'dw');
      gpuOp.matmulBackwardWeight(gpu, tdw, tdout, tx, B, K, N);
      checkOp('matmul_backward_weight', await gpu.read(tdw), dw);
      for (const variant of VARIANTS) {
        gpu.upload(tdw, prevDw);
        gpuOp.matmulBackwardWeight(gpu, tdw, tdout, tx, B, K, N, variant);
        checkOp(
          `matmul_backward_weight(${variant})`,
          await gpu.read(tdw),
          dw,
          tolFor('matmul_backward_weight'),
        );
      }
    }
    for (const b of made) b.buffer.destroy();
  });
}

describe('matmul GPU vs reference', () => {
  for (const dtype of ['f32', 'q8_0', 'q4_0'] as const) {
    for (const [B, K, N] of SHAPES) {
      it(`${dtype} B=${B} K=${K} N=${N} (gemv, tiled, accumulate, backward)`, async () => {
        await run(await testGpu(), dtype, B, K, N);
      });
    }
  }

  for (const [B, K, N] of [
    [2, 7, 3],
    [37, 1, 65],
    [1, 33, 1],
  ] as const) {
    it(`f32 B=${B} K=${K} N=${N}: K not a multiple of 4 or of the tile`, async () => {
      await run(await testGpu(), 'f32', B, K, N);
    });
  }

  // Tiny weights whose block scales are f16 subnormals (< 2^-14): the kernels must not flush them.
  for (const dtype of ['q8_0', 'q4_0'] as const) {
    it(`${dtype} subnormal f16 scales`, async () => {
      const [B, K, N, scale] = [3, 64, 5, 2 ** 12];
      const bytes = quantize(
        dtype,
        randArray(Float32Array, N * K, 1).map((v) => v / scale),
      );
      const step = dtype === 'q8_0' ? 34 : 18;
      for (let o = 0; o < bytes.length; o += step) {
        const h = bytes[o]! | (bytes[o + 1]! << 8);
        expect((h & 0x7c00) === 0 && (h & 0x3ff) !== 0).toBe(true); // exponent 0, mantissa ≠ 0
      }
      await run(await testGpu(), dtype, B, K, N, scale);
    });
  }

  // More row groups than one grid dimension holds (one row per workgroup here): the decode
  // kernel folds them into a 2D grid.
  for (const [dtype, K] of [
    ['f32', 4],
    ['q4_0', 32],
  ] as const) {
    it(`${dtype} N=65547 rows, one per workgroup (2D grid)`, async () => {
      const gpu = await testGpu();
      const N = 65535 + 12,
        B = 2;
      const w = randArray(Float32Array, N * K, 7),
        x = randArray(Float32Array, B * K, 8);
      const out = new Float32Array(B * N);
      ref.matmulForward(out, x, refWeight(dtype, w), B, K, N);
      await gpu.checked(async () => {
        const tw = uploadWeight(gpu, dtype, w, N, K, 'w');
        const tx = gpu.fromData([B, K], x, 'x'),
          to = gpu.tensor([B, N], 'out');
        gpuOp.matmulForwardGemv(gpu, to, tx, tw, B, K, N, false, { TPR: 1, RPW: 1 });
        checkOp(`${dtype === 'f32' ? 'matmul' : 'matmul_q4_0'}_forward`, await gpu.read(to), out);
        if (dtype === 'f32') {
          gpu.upload(to, new Float32Array(B * N).fill(NaN));
          gpuOp.matmulForwardGemv(gpu, to, tx, tw, B, K, N, false, { TPR: 1, RPW: 1, blocked: true });
          checkOp('matmul_forward', await gpu.read(to), out);
        }
        for (const b of [tw, tx, to]) b.buffer.destroy();
      });
    });
  }

  it('GGUF bytes and f32 values upload the same weight; bad shapes are refused', async () => {
    const gpu = await testGpu();
    const N = 3,
      K = 64;
    const w = randArray(Float32Array, N * K, 9);
    await gpu.checked(async () => {
      const a = uploadWeight(gpu, 'q8_0', w, N, K, 'a');
      const b = uploadWeight(gpu, 'q8_0', quantize('q8_0', w), N, K, 'b');
      expect(await gpu.readU32(a)).toEqual(await gpu.readU32(b));
      const x = gpu.tensor([1, K], 'x'),
        o = gpu.tensor([1, N], 'o');
      expect(() => gpuOp.matmulForward(gpu, o, x, a, 1, K, 5)).toThrow(/SHAPE|not \(N=5/);
      expect(() => gpuOp.matmulBackwardWeight(gpu, a, o, x, 1, K, N)).toThrow(/f32/);
      gpuOp.matmulForward(gpu, o, x, a, 0, K, N); // B = 0: nothing to do
      for (const t of [a, b, x, o]) t.buffer.destroy();
    });
  });

  it('a decode-kernel shape over the workgroup memory limit is refused; a tuning table is used', async () => {
    const gpu = await testGpu();
    const N = 8,
      K = 64;
    const w = uploadWeight(gpu, 'q4_0', randArray(Float32Array, N * K, 10), N, K, 'w');
    const x = gpu.fromData([1, K], randArray(Float32Array, K, 11), 'x'),
      o = gpu.tensor([1, N], 'o');
    const limit = gpu.limits.maxComputeWorkgroupStorageSize!;
    const big = { TPR: 64, RPW: 8, RT: Math.ceil(limit / (64 * 8 * 64)) + 1 };
    expect(() => gpuOp.matmulForwardGemv(gpu, o, x, w, 1, K, N, false, big)).toThrow(/workgroup memory/);
    expect(gpuOp.gemvKey('q4_0', 1)).toBe('q_b1');
    expect(gpuOp.gemvKey('q4f16_1', 16)).toBe('u_bn');
    expect(gpuOp.gemvKey('f32', 3)).toBe('f32_bn');
    if (!gpu.info.software) {
      // hardware GPUs read the table (software GPUs keep their one shape)
      gpu.tuning.gemv = { q_b1: { TPR: 8, RPW: 4, RT: 2 } };
      expect(gpuOp.gemvConfig(gpu, 'q4_0', 1)).toEqual({ TPR: 8, RPW: 4, RT: 2 });
      delete gpu.tuning.gemv;
    }
    for (const t of [w, x, o]) t.buffer.destroy();
  });
});
