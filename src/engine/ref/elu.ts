/** elu CPU reference (the law for shaders/elu.wgsl), alpha = 1. */
import type { FloatArray } from './types.ts';

export function eluForward(out: FloatArray, inp: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i]!;
    out[i] = x > 0 ? x : Math.expm1(x);
  }
}

/** dinp = or += (accumulate) dout · (x > 0 ? 1 : exp(x)). */
export function eluBackward(
  dinp: FloatArray,
  dout: FloatArray,
  inp: FloatArray,
  N: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i]!;
    dinp[i] = (accumulate ? dinp[i]! : 0) + dout[i]! * (x > 0 ? 1 : Math.exp(x));
  }
}
