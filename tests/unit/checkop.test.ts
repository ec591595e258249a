// The checker checks itself: a helper that silently passes would make every kernel test a lie.
import { describe, expect, it } from 'vitest';
import { checkOp, compare } from '../helpers/checkop.ts';
import { tolFor } from '../helpers/tolerances.ts';

describe('checkOp', () => {
  const e = new Float32Array([1, -2, 3, 1e-7, 1000]);
  it('passes identical arrays and tiny float32 noise', () => {
    expect(() => checkOp('t', e, e)).not.toThrow();
    const noisy = e.map((v) => v * (1 + 1e-6));
    expect(() => checkOp('t', noisy, e)).not.toThrow();
  });
  it('fails a single wrong element and names it', () => {
    const a = new Float32Array(e);
    a[2] = 3.01;
    expect(() => checkOp('t', a, e)).toThrow(/\[2\]: got 3\.0099/);
  });
  it('fails on a length mismatch', () => {
    expect(() => checkOp('t', e.subarray(1), e)).toThrow(/length mismatch/);
  });
  it('fails on NaN or Inf where the reference is finite', () => {
    const a = new Float32Array(e);
    a[0] = NaN;
    expect(() => checkOp('t', a, e)).toThrow(/out of tolerance/);
    a[0] = Infinity;
    expect(() => checkOp('t', a, e)).toThrow(/out of tolerance/);
  });
  it('accepts matching non-finite values, rejects mismatched ones', () => {
    expect(() => checkOp('t', [NaN, Infinity, -Infinity], [NaN, Infinity, -Infinity])).not.toThrow();
    expect(() => checkOp('t', [Infinity], [-Infinity])).toThrow();
  });
  it('uses atol near zero and rtol for large values', () => {
    const tol = { atol: 1e-3, rtol: 1e-2 };
    expect(compare([5e-4], [0], tol).bad).toBe(0);
    expect(compare([2e-3], [0], tol).bad).toBe(1);
    expect(compare([1009], [1000], tol).bad).toBe(0);
    expect(compare([1012], [1000], tol).bad).toBe(1);
  });
  it('looks tolerances up by op family', () => {
    expect(tolFor('rmsnorm_forward')).toEqual(tolFor('rmsnorm_forward'));
    expect(tolFor('unknown_op')).toEqual(tolFor('default'));
  });
});
