import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import * as gpuOp from '../../src/engine/ops/natmix.ts';
import * as ref from '../../src/engine/ref/natmix.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { tolFor } from '../helpers/tolerances.ts';

const GRADS = ['dq', 'dkpos', 'dkneg', 'dvpos', 'dvneg'] as const;

/**
 * Forward, and backward written and added, in both row variants, against the reference. q, kpos,
 * kneg uniform in ±qk (large qk: e = q·k of hundreds, a saturated sigmoid).
 */
async function check(N: number, U: number, C: number, qk: number, seed: number): Promise<void> {
  const gpu = await testGpu();
  const r = (n: number, s: number, lo = -1, hi = 1) => randArray(Float32Array, n, seed * 100 + s, lo, hi);
  const q = r(N * U, 1, -qk, qk),
    kpos = r(N * U, 2, -qk, qk),
    kneg = r(N * U, 3, -qk, qk);
  const vpos = r(N * C, 4),
    vneg = r(N * C, 5),
    base = r(N * C, 6),
    dout = r(N * C, 7);
  // previous gradient contents: written (accumulate false) must overwrite them, += must add to them
  const prev = GRADS.map((_, i) => r(i < 3 ? N * U : N * C, 8 + i));

  const out = new Float32Array(N * C),
    alpha = new Float32Array(N);
  ref.natmixForward(out, alpha, q, kpos, kneg, vpos, vneg, base, N, U, C);
  for (const a of alpha) expect(Math.abs(a)).toBeLessThanOrEqual(0.5);
  const expected = (accumulate: boolean) => {
    const g = prev.map((p) => new Float32Array(p));
    const [dq, dkpos, dkneg, dvpos, dvneg] = g as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    ref.natmixBackward(
      dq,
      dkpos,
      dkneg,
      dvpos,
      dvneg,
      dout,
      q,
      kpos,
      kneg,
      vpos,
      vneg,
      alpha,
      N,
      U,
      C,
      accumulate,
    );
    return g;
  };

  await gpu.checked(async () => {
    const tq = gpu.fromData([N, U], q, 'q'),
      tkpos = gpu.fromData([N, U], kpos, 'kpos'),
      tkneg = gpu.fromData([N, U], kneg, 'kneg');
    const tvpos = gpu.fromData([N, C], vpos, 'vpos'),
      tvneg = gpu.fromData([N, C], vneg, 'vneg'),
      tbase = gpu.fromData([N, C], base, 'base'),
      tdout = gpu.fromData([N, C], dout, 'dout');
    const tout = gpu.tensor([N, C], 'out'),
      talpha = gpu.tensor([N], 'alpha');
    // the backward reads the reference's α, so both sides differentiate at the same point
    const talphaRef = gpu.fromData([N], alpha, 'alphaRef');
    const tg = prev.map((p, i) => gpu.fromData([N, i < 3 ? U : C], p, GRADS[i]!));
    const [tdq, tdkpos, tdkneg, tdvpos, tdvneg] = tg as [Tensor, Tensor, Tensor, Tensor, Tensor];
    for (const variant of ['parallel', 'serial'] as const) {
      gpu.upload(tout, new Float32Array(N * C).fill(NaN));
      gpu.upload(talpha, new Float32Array(N).fill(NaN));
      gpuOp.natmixForward(gpu, tout, talpha, tq, tkpos, tkneg, tvpos, tvneg, tbase, N, U, C, variant);
      checkOp(`natmix_forward out (${variant})`, await gpu.read(tout), out, tolFor('natmix_forward'));
      checkOp(`natmix_forward alpha (${variant})`, await gpu.read(talpha), alpha, tolFor('natmix_forward'));
      for (const accumulate of [false, true]) {
        tg.forEach((t, i) => gpu.upload(t, prev[i]!));
        gpuOp.natmixBackward(
          gpu,
          tdq,
          tdkpos,
          tdkneg,
          tdvpos,
          tdvneg,
          tdout,
          tq,
          tkpos,
          tkneg,
          tvpos,
          tvneg,
          talphaRef,
          N,
          U,
          C,
          accumulate,
          variant,
        );
        const want = expected(accumulate);
        for (let i = 0; i < GRADS.length; i++) {
          const label = `natmix_backward ${GRADS[i]} (${variant}, accumulate=${accumulate})`;
          checkOp(label, await gpu.read(tg[i]!), want[i]!, tolFor('natmix_backward'));
        }
      }
    }
    for (const t of [tq, tkpos, tkneg, tvpos, tvneg, tbase, tdout, tout, talpha, talphaRef, ...tg]) {
      t.buffer.destroy();
    }
  });
}

describe('natmix GPU vs reference', () => {
  for (const [N, U, C] of [
    [1, 1, 1],
    [1, 5, 3],
    [3, 7, 13],
    [5, 64, 100],
    [17, 128, 257],
    [2, 130, 1000],
    [70, 33, 66],
  ] as const) {
    it(`N=${N} U=${U} C=${C}`, () => check(N, U, C, 0.5, N + U + C));
  }
  it('saturated sigmoid: |e_neg − e_pos| in the hundreds', () => check(6, 40, 30, 8, 1));
});
