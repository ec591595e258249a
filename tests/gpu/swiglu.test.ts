import { describe, it } from 'vitest';
import * as gpuOp from '../../src/engine/ops/swiglu.ts';
import * as ref from '../../src/engine/ref/swiglu.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

async function check(gate: Float32Array, up: Float32Array, accumulate: boolean): Promise<void> {
  const gpu = await testGpu();
  const N = gate.length;
  const dout = randArray(Float32Array, N, 3),
    prevG = randArray(Float32Array, N, 4),
    prevU = randArray(Float32Array, N, 5);
  const out = new Float32Array(N),
    dg = new Float32Array(prevG),
    du = new Float32Array(prevU);
  ref.swigluForward(out, gate, up, N);
  ref.swigluBackward(dg, du, dout, gate, up, N, accumulate);
  await gpu.checked(async () => {
    const tg = gpu.fromData([N], gate, 'gate'),
      tu = gpu.fromData([N], up, 'up'),
      tout = gpu.tensor([N], 'out');
    const tdout = gpu.fromData([N], dout, 'dout');
    const tdg = gpu.fromData([N], prevG, 'dgate'),
      tdu = gpu.fromData([N], prevU, 'dup');
    gpuOp.swigluForward(gpu, tout, tg, tu, N);
    gpuOp.swigluBackward(gpu, tdg, tdu, tdout, tg, tu, N, accumulate);
    checkOp('swiglu_forward', await gpu.read(tout), out);
    checkOp('swiglu_backward', await gpu.read(tdg), dg);
    checkOp('swiglu_backward', await gpu.read(tdu), du);
    for (const t of [tg, tu, tout, tdout, tdg, tdu]) t.buffer.destroy();
  });
}

describe('swiglu GPU vs reference', () => {
  for (const N of [1, 255, 257, 1000]) {
    for (const accumulate of [false, true]) {
      it(`N=${N} accumulate=${accumulate}`, () =>
        check(randArray(Float32Array, N, N, -6, 6), randArray(Float32Array, N, N + 1, -2, 2), accumulate));
    }
  }
  it('extreme gates: ±300, ±90, ±1e-30, 0', () => {
    const gate = new Float32Array([-300, 300, -90, 90, -1e-30, 1e-30, 0, -20, 20]);
    return check(gate, randArray(Float32Array, gate.length, 9), false);
  });
});
