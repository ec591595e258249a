/**
 * gelu CPU reference (the law for shaders/gelu.wgsl): the exact erf GELU, 0.5·x·(1 + erf(x/√2)),
 * with an erf accurate to ~1e-16 (erfc relative to ~1e-13) so float64 finite differences can
 * check the backward.
 */
import type { FloatArray } from './types.ts';

const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);
const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

/** erf(x) for 0 ≤ x < 2: 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)), all terms positive. */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x,
    sum = x;
  for (let n = 1; term > 1e-17 * sum; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/** erfc(x) for x ≥ 2: e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), bottom-up (100 terms: 1e-16 at x = 2). */
function erfcFraction(x: number): number {
  let f = x;
  for (let k = 100; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

/** erf(x), absolute error ~1e-16. */
export function erf(x: number): number {
  if (x < 0) return -erf(-x);
  return x < 2 ? erfSeries(x) : 1 - erfcFraction(x);
}

/** erfc(x) = 1 − erf(x), with relative accuracy in the far tail. */
export function erfc(x: number): number {
  if (x < 0) return 2 - erfc(-x);
  return x < 2 ? 1 - erfSeries(x) : erfcFraction(x);
}

export function geluForward(out: FloatArray, inp: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i]!;
    out[i] = 0.5 * x * erfc(-x * SQRT1_2);
  }
}

/** dinp = or += (accumulate) dout · (Φ(x) + x·φ(x)). */
export function geluBackward(
  dinp: FloatArray,
  dout: FloatArray,
  inp: FloatArray,
  N: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < N; i++) {
    const x = inp[i]!;
    const d = 0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    dinp[i] = (accumulate ? dinp[i]! : 0) + dout[i]! * d;
  }
}
