import { describe, expect, it } from 'vitest';
import { klForward, softCrossentropyForwardBackward } from '../../src/engine/ref/kl.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('kl / soft cross-entropy reference', () => {
  const N = 3,
    V = 7;
  const weights = Float64Array.of(0.5, 0, 2); // row 1 masked

  for (const [lo, hi] of [
    [-3, 3],
    [-300, 300],
  ] as const) {
    it(`soft CE dlogits (student) vs finite differences, logits in [${lo}, ${hi}]`, () => {
      const t = randArray(Float64Array, N * V, 1, lo, hi),
        s = randArray(Float64Array, N * V, 2, lo, hi);
      const losses = new Float64Array(N);
      const loss = () => (
        softCrossentropyForwardBackward(losses, null, t, s, weights, N, V, false),
        dotLoss(losses, weights)
      );
      loss();
      const ds = new Float64Array(N * V).fill(NaN); // written, not added
      softCrossentropyForwardBackward(losses, ds, t, s, weights, N, V, false);
      checkGrad('soft_crossentropy.dlogitsStudent', loss, s, ds);
      // KL(T ‖ S) = soft CE − H(T): same gradient w.r.t. the student
      const kl = new Float64Array(N);
      const klLoss = () => (klForward(kl, t, s, N, V), dotLoss(kl, weights));
      checkGrad('kl.dlogitsQ', klLoss, s, ds);
    });
  }

  it('KL matches Σ p log p − Σ p log q from explicit probabilities; KL(p‖p) = 0', () => {
    const p = randArray(Float64Array, N * V, 3, -3, 3),
      q = randArray(Float64Array, N * V, 4, -3, 3);
    const kl = new Float64Array(N),
      self = new Float64Array(N);
    klForward(kl, p, q, N, V);
    klForward(self, p, p, N, V);
    for (let n = 0; n < N; n++) {
      const P = softmaxRow(p, n, V),
        Q = softmaxRow(q, n, V);
      let expected = 0;
      for (let i = 0; i < V; i++) expected += P[i]! * Math.log(P[i]!) - P[i]! * Math.log(Q[i]!);
      expect(kl[n]).toBeCloseTo(expected, 12);
      expect(kl[n]).toBeGreaterThan(0);
      expect(self[n]).toBeCloseTo(0, 14);
    }
  });

  it('accumulate adds; weight 0 leaves the row untouched', () => {
    const t = randArray(Float64Array, N * V, 5),
      s = randArray(Float64Array, N * V, 6);
    const losses = new Float64Array(N);
    const fresh = new Float64Array(N * V),
      acc = new Float64Array(N * V).fill(0.25);
    softCrossentropyForwardBackward(losses, fresh, t, s, weights, N, V, false);
    softCrossentropyForwardBackward(losses, acc, t, s, weights, N, V, true);
    for (let i = 0; i < N * V; i++) expect(acc[i]).toBeCloseTo(fresh[i]! + 0.25, 15);
    for (let i = V; i < 2 * V; i++) expect(fresh[i]).toBe(0);
  });
});

function softmaxRow(x: Float64Array, n: number, V: number): Float64Array {
  const row = x.slice(n * V, (n + 1) * V);
  let sum = 0;
  for (const v of row) sum += Math.exp(v);
  return row.map((v) => Math.exp(v) / sum);
}
