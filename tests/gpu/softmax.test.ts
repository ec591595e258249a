import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/softmax.ts';
import * as ref from '../../src/engine/ref/softmax.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** Runs all four kernels on `x` (N,V) and checks each against the reference. */
async function check(N: number, V: number, x: Float32Array, temperature: number): Promise<void> {
  const gpu = await testGpu();
  const dout = randArray(Float32Array, N * V, 3);
  const prev = randArray(Float32Array, N * V, 4);
  const probs = new Float32Array(N * V),
    logp = new Float32Array(N * V);
  ref.softmaxForward(probs, x, N, V, temperature);
  ref.logSoftmaxForward(logp, x, N, V);
  const dx = new Float32Array(prev),
    dxLog = new Float32Array(N * V);
  ref.softmaxBackward(dx, dout, probs, N, V, true, temperature);
  ref.logSoftmaxBackward(dxLog, dout, logp, N, V, false);

  await gpu.checked(async () => {
    const tx = gpu.fromData([N, V], x, 'x'),
      tdout = gpu.fromData([N, V], dout, 'dout');
    const tprobs = gpu.tensor([N, V], 'probs'),
      tlogp = gpu.tensor([N, V], 'logp');
    const tdx = gpu.fromData([N, V], prev, 'dx'),
      tdxLog = gpu.fromData([N, V], prev, 'dxLog');
    gpuOp.softmaxForward(gpu, tprobs, tx, N, V, temperature);
    gpuOp.logSoftmaxForward(gpu, tlogp, tx, N, V);
    // backwards from the reference's forward outputs, so each kernel is checked on its own
    const rprobs = gpu.fromData([N, V], probs, 'rprobs'),
      rlogp = gpu.fromData([N, V], logp, 'rlogp');
    gpuOp.softmaxBackward(gpu, tdx, tdout, rprobs, N, V, true, temperature);
    gpuOp.logSoftmaxBackward(gpu, tdxLog, tdout, rlogp, N, V, false);
    checkOp('softmax_forward', await gpu.read(tprobs), probs);
    checkOp('log_softmax_forward', await gpu.read(tlogp), logp);
    checkOp('softmax_backward', await gpu.read(tdx), dx);
    checkOp('log_softmax_backward', await gpu.read(tdxLog), dxLog);
    for (const t of [tx, tdout, tprobs, tlogp, tdx, tdxLog, rprobs, rlogp]) t.buffer.destroy();
  });
}

describe('softmax GPU vs reference', () => {
  for (const [N, V] of [
    [1, 1],
    [3, 7],
    [2, 257],
    [4, 1000],
    [2, 32000],
  ] as const) {
    it(`N=${N} V=${V}`, async () => {
      await check(N, V, randArray(Float32Array, N * V, 1, -5, 5), 1);
    });
  }

  it('temperature 0.7', async () => {
    await check(3, 100, randArray(Float32Array, 300, 5, -5, 5), 0.7);
  });

  it('extreme logits ±300', async () => {
    const N = 3,
      V = 300;
    const x = randArray(Float32Array, N * V, 6, -300, 300);
    // row 1: two tied maxima at +300, the rest at −300 (probabilities exactly 0.5, 0.5, 0…)
    for (let i = 0; i < V; i++) x[V + i] = i === 3 || i === 200 ? 300 : -300;
    // row 2: one element dominates everything, and masked (−inf) logits give probability 0
    for (let i = 0; i < V; i++) x[2 * V + i] = i === 299 ? 300 : i % 3 === 0 ? -Infinity : -300 + i * 1e-3;
    await check(N, V, x, 1);
  });
});
