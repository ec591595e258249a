/**
 * natmix CPU reference (the law for shaders/natmix.wgsl): the mixing core of NAT's integration
 * unit (METHOD.md §1). Per row: e_pos = q·kpos, e_neg = q·kneg (no 1/√U scaling, temperature 1);
 * a = softmax([e_pos, e_neg])[1] = sigmoid(e_neg − e_pos); α = a − 0.5;
 * out = base + (1 − α)·vpos + α·vneg.
 */
import type { FloatArray } from './types.ts';

/** sigmoid(x) without overflow: exp only ever sees −|x|. */
function sigmoid(x: number): number {
  const t = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + t) : t / (1 + t);
}

/**
 * q, kpos, kneg (N,U); vpos, vneg, base (N,C) → out (N,C), alpha (N) = a_neg − 0.5 (kept for the
 * backward and for the UI's mean α per layer).
 */
export function natmixForward(
  out: FloatArray,
  alpha: FloatArray,
  q: FloatArray,
  kpos: FloatArray,
  kneg: FloatArray,
  vpos: FloatArray,
  vneg: FloatArray,
  base: FloatArray,
  N: number,
  U: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    let ePos = 0,
      eNeg = 0;
    for (let u = 0; u < U; u++) {
      ePos += q[n * U + u]! * kpos[n * U + u]!;
      eNeg += q[n * U + u]! * kneg[n * U + u]!;
    }
    const a = sigmoid(eNeg - ePos) - 0.5;
    alpha[n] = a;
    for (let c = 0; c < C; c++) {
      const i = n * C + c;
      out[i] = base[i]! + (1 - a) * vpos[i]! + a * vneg[i]!;
    }
  }
}

/**
 * Gradients of natmixForward; all five are written (accumulate false) or added (true).
 * dα = Σ_c dout·(vneg − vpos); g = d(e_neg) = −d(e_pos) = dα·a(1 − a) with a = 0.5 + alpha;
 * dq = g·(kneg − kpos); dkpos = −g·q; dkneg = g·q; dvpos = (1 − α)·dout; dvneg = α·dout.
 * The gradient of base is dout itself: the caller passes dout on.
 */
export function natmixBackward(
  dq: FloatArray,
  dkpos: FloatArray,
  dkneg: FloatArray,
  dvpos: FloatArray,
  dvneg: FloatArray,
  dout: FloatArray,
  q: FloatArray,
  kpos: FloatArray,
  kneg: FloatArray,
  vpos: FloatArray,
  vneg: FloatArray,
  alpha: FloatArray,
  N: number,
  U: number,
  C: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    const al = alpha[n]!;
    let dAlpha = 0;
    for (let c = 0; c < C; c++) {
      const i = n * C + c;
      dAlpha += dout[i]! * (vneg[i]! - vpos[i]!);
      dvpos[i] = (accumulate ? dvpos[i]! : 0) + (1 - al) * dout[i]!;
      dvneg[i] = (accumulate ? dvneg[i]! : 0) + al * dout[i]!;
    }
    const g = dAlpha * (0.5 + al) * (0.5 - al);
    for (let u = 0; u < U; u++) {
      const i = n * U + u;
      dq[i] = (accumulate ? dq[i]! : 0) + g * (kneg[i]! - kpos[i]!);
      dkpos[i] = (accumulate ? dkpos[i]! : 0) - g * q[i]!;
      dkneg[i] = (accumulate ? dkneg[i]! : 0) + g * q[i]!;
    }
  }
}
