/**
 * rankloss CPU reference (the law for shaders/rankloss.wgsl): the ranker's cubic pairwise loss
 * (METHOD.md §3), loss = (1 − s⁺)³ + (s⁻)³ with s = sigmoid(z), and the sigmoid for its scores.
 */
import { EngineError } from '../errors.ts';
import type { FloatArray } from './types.ts';

/** sigmoid(x) without overflow: exp only ever sees −|x|. */
function sigmoid(x: number): number {
  const t = Math.exp(-Math.abs(x));
  return x >= 0 ? 1 / (1 + t) : t / (1 + t);
}

/**
 * losses (P) = (1 − s⁺)³ + (s⁻)³ per pair (unweighted); dzpos, dzneg (P) = the gradients of
 * weight · Σ_i losses[i], written: dzpos = −3·weight·s⁺(1 − s⁺)³, dzneg = 3·weight·(s⁻)³(1 − s⁻).
 * 1 − s⁺ is computed as sigmoid(−z⁺) (no cancellation). Both null: forward only.
 */
export function ranklossForwardBackward(
  losses: FloatArray,
  dzpos: FloatArray | null,
  dzneg: FloatArray | null,
  zpos: FloatArray,
  zneg: FloatArray,
  P: number,
  weight: number,
): void {
  if (!dzpos !== !dzneg) {
    throw new EngineError(
      'BAD_ARGUMENT',
      'ranklossForwardBackward got a gradient buffer for only one of zpos / zneg: pass both (training) or neither (forward only).',
    );
  }
  for (let i = 0; i < P; i++) {
    const sPos = sigmoid(zpos[i]!),
      uPos = sigmoid(-zpos[i]!); // 1 − s⁺
    const sNeg = sigmoid(zneg[i]!),
      uNeg = sigmoid(-zneg[i]!); // 1 − s⁻
    losses[i] = uPos ** 3 + sNeg ** 3;
    if (dzpos && dzneg) {
      dzpos[i] = -3 * weight * sPos * uPos ** 3;
      dzneg[i] = 3 * weight * sNeg ** 3 * uNeg;
    }
  }
}

/** out (N) = sigmoid(inp), without overflow. */
export function sigmoidForward(out: FloatArray, inp: FloatArray, N: number): void {
  for (let i = 0; i < N; i++) out[i] = sigmoid(inp[i]!);
}
