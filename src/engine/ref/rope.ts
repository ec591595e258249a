/**
 * rope CPU reference (the law for shaders/rope.wgsl): llama2.c run.c's rotary embedding. In each
 * head of size HS, the pair (2i, 2i+1) of row n rotates by angle = positions[n] * freq,
 * freq = 1 / theta^(2i/HS). For Float32Array inputs the frequency and the angle are rounded to
 * f32 at each step, exactly as run.c computes them in float; Float64Array keeps full precision.
 */
import type { FloatArray } from './types.ts';

/** cos and sin of the angle of pair `i` at `pos`, in the precision of `like`. */
function ropeAngle(like: FloatArray, pos: number, i: number, HS: number, theta: number): [number, number] {
  const r = like instanceof Float32Array ? Math.fround : (x: number) => x;
  const freq = r(1 / r(Math.pow(theta, r((2 * i) / HS))));
  const angle = r(pos * freq);
  return [Math.cos(angle), Math.sin(angle)];
}

/** out (N, NH*HS) = inp rotated; out may be inp (see ropeForwardInplace). */
export function ropeForward(
  out: FloatArray,
  inp: FloatArray,
  positions: Uint32Array,
  N: number,
  NH: number,
  HS: number,
  theta: number,
): void {
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < HS / 2; i++) {
        const [c, s] = ropeAngle(inp, positions[n]!, i, HS, theta);
        const j = (n * NH + h) * HS + 2 * i;
        const v0 = inp[j]!,
          v1 = inp[j + 1]!;
        out[j] = v0 * c - v1 * s;
        out[j + 1] = v0 * s + v1 * c;
      }
    }
  }
}

/** x (N, NH*HS) rotated in place. */
export function ropeForwardInplace(
  x: FloatArray,
  positions: Uint32Array,
  N: number,
  NH: number,
  HS: number,
  theta: number,
): void {
  ropeForward(x, x, positions, N, NH, HS, theta);
}

/** dinp = or += (accumulate) dout rotated by −angle (the transpose of the forward rotation). */
export function ropeBackward(
  dinp: FloatArray,
  dout: FloatArray,
  positions: Uint32Array,
  N: number,
  NH: number,
  HS: number,
  theta: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    for (let h = 0; h < NH; h++) {
      for (let i = 0; i < HS / 2; i++) {
        const [c, s] = ropeAngle(dout, positions[n]!, i, HS, theta);
        const j = (n * NH + h) * HS + 2 * i;
        const d0 = dout[j]!,
          d1 = dout[j + 1]!;
        dinp[j] = (accumulate ? dinp[j]! : 0) + d0 * c + d1 * s;
        dinp[j + 1] = (accumulate ? dinp[j + 1]! : 0) + d1 * c - d0 * s;
      }
    }
  }
}
