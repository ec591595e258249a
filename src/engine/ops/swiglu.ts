/** swiglu (LLaMA FFN gate): GPU encode functions. Same argument order as ref/swiglu.ts, with `gpu` first. */
import code from '../../../shaders/swiglu.wgsl?raw';
import type { Gpu } from '../gpu/gpu.ts';
import { EngineError } from '../errors.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { actOf, needF16, typed } from './act.ts';
import { grid } from './residual.ts';

const WG = 256;
const fwd = { op: 'swiglu', code, entry: 'swiglu_forward', constants: { WG } } as const;
const fwd4 = { op: 'swiglu', code, entry: 'swiglu_forward4', constants: { WG } } as const;
const bwd = typed({ op: 'swiglu', code, entry: 'swiglu_backward', constants: { WG } }, { ACT_T: 'f32' });

/**
 * out (N) = silu(gate) · up, element-wise over N = rows · hidden (on vec4s when N % 4 == 0). The
 * three are all f32 or all f16 (ops/act.ts).
 */
export function swigluForward(gpu: Gpu, out: Tensor, gate: Tensor, up: Tensor, N: number): void {
  const t = actOf(out, 'swigluForward');
  if (actOf(gate, 'swigluForward') !== t || actOf(up, 'swigluForward') !== t)
    throw new EngineError(
      'BAD_ARGUMENT',
      `swigluForward: out, gate and up must have one element type (${out.dtype}, ${gate.dtype}, ${up.dtype}).`,
    );
  needF16(gpu.info.f16, [t], 'swigluForward');
  const types = { ACT_T: t };
  if (N % 4 === 0) gpu.dispatch(typed(fwd4, types), grid(gpu, N / 4, WG), [out, gate, up], [N / 4]);
  else gpu.dispatch(typed(fwd, types), grid(gpu, N, WG), [out, gate, up], [N]);
}

/** dgate, dup (N) = or += (accumulate) the gradients of out = silu(gate) · up. */
export function swigluBackward(
  gpu: Gpu,
  dgate: Tensor,
  dup: Tensor,
  dout: Tensor,
  gate: Tensor,
  up: Tensor,
  N: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, N, WG), [dgate, dup, dout, gate, up], [N, accumulate ? 1 : 0]);
}
