/**
 * `d2g repro`: the paper's experiments, small (src/method/experiments/repro.ts), on a model and a
 * teacher dataset. Prints the tables and writes the JSON.
 *   npm run d2g -- repro --data F [--quick] [--model M] [--tokenizer T] [--kind K] [--out FILE]
 *        [--steps N] [--batch B] [--test N] [--held-out F] [--m M] [--backend gpu|cpu]
 *        [--save DIR] [--vote-problems N] [--resume FILE]
 * --save: writes each stage's adapters to DIR/<stage>/ as it finishes (the layout `train --out` uses),
 *   the running stage's checkpoint every 25 steps to DIR/<stage>.ckpt, and the evaluation's outputs
 *   to DIR/eval/; run again with the same DIR and budget and it goes on where it stopped: finished
 *   stages are read back, a stage in progress resumes from its checkpoint, stored outputs are reused.
 * --out FILE: the result as JSON, written from Table 1 on after each part (its `pending` lists
 *   what has not run yet; [] once the run is done).
 * --vote-problems N: the votes (c) on the first N held-out problems only (default: all).
 * --resume FILE: an earlier run's --out (same data, held-out set and settings, else refused with the
 *   reason): the parts it finished are kept as they are and only its `pending` parts run (and the
 *   votes and the ranker again when --vote-problems differs); with --save the stages those parts
 *   need are read back from DIR.
 * --quick: a smoke-sized run (few steps, few problems) that checks the whole pipeline.
 */
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import { EngineError } from '../engine/errors.ts';
import { heldOutSplit, parseDataset, splitPosNeg } from '../method/datasets/index.ts';
import { repro } from '../method/experiments/repro.ts';
import {
  DEFAULT_REPRO,
  heldoutTag,
  priorMismatch,
  type ReproConfig,
  type ReproResult,
  type ReproStore,
} from '../method/experiments/result.ts';
import { parseKind, readText, withArgErrors } from './check-answer.ts';
import { loadAnyModel, makeBackend, readBinary, type BackendKind } from './load.ts';
import { DEFAULT_MODEL } from './train.ts';
import { readStageFiles, stageFiles } from '../method/stages/files.ts';
import type { StageConfig } from '../method/stages/config.ts';
import type { StageCheckpoint, StageResult } from '../method/stages/types.ts';

const pct = (x: number) => (100 * x).toFixed(1);
const ci = (c: [number, number]) => `[${pct(c[0])}, ${pct(c[1])}]`;

export function reproTables(r: ReproResult): string {
  const t1 = r.table1;
  const lines = [
    `held-out problems: ${r.n}; ${r.seconds.toFixed(0)} s`,
    '',
    '(a) Table 1 — problems solved (greedy)',
    '| D_pos model (KD) | D_neg model | both | union | IoU | NAT | NAT ∩ neg-only |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    `| ${t1.pos} | ${t1.neg} | ${t1.both} | ${t1.union} | ${t1.iou.toFixed(3)} | ${t1.nat} | ${t1.nat_and_neg_only} |`,
    '',
    '(b) Table 2 — greedy accuracy % [95% CI]',
    '| student | accuracy | 95% CI | train loss first → last |',
    '|---|---:|---|---|',
    ...Object.entries(r.table2).map(
      ([k, a]) =>
        `| ${k} | ${pct(a.accuracy)} | ${ci(a.ci95)} | ${a.first_loss !== undefined ? `${a.first_loss.toFixed(3)} → ${a.last_loss!.toFixed(3)}` : '—'} |`,
    ),
    ...('nat_kd' in r.table2
      ? [
          'controls: nat_kd = NAT with the KD LoRA as its assistant (no negative data); nat_zero = NAT with a zero assistant (the unit alone)',
        ]
      : []),
    '',
    `(c) voting over samples of the ${r.config.voteStudent} student (T = ${r.config.temperature}, λ = ${r.config.lambda}${r.voting[0] && r.voting[0].sc.n !== r.n ? `; the first ${r.voting[0].sc.n} problems` : ''}) — accuracy %`,
    '| m | SC | WS | ASC | early stop (mean samples) |',
    '|---:|---:|---:|---:|---:|',
    ...r.voting.map(
      (v) =>
        `| ${v.m} | ${pct(v.sc.accuracy)} | ${pct(v.ws.accuracy)} | ${pct(v.asc.accuracy)} | ${pct(v.early_stop.accuracy)} (${v.early_stop.mean_samples.toFixed(1)}) |`,
    ),
    '',
    r.ranker
      ? `(d) ranker pairwise accuracy: ${pct(r.ranker.accuracy)}% ${ci(r.ranker.ci95)} over ${r.ranker.pairs} held-out pairs`
      : '(d) ranker pairwise accuracy: not run yet',
    ...(r.pending.length ? ['', `not run yet: ${r.pending.join(', ')}`] : []),
  ];
  return lines.join('\n') + '\n';
}

const sameBudget = (have: StageConfig, want: Partial<StageConfig>) =>
  Object.entries(want).every(([k, v]) => JSON.stringify(have[k as keyof StageConfig]) === JSON.stringify(v));

/** Writes through a temporary file, so a run stopped mid-write leaves the old file or the new one. */
async function writeAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  await writeFile(path + '.part', bytes);
  await rename(path + '.part', path);
}

async function readOrNull(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** `--save DIR`: finished stages, the running stage's checkpoint and the evaluation's outputs. */
export function dirStore(dir: string, want: Partial<StageConfig>): ReproStore {
  const ckpt = (key: string) => join(dir, `${key}.ckpt`);
  return {
    finished: (key) => savedStage(join(dir, key), want),
    async finish(key, r) {
      const d = join(dir, key);
      await mkdir(d, { recursive: true });
      // result.json last: a stage directory with it is complete
      const files = Object.entries(stageFiles(r)).sort(
        ([a], [b]) => +(a === 'result.json') - +(b === 'result.json'),
      );
      for (const [file, bytes] of files) await writeAtomic(join(d, file), bytes);
      await rm(ckpt(key), { force: true });
    },
    async checkpoint(key, stage) {
      const bytes = await readOrNull(ckpt(key));
      if (!bytes) return null;
      const c = deserialize(bytes) as StageCheckpoint;
      return c.stage === stage && sameBudget(c.config, want) ? c : null;
    },
    async saveCheckpoint(key, c) {
      await mkdir(dir, { recursive: true });
      await writeAtomic(ckpt(key), serialize(c));
    },
    async get<V>(key: string) {
      const bytes = await readOrNull(join(dir, 'eval', `${key}.json`));
      return bytes ? (JSON.parse(bytes.toString('utf8')) as V) : null;
    },
    async put(key, value) {
      await mkdir(join(dir, 'eval'), { recursive: true });
      await writeAtomic(join(dir, 'eval', `${key}.json`), JSON.stringify(value));
    },
  };
}

/** A stage `--save` wrote earlier with the same budget (so a stopped run goes on where it was). */
async function savedStage(dir: string, want: Partial<StageConfig>): Promise<StageResult | null> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return null;
  }
  if (!names.includes('result.json')) return null;
  const files: Record<string, ArrayBuffer> = {};
  for (const n of names) files[n] = await readBinary(join(dir, n));
  const meta = JSON.parse(new TextDecoder().decode(files['result.json'])) as Omit<StageResult, 'adapters'>;
  if (!sameBudget(meta.config, want) || meta.cancelled) return null;
  return { ...meta, adapters: readStageFiles(files).adapters };
}

export async function reproCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('repro', () =>
    parseArgs({
      args: argv,
      options: {
        data: { type: 'string' },
        quick: { type: 'boolean', default: false },
        model: { type: 'string', default: DEFAULT_MODEL },
        tokenizer: { type: 'string' },
        kind: { type: 'string', default: 'arith' },
        out: { type: 'string' },
        steps: { type: 'string' },
        batch: { type: 'string' },
        test: { type: 'string' },
        'held-out': { type: 'string' },
        m: { type: 'string' },
        'vote-problems': { type: 'string' },
        backend: { type: 'string', default: 'gpu' },
        save: { type: 'string' },
        resume: { type: 'string' },
      },
      strict: true,
    }),
  );
  if (!values.data) throw new EngineError('BAD_ARGUMENT', 'repro needs --data <teacher dataset>');
  const kind = parseKind('repro', values.kind);
  const quick = values.quick;
  const ds = parseDataset(await readText('repro', values.data), { kind, name: values.data });
  const { train, heldOut } = heldOutSplit(ds, { fraction: Number(values['held-out'] ?? 0.2), seed: 0 });
  const nTest = Number(values.test ?? (quick ? 16 : 1000));
  const { pos, neg } = splitPosNeg(train);
  const item = (x: (typeof pos)[number]) => ({ question: x.problem.question, rationale: x.rationale.text });
  const test = heldOut.problems.slice(0, nTest).map((p) => ({
    question: p.question,
    gold: p.goldAnswer,
    pos: p.rationales.filter((r) => r.correct).map((r) => r.text),
    neg: p.rationales.filter((r) => !r.correct).map((r) => r.text),
  }));
  if (test.length < nTest)
    process.stderr.write(
      `note: only ${test.length} held-out problems (asked for ${nTest}); raise --held-out or the data size\n`,
    );
  const voteProblems = values['vote-problems'];
  if (voteProblems !== undefined && !(Number.isInteger(Number(voteProblems)) && Number(voteProblems) >= 1))
    throw new EngineError(
      'BAD_ARGUMENT',
      `--vote-problems ${voteProblems}: give how many held-out problems to vote on, a whole number ≥ 1.`,
    );
  const cfg: ReproConfig = {
    ...DEFAULT_REPRO,
    m: Number(values.m ?? (quick ? 4 : 16)),
    maxNew: quick ? 48 : DEFAULT_REPRO.maxNew,
    ...(voteProblems !== undefined ? { voteProblems: Number(voteProblems) } : {}),
    stage: {
      steps: Number(values.steps ?? (quick ? 4 : 350)),
      batchSize: Number(values.batch ?? (quick ? 4 : 16)),
      targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'],
      lr: 5e-3, // the model card's recipe (LoRA r8 on all linear layers, warm-up + linear decay)
    },
  };
  let prior: ReproResult | null = null;
  if (values.resume !== undefined) {
    const text = await readText('repro', values.resume);
    try {
      prior = JSON.parse(text) as ReproResult;
    } catch (e) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `--resume ${values.resume}: not a repro result (${(e as Error).message}); give a file an earlier run wrote with --out.`,
      );
    }
    const why = priorMismatch(prior, heldoutTag(test.map((p) => p.question)), cfg);
    if (why) throw new EngineError('BAD_ARGUMENT', `--resume ${values.resume}: ${why}.`);
  }
  const be = await makeBackend(values.backend as BackendKind);
  const { model, tokenizer } = await loadAnyModel(be as never, values.model, values.tokenizer);
  process.stderr.write(
    `repro: D_pos ${pos.length}, D_neg ${neg.length}, ${test.length} held-out problems, ${cfg.stage.steps} steps per stage\n`,
  );
  const r = await repro(
    model,
    tokenizer,
    kind,
    { pos: pos.map(item), neg: neg.map(item) },
    test,
    cfg,
    (l) => process.stderr.write(l + '\n'),
    values.save ? dirStore(values.save, cfg.stage) : null,
    // --out holds the figures so far from Table 1 on (`pending` names the rest), so a run stopped
    // part-way leaves what it measured
    async (partial) => {
      if (values.out) await writeAtomic(values.out, JSON.stringify(partial, null, 1) + '\n');
    },
    prior,
  );
  process.stdout.write(reproTables(r));
  return 0;
}
