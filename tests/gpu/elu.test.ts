import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/elu.ts';
import * as ref from '../../src/engine/ref/elu.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

async function check(x: Float32Array, accumulate: boolean): Promise<void> {
  const gpu = await testGpu();
  const N = x.length;
  const dout = randArray(Float32Array, N, 3),
    prev = randArray(Float32Array, N, 4);
  const out = new Float32Array(N),
    dx = new Float32Array(prev);
  ref.eluForward(out, x, N);
  ref.eluBackward(dx, dout, x, N, accumulate);
  await gpu.checked(async () => {
    const tx = gpu.fromData([N], x, 'x'),
      tout = gpu.tensor([N], 'out');
    const tdout = gpu.fromData([N], dout, 'dout'),
      tdx = gpu.fromData([N], prev, 'dx');
    gpuOp.eluForward(gpu, tout, tx, N);
    gpuOp.eluBackward(gpu, tdx, tdout, tx, N, accumulate);
    checkOp('elu_forward', await gpu.read(tout), out);
    checkOp('elu_backward', await gpu.read(tdx), dx);
    for (const t of [tx, tout, tdout, tdx]) t.buffer.destroy();
  });
}

describe('elu GPU vs reference', () => {
  for (const N of [1, 255, 257, 1000]) {
    for (const accumulate of [false, true]) {
      it(`N=${N} accumulate=${accumulate}`, () => check(randArray(Float32Array, N, N, -4, 4), accumulate));
    }
  }
  it('extremes: ±300, ±1e-30, 0, -1e-4', () =>
    check(new Float32Array([-300, 300, -1e-30, 1e-30, 0, -0, -1e-4, 88, -88]), false));
});
