import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/unlikelihood.ts';
import * as ref from '../../src/engine/ref/unlikelihood.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

const IGNORE = 0xffffffff;

function randTargets(N: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: N }, () => Math.floor(r() * V));
}

/** Forward only, forward + backward written (over garbage) and added. */
async function check(
  N: number,
  V: number,
  logits: Float32Array,
  targets: Uint32Array,
  weights: Float32Array,
) {
  const gpu = await testGpu();
  const prev = randArray(Float32Array, N * V, 9);
  const losses = new Float32Array(N),
    dWrite = new Float32Array(N * V),
    dAdd = new Float32Array(prev);
  ref.unlikelihoodForwardBackward(losses, dWrite, logits, targets, weights, N, V, false);
  ref.unlikelihoodForwardBackward(losses, dAdd, logits, targets, weights, N, V, true);
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);
  await gpu.checked(async () => {
    const tlogits = gpu.fromData([N, V], logits, 'logits'),
      ttargets = gpu.fromData([N], targets, 'targets'),
      tw = gpu.fromData([N], weights, 'weights');
    const tloss = gpu.tensor([N], 'losses'),
      tlossF = gpu.tensor([N], 'lossesF');
    const tdWrite = gpu.fromData([N, V], new Float32Array(N * V).fill(7), 'dWrite'),
      tdAdd = gpu.fromData([N, V], prev, 'dAdd');
    gpuOp.unlikelihoodForwardBackward(gpu, tlossF, null, tlogits, ttargets, tw, N, V, false);
    gpuOp.unlikelihoodForwardBackward(gpu, tloss, tdWrite, tlogits, ttargets, tw, N, V, false);
    gpuOp.unlikelihoodForwardBackward(gpu, tloss, tdAdd, tlogits, ttargets, tw, N, V, true);
    checkOp('unlikelihood_forward', await gpu.read(tlossF), losses);
    checkOp('unlikelihood_forward', await gpu.read(tloss), losses);
    checkOp('unlikelihood_backward', await gpu.read(tdWrite), dWrite);
    checkOp('unlikelihood_backward', await gpu.read(tdAdd), dAdd);
    for (const t of [tlogits, ttargets, tw, tloss, tlossF, tdWrite, tdAdd]) t.buffer.destroy();
  });
}

describe('unlikelihood GPU vs reference', () => {
  for (const [N, V] of [
    [1, 1],
    [1, 2],
    [3, 7],
    [5, 257],
    [4, 1000],
    [2, 32000],
  ] as const) {
    it(`N=${N} V=${V}`, () =>
      check(
        N,
        V,
        randArray(Float32Array, N * V, 1, -6, 6),
        randTargets(N, V, 2),
        randArray(Float32Array, N, 3, 0.1, 1),
      ));
  }

  it('weight 0 rows, ignored target, p_y → 1 (clamped and not)', async () => {
    const N = 6,
      V = 50;
    const x = randArray(Float32Array, N * V, 4, -4, 4);
    const targets = randTargets(N, V, 5);
    targets[2] = IGNORE;
    // row 3: 1 − p_y = 49·e^-15 ≈ 1.5e-5, just above the clamp: 1 − p in f32 would be off by ~0.4%
    for (let i = 0; i < V; i++) x[3 * V + i] = i === targets[3] ? 15 : 0;
    // row 4: 1 − p_y ≈ 49·e^-30 (clamp active: loss −log 1e-5, gradient 0)
    for (let i = 0; i < V; i++) x[4 * V + i] = i === targets[4] ? 30 : 0;
    // row 5: target is the least likely token (p_y ≈ 0, loss ≈ 0)
    for (let i = 0; i < V; i++) x[5 * V + i] = i === targets[5] ? -300 : 300;
    await check(N, V, x, targets, Float32Array.of(0.25, 0, 0.25, 1, 1, 1));
  });

  it('extreme logits ±300', () =>
    check(
      3,
      300,
      randArray(Float32Array, 900, 6, -300, 300),
      Uint32Array.of(0, 150, 299),
      Float32Array.of(1, 0.5, 2),
    ));
});
