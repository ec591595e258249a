import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/adamw.ts';
import * as ref from '../../src/engine/ref/adamw.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

const SIZES = [1, 300, 1000]; // three parameter tensors: one slot each in norms

describe('adamw GPU vs reference', () => {
  for (const [wd, maxNorm] of [
    [0, 0],
    [0.1, 0],
    [0, 1],
    [0.1, 1],
    [0.05, 100],
  ] as const) {
    it(`5 steps, weight decay ${wd}, maxNorm ${maxNorm}`, async () => {
      const gpu = await testGpu();
      const P = SIZES.length,
        lr = 1e-2,
        b1 = 0.9,
        b2 = 0.999,
        eps = 1e-8;
      const params = SIZES.map((n, k) => randArray(Float32Array, n, 10 + k));
      const ms = SIZES.map((n) => new Float32Array(n)),
        vs = SIZES.map((n) => new Float32Array(n));
      const norms = new Float32Array(P);

      await gpu.checked(async () => {
        const tp = params.map((p, k) => gpu.fromData([p.length], p, `p${k}`));
        const tm = SIZES.map((n, k) => gpu.tensor([n], `m${k}`)),
          tv = SIZES.map((n, k) => gpu.tensor([n], `v${k}`));
        const tnorms = gpu.tensor([P], 'norms');
        const tg = SIZES.map((n, k) => gpu.tensor([n], `g${k}`));
        for (let step = 1; step <= 5; step++) {
          const grads = SIZES.map((n, k) => randArray(Float32Array, n, 100 * step + k, -2, 2));
          grads.forEach((g, k) => gpu.upload(tg[k]!, g));
          SIZES.forEach((n, k) => {
            ref.gradNormSquared(norms, grads[k]!, n, k);
            gpuOp.gradNormSquared(gpu, tnorms, tg[k]!, n, k);
          });
          SIZES.forEach((n, k) => {
            ref.adamwStep(
              params[k]!,
              grads[k]!,
              ms[k]!,
              vs[k]!,
              norms,
              P,
              n,
              lr,
              b1,
              b2,
              eps,
              wd,
              step,
              maxNorm,
            );
            gpuOp.adamwStep(
              gpu,
              tp[k]!,
              tg[k]!,
              tm[k]!,
              tv[k]!,
              tnorms,
              P,
              n,
              lr,
              b1,
              b2,
              eps,
              wd,
              step,
              maxNorm,
            );
          });
          checkOp('grad_norm_squared', await gpu.read(tnorms), norms);
          for (let k = 0; k < P; k++) {
            checkOp('adamw', await gpu.read(tp[k]!), params[k]!);
            checkOp('adamw', await gpu.read(tm[k]!), ms[k]!);
            checkOp('adamw', await gpu.read(tv[k]!), vs[k]!);
          }
        }
        for (const t of [...tp, ...tm, ...tv, ...tg, tnorms]) t.buffer.destroy();
      });
    });
  }

  it('gradNormSquared over more than one pass of the workgroup, and size 1', async () => {
    const gpu = await testGpu();
    const g = randArray(Float32Array, 5000, 7, -3, 3);
    const expected = new Float32Array(2);
    ref.gradNormSquared(expected, g, 5000, 1);
    ref.gradNormSquared(expected, g, 1, 0);
    await gpu.checked(async () => {
      const tg = gpu.fromData([5000], g, 'g'),
        tnorms = gpu.fromData([2], Float32Array.of(9, 9), 'norms');
      gpuOp.gradNormSquared(gpu, tnorms, tg, 5000, 1);
      gpuOp.gradNormSquared(gpu, tnorms, tg, 1, 0);
      checkOp('grad_norm_squared', await gpu.read(tnorms), expected);
      expect(() => gpuOp.gradNormSquared(gpu, tnorms, tg, 1, 2)).toThrow(/slot 2/);
      for (const t of [tg, tnorms]) t.buffer.destroy();
    });
  });

  it('finiteCheck: NaN payloads and ±Inf set the flag; extreme finite values do not', async () => {
    const gpu = await testGpu();
    const bits = (u: number) => new Float32Array(Uint32Array.of(u).buffer)[0]!;
    const finite = [0, bits(0x80000000), bits(0x7f7fffff), bits(0xff7fffff), bits(0x00000001), 1e-38, 300];
    const bad = [bits(0x7fc00000), bits(0x7f800001), bits(0xffc00000), bits(0x7f800000), bits(0xff800000)];
    const N = 1000;
    const cases: [Float32Array, number][] = [];
    const base = new Float32Array(N);
    finite.forEach((x, i) => (base[i * 97] = x));
    cases.push([base, 0]);
    for (const [j, x] of bad.entries()) {
      const a = new Float32Array(base);
      a[(j * 211 + 5) % N] = x;
      cases.push([a, 1]);
    }
    await gpu.checked(async () => {
      const tflag = gpu.tensor([1], 'flag', 'u32');
      for (const [x, want] of cases) {
        const expected = new Uint32Array(1);
        ref.finiteCheck(expected, x, N);
        expect(expected[0]).toBe(want);
        const tx = gpu.fromData([N], x, 'x');
        gpu.zero(tflag);
        gpuOp.finiteCheck(gpu, tflag, tx, N);
        expect((await gpu.readU32(tflag))[0]).toBe(want);
        tx.buffer.destroy();
      }
      // never cleared: a clean tensor after a dirty one keeps the flag
      const tx = gpu.fromData([N], base, 'clean');
      gpu.upload(tflag, Uint32Array.of(1));
      gpuOp.finiteCheck(gpu, tflag, tx, N);
      expect((await gpu.readU32(tflag))[0]).toBe(1);
      for (const t of [tx, tflag]) t.buffer.destroy();
    });
  });

  it('finiteCheck grid-strides past 4096 workgroups (NaN in the last element)', async () => {
    const gpu = await testGpu();
    const N = 4096 * 256 + 3;
    const x = new Float32Array(N);
    x[N - 1] = NaN;
    await gpu.checked(async () => {
      const tx = gpu.fromData([N], x, 'x'),
        tflag = gpu.tensor([1], 'flag', 'u32');
      gpuOp.finiteCheck(gpu, tflag, tx, N);
      expect((await gpu.readU32(tflag))[0]).toBe(1);
      for (const t of [tx, tflag]) t.buffer.destroy();
    });
  });
});
