/**
 * checkOp: the one comparison every kernel test goes through. Fails on a length mismatch, on any
 * NaN/Inf the reference does not have, and on any element outside atol + rtol·|expected|, naming
 * the worst element. Tested itself in tests/unit/checkop.test.ts.
 */
import { tolFor, type Tol } from './tolerances.ts';

export interface CheckReport {
  maxAbs: number;
  maxRel: number;
  worst: number;
  bad: number;
}

export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): CheckReport {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: got ${actual.length}, expected ${expected.length}`);
  }
  let maxAbs = 0;
  let maxRel = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!Number.isFinite(e)) {
      if (!Object.is(a, e) && !(Number.isNaN(a) && Number.isNaN(e))) {
        bad++;
        if (worst < 0) worst = i;
      }
      continue;
    }
    const d = Math.abs(a - e);
    const limit = tol.atol + tol.rtol * Math.abs(e);
    const excess = Number.isFinite(a) ? d - limit : Infinity;
    if (!(d <= limit)) bad++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
    if (d > maxAbs || !Number.isFinite(d)) maxAbs = Number.isFinite(a) ? d : Infinity;
    const rel = d / Math.max(Math.abs(e), 1e-30);
    if (rel > maxRel) maxRel = rel;
  }
  return { maxAbs, maxRel, worst, bad };
}

/** Throws unless `actual` matches `expected` within the op's tolerance (tests/helpers/tolerances.ts). */
export function checkOp(
  op: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tol = tolFor(op),
): CheckReport {
  const r = compare(actual, expected, tol);
  if (r.bad > 0) {
    const i = r.worst;
    throw new Error(
      `${op}: ${r.bad} of ${expected.length} elements out of tolerance (atol ${tol.atol}, rtol ${tol.rtol}); ` +
        `worst [${i}]: got ${actual[i]}, expected ${expected[i]}; max abs err ${r.maxAbs.toExponential(3)}`,
    );
  }
  return r;
}
