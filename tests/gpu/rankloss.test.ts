import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import * as gpuOp from '../../src/engine/ops/rankloss.ts';
import * as ref from '../../src/engine/ref/rankloss.ts';
import { checkOp } from '../helpers/checkop.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';

/** Forward only, forward + backward (written over garbage), and sigmoidForward on both logit arrays. */
async function check(zpos: Float32Array, zneg: Float32Array, weight: number): Promise<void> {
  const gpu = await testGpu();
  const P = zpos.length;
  const losses = new Float32Array(P),
    dzpos = new Float32Array(P),
    dzneg = new Float32Array(P),
    spos = new Float32Array(P);
  ref.ranklossForwardBackward(losses, dzpos, dzneg, zpos, zneg, P, weight);
  ref.sigmoidForward(spos, zpos, P);
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);
  await gpu.checked(async () => {
    const tzpos = gpu.fromData([P], zpos, 'zpos'),
      tzneg = gpu.fromData([P], zneg, 'zneg');
    const tloss = gpu.tensor([P], 'losses'),
      tlossF = gpu.tensor([P], 'lossesF'),
      tspos = gpu.tensor([P], 'spos');
    const tdzpos = gpu.fromData([P], new Float32Array(P).fill(7), 'dzpos'),
      tdzneg = gpu.fromData([P], new Float32Array(P).fill(7), 'dzneg');
    gpuOp.ranklossForwardBackward(gpu, tlossF, null, null, tzpos, tzneg, P, weight);
    gpuOp.ranklossForwardBackward(gpu, tloss, tdzpos, tdzneg, tzpos, tzneg, P, weight);
    gpuOp.sigmoidForward(gpu, tspos, tzpos, P);
    checkOp('rankloss_forward', await gpu.read(tlossF), losses);
    checkOp('rankloss_forward', await gpu.read(tloss), losses);
    checkOp('rankloss_backward', await gpu.read(tdzpos), dzpos);
    checkOp('rankloss_backward', await gpu.read(tdzneg), dzneg);
    checkOp('sigmoid_forward', await gpu.read(tspos), spos);
    expect(() => gpuOp.ranklossForwardBackward(gpu, tloss, tdzpos, null, tzpos, tzneg, P, weight)).toThrow(
      EngineError,
    );
    for (const t of [tzpos, tzneg, tloss, tlossF, tspos, tdzpos, tdzneg]) t.buffer.destroy();
  });
}

describe('rankloss / sigmoid GPU vs reference', () => {
  for (const P of [1, 3, 255, 257, 1000]) {
    it(`P=${P}`, () =>
      check(randArray(Float32Array, P, P, -6, 6), randArray(Float32Array, P, P + 1, -6, 6), 1 / P));
  }
  it('saturated logits: ±20, ±100, ±1e4, 0, ±1e-30', () => {
    const z = Float32Array.of(-20, 20, -100, 100, -1e4, 1e4, 0, 1e-30, -1e-30);
    return check(z, z.slice().reverse(), 0.5);
  });
});
