/**
 * residual: GPU encode functions (same argument order as ref/residual.ts, with `gpu` first).
 * Also home of `grid`, the 1D→2D workgroup split every element-wise op here uses.
 */
import code from '../../../shaders/residual.wgsl?raw';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { actOf, needF16, typed } from './act.ts';

const WG = 256;
const F32 = { Y_T: 'f32' } as const;
const fwd = typed({ op: 'residual', code, entry: 'residual_forward', constants: { WG } }, F32);
const bwd = typed({ op: 'residual', code, entry: 'residual_backward', constants: { WG } }, F32);
const add = { op: 'residual', code, entry: 'residual_add_inplace', constants: { WG } } as const;
const add4 = { op: 'residual', code, entry: 'residual_add_inplace4', constants: { WG } } as const;
const scale = typed({ op: 'residual', code, entry: 'residual_scale_inplace', constants: { WG } }, F32);

/**
 * Workgroups for `count` threads in groups of `wg`: [x, y] with x ≤ the per-dimension limit.
 * Shaders index element i = gid.x + gid.y · nwg.x · wg and return when i ≥ count.
 * @example gpu.dispatch(kernel, grid(gpu, N, 256), bindings, [N]);
 */
export function grid(gpu: Gpu, count: number, wg: number): [number, number] {
  const max = gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535;
  const groups = Math.ceil(count / wg);
  if (groups <= max) return [groups, 1];
  return [max, Math.ceil(groups / max)];
}

/** out (N) = a + b. */
export function residualForward(gpu: Gpu, out: Tensor, a: Tensor, b: Tensor, N: number): void {
  gpu.dispatch(fwd, grid(gpu, N, WG), [out, a, b], [N]);
}

/** da, db (N) = or += (accumulate) dout. */
export function residualBackward(
  gpu: Gpu,
  da: Tensor,
  db: Tensor,
  dout: Tensor,
  N: number,
  accumulate: boolean,
): void {
  gpu.dispatch(bwd, grid(gpu, N, WG), [da, db, dout], [N, accumulate ? 1 : 0]);
}

/** x (N) += y: the residual stream's add (on vec4s when N % 4 == 0); y may be f16 (ops/act.ts). */
export function addInplace(gpu: Gpu, x: Tensor, y: Tensor, N: number): void {
  const types = { Y_T: actOf(y, 'addInplace') };
  needF16(gpu.info.f16, [types.Y_T], 'addInplace');
  if (N % 4 === 0) gpu.dispatch(typed(add4, types), grid(gpu, N / 4, WG), [x, y], [N / 4]);
  else gpu.dispatch(typed(add, types), grid(gpu, N, WG), [x, y], [N]);
}

/** x (N) *= s. */
export function scaleInplace(gpu: Gpu, x: Tensor, s: number, N: number): void {
  gpu.dispatch(scale, grid(gpu, N, WG), [x], [N, f32(s)]);
}
