import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/embedding.ts';
import * as ref from '../../src/engine/ref/embedding.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray, rng } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

function randTokens(N: number, V: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: N }, () => Math.floor(r() * V));
}

async function check(tokens: Uint32Array, C: number, V: number, forward = true): Promise<void> {
  const gpu = await testGpu();
  const N = tokens.length;
  const wte = randArray(Float32Array, V * C, 1),
    dout = randArray(Float32Array, N * C, 2);
  const prev = randArray(Float32Array, V * C, 3);
  const out = new Float32Array(N * C),
    dwte = new Float32Array(prev);
  if (forward) ref.embeddingForward(out, tokens, wte, N, C);
  ref.embeddingBackward(dwte, dout, tokens, N, C, V);
  await gpu.checked(async () => {
    const ttok = gpu.fromData([N], tokens, 'tokens'),
      twte = gpu.fromData([V, C], wte, 'wte');
    const tout = gpu.tensor([N, C], 'out'),
      tdout = gpu.fromData([N, C], dout, 'dout');
    const tdwte = gpu.fromData([V, C], prev, 'dwte');
    if (forward) gpuOp.embeddingForward(gpu, tout, ttok, twte, N, C);
    gpuOp.embeddingBackward(gpu, tdwte, tdout, ttok, N, C, V);
    if (forward) checkOp('embedding_forward', await gpu.read(tout), out);
    checkOp('embedding_backward', await gpu.read(tdwte), dwte);
    for (const t of [ttok, twte, tout, tdout, tdwte]) t.buffer.destroy();
  });
}

describe('embedding GPU vs reference', () => {
  it('N=1 C=1 V=1', () => check(new Uint32Array([0]), 1, 1));
  it('repeated tokens, unused rows: N=6 C=3 V=5', () => check(new Uint32Array([4, 1, 4, 4, 0, 1]), 3, 5));
  for (const [N, C, V] of [
    [37, 100, 50],
    [64, 257, 7],
    [300, 4, 1000],
  ] as const) {
    it(`N=${N} C=${C} V=${V}`, () => check(randTokens(N, V, N + C), C, V));
  }
  it('backward skips tokens ≥ V', () => check(new Uint32Array([2, 3, 9, 1, 3]), 5, 4, false));
});
