/** Central finite differences in float64, for checking the references' backward passes. */
import { checkOp } from './checkop.ts';
import { FD } from './tolerances.ts';

/** Numeric gradient of scalar f at x (x is perturbed in place and restored). */
export function numericGrad(f: () => number, x: Float64Array, h = FD.h): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i]!;
    x[i] = old + h;
    const fp = f();
    x[i] = old - h;
    const fm = f();
    x[i] = old;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Checks an analytic gradient against central differences of f. */
export function checkGrad(
  name: string,
  f: () => number,
  x: Float64Array,
  analytic: ArrayLike<number>,
  tol = FD,
): void {
  checkOp(`fd:${name}`, analytic, numericGrad(f, x, tol.h), { atol: tol.atol, rtol: tol.rtol });
}

/** Deterministic random numbers for tests (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n values uniform in [lo, hi). */
export function randArray<T extends Float32Array | Float64Array>(
  ctor: { new (n: number): T },
  n: number,
  seed: number,
  lo = -1,
  hi = 1,
): T {
  const r = rng(seed);
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** Σ out·g: a scalar loss whose gradient w.r.t. out is g. */
export function dotLoss(out: ArrayLike<number>, g: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i]! * g[i]!;
  return s;
}
