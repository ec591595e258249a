/** swiglu CPU reference (the law for shaders/swiglu.wgsl): out = silu(gate) · up. */
import type { FloatArray } from './types.ts';

function sigmoid(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + e) : e / (1 + e);
}

export function swigluForward(out: FloatArray, gate: FloatArray, up: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) {
    const g = gate[i]!;
    out[i] = g * sigmoid(g) * up[i]!;
  }
}

export function swigluBackward(
  dgate: FloatArray,
  dup: FloatArray,
  dout: FloatArray,
  gate: FloatArray,
  up: FloatArray,
  N: number,
  accumulate: boolean,
): void {
  for (let i = 0; i < N; i++) {
    const g = gate[i]!,
      s = sigmoid(g),
      d = dout[i]!;
    dgate[i] = (accumulate ? dgate[i]! : 0) + d * up[i]! * s * (1 + g * (1 - s));
    dup[i] = (accumulate ? dup[i]! : 0) + d * g * s;
  }
}
