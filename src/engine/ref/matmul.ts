/**
 * matmul CPU reference (the law for shaders/matmul.wgsl and shaders/matmul_gemv.wgsl).
 * `weight` is always plain values: for quantized GPU weights (q8_0, q4_0, q4f16_1, q4_k, q6_k) pass
 * the dequantized f32 (`dequantizeWeight` in ../quant-gpu.ts), which is exactly what the kernels
 * multiply with.
 */
import type { FloatArray } from './types.ts';

/** out (B,N) = or += (accumulate) inp (B,K) · weightᵀ, weight (N,K). */
export function matmulForward(
  out: FloatArray,
  inp: FloatArray,
  weight: FloatArray,
  B: number,
  K: number,
  N: number,
  accumulate = false,
): void {
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += inp[b * K + k]! * weight[n * K + k]!;
      out[b * N + n] = (accumulate ? out[b * N + n]! : 0) + s;
    }
  }
}

/** dinp (B,K) = or += (accumulate) dout (B,N) · weight (N,K). */
export function matmulBackwardInput(
  dinp: FloatArray,
  dout: FloatArray,
  weight: FloatArray,
  B: number,
  K: number,
  N: number,
  accumulate: boolean,
): void {
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let n = 0; n < N; n++) s += dout[b * N + n]! * weight[n * K + k]!;
      dinp[b * K + k] = (accumulate ? dinp[b * K + k]! : 0) + s;
    }
  }
}

/** dweight (N,K) += doutᵀ · inp: Σ_b dout[b,n] · inp[b,k]. */
export function matmulBackwardWeight(
  dweight: FloatArray,
  dout: FloatArray,
  inp: FloatArray,
  B: number,
  K: number,
  N: number,
): void {
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let b = 0; b < B; b++) s += dout[b * N + n]! * inp[b * K + k]!;
      dweight[n * K + k] = dweight[n * K + k]! + s;
    }
  }
}
