import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/gelu.ts';
import * as ref from '../../src/engine/ref/gelu.ts';
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
  ref.geluForward(out, x, N);
  ref.geluBackward(dx, dout, x, N, accumulate);
  await gpu.checked(async () => {
    const tx = gpu.fromData([N], x, 'x'),
      tout = gpu.tensor([N], 'out');
    const tdout = gpu.fromData([N], dout, 'dout'),
      tdx = gpu.fromData([N], prev, 'dx');
    gpuOp.geluForward(gpu, tout, tx, N);
    gpuOp.geluBackward(gpu, tdx, tdout, tx, N, accumulate);
    checkOp('gelu_forward', await gpu.read(tout), out);
    checkOp('gelu_backward', await gpu.read(tdx), dx);
    for (const t of [tx, tout, tdout, tdx]) t.buffer.destroy();
  });
}

describe('gelu GPU vs reference', () => {
  for (const N of [1, 255, 257, 1000]) {
    for (const accumulate of [false, true]) {
      it(`N=${N} accumulate=${accumulate}`, () => check(randArray(Float32Array, N, N, -5, 5), accumulate));
    }
  }
  it('dense sweep of [-12, 12] and extremes (erf accuracy, tails)', () => {
    const x = new Float32Array(2401 + 8);
    for (let i = 0; i <= 2400; i++) x[i] = -12 + i / 100;
    x.set([-300, 300, -1e-30, 1e-30, 0, -30, 30, -5e-4], 2401);
    return check(x, false);
  });
});
