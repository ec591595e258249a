import { describe, expect, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/crossentropy.ts';
import * as ref from '../../src/engine/ref/crossentropy.ts';
import { checkOp } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

const IGNORE = 0xffffffff; // −100 or −1 as u32: PyTorch's ignore_index, loss 0 and no gradient

function randTargets(N: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: N }, () => Math.floor(r() * V));
}

async function check(
  N: number,
  V: number,
  logits: Float32Array,
  targets: Uint32Array,
  weights: Float32Array,
) {
  const gpu = await testGpu();
  const losses = new Float32Array(N),
    dlogits = new Float32Array(N * V);
  ref.crossentropyForwardBackward(losses, dlogits, logits, targets, weights, N, V);
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);

  await gpu.checked(async () => {
    const tlogits = gpu.fromData([N, V], logits, 'logits');
    const ttargets = gpu.fromData([N], targets, 'targets'),
      tweights = gpu.fromData([N], weights, 'weights');
    const tlosses = gpu.tensor([N], 'losses'),
      tlossesF = gpu.tensor([N], 'lossesF'),
      tdlogits = gpu.tensor([N, V], 'dlogits');
    // undefined: the kernel the device picks; then each variant
    for (const variant of [undefined, 'parallel', 'serial'] as const) {
      const check = (op: string, got: Float32Array, expected: Float32Array) =>
        checkOp(variant ? `${op}(${variant})` : op, got, expected, tolFor(op));
      // outputs start as garbage: the kernel must write, not add
      gpu.upload(tlosses, new Float32Array(N).fill(NaN));
      gpu.upload(tlossesF, new Float32Array(N).fill(NaN));
      gpu.upload(tdlogits, new Float32Array(N * V).fill(7));
      gpuOp.crossentropyForwardBackward(gpu, tlosses, tdlogits, tlogits, ttargets, tweights, N, V, variant);
      gpuOp.crossentropyForwardBackward(gpu, tlossesF, null, tlogits, ttargets, tweights, N, V, variant);
      check('crossentropy_forward', await gpu.read(tlosses), losses);
      check('crossentropy_forward', await gpu.read(tlossesF), losses);
      check('crossentropy_backward', await gpu.read(tdlogits), dlogits);
    }
    for (const t of [tlogits, ttargets, tweights, tlosses, tlossesF, tdlogits]) t.buffer.destroy();
  });
}

describe('crossentropy GPU vs reference', () => {
  for (const [N, V] of [
    [1, 1],
    [3, 7],
    [5, 257],
    [37, 83],
    [4, 1000],
    [2, 32000],
  ] as const) {
    it(`N=${N} V=${V}`, async () => {
      const weights = randArray(Float32Array, N, 2, 0.1, 1);
      await check(N, V, randArray(Float32Array, N * V, 1, -8, 8), randTargets(N, V, 3), weights);
    });
  }

  it('weight 0 masks a row, target ≥ V is ignored', async () => {
    const N = 4,
      V = 50;
    const targets = randTargets(N, V, 4);
    targets[2] = IGNORE;
    const weights = Float32Array.of(0.25, 0, 0.25, 0.25);
    await check(N, V, randArray(Float32Array, N * V, 5, -4, 4), targets, weights);
  });

  it('extreme logits ±300', async () => {
    const N = 3,
      V = 300;
    const x = randArray(Float32Array, N * V, 6, -300, 300);
    // row 1: target is the one −300 logit among +300s (loss 600); row 2: target is the sole +300 (loss 0)
    for (let i = 0; i < V; i++) x[V + i] = i === 17 ? -300 : 300;
    for (let i = 0; i < V; i++) x[2 * V + i] = i === 5 ? 300 : -300;
    const targets = Uint32Array.of(123, 17, 5);
    await check(N, V, x, targets, Float32Array.of(1, 0.5, 1));
  });
});
