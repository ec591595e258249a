/** rmsnorm CPU reference (the law for shaders/rmsnorm.wgsl). */
import type { FloatArray } from './types.ts';

export function rmsnormForward(
  out: FloatArray,
  rstd: FloatArray,
  inp: FloatArray,
  weight: FloatArray,
  N: number,
  C: number,
  eps: number,
): void {
  for (let n = 0; n < N; n++) {
    let ss = 0;
    for (let i = 0; i < C; i++) ss += inp[n * C + i]! * inp[n * C + i]!;
    const r = 1 / Math.sqrt(ss / C + eps);
    for (let i = 0; i < C; i++) out[n * C + i] = inp[n * C + i]! * r * weight[i]!;
    rstd[n] = r;
  }
}

export function rmsnormBackward(
  dinp: FloatArray,
  dweight: FloatArray | null,
  dout: FloatArray,
  inp: FloatArray,
  weight: FloatArray,
  rstd: FloatArray,
  N: number,
  C: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    const r = rstd[n]!;
    let dot = 0;
    for (let i = 0; i < C; i++) dot += dout[n * C + i]! * weight[i]! * inp[n * C + i]!;
    const k = (r * r * r * dot) / C;
    for (let i = 0; i < C; i++) {
      const g = r * weight[i]! * dout[n * C + i]! - k * inp[n * C + i]!;
      dinp[n * C + i] = (accumulate ? dinp[n * C + i]! : 0) + g;
      if (dweight) dweight[i] = dweight[i]! + dout[n * C + i]! * inp[n * C + i]! * r;
    }
  }
}
