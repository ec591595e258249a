/**
 * rankloss: the ranker's cubic pairwise loss (METHOD.md §3) and the sigmoid for its scores. GPU
 * encode functions, same argument order as ref/rankloss.ts with `gpu` first.
 */
import code from '../../../shaders/rankloss.wgsl?raw';
import { EngineError } from '../errors.ts';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'rankloss', code, entry: 'rankloss_forward', constants: { WG } } as const;
const fwdBwd = { op: 'rankloss', code, entry: 'rankloss_forward_backward', constants: { WG } } as const;
const sig = { op: 'rankloss', code, entry: 'sigmoid_forward', constants: { WG } } as const;

/**
 * losses (P) = (1 − sigmoid(zpos))³ + sigmoid(zneg)³ (unweighted, per pair) and, when dzpos and
 * dzneg are given, the gradients of weight · Σ_i losses[i], written (not added):
 * dzpos = −3·weight·s⁺(1 − s⁺)³, dzneg = 3·weight·(s⁻)³(1 − s⁻). Both null: forward only.
 *
 * @example ranklossForwardBackward(gpu, losses, dzpos, dzneg, zpos, zneg, P, 1 / P);
 */
export function ranklossForwardBackward(
  gpu: Gpu,
  losses: Tensor,
  dzpos: Tensor | null,
  dzneg: Tensor | null,
  zpos: Tensor,
  zneg: Tensor,
  P: number,
  weight: number,
): void {
  if (!dzpos && !dzneg) {
    gpu.dispatch(fwd, grid(gpu, P, WG), [losses, zpos, zneg], [P, f32(weight)]);
    return;
  }
  if (!dzpos || !dzneg) throw oneGradient();
  gpu.dispatch(fwdBwd, grid(gpu, P, WG), [losses, zpos, zneg, dzpos, dzneg], [P, f32(weight)]);
}

/** out (N) = sigmoid(inp) = 1 / (1 + exp(−inp)), without overflow: the ranker's scores. */
export function sigmoidForward(gpu: Gpu, out: Tensor, inp: Tensor, N: number): void {
  gpu.dispatch(sig, grid(gpu, N, WG), [out, inp], [N]);
}

function oneGradient(): EngineError {
  return new EngineError(
    'BAD_ARGUMENT',
    'ranklossForwardBackward got a gradient buffer for only one of zpos / zneg: pass both (training) or neither (forward only).',
  );
}
