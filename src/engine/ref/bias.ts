/** bias CPU reference (the law for shaders/bias.wgsl): a per-feature bias added to every row. */
import type { FloatArray } from './types.ts';

/** x (N,C) += b (C) on every row, in place. */
export function biasForward(x: FloatArray, b: FloatArray, N: number, C: number): void {
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) x[n * C + c] = x[n * C + c]! + b[c]!;
  }
}

/** db (C) += Σ_n dout[n, c], rows summed in order (parameter gradient: always added). */
export function biasBackward(db: FloatArray, dout: FloatArray, N: number, C: number): void {
  for (let c = 0; c < C; c++) {
    let acc = 0;
    for (let n = 0; n < N; n++) acc += dout[n * C + c]!;
    db[c] = db[c]! + acc;
  }
}
