import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/kl.ts';
import * as ref from '../../src/engine/ref/kl.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** klForward and both soft-cross-entropy variants (forward only; forward+backward, = and +=). */
async function check(N: number, V: number, p: Float32Array, q: Float32Array, weights: Float32Array) {
  const gpu = await testGpu();
  const prev = randArray(Float32Array, N * V, 9);
  const kl = new Float32Array(N),
    losses = new Float32Array(N);
  const dWrite = new Float32Array(N * V),
    dAdd = new Float32Array(prev);
  ref.klForward(kl, p, q, N, V);
  ref.softCrossentropyForwardBackward(losses, dWrite, p, q, weights, N, V, false);
  ref.softCrossentropyForwardBackward(losses, dAdd, p, q, weights, N, V, true);

  await gpu.checked(async () => {
    const tp = gpu.fromData([N, V], p, 'teacher'),
      tq = gpu.fromData([N, V], q, 'student');
    const tw = gpu.fromData([N], weights, 'weights');
    const tkl = gpu.tensor([N], 'kl'),
      tloss = gpu.tensor([N], 'losses'),
      tlossF = gpu.tensor([N], 'lossesF');
    const tdWrite = gpu.fromData([N, V], new Float32Array(N * V).fill(7), 'dWrite');
    const tdAdd = gpu.fromData([N, V], prev, 'dAdd');
    gpuOp.klForward(gpu, tkl, tp, tq, N, V);
    gpuOp.softCrossentropyForwardBackward(gpu, tlossF, null, tp, tq, tw, N, V, false);
    gpuOp.softCrossentropyForwardBackward(gpu, tloss, tdWrite, tp, tq, tw, N, V, false);
    gpuOp.softCrossentropyForwardBackward(gpu, tloss, tdAdd, tp, tq, tw, N, V, true);
    checkOp('kl_forward', await gpu.read(tkl), kl);
    checkOp('soft_crossentropy_forward', await gpu.read(tlossF), losses);
    checkOp('soft_crossentropy_forward', await gpu.read(tloss), losses);
    checkOp('soft_crossentropy_backward', await gpu.read(tdWrite), dWrite);
    checkOp('soft_crossentropy_backward', await gpu.read(tdAdd), dAdd);
    for (const t of [tp, tq, tw, tkl, tloss, tlossF, tdWrite, tdAdd]) t.buffer.destroy();
  });
}

describe('kl / soft cross-entropy GPU vs reference', () => {
  for (const [N, V] of [
    [1, 1],
    [3, 7],
    [5, 257],
    [4, 1000],
    [2, 32000],
  ] as const) {
    it(`N=${N} V=${V}`, async () => {
      const p = randArray(Float32Array, N * V, 1, -6, 6),
        q = randArray(Float32Array, N * V, 2, -6, 6);
      await check(N, V, p, q, randArray(Float32Array, N, 3, 0.1, 1));
    });
  }

  it('identical rows (KL 0), weight 0 rows', async () => {
    const N = 3,
      V = 40;
    const p = randArray(Float32Array, N * V, 4, -4, 4),
      q = randArray(Float32Array, N * V, 5, -4, 4);
    q.set(p.subarray(0, V)); // row 0: same distribution
    await check(N, V, p, q, Float32Array.of(1, 0, 0.5));
  });

  it('extreme logits ±300', async () => {
    const N = 3,
      V = 300;
    const p = randArray(Float32Array, N * V, 6, -300, 300),
      q = randArray(Float32Array, N * V, 7, -300, 300);
    // row 1: teacher sure of token 9, student sure of token 10 (KL = loss = 600)
    for (let i = 0; i < V; i++) p[V + i] = i === 9 ? 300 : -300;
    for (let i = 0; i < V; i++) q[V + i] = i === 10 ? 300 : -300;
    await check(N, V, p, q, Float32Array.of(1, 1, 0.25));
  });
});
