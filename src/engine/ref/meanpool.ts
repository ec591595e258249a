/** meanpool CPU reference (the law for shaders/meanpool.wgsl): masked mean over tokens. */
import type { FloatArray } from './types.ts';

/** out (B,C) = Σ_t mask[b,t]·inp[b,t,c] / max(1, Σ_t mask[b,t]). */
export function meanpoolForward(
  out: FloatArray,
  inp: FloatArray,
  mask: FloatArray,
  B: number,
  T: number,
  C: number,
): void {
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) count += mask[b * T + t]!;
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += mask[b * T + t]! * inp[(b * T + t) * C + c]!;
      out[b * C + c] = acc / Math.max(1, count);
    }
  }
}

/** dinp (B,T,C) = or += (accumulate) mask[b,t]·dout[b,c] / max(1, Σ_t mask[b,t]). */
export function meanpoolBackward(
  dinp: FloatArray,
  dout: FloatArray,
  mask: FloatArray,
  B: number,
  T: number,
  C: number,
  accumulate: boolean,
): void {
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) count += mask[b * T + t]!;
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        const j = (b * T + t) * C + c;
        dinp[j] = (accumulate ? dinp[j]! : 0) + (mask[b * T + t]! * dout[b * C + c]!) / Math.max(1, count);
      }
    }
  }
}
