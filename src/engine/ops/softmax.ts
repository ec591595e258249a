/** softmax / log-softmax: GPU encode functions. Same argument order as ref/softmax.ts, with `gpu` first. */
import code from '../../../shaders/softmax.wgsl?raw';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 256;
const fwd = { op: 'softmax', code, entry: 'softmax_forward', constants: { WG } } as const;
const logFwd = { op: 'softmax', code, entry: 'log_softmax_forward', constants: { WG } } as const;
const bwd = { op: 'softmax', code, entry: 'softmax_backward', constants: { WG } } as const;
const logBwd = { op: 'softmax', code, entry: 'log_softmax_backward', constants: { WG } } as const;

/** out (N,V) = softmax(inp / temperature), per row. */
export function softmaxForward(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  N: number,
  V: number,
  temperature = 1,
): void {
  gpu.dispatch(fwd, [N], [out, inp], [N, V, f32(temperature)]);
}

/** out (N,V) = log softmax(inp) = inp − logsumexp(inp), per row. */
export function logSoftmaxForward(gpu: Gpu, out: Tensor, inp: Tensor, N: number, V: number): void {
  gpu.dispatch(logFwd, [N], [out, inp], [N, V]);
}

/**
 * dinp (N,V) = or += (accumulate) out · (dout − Σ dout·out) / temperature, where out holds the
 * probabilities from softmaxForward with the same temperature.
 */
export function softmaxBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  out: Tensor,
  N: number,
  V: number,
  accumulate: boolean,
  temperature = 1,
): void {
  gpu.dispatch(bwd, [N], [dinp, dout, out], [N, V, accumulate ? 1 : 0, f32(temperature)]);
}

/** dinp (N,V) = or += (accumulate) dout − exp(out) · Σ dout, where out holds the log-probabilities. */
export function logSoftmaxBackward(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  out: Tensor,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  gpu.dispatch(logBwd, [N], [dinp, dout, out], [N, V, accumulate ? 1 : 0]);
}
