/**
 * dropout CPU reference (the law for shaders/dropout.wgsl). The mask is a pure function of
 * (seed, element index): u32 arithmetic written with Math.imul and `>>> 0` so it is bit-identical
 * to the shader's, and the backward regenerates it instead of storing it.
 */
import { EngineError } from '../errors.ts';
import type { FloatArray } from './types.ts';

/** PCG-RXS-M-XS hash (Jarzynski & Olano, JCGT 2020), u32 → u32. */
function pcg(v: number): number {
  const state = (Math.imul(v, 747796405) + 2891336453) >>> 0;
  const word = Math.imul((state >>> ((state >>> 28) + 4)) ^ state, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The u32 that decides element i under `seed`. */
export function dropoutHash(seed: number, i: number): number {
  return pcg((i ^ pcg(seed >>> 0)) >>> 0);
}

/** Keep iff hash ≥ threshold: hash / 2³² ≥ p  ⇔  hash ≥ ceil(p · 2³²). p must be in [0, 1). */
export function dropoutThreshold(p: number): number {
  if (!(p >= 0 && p < 1)) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `dropout probability ${p} is outside [0, 1): use e.g. 0.05, or 0 for none.`,
    );
  }
  return Math.min(Math.ceil(p * 2 ** 32), 0xffffffff);
}

/** The kept values' scale, 1 / (1 − p), rounded to float32 as the shader receives it. */
export function dropoutScale(p: number): number {
  return Math.fround(1 / (1 - p));
}

export function dropoutForward(out: FloatArray, inp: FloatArray, N: number, p: number, seed: number): void {
  const threshold = dropoutThreshold(p),
    scale = dropoutScale(p);
  for (let i = 0; i < N; i++) out[i] = dropoutHash(seed, i) >= threshold ? inp[i]! * scale : 0;
}

/** dinp = or += (accumulate) dout · keep · scale, with the forward's mask. */
export function dropoutBackward(
  dinp: FloatArray,
  dout: FloatArray,
  N: number,
  p: number,
  seed: number,
  accumulate: boolean,
): void {
  const threshold = dropoutThreshold(p),
    scale = dropoutScale(p);
  for (let i = 0; i < N; i++) {
    const g = dropoutHash(seed, i) >= threshold ? dout[i]! * scale : 0;
    dinp[i] = (accumulate ? dinp[i]! : 0) + g;
  }
}
