/** embedding CPU reference (the law for shaders/embedding.wgsl). */
import type { FloatArray } from './types.ts';

/**
 * out (N,C) = wte[tokens[n]]; tokens must be < V. A quantized table (q8_0 / q4_0, frozen) is the
 * law too: dequantize it (quant.ts `dequantize`, which CpuBackend.weight does), then gather —
 * shaders/embedding.wgsl dequantizes each gathered element to exactly that value.
 */
export function embeddingForward(
  out: FloatArray,
  tokens: Uint32Array,
  wte: FloatArray,
  N: number,
  C: number,
): void {
  for (let n = 0; n < N; n++) {
    const row = tokens[n]! * C;
    for (let c = 0; c < C; c++) out[n * C + c] = wte[row + c]!;
  }
}

/**
 * dwte (V,C) += Σ over n with tokens[n] = v of dout[n]. Summed in the shader's order: a token's
 * first occurrence gathers all its rows, then adds once. Tokens ≥ V are skipped.
 */
export function embeddingBackward(
  dwte: FloatArray,
  dout: FloatArray,
  tokens: Uint32Array,
  N: number,
  C: number,
  V: number,
): void {
  for (let n = 0; n < N; n++) {
    const tok = tokens[n]!;
    if (tok >= V || tokens.subarray(0, n).includes(tok)) continue;
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let m = n; m < N; m++) if (tokens[m] === tok) acc += dout[m * C + c]!;
      dwte[tok * C + c] = dwte[tok * C + c]! + acc;
    }
  }
}
