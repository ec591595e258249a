/**
 * matmul with weights as the files store them (MLC q4f16_1, GGUF Q4_K / Q6_K), dequantized inside
 * the kernels, against the reference run on the exactly dequantized values (dequantizeWeight):
 * forward (decode kernel in every shape, tiled and register-blocked any-B kernels, accumulate) and
 * input gradient (both variants), then a LLaMA-7b shape and the backends' `weight`.
 */
import { describe, expect, it } from 'vitest';
import { CpuBackend, type CpuTensor } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Gpu } from '../../src/engine/gpu/gpu.ts';
import { byteSize, type Tensor } from '../../src/engine/gpu/tensor.ts';
import * as gpuOp from '../../src/engine/ops/matmul.ts';
import { f32ToF16 } from '../../src/engine/quant.ts';
import {
  dequantizeWeight,
  fileBytes,
  quantizeWeight,
  uploadWeightAny,
  type FileQuantDType,
} from '../../src/engine/quant-gpu.ts';
import * as ref from '../../src/engine/ref/matmul.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TOL, tolFor, type Tol } from '../helpers/tolerances.ts';

const DTYPES: readonly FileQuantDType[] = ['q4f16_1', 'q4_k', 'q6_k'];
/** Row lengths: 3 groups of 32 (q4f16_1), 2 super-blocks of 256 (q4_k, q6_k). */
const K_OF: Record<FileQuantDType, number> = { q4f16_1: 96, q4_k: 512, q6_k: 512 };
const VARIANTS: gpuOp.MatmulVariant[] = ['tiled', 'blocked'];

/** The matmul tolerance: the reference multiplies by the same values; only the sum order differs. */
const tol = (dtype: FileQuantDType): Tol => TOL[`matmul_${dtype}`] ?? tolFor('matmul');

/** Several f32 tensors in one round trip. */
async function readAll(gpu: Gpu, ts: readonly Tensor[]): Promise<Float32Array[]> {
  const bufs = await gpu.readRanges(
    ts.map((t) => ({ buffer: t.buffer, byteOffset: 0, byteLength: t.byteLength })),
  );
  return bufs.map((b) => new Float32Array(b));
}

interface Case {
  w: Float32Array; // the values the kernels must multiply with
  bytes: Uint8Array; // the file's bytes
}

/**
 * Valid file bytes of random content (any nibble, any 6-bit or int8 scale, random f16 scales):
 * what a 7B-sized test can afford (our quantizers take seconds for 45M values) and what they never
 * produce (MLC's q = 15, negative Q6_K scales). Values stay O(1).
 */
function randomBytes(dtype: FileQuantDType, N: number, K: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(fileBytes(dtype, N, K));
  const words = new Uint32Array(bytes.buffer, 0, bytes.length >>> 2);
  let s = seed >>> 0;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  for (let i = 0; i < words.length; i++) words[i] = next();
  const f16 = (o: number, lo: number, hi: number): void => {
    const h = f32ToF16((lo + ((hi - lo) * next()) / 2 ** 32) * (next() & 1 ? -1 : 1));
    bytes[o] = h & 0xff;
    bytes[o + 1] = h >>> 8;
  };
  if (dtype === 'q4f16_1') for (let g = 0; g < (N * K) / 32; g++) f16((N * K) / 2 + 2 * g, 0.05, 0.2);
  if (dtype === 'q4_k')
    for (let o = 0; o < bytes.length; o += 144) {
      f16(o, 5e-4, 2e-3); // d
      f16(o + 2, 5e-3, 2e-2); // dmin
    }
  if (dtype === 'q6_k') for (let o = 0; o < bytes.length; o += 210) f16(o + 208, 1e-4, 4e-4); // d
  return bytes;
}

function makeWeight(dtype: FileQuantDType, N: number, K: number, seed: number, xScale = 1): Case {
  const bytes = quantizeWeight(
    dtype,
    randArray(Float32Array, N * K, seed).map((v) => v / xScale),
    N,
    K,
  );
  return { w: dequantizeWeight(dtype, bytes, N, K), bytes };
}

async function run(
  gpu: Gpu,
  dtype: FileQuantDType,
  B: number,
  K: number,
  N: number,
  xScale = 1,
): Promise<void> {
  const tag = `matmul_${dtype}`;
  const { w, bytes } = makeWeight(dtype, N, K, 1, xScale);
  const x = randArray(Float32Array, B * K, 2).map((v) => v * xScale);
  const dout = randArray(Float32Array, B * N, 3).map((v) => v * xScale);
  const prevOut = randArray(Float32Array, B * N, 4);
  const prevDinp = randArray(Float32Array, B * K, 5);

  const out = new Float32Array(B * N);
  ref.matmulForward(out, x, w, B, K, N);
  const outAcc = new Float32Array(prevOut);
  ref.matmulForward(outAcc, x, w, B, K, N, true);
  const dinp = new Float32Array(B * K);
  ref.matmulBackwardInput(dinp, dout, w, B, K, N, false);
  const dinpAcc = new Float32Array(prevDinp);
  ref.matmulBackwardInput(dinpAcc, dout, w, B, K, N, true);

  await gpu.checked(async () => {
    const made: Tensor[] = [];
    const t = (shape: number[], data: Float32Array, label: string): Tensor => {
      const r = gpu.fromData(shape, data, label);
      made.push(r);
      return r;
    };
    const tw = uploadWeightAny(gpu, dtype, bytes, N, K, 'w');
    made.push(tw);
    expect(tw.byteLength).toBe(byteSize([N, K], dtype));
    const tx = t([B, K], x, 'x');
    const tdout = t([B, N], dout, 'dout');
    const fwd: [string, Tensor, Float32Array][] = [];
    const forward = (what: string, expected: Float32Array, f: (o: Tensor) => void): void => {
      const o = t([B, N], expected === outAcc ? prevOut : new Float32Array(B * N).fill(NaN), 'out');
      f(o);
      fwd.push([what, o, expected]);
    };
    forward('matmulForward', out, (o) => gpuOp.matmulForward(gpu, o, tx, tw, B, K, N));
    forward('matmulForward acc', outAcc, (o) => gpuOp.matmulForward(gpu, o, tx, tw, B, K, N, true));
    for (const variant of VARIANTS) {
      forward(variant, out, (o) => gpuOp.matmulForwardTiled(gpu, o, tx, tw, B, K, N, false, variant));
      forward(`${variant} acc`, outAcc, (o) =>
        gpuOp.matmulForwardTiled(gpu, o, tx, tw, B, K, N, true, variant),
      );
    }
    // the decode kernel: a thread per row (software GPUs; `blocked` takes it for these dtypes), and
    // 16 threads per row + barrier (GPUs); B = 3 runs 4 batch rows per workgroup, B ≥ 16 16 of them
    const gemvs: [string, gpuOp.GemvConfig][] = [
      ['gemv 1x64', { TPR: 1, RPW: 64 }],
      ['gemv blocked', { TPR: 1, RPW: 8, blocked: true }],
      ['gemv 16x4', { TPR: 16, RPW: 4 }],
      ['gemv 16x4 RT 2', { TPR: 16, RPW: 4, RT: 2 }],
      ['gemv 8x2 RT 4 BT 8', { TPR: 8, RPW: 2, RT: 4, BT: 8 }],
      ['gemv 1x4 RT 3 BT 4', { TPR: 1, RPW: 4, RT: 3, BT: 4 }],
    ];
    for (const [what, cfg] of gemvs) {
      forward(what, out, (o) => gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, false, cfg));
    }
    forward('gemv 16x4 acc', outAcc, (o) =>
      gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, true, { TPR: 16, RPW: 4 }),
    );
    forward('gemv 8x2 RT 4 acc', outAcc, (o) =>
      gpuOp.matmulForwardGemv(gpu, o, tx, tw, B, K, N, true, { TPR: 8, RPW: 2, RT: 4, BT: 8 }),
    );
    const got = await readAll(
      gpu,
      fwd.map(([, o]) => o),
    );
    fwd.forEach(([what, , expected], i) =>
      checkOp(`${tag}_forward (${what})`, got[i]!, expected, tol(dtype)),
    );

    const dx = t([B, K], new Float32Array(B * K).fill(NaN), 'dx'); // written, not added
    const dxAcc = t([B, K], prevDinp, 'dxAcc');
    gpuOp.matmulBackwardInput(gpu, dx, tdout, tw, B, K, N, false); // the device's variant
    gpuOp.matmulBackwardInput(gpu, dxAcc, tdout, tw, B, K, N, true);
    checkOp(`${tag}_backward`, await gpu.read(dx), dinp, tol(dtype));
    checkOp(`${tag}_backward acc`, await gpu.read(dxAcc), dinpAcc, tol(dtype));
    for (const variant of VARIANTS) {
      gpu.upload(dx, new Float32Array(B * K).fill(NaN));
      gpuOp.matmulBackwardInput(gpu, dx, tdout, tw, B, K, N, false, variant);
      checkOp(`${tag}_backward (${variant})`, await gpu.read(dx), dinp, tol(dtype));
      gpu.upload(dxAcc, prevDinp);
      gpuOp.matmulBackwardInput(gpu, dxAcc, tdout, tw, B, K, N, true, variant);
      checkOp(`${tag}_backward (${variant}, acc)`, await gpu.read(dxAcc), dinpAcc, tol(dtype));
    }
    for (const b of made) b.buffer.destroy();
  });
}

describe('matmul with q4f16_1 / q4_k / q6_k weights, GPU vs reference', () => {
  for (const dtype of DTYPES) {
    for (const B of [1, 3, 16, 33]) {
      const K = K_OF[dtype];
      it(`${dtype} B=${B} K=${K} N=67 (gemv, tiled, blocked, accumulate, backward)`, async () => {
        await run(await testGpu(), dtype, B, K, 67);
      });
    }
  }

  // Tiny weights: the f16 scales (q4f16_1 scale, q4_k d and dmin, q6_k d) are f16 subnormals,
  // which the kernels must not flush to zero.
  for (const dtype of DTYPES) {
    it(`${dtype} subnormal f16 scales`, async () => {
      const K = K_OF[dtype];
      const scale = 2 ** 12;
      const { bytes } = makeWeight(dtype, 5, K, 1, scale);
      const h =
        dtype === 'q4_k'
          ? bytes[0]! | (bytes[1]! << 8) // the first block's d
          : dtype === 'q6_k'
            ? bytes[208]! | (bytes[209]! << 8)
            : bytes[(5 * K) / 2]! | (bytes[(5 * K) / 2 + 1]! << 8); // the first group's scale
      expect((h & 0x7c00) === 0 && (h & 0x3ff) !== 0).toBe(true); // exponent 0, mantissa ≠ 0
      await run(await testGpu(), dtype, 3, K, 5, scale);
    });
  }

  // LLaMA-7b's FFN shape at decode (45M weights: large offsets, a long scale region): the default
  // kernels on one row, the forward (gemv) for each dtype, the input gradient (the device's variant)
  // for Q4_K, the bulk of a Q4_K_M file (the others' take seconds more on a software GPU).
  for (const dtype of DTYPES) {
    const backward = dtype === 'q4_k';
    it(`${dtype} 7B shape N=11008 K=4096, 1 row: forward${backward ? ' and input gradient' : ''}`, async () => {
      const gpu = await testGpu();
      const [B, K, N] = [1, 4096, 11008];
      const bytes = randomBytes(dtype, N, K, 11);
      const w = dequantizeWeight(dtype, bytes, N, K);
      const x = randArray(Float32Array, B * K, 12);
      // gradient-sized dout: an f32 sum of 11008 O(1) products drifts by ~1e-4 with the order of
      // summation (measured: 4.6e-4 on one element), the matmul tolerance's atol
      const dout = randArray(Float32Array, B * N, 13, -0.1, 0.1);
      const out = new Float32Array(B * N);
      ref.matmulForward(out, x, w, B, K, N);
      const dinp = new Float32Array(B * K);
      if (backward) ref.matmulBackwardInput(dinp, dout, w, B, K, N, false);
      await gpu.checked(async () => {
        const tw = uploadWeightAny(gpu, dtype, bytes, N, K, 'blk.0.ffn_up.weight');
        const tx = gpu.fromData([B, K], x, 'x');
        const td = gpu.fromData([B, N], dout, 'dout');
        const to = gpu.tensor([B, N], 'out');
        const tdx = gpu.tensor([B, K], 'dx');
        gpuOp.matmulForward(gpu, to, tx, tw, B, K, N);
        if (backward) gpuOp.matmulBackwardInput(gpu, tdx, td, tw, B, K, N, false);
        const [o, dx] = await readAll(gpu, [to, tdx]);
        checkOp(`matmul_${dtype}_forward`, o!, out, tol(dtype));
        if (backward) checkOp(`matmul_${dtype}_backward`, dx!, dinp, tol(dtype));
        for (const b of [tw, tx, td, to, tdx]) b.buffer.destroy();
      });
    });
  }

  it('Backend.weight: the GPU and the CPU backend multiply with the same values', async () => {
    const gpu = await testGpu();
    const gbe = new GpuBackend(gpu);
    const cbe = new CpuBackend();
    const [B, N] = [2, 9];
    for (const dtype of DTYPES) {
      const K = K_OF[dtype];
      const { w, bytes } = makeWeight(dtype, N, K, 21);
      const x = randArray(Float32Array, B * K, 22);
      const cw = cbe.weight(dtype, [N, K], bytes, 'w');
      expect(cw.data).toEqual(w); // the CPU backend holds the exactly dequantized values
      const cx = cbe.fromData([B, K], x, 'x');
      const co = cbe.zeros([B, N], 'o') as CpuTensor;
      cbe.ops.matmulForward(co, cx, cw, B, K, N);
      await gpu.checked(async () => {
        const gw = gbe.weight(dtype, [N, K], bytes, 'w');
        expect(gw.dtype).toBe(dtype);
        // f32 values are quantized by our quantizer first: the same words as its bytes
        const gf = gbe.weight(dtype, [N, K], randArray(Float32Array, N * K, 21), 'wf');
        expect(await gbe.gpu.readU32(gf)).toEqual(await gbe.gpu.readU32(gw));
        gbe.destroy(gf);
        const gx = gbe.fromData([B, K], x, 'x');
        const go = gbe.zeros([B, N], 'o');
        gbe.ops.matmulForward(go, gx, gw, B, K, N);
        checkOp(`matmul_${dtype}_forward`, await gbe.read(go), co.data, tol(dtype));
        for (const t of [gw, gx, go]) gbe.destroy(t);
      });
    }
  });

  it('bad shapes and bytes are typed errors naming the weight', async () => {
    const gpu = await testGpu();
    const gbe = new GpuBackend(gpu);
    const cbe = new CpuBackend();
    // a Q4_K row length that is not a multiple of 256
    for (const be of [gbe, cbe] as const) {
      expect(() => be.weight('q4_k', [4, 96], new Uint8Array(144), 'blk.3.attn_k.weight')).toThrow(
        expect.objectContaining({
          code: 'SHAPE_MISMATCH',
          message: expect.stringMatching(/blk\.3\.attn_k\.weight.*256/),
        }),
      );
      expect(() => be.weight('q6_k', [2, 256], new Uint8Array(419), 'output.weight')).toThrow(
        expect.objectContaining({
          code: 'SHAPE_MISMATCH',
          message: expect.stringMatching(/output\.weight.*420/),
        }),
      );
      expect(() => be.weight('q4f16_1', [2, 40], new Uint8Array(100), 'lm_head')).toThrow(
        expect.objectContaining({
          code: 'SHAPE_MISMATCH',
          message: expect.stringMatching(/lm_head.*multiple of 32/),
        }),
      );
    }
    await gpu.checked(async () => {
      const tw = uploadWeightAny(gpu, 'q4_k', makeWeight('q4_k', 3, 256, 1).bytes, 3, 256, 'w');
      const x = gpu.tensor([1, 512], 'x');
      const o = gpu.tensor([1, 3], 'o');
      // the same words read as another shape: K = 512 fits the element count but not the rows
      expect(() => gpuOp.matmulForward(gpu, o, x, tw, 1, 128, 6)).toThrow(/multiple of 256/);
      expect(() => gpuOp.matmulBackwardWeight(gpu, tw, o, x, 1, 256, 3)).toThrow(/f32/);
      for (const t of [tw, x, o]) t.buffer.destroy();
    });
  });
});
