/** rope: GPU encode functions. Same argument order as ref/rope.ts, with `gpu` first. */
import code from '../../../shaders/rope.wgsl?raw';
import { EngineError } from '../errors.ts';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { actOf, needF16, typed } from './act.ts';

const WG = 64;
const F32 = { X_T: 'f32' } as const;
const fwd = typed({ op: 'rope', code, entry: 'rope_forward', constants: { WG } }, F32);
const fwdInplace = { op: 'rope', code, entry: 'rope_forward_inplace', constants: { WG } } as const;
const bwd = typed({ op: 'rope', code, entry: 'rope_backward', constants: { WG } }, F32);

/** Workgroups for one thread per pair, folded into 2-D when they exceed one dimension's limit. */
function grid(gpu: Gpu, N: number, NH: number, HS: number): [number, number] {
  if (HS % 2 !== 0) throw new EngineError('BAD_ARGUMENT', `rope: head size ${HS} must be even.`);
  const n = Math.ceil((N * NH * HS) / 2 / WG);
  const x = Math.min(n, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  return [x, x === 0 ? 0 : Math.ceil(n / x)];
}

/**
 * out (N, NH*HS) = inp with each head's pairs rotated by positions[n] * theta^(-2i/HS).
 * positions: u32 (N), one position per row (rows of different sequences may mix freely).
 * @example ropeForward(gpu, qRot, q, pos, B * T, NH, HS, 10000);
 */
export function ropeForward(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  positions: Tensor,
  N: number,
  NH: number,
  HS: number,
  theta: number,
): void {
  gpu.dispatch(fwd, grid(gpu, N, NH, HS), [out, inp, positions], [N, NH, HS, f32(theta), 0]);
}

/** x (N, NH*HS) rotated in place (WebGPU cannot bind one buffer as both `out` and `inp`). */
export function ropeForwardInplace(
  gpu: Gpu,
  x: Tensor,
  positions: Tensor,
  N: number,
  NH: number,
  HS: number,
  theta: number,
): void {
  const types = { X_T: actOf(x, 'ropeForwardInplace') };
  needF16(gpu.info.f16, [types.X_T], 'ropeForwardInplace');
  gpu.dispatch(typed(fwdInplace, types), grid(gpu, N, NH, HS), [x, positions], [N, NH, HS, f32(theta), 0]);
}

/** dinp (N, NH*HS) = or += (accumulate) dout rotated by −angle. */
export function ropeBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  positions: Tensor,
  N: number,
  NH: number,
  HS: number,
  theta: number,
  accumulate: boolean,
): void {
  gpu.dispatch(
    bwd,
    grid(gpu, N, NH, HS),
    [dinp, dout, positions],
    [N, NH, HS, f32(theta), accumulate ? 1 : 0],
  );
}
