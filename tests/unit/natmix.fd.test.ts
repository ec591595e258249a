import { describe, expect, it } from 'vitest';
import { natmixBackward, natmixForward } from '../../src/engine/ref/natmix.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('natmix reference', () => {
  // U and C not multiples of 4; q·k of a few units so α covers (−0.5, 0.5) without saturating
  const N = 3,
    U = 5,
    C = 7;
  const r = (n: number, seed: number, lo = -1, hi = 1) => randArray(Float64Array, n, seed, lo, hi);
  const q = r(N * U, 1, -1.5, 1.5),
    kpos = r(N * U, 2, -1.5, 1.5),
    kneg = r(N * U, 3, -1.5, 1.5);
  const vpos = r(N * C, 4),
    vneg = r(N * C, 5),
    base = r(N * C, 6),
    g = r(N * C, 7);
  const out = new Float64Array(N * C),
    alpha = new Float64Array(N);
  const loss = () => (natmixForward(out, alpha, q, kpos, kneg, vpos, vneg, base, N, U, C), dotLoss(out, g));

  it('all five gradients (and base: dout itself) vs finite differences', () => {
    loss();
    const grads = [N * U, N * U, N * U, N * C, N * C].map((n) => new Float64Array(n).fill(NaN));
    const [dq, dkpos, dkneg, dvpos, dvneg] = grads as [
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
      Float64Array,
    ];
    natmixBackward(dq, dkpos, dkneg, dvpos, dvneg, g, q, kpos, kneg, vpos, vneg, alpha, N, U, C, false);
    checkGrad('natmix.dq', loss, q, dq);
    checkGrad('natmix.dkpos', loss, kpos, dkpos);
    checkGrad('natmix.dkneg', loss, kneg, dkneg);
    checkGrad('natmix.dvpos', loss, vpos, dvpos);
    checkGrad('natmix.dvneg', loss, vneg, dvneg);
    checkGrad('natmix.dbase', loss, base, g);
  });

  it('accumulate adds to all five', () => {
    loss();
    const fresh = [N * U, N * U, N * U, N * C, N * C].map((n) => new Float64Array(n));
    const acc = fresh.map((f) => new Float64Array(f.length).fill(0.25));
    const run = (d: Float64Array[], accumulate: boolean) =>
      natmixBackward(
        d[0]!,
        d[1]!,
        d[2]!,
        d[3]!,
        d[4]!,
        g,
        q,
        kpos,
        kneg,
        vpos,
        vneg,
        alpha,
        N,
        U,
        C,
        accumulate,
      );
    run(fresh, false);
    run(acc, true);
    fresh.forEach((f, j) => f.forEach((v, i) => expect(acc[j]![i]).toBeCloseTo(v + 0.25, 15)));
  });

  it('exact values: e_pos = e_neg gives α = 0 and out = base + vpos', () => {
    // q = (1, 2), kpos = (3, 1), kneg = (1, 2): e_pos = e_neg = 5
    const o = new Float64Array(2),
      a = new Float64Array(1);
    natmixForward(
      o,
      a,
      Float64Array.of(1, 2),
      Float64Array.of(3, 1),
      Float64Array.of(1, 2),
      Float64Array.of(10, 20),
      Float64Array.of(-7, 9),
      Float64Array.of(1, 2),
      1,
      2,
      2,
    );
    expect(a[0]).toBe(0);
    expect([...o]).toEqual([11, 22]);
  });

  it('exact values: e_neg − e_pos = ln 3 gives a = 3/4, α = 1/4', () => {
    // U = 1: q = 1, kpos = 0, kneg = ln 3 → a = 3/(1+3)
    const o = new Float64Array(1),
      a = new Float64Array(1);
    natmixForward(
      o,
      a,
      Float64Array.of(1),
      Float64Array.of(0),
      Float64Array.of(Math.log(3)),
      Float64Array.of(4),
      Float64Array.of(8),
      Float64Array.of(1),
      1,
      1,
      1,
    );
    expect(a[0]).toBeCloseTo(0.25, 15);
    expect(o[0]).toBeCloseTo(1 + 0.75 * 4 + 0.25 * 8, 14); // 6
    // dout = 1: dα = vneg − vpos = 4, g = 4 · (3/4)(1/4) = 0.75
    const d = [0, 0, 0, 0, 0].map(() => new Float64Array(1));
    natmixBackward(
      d[0]!,
      d[1]!,
      d[2]!,
      d[3]!,
      d[4]!,
      Float64Array.of(1),
      Float64Array.of(1),
      Float64Array.of(0),
      Float64Array.of(Math.log(3)),
      Float64Array.of(4),
      Float64Array.of(8),
      a,
      1,
      1,
      1,
      false,
    );
    expect(d[0]![0]).toBeCloseTo(0.75 * Math.log(3), 14); // dq = g (kneg − kpos)
    expect(d[1]![0]).toBeCloseTo(-0.75, 14); // dkpos = −g q
    expect(d[2]![0]).toBeCloseTo(0.75, 14); // dkneg = g q
    expect(d[3]![0]).toBeCloseTo(0.75, 15); // dvpos = 1 − α
    expect(d[4]![0]).toBeCloseTo(0.25, 15); // dvneg = α
  });

  it('saturated: α → ±0.5 without NaN, gradient to q and k → 0', () => {
    const o = new Float64Array(2),
      a = new Float64Array(2);
    // row 0: e_neg − e_pos = 1000; row 1: −1000
    natmixForward(
      o,
      a,
      Float64Array.of(10, -10),
      Float64Array.of(0, 0),
      Float64Array.of(100, 100),
      Float64Array.of(1, 1),
      Float64Array.of(3, 3),
      Float64Array.of(0, 0),
      2,
      1,
      1,
    );
    expect([...a]).toEqual([0.5, -0.5]);
    expect([...o]).toEqual([0.5 * 1 + 0.5 * 3, 1.5 * 1 - 0.5 * 3]);
  });
});
