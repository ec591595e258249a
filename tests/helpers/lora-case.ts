/** One LoRA linear site (y = x Wᵀ + s·B(A·drop(x))) on the tape, for op-level tests. */
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import * as ad from '../../src/engine/autograd/ops.ts';
import { Tape, type Param } from '../../src/engine/autograd/tape.ts';
import { randArray } from './fd.ts';

export const LORA_CASE = { rows: 5, K: 12, N: 7, R: 3, scale: 2, dropout: 0.25, seed: 1234 };

export function loraCase<T extends BackendTensor>(be: Backend<T>) {
  const { rows, K, N, R } = LORA_CASE;
  const x = be.fromData([rows, K], randArray(Float32Array, rows * K, 1), 'x');
  const W = be.fromData([N, K], randArray(Float32Array, N * K, 2), 'W');
  const param = (name: string, shape: [number, number], seed: number): Param<T> => ({
    name,
    value: be.fromData(shape, randArray(Float32Array, shape[0] * shape[1], seed), name),
    grad: be.fromData(shape, new Float32Array(shape[0] * shape[1]), `d${name}`),
  });
  const A = param('A', [R, K], 3);
  const B = param('B', [N, R], 4);
  const g = randArray(Float32Array, rows * N, 5); // dL/dy
  /** Runs forward + backward; returns y and the gradients of x, A, B for L = Σ y·g. */
  const run = () => {
    be.zero(A.grad);
    be.zero(B.grad);
    const tape = new Tape(be);
    // x as a trainable "parameter" too, so its gradient is computed and kept
    const dx = be.fromData([rows, K], new Float32Array(rows * K), 'dx');
    const xv = tape.param({ name: 'x', value: x, grad: dx });
    const y = ad.linear(tape, xv, tape.constant(W), {
      A: tape.param(A),
      B: tape.param(B),
      scale: LORA_CASE.scale,
      dropout: LORA_CASE.dropout,
      seed: LORA_CASE.seed,
    });
    y.grad = tape.alloc([rows, N], 'dy');
    be.write(y.grad, g);
    tape.backward();
    const out = { y: y.t, dx, dA: A.grad, dB: B.grad };
    return { out, release: () => tape.release() };
  };
  return { x, W, A, B, g, run };
}
