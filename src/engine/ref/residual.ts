/** residual CPU reference (the law for shaders/residual.wgsl). */
import type { FloatArray } from './types.ts';

export function residualForward(out: FloatArray, a: FloatArray, b: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) out[i] = a[i]! + b[i]!;
}

export function residualBackward(
  da: FloatArray,
  db: FloatArray,
  dout: FloatArray,
  N: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < N; i++) {
    da[i] = (accumulate ? da[i]! : 0) + dout[i]!;
    db[i] = (accumulate ? db[i]! : 0) + dout[i]!;
  }
}

export function addInplace(x: FloatArray, y: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) x[i] = x[i]! + y[i]!;
}

/**
 * out (n) = inp (n): the CPU has no f16 activations, so this is a copy (on the GPU, ops/matmul.ts
 * `castInto` converts between f32 and f16).
 */
export function castInto(out: FloatArray, inp: FloatArray, n: number): void {
  for (let i = 0; i < n; i++) out[i] = inp[i]!;
}

export function scaleInplace(x: FloatArray, s: number, N: number): void {
  for (let i = 0; i < N; i++) x[i] = x[i]! * s;
}
