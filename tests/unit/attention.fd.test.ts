import { describe, expect, it } from 'vitest';
import {
  attentionBackward,
  attentionDecode,
  attentionForward,
  kvCacheWrite,
} from '../../src/engine/ref/attention.ts';
import { checkOp } from '../helpers/checkop.ts';
import { checkGrad, dotLoss, randArray } from '../helpers/fd.ts';

describe('attention reference vs finite differences', () => {
  for (const [B, T, NH, NKV, HS] of [
    [2, 3, 4, 2, 3],
    [1, 4, 2, 1, 2],
    [1, 1, 1, 1, 2],
  ] as const) {
    it(`dq, dk, dv: B=${B} T=${T} NH=${NH} NKV=${NKV} HS=${HS}`, () => {
      const nq = B * T * NH * HS,
        nkv = B * T * NKV * HS,
        na = B * NH * T * T;
      const q = randArray(Float64Array, nq, 1, -2, 2);
      const k = randArray(Float64Array, nkv, 2, -2, 2);
      const v = randArray(Float64Array, nkv, 3);
      const g = randArray(Float64Array, nq, 4);
      const out = new Float64Array(nq),
        att = new Float64Array(na),
        datt = new Float64Array(na);
      const loss = () => (attentionForward(out, att, q, k, v, B, T, NH, NKV, HS), dotLoss(out, g));
      loss();
      // accumulate = true on top of known values, then subtract them: checks `+=` as well
      const dq = new Float64Array(nq).fill(1),
        dk = new Float64Array(nkv).fill(1),
        dv = new Float64Array(nkv).fill(1);
      attentionBackward(dq, dk, dv, datt, g, q, k, v, att, B, T, NH, NKV, HS, true);
      checkGrad(
        'attention.dq',
        loss,
        q,
        dq.map((x) => x - 1),
      );
      checkGrad(
        'attention.dk',
        loss,
        k,
        dk.map((x) => x - 1),
      );
      checkGrad(
        'attention.dv',
        loss,
        v,
        dv.map((x) => x - 1),
      );
      const dqW = new Float64Array(nq).fill(7),
        dkW = new Float64Array(nkv).fill(7),
        dvW = new Float64Array(nkv).fill(7);
      attentionBackward(dqW, dkW, dvW, datt, g, q, k, v, att, B, T, NH, NKV, HS, false);
      checkOp(
        'fd:attention.write',
        dqW,
        dq.map((x) => x - 1),
        { atol: 1e-12, rtol: 1e-12 },
      );
      checkOp(
        'fd:attention.write',
        dkW,
        dk.map((x) => x - 1),
        { atol: 1e-12, rtol: 1e-12 },
      );
      checkOp(
        'fd:attention.write',
        dvW,
        dv.map((x) => x - 1),
        { atol: 1e-12, rtol: 1e-12 },
      );
    });
  }

  it('att is a causal softmax: rows sum to 1, zeros above the diagonal', () => {
    const B = 1,
      T = 4,
      NH = 2,
      NKV = 1,
      HS = 2;
    const att = new Float64Array(B * NH * T * T),
      out = new Float64Array(B * T * NH * HS);
    const q = randArray(Float64Array, B * T * NH * HS, 1),
      kv = randArray(Float64Array, B * T * NKV * HS, 2);
    attentionForward(out, att, q, kv, kv, B, T, NH, NKV, HS);
    for (let row = 0; row < NH * T; row++) {
      const t = row % T;
      let sum = 0;
      for (let t2 = 0; t2 < T; t2++) {
        if (t2 > t) expect(att[row * T + t2]).toBe(0);
        sum += att[row * T + t2]!;
      }
      expect(sum).toBeCloseTo(1, 14);
    }
  });

  it('decode against the cache equals the causal forward, row by row (float64)', () => {
    const T = 5,
      NH = 4,
      NKV = 2,
      HS = 3,
      S = 2,
      maxT = 6,
      slot = 1;
    const q = randArray(Float64Array, T * NH * HS, 1);
    const k = randArray(Float64Array, T * NKV * HS, 2),
      v = randArray(Float64Array, T * NKV * HS, 3);
    const out = new Float64Array(T * NH * HS),
      att = new Float64Array(NH * T * T);
    attentionForward(out, att, q, k, v, 1, T, NH, NKV, HS);
    const info = new Uint32Array(Array.from({ length: T }, (_, t) => [slot, t]).flat());
    const kc = new Float64Array(S * maxT * NKV * HS).fill(NaN),
      vc = new Float64Array(kc);
    kvCacheWrite(kc, vc, k, v, info, T, NKV, HS, maxT);
    const outD = new Float64Array(T * NH * HS);
    attentionDecode(outD, q, kc, vc, info, T, NH, NKV, HS, maxT);
    checkOp('fd:attention.decode', outD, out, { atol: 1e-14, rtol: 1e-12 });
  });
});
