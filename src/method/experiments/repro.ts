/**
 * The paper's experiments, small (issue "method", item 8), on any model + teacher dataset:
 *  (a) Table 1: held-out problems solved by the D_pos-trained and the D_neg-trained student,
 *      their intersection and IoU, and by NAT;
 *  (b) Table 2: greedy accuracy of base, KD, MIX, CL, NT, UL, NAT, NCE (equal steps each), and two
 *      controls for NAT: its assistant the KD LoRA (`nat_kd`) or zero (`nat_zero`);
 *  (c) SC vs WS vs ASC (and early stopping) at m = 1, 2, 4, 8, 16 over samples of one student;
 *  (d) the ranker's pairwise accuracy on held-out (positive, negative) pairs.
 * Every accuracy comes with a 95% Wilson interval. Runs on the GPU backend or the CPU reference.
 */
import type { BackendTensor } from '../../engine/backend/types.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import type { LoraState } from '../../engine/model/lora.ts';
import type { TextTokenizer } from '../../engine/infer/generate.ts';
import { answersEqual, extractAnswer, type AnswerKind } from '../answers/index.ts';
import { accuracyOf, loadRanker, loadStudent, solve, wilson } from '../eval.ts';
import type { StageConfig, StageName } from '../stages/config.ts';
import {
  runStage,
  type StageAdapters,
  type StageCheckpoint,
  type StageData,
  type StageResult,
} from '../stages/stages.ts';
import { earlyStop, vote, type VoteRule, type VoteSample } from '../voting/index.ts';

export interface ReproProblem {
  question: string;
  /** The gold answer, extracted (e.g. "10"). */
  gold: string;
  /** The teacher's rationales of this held-out question (for the ranker's pairs). */
  pos: string[];
  neg: string[];
}

export interface ReproConfig {
  /** Stage settings shared by every stage (equal budget). */
  stage: Partial<StageConfig>;
  /** Samples per question for (c). */
  m: number;
  temperature: number;
  maxNew: number;
  /** The student whose samples are voted on. */
  voteStudent: 'kd' | 'nat';
  /**
   * Vote on the first this many held-out problems (default: all). Sampling m rationales per
   * problem and scoring each is the run's costliest part on a software GPU.
   */
  voteProblems?: number;
  lambda: number;
  seed: number;
  /** Steps between a stage's checkpoints when the run has a store. */
  checkpointEvery: number;
}

export const DEFAULT_REPRO: ReproConfig = {
  stage: {},
  m: 16,
  temperature: 0.7,
  maxNew: 96,
  voteStudent: 'nat',
  lambda: 1,
  seed: 1,
  checkpointEvery: 25,
};

export interface Acc {
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
}

export interface ReproResult {
  n: number;
  config: ReproConfig;
  table1: {
    pos: number;
    neg: number;
    both: number;
    union: number;
    iou: number;
    nat: number;
    nat_and_neg_only: number;
  };
  table2: Record<string, Acc & { first_loss?: number; last_loss?: number }>;
  voting: { m: number; sc: Acc; ws: Acc; asc: Acc; early_stop: Acc & { mean_samples: number } }[];
  /** Null until the ranker's pairs are scored. */
  ranker: { pairs: number; accuracy: number; ci95: [number, number] } | null;
  seconds: number;
  /**
   * What has not run yet, in the order it runs (`REPRO_PARTS`): empty in a finished run's result;
   * a report made part-way (`repro`'s `report`) lists the rest.
   */
  pending: string[];
}

/** The parts of a run after Table 1, in order: the votes, the ranker, the baselines, the controls. */
export const REPRO_PARTS = ['voting', 'ranker', 'mix', 'cl', 'nt', 'ul', 'nat_kd', 'nat_zero'] as const;

export type ReproLog = (line: string) => void;

/**
 * Where a long run keeps what it has done, so that a stopped run goes on where it was: finished
 * stages, the running stage's last checkpoint, and the evaluation's outputs (greedy texts per
 * student, the sampled rationales and their ranker scores, in chunks). The CLI keeps them in
 * `--save DIR`; without a store nothing is kept.
 */
export interface ReproStore {
  /** The run stored under `key` (a stage's name, or a control's: `nat_kd`), finished earlier with this budget, or null. */
  finished(key: string): Promise<StageResult | null>;
  finish(key: string, r: StageResult): Promise<void>;
  /** The last checkpoint of `stage` stored under `key` with this budget, or null. */
  checkpoint(key: string, stage: StageName): Promise<StageCheckpoint | null>;
  saveCheckpoint(key: string, c: StageCheckpoint): Promise<void>;
  /** A cached evaluation output under `key` (the key names everything it depends on), or null. */
  get<V>(key: string): Promise<V | null>;
  put(key: string, value: unknown): Promise<void>;
}

/** Table 2's control rows: NAT with the KD LoRA as its assistant, and with a zero assistant. */
export const REPRO_CONTROLS = ['nat_kd', 'nat_zero'] as const;

/** A copy of a LoRA with every B matrix 0: its Δ(x) = B·A·x is 0 for every input. */
export function zeroLoraB(s: LoraState): LoraState {
  const tensors: LoraState['tensors'] = {};
  for (const [name, t] of Object.entries(s.tensors))
    tensors[name] = name.endsWith('.B') ? { shape: [...t.shape], data: new Float32Array(t.data.length) } : t;
  return { ...s, tensors };
}

/** Questions per stored chunk of the voting samples. */
const SAMPLE_CHUNK = 50;
/**
 * Sequences per sampling batch: whole questions' m samples (m = 16: 4 questions), each question's
 * prompt prefilled once and shared by its samples (generate.ts). The batch fixes the sample
 * streams (each batch seeds its own), so it is part of a chunk's cache key.
 */
const sampleBatch = (m: number) => Math.max(1, Math.floor(64 / m)) * m;
/** Sequences per greedy batch (greedy text does not depend on the batch). */
const GREEDY_BATCH = 64;

/** FNV-1a over the strings: names a list of questions in a cache key. */
function fingerprint(xs: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const x of xs) {
    for (let i = 0; i < x.length; i++) h = Math.imul(h ^ x.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x0a, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** A trained stage's identity in cache keys: its steps and exact last loss. */
const stageTag = (r: StageResult | undefined) =>
  r ? `${r.stage}-${r.losses.length}-${r.losses.at(-1)!.toPrecision(8)}` : 'base';

function acc(k: number, n: number): Acc {
  return { n, correct: k, accuracy: n ? k / n : 0, ci95: wilson(k, n) };
}

export async function repro<T extends BackendTensor>(
  model: LlamaModel<T>,
  tok: TextTokenizer,
  kind: AnswerKind,
  train: StageData,
  test: readonly ReproProblem[],
  cfg: ReproConfig = DEFAULT_REPRO,
  log: ReproLog = () => {},
  store: ReproStore | null = null,
  /** Called with the figures so far after Table 1, the votes, the baselines and the controls. */
  report: (partial: ReproResult) => void | Promise<void> = () => {},
): Promise<ReproResult> {
  const t0 = performance.now();
  const golds = test.map((p) => p.gold);
  const questions = test.map((p) => p.question);
  const qTag = `n${test.length}-${fingerprint(questions)}`;
  /** `make()`'s value, or the one stored under `key` by an earlier run. */
  const cached = async <V>(key: string, make: () => Promise<V>): Promise<V> => {
    const old = store ? await store.get<V>(key) : null;
    if (old !== null) return old;
    const v = await make();
    await store?.put(key, v);
    return v;
  };
  const stage = async (
    name: StageName,
    inputs: StageAdapters = {},
    key: string = name,
  ): Promise<StageResult> => {
    const t = performance.now();
    const old = store ? await store.finished(key) : null;
    if (old) {
      log(
        `reused ${key}: ${old.losses.length} steps, loss ${old.losses[0]?.toFixed(3)} → ${old.losses.at(-1)?.toFixed(3)}`,
      );
      return old;
    }
    const resume = store ? await store.checkpoint(key, name) : null;
    if (resume) log(`resuming ${key} at step ${resume.step}/${resume.config.steps}`);
    const r = await runStage({
      stage: name,
      model,
      tokenizer: tok,
      data: train,
      config: cfg.stage,
      inputs,
      ...(resume ? { resume } : {}),
      ...(store
        ? { checkpointEvery: cfg.checkpointEvery, onCheckpoint: (c) => store.saveCheckpoint(key, c) }
        : {}),
      onProgress: (p) => {
        if (p.step % 50 === 0 && p.step < p.steps)
          log(
            `  ${key} step ${p.step}/${p.steps}: loss ${p.loss.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(0)} s)`,
          );
      },
    });
    log(
      `trained ${key}: ${r.losses.length} steps, loss ${r.losses[0]?.toFixed(3)} → ${r.losses.at(-1)?.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(0)} s)`,
    );
    await store?.finish(key, r);
    return r;
  };
  const greedy = async (name: string, r: StageResult | undefined) => {
    const texts = await cached(`greedy-${stageTag(r)}-${qTag}-new${cfg.maxNew}`, async () => {
      const student = loadStudent(model, r?.adapters ?? {}, r?.stage ?? null);
      try {
        return await solve(model, student, tok, questions, { maxNew: cfg.maxNew, batch: GREEDY_BATCH });
      } finally {
        student.destroy();
      }
    });
    const a = accuracyOf(kind, texts, golds);
    log(
      `greedy ${name}: ${(100 * a.accuracy).toFixed(1)}% [${(100 * a.ci95[0]).toFixed(1)}, ${(100 * a.ci95[1]).toFixed(1)}]`,
    );
    return a;
  };

  const results: Partial<Record<string, StageResult>> = {};
  const greedyAcc: Record<string, Awaited<ReturnType<typeof greedy>>> = {};
  const evaluate = async (names: readonly string[]) => {
    for (const name of names) greedyAcc[name] = await greedy(name, results[name]);
  };
  // the method's own stages and their figures first (their adapters are what the app ships, and a
  // run stopped part-way has Table 1, the votes and the ranker), then the baselines
  for (const s of ['kd', 'neg'] as const) results[s] = await stage(s);
  results['nat'] = await stage('nat', { neg: results['neg']!.adapters.lora! });
  results['nce'] = await stage('nce', results['nat']!.adapters);
  results['rank'] = await stage('rank');
  await evaluate(['base', 'kd', 'neg', 'nat', 'nce']);
  const solved = (name: string) => greedyAcc[name]!.solved;
  const count = (f: (i: number) => boolean) => test.reduce((n, _, i) => n + (f(i) ? 1 : 0), 0);
  const P = solved('kd'),
    N = solved('neg'),
    A = solved('nat');
  const both = count((i) => P[i]! && N[i]!);
  const union = count((i) => P[i]! || N[i]!);
  const table1 = {
    pos: count((i) => P[i]!),
    neg: count((i) => N[i]!),
    both,
    union,
    iou: union ? both / union : 0,
    nat: count((i) => A[i]!),
    nat_and_neg_only: count((i) => A[i]! && N[i]! && !P[i]!),
  };

  const voting: ReproResult['voting'] = [];
  let rankerOut: ReproResult['ranker'] = null;
  /** The figures so far: Table 2's rows in the paper's order, then the controls. */
  const snapshot = (pending: readonly string[]): ReproResult => {
    const table2: ReproResult['table2'] = {};
    for (const name of ['base', 'kd', 'mix', 'cl', 'nt', 'ul', 'nat', 'nce', ...REPRO_CONTROLS]) {
      const a = greedyAcc[name],
        r = results[name];
      if (!a) continue;
      table2[name] = {
        ...acc(a.correct, a.n),
        ...(r ? { first_loss: r.losses[0]!, last_loss: r.losses.at(-1)! } : {}),
      };
    }
    return {
      n: test.length,
      config: cfg,
      table1,
      table2,
      voting,
      ranker: rankerOut,
      seconds: (performance.now() - t0) / 1000,
      pending: [...pending],
    };
  };
  await report(snapshot(REPRO_PARTS));

  // (c) voting over m samples of one student, scored by the ranker (stored in chunks of questions)
  const vs = results[cfg.voteStudent]!;
  const rk = results['rank']!;
  let student: ReturnType<typeof loadStudent<T>> | null = null;
  let rankerModel: ReturnType<typeof loadRanker<T>> | null = null;
  const ranker = () => (rankerModel ??= loadRanker(model, tok, rk.adapters));
  try {
    const texts: string[] = [];
    const scores: number[] = [];
    const nv = Math.min(questions.length, cfg.voteProblems ?? questions.length);
    for (let q0 = 0; q0 < nv; q0 += SAMPLE_CHUNK) {
      const chunk = questions.slice(q0, Math.min(nv, q0 + SAMPLE_CHUNK));
      const qs = chunk.flatMap((q) => Array.from({ length: cfg.m }, () => q));
      const batch = sampleBatch(cfg.m);
      const key = `samples-${stageTag(vs)}-${stageTag(rk)}-${fingerprint(chunk)}-m${cfg.m}-t${cfg.temperature}-s${cfg.seed + q0}-b${batch}-new${cfg.maxNew}`;
      const got = await cached(key, async () => {
        const t0 = performance.now();
        student ??= loadStudent(model, vs.adapters, vs.stage);
        const t = await solve(model, student, tok, qs, {
          maxNew: cfg.maxNew,
          batch,
          temperature: cfg.temperature,
          seed: cfg.seed + q0,
        });
        const t1 = performance.now();
        const s = await ranker().score(t.map((x, i) => ({ question: qs[i]!, rationale: x })));
        log(
          `  ${qs.length} samples in ${((t1 - t0) / 1000).toFixed(0)} s, scored in ${((performance.now() - t1) / 1000).toFixed(0)} s`,
        );
        return { texts: t, scores: s };
      });
      texts.push(...got.texts);
      scores.push(...got.scores);
      if (nv > SAMPLE_CHUNK) log(`  sampled ${Math.min(q0 + SAMPLE_CHUNK, nv)}/${nv} questions × ${cfg.m}`);
    }
    const equal = (a: string, b: string) => answersEqual(kind, a, b);
    const samplesOf = (q: number, m: number): VoteSample[] =>
      Array.from({ length: m }, (_, j) => ({
        answer: extractAnswer(kind, texts[q * cfg.m + j]!),
        score: scores[q * cfg.m + j]!,
      }));
    const right = (a: string | null, q: number) => a !== null && answersEqual(kind, a, golds[q]!);
    for (const m of [1, 2, 4, 8, 16].filter((x) => x <= cfg.m)) {
      const k: Record<VoteRule, number> = { sc: 0, ws: 0, asc: 0 };
      let kes = 0,
        used = 0;
      test.slice(0, nv).forEach((_, q) => {
        const s = samplesOf(q, m);
        for (const rule of ['sc', 'ws', 'asc'] as const) {
          if (right(vote(s, rule, { equal, lambda: cfg.lambda }).answer, q)) k[rule]++;
        }
        const es = earlyStop(s, { equal });
        used += es.stopAt;
        if (right(es.answer, q)) kes++;
      });
      voting.push({
        m,
        sc: acc(k.sc, nv),
        ws: acc(k.ws, nv),
        asc: acc(k.asc, nv),
        early_stop: { ...acc(kes, nv), mean_samples: used / Math.max(1, nv) },
      });
      log(
        `m=${m}: SC ${pct(k.sc, nv)} WS ${pct(k.ws, nv)} ASC ${pct(k.asc, nv)} early-stop ${pct(kes, nv)} (${(used / nv).toFixed(1)} samples)`,
      );
    }
    // (d) pairwise accuracy on held-out pairs: the first positive and first negative of each question
    const pairs = test.filter((p) => p.pos.length > 0 && p.neg.length > 0);
    const sp = await ranker().score(pairs.map((p) => ({ question: p.question, rationale: p.pos[0]! })));
    const sn = await ranker().score(pairs.map((p) => ({ question: p.question, rationale: p.neg[0]! })));
    const k = sp.filter((s, i) => s > sn[i]!).length;
    rankerOut = {
      pairs: pairs.length,
      accuracy: pairs.length ? k / pairs.length : 0,
      ci95: wilson(k, pairs.length),
    };
    log(`ranker pairwise accuracy ${pct(k, pairs.length)} over ${pairs.length} held-out pairs`);
  } finally {
    (student as { destroy(): void } | null)?.destroy();
    (rankerModel as { destroy(): void } | null)?.destroy();
  }

  const rest = REPRO_PARTS.slice(2);
  await report(snapshot(rest));
  // the baselines, each reported as its greedy figure is in
  for (const [i, s] of (['mix', 'cl', 'nt', 'ul'] as const).entries()) {
    results[s] = await stage(s);
    await evaluate([s]);
    await report(snapshot(rest.slice(i + 1)));
  }
  // Controls for NAT (docs/method.md, "Controls"): the same stage, steps and parameters with
  // the KD LoRA as its assistant (no negative data), and with a zero assistant (the unit alone)
  results['nat_kd'] = await stage('nat', { neg: results['kd']!.adapters.lora! }, 'nat_kd');
  await evaluate(['nat_kd']);
  await report(snapshot(['nat_zero']));
  results['nat_zero'] = await stage('nat', { neg: zeroLoraB(results['neg']!.adapters.lora!) }, 'nat_zero');
  await evaluate(['nat_zero']);
  function pct(k: number, n = test.length): string {
    return `${((100 * k) / Math.max(1, n)).toFixed(1)}%`;
  }
  const done = snapshot([]);
  await report(done);
  return done;
}
