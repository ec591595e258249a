import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { ranklossForwardBackward, sigmoidForward } from '../../src/engine/ref/rankloss.ts';
import { checkGrad, randArray } from '../helpers/fd.ts';

describe('rankloss reference', () => {
  it('dzpos, dzneg vs finite differences of weight · Σ losses', () => {
    const P = 9,
      weight = 0.37;
    const zpos = randArray(Float64Array, P, 1, -5, 5),
      zneg = randArray(Float64Array, P, 2, -5, 5);
    const losses = new Float64Array(P);
    const loss = () => {
      ranklossForwardBackward(losses, null, null, zpos, zneg, P, weight);
      return weight * losses.reduce((a, b) => a + b, 0);
    };
    const dzpos = new Float64Array(P).fill(NaN),
      dzneg = new Float64Array(P).fill(NaN);
    ranklossForwardBackward(losses, dzpos, dzneg, zpos, zneg, P, weight);
    checkGrad('rankloss.dzpos', loss, zpos, dzpos);
    checkGrad('rankloss.dzneg', loss, zneg, dzneg);
  });

  it('exact values', () => {
    const losses = new Float64Array(3),
      dzpos = new Float64Array(3),
      dzneg = new Float64Array(3);
    // z = 0: s = 1/2, loss = 1/8 + 1/8; dzpos = −3·(1/2)(1/8) = −3/16, dzneg = 3·(1/8)(1/2) = 3/16
    // z⁺ = ln 3 (s⁺ = 3/4), z⁻ = −ln 3 (s⁻ = 1/4): loss = 1/64 + 1/64
    // saturated right: z⁺ = 800, z⁻ = −800: loss 0, gradients 0 (no NaN)
    const zpos = Float64Array.of(0, Math.log(3), 800),
      zneg = Float64Array.of(0, -Math.log(3), -800);
    ranklossForwardBackward(losses, dzpos, dzneg, zpos, zneg, 3, 1);
    expect(losses[0]).toBe(0.25);
    expect(dzpos[0]).toBe(-3 / 16);
    expect(dzneg[0]).toBe(3 / 16);
    expect(losses[1]).toBeCloseTo(2 / 64, 15);
    expect(dzpos[1]).toBeCloseTo((-3 * 0.75) / 64, 15);
    expect(dzneg[1]).toBeCloseTo((3 * 0.75) / 64, 15);
    expect([losses[2], dzpos[2], dzneg[2]]).toEqual([0, -0, 0]);
    // saturated wrong: loss 2, gradients 0 (the cubic loss is flat there)
    ranklossForwardBackward(losses, dzpos, dzneg, Float64Array.of(-800), Float64Array.of(800), 1, 1);
    expect([losses[0], dzpos[0], dzneg[0]]).toEqual([2, -0, 0]);
  });

  it('sigmoid: exact points and no overflow', () => {
    const out = new Float64Array(5);
    sigmoidForward(out, Float64Array.of(0, Math.log(3), -Math.log(3), 1000, -1000), 5);
    expect(out[0]).toBe(0.5);
    expect(out[1]).toBeCloseTo(0.75, 15);
    expect(out[2]).toBeCloseTo(0.25, 15);
    expect([out[3], out[4]]).toEqual([1, 0]);
  });

  it('one gradient buffer without the other is refused', () => {
    const a = new Float64Array(1);
    expect(() => ranklossForwardBackward(a, a, null, a, a, 1, 1)).toThrow(EngineError);
  });
});
