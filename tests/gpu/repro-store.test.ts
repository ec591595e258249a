// A long `repro` run stopped part-way goes on where it was: finished stages are read back, the
// stage in progress resumes from its last checkpoint, stored evaluation outputs are reused — and the
// figures equal those of an unbroken run. (The store is the CLI's `--save DIR`.)
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dirStore } from '../../src/cli/repro.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { repro } from '../../src/method/experiments/repro.ts';
import {
  DEFAULT_REPRO,
  REPRO_PARTS,
  type ReproConfig,
  type ReproProblem,
  type ReproResult,
  type ReproStore,
} from '../../src/method/experiments/result.ts';
import type { TrainItem } from '../../src/method/stages/stages.ts';
import { testGpu } from '../helpers/gpu.ts';
import { arithCase, tinyConfig, tinyTok } from '../helpers/tiny-arith.ts';

const tok = tinyTok;
const config = tinyConfig;

const train = { pos: [] as TrainItem[], neg: [] as TrainItem[] };
const test: ReproProblem[] = [];
for (let i = 0; i < 16; i++) {
  const { question, a, b, pos, neg } = arithCase(i);
  if (i < 12) {
    train.pos.push({ question, rationale: pos });
    train.neg.push({ question, rationale: neg });
  } else test.push({ question, gold: String(a + b), pos: [pos], neg: [neg] });
}

const cfg: ReproConfig = {
  ...DEFAULT_REPRO,
  m: 2,
  maxNew: 8,
  checkpointEvery: 2,
  stage: { steps: 4, batchSize: 4, lr: 1e-2, warmup: 0, targets: ['q', 'v'] },
};

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), 'd2g-repro-store-'));
  dirs.push(d);
  return d;
};

/** The store, stopping the run (as a killed process would) right after NCE's first checkpoint. */
function stopAfterNceCheckpoint(store: ReproStore): ReproStore {
  return {
    ...store,
    async saveCheckpoint(key, c) {
      await store.saveCheckpoint(key, c);
      if (c.stage === 'nce') throw new Error('stopped');
    },
  };
}

/** `a`'s Table 2 has `b`'s accuracies, and its training losses to float rounding. */
function expectTable2Of(a: ReproResult, b: ReproResult) {
  for (const [k, t] of Object.entries(b.table2)) {
    expect(a.table2[k]!.accuracy, k).toBe(t.accuracy);
    if (t.last_loss !== undefined) expect(a.table2[k]!.last_loss!, k).toBeCloseTo(t.last_loss, 4);
  }
}

describe('repro with a store (--save DIR)', () => {
  it('stopped mid-stage, it resumes and reaches the figures of an unbroken run; a third run trains and samples nothing', async () => {
    const model = loadLlama(new GpuBackend(await testGpu()), config, randomLlamaWeights(config, 3));
    const run = async (store: ReproStore | null, prior: ReproResult | null = null, c: ReproConfig = cfg) => {
      const lines: string[] = [];
      const reports: ReproResult[] = [];
      const r = await repro(
        model,
        tok,
        'arith',
        train,
        test,
        c,
        (l) => lines.push(l),
        store,
        (p) => {
          reports.push(structuredClone(p));
        },
        prior,
      );
      return { r, log: lines.join('\n'), reports };
    };
    const strip = (r: ReproResult) => ({ ...r, seconds: 0 });

    const unbrokenDir = tmp();
    const unbroken = await run(dirStore(unbrokenDir, cfg.stage));
    // reported part by part: Table 1 first, then the votes and the ranker, each baseline, each control
    const pending = unbroken.reports.map((p) => p.pending);
    expect(pending).toEqual(REPRO_PARTS.map((_, i) => REPRO_PARTS.slice(i === 0 ? 0 : i + 1)));
    expect(unbroken.reports[0]!.voting).toEqual([]);
    expect(unbroken.reports[0]!.ranker).toBeNull();
    expect(Object.keys(unbroken.reports[0]!.table2)).toEqual(['base', 'kd', 'nat', 'nce']);
    expect(unbroken.reports[0]!.table1).toEqual(unbroken.r.table1);
    expect(unbroken.reports[1]!.ranker).toEqual(unbroken.r.ranker);
    expect(Object.keys(unbroken.reports[2]!.table2)).toEqual(['base', 'kd', 'mix', 'nat', 'nce']);
    expect(unbroken.reports.at(-1)).toEqual({ ...unbroken.r, seconds: unbroken.reports.at(-1)!.seconds });

    // resumed from the report made after MIX, with no store: only what CL, NT, UL and the controls
    // need is trained, nothing finished is evaluated or sampled again, and the figures are the
    // unbroken run's
    const afterMix = unbroken.reports[2]!;
    const { r: rp, log: priorLog, reports: priorReports } = await run(null, afterMix);
    // each stage when first needed: the controls train their assistants (KD's, the negative LoRA)
    expect(priorLog.match(/^trained \w+/gm)).toEqual(
      ['cl', 'nt', 'ul', 'kd', 'nat_kd', 'neg', 'nat_zero'].map((k) => `trained ${k}`),
    );
    expect(priorLog).not.toMatch(/greedy (base|kd|mix|nat|nce):|samples in|ranker pairwise/);
    expect(priorReports.map((p) => p.pending)).toEqual(
      REPRO_PARTS.slice(3).map((_, i) => REPRO_PARTS.slice(i + 4)),
    );
    expect(rp.seconds).toBeGreaterThan(afterMix.seconds);
    expect(rp.table1).toEqual(unbroken.r.table1);
    expect(rp.voting).toEqual(unbroken.r.voting);
    expect(rp.ranker).toEqual(unbroken.r.ranker);
    expect(Object.keys(rp.table2)).toEqual(Object.keys(unbroken.r.table2));
    expectTable2Of(rp, unbroken.r);
    // the finished result with votes on the first 2 of its 4 problems: only the votes and the ranker
    // run again (on 2), the stages they need read back from the store
    const { r: twoVotes, log: twoLog } = await run(dirStore(unbrokenDir, cfg.stage), unbroken.r, {
      ...cfg,
      voteProblems: 2,
    });
    expect(twoLog).toContain('resuming an earlier result: voting, ranker to run');
    expect(twoLog).not.toMatch(/trained |greedy /);
    expect(twoVotes.voting.map((v) => v.sc.n)).toEqual([2, 2]);
    expect(twoVotes.table2).toEqual(unbroken.r.table2);
    expect(twoVotes.config.voteProblems).toBe(2);
    // a result of another held-out set or other settings is refused before anything runs
    const resumeWith = (p: ReproResult) => run(null, p);
    await expect(resumeWith({ ...afterMix, heldout: 'n4-00000000' })).rejects.toThrow(
      /another held-out set \(n4-00000000; this run's is n4-/,
    );
    await expect(resumeWith({ ...afterMix, config: { ...cfg, m: 4 } })).rejects.toThrow(
      'other settings (m differ)',
    );

    const dir = tmp();
    await expect(run(stopAfterNceCheckpoint(dirStore(dir, cfg.stage)))).rejects.toThrow('stopped');
    expect(readdirSync(dir).sort()).toEqual(['kd', 'nat', 'nce.ckpt', 'neg']);

    const resumed = await run(dirStore(dir, cfg.stage));
    expect(resumed.log).toContain('reused nat');
    expect(resumed.log).toContain('resuming nce at step 2/4');
    expect(resumed.log).not.toContain('trained kd');
    expect(existsSync(join(dir, 'nce.ckpt')), 'a finished stage drops its checkpoint').toBe(false);
    // same seeds, same batches: the figures of the unbroken run (losses to float rounding)
    const a = strip(resumed.r),
      b = strip(unbroken.r);
    expectTable2Of(a, b);
    expect(a.table1).toEqual(b.table1);
    expect(a.voting).toEqual(b.voting);
    expect(a.ranker!.pairs).toBe(b.ranker!.pairs);

    // everything stored: nothing is trained, solved or sampled again
    const third = await run(dirStore(dir, cfg.stage));
    expect(third.log).not.toMatch(/trained|resuming/);
    expect(strip(third.r)).toEqual(strip(resumed.r));
    // base, the eight student stages and the two NAT controls
    expect(readdirSync(join(dir, 'eval')).filter((f) => f.startsWith('greedy-'))).toHaveLength(11);
    expect(readdirSync(dir)).toEqual(expect.arrayContaining(['nat_kd', 'nat_zero']));
  }, 600_000);
});
