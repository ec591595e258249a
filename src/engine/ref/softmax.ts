/** softmax / log-softmax CPU reference (the law for shaders/softmax.wgsl). Max-subtracted: stable at ±300. */
import type { FloatArray } from './types.ts';

/** out (N,V) = softmax(inp / temperature), per row. */
export function softmaxForward(
  out: FloatArray,
  inp: FloatArray,
  N: number,
  V: number,
  temperature = 1,
): void {
  for (let n = 0; n < N; n++) {
    const x = inp.subarray(n * V, (n + 1) * V);
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, x[i]! / temperature);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(x[i]! / temperature - max);
    for (let i = 0; i < V; i++) out[n * V + i] = Math.exp(x[i]! / temperature - max) / sum;
  }
}

/** out (N,V) = inp − logsumexp(inp), per row. */
export function logSoftmaxForward(out: FloatArray, inp: FloatArray, N: number, V: number): void {
  for (let n = 0; n < N; n++) {
    const x = inp.subarray(n * V, (n + 1) * V);
    let max = -Infinity;
    for (let i = 0; i < V; i++) max = Math.max(max, x[i]!);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(x[i]! - max);
    const lse = max + Math.log(sum);
    for (let i = 0; i < V; i++) out[n * V + i] = x[i]! - lse;
  }
}

/** dinp = or += (accumulate) out · (dout − Σ dout·out) / temperature; out = the probabilities. */
export function softmaxBackward(
  dinp: FloatArray,
  dout: FloatArray,
  out: FloatArray,
  N: number,
  V: number,
  accumulate: boolean,
  temperature = 1,
): void {
  for (let n = 0; n < N; n++) {
    let dot = 0;
    for (let i = 0; i < V; i++) dot += dout[n * V + i]! * out[n * V + i]!;
    for (let i = 0; i < V; i++) {
      const g = (out[n * V + i]! * (dout[n * V + i]! - dot)) / temperature;
      dinp[n * V + i] = (accumulate ? dinp[n * V + i]! : 0) + g;
    }
  }
}

/** dinp = or += (accumulate) dout − exp(out) · Σ dout; out = the log-probabilities. */
export function logSoftmaxBackward(
  dinp: FloatArray,
  dout: FloatArray,
  out: FloatArray,
  N: number,
  V: number,
  accumulate: boolean,
): void {
  for (let n = 0; n < N; n++) {
    let sum = 0;
    for (let i = 0; i < V; i++) sum += dout[n * V + i]!;
    for (let i = 0; i < V; i++) {
      const g = dout[n * V + i]! - Math.exp(out[n * V + i]!) * sum;
      dinp[n * V + i] = (accumulate ? dinp[n * V + i]! : 0) + g;
    }
  }
}
