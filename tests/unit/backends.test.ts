// The two backends expose the same ops: every reference op has a GPU kernel and vice versa
// (helpers that are not ops are listed by name).
import { describe, expect, it } from 'vitest';
import * as GpuOps from '../../src/engine/ops/index.ts';
import * as RefOps from '../../src/engine/ref/index.ts';

const REF_ONLY = ['clipScale', 'dropoutHash', 'dropoutScale', 'dropoutThreshold', 'erf', 'erfc'];
const GPU_ONLY = [
  'grid',
  'matmulForwardGemv',
  'matmulForwardTiled',
  'gemvConfig',
  'gemvKey',
  'decodeVariant',
  'serial4Fits',
  'rowVariant',
  'matmulVariant',
  'attentionVariant',
  'crossentropyVariant',
];
const fns = (m: object) =>
  Object.entries(m)
    .filter(([, v]) => typeof v === 'function')
    .map(([k]) => k);

describe('backends', () => {
  it('GPU ops and CPU references have the same op names', () => {
    const gpu = fns(GpuOps)
      .filter((n) => !GPU_ONLY.includes(n))
      .sort();
    const ref = fns(RefOps)
      .filter((n) => !REF_ONLY.includes(n))
      .sort();
    expect(gpu).toEqual(ref);
    expect(gpu.length).toBeGreaterThan(30);
  });
});
