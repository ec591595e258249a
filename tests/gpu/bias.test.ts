import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/bias.ts';
import * as ref from '../../src/engine/ref/bias.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

async function check(N: number, C: number): Promise<void> {
  const gpu = await testGpu();
  const x = randArray(Float32Array, N * C, 1, -3, 3),
    b = randArray(Float32Array, C, 2);
  const dout = randArray(Float32Array, N * C, 3),
    db0 = randArray(Float32Array, C, 4); // a previous gradient: db must be added to
  const out = new Float32Array(x),
    db = new Float32Array(db0);
  ref.biasForward(out, b, N, C);
  ref.biasBackward(db, dout, N, C);
  await gpu.checked(async () => {
    const tx = gpu.fromData([N, C], x, 'x'),
      tb = gpu.fromData([C], b, 'b');
    const tdout = gpu.fromData([N, C], dout, 'dout'),
      tdb = gpu.fromData([C], db0, 'db');
    gpuOp.biasForward(gpu, tx, tb, N, C);
    gpuOp.biasBackward(gpu, tdb, tdout, N, C);
    checkOp('bias_forward', await gpu.read(tx), out);
    checkOp('bias_backward', await gpu.read(tdb), db);
    for (const t of [tx, tb, tdout, tdb]) t.buffer.destroy();
  });
}

describe('bias GPU vs reference', () => {
  for (const [N, C] of [
    [1, 1],
    [1, 7],
    [3, 5],
    [17, 64],
    [2, 300],
    [1000, 3],
    [257, 129],
  ] as const) {
    it(`N=${N} C=${C}`, () => check(N, C));
  }
});
