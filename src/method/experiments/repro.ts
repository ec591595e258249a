/**
 * The paper's experiments, small (issue "method", item 8), on any model + teacher dataset:
 *  (a) Table 1: held-out problems solved by the D_pos-trained and the D_neg-trained student,
 *      their intersection and IoU, and by NAT;
 *  (b) Table 2: greedy accuracy of base, KD, MIX, CL, NT, UL, NAT, NCE (equal steps each);
 *  (c) SC vs WS vs ASC (and early stopping) at m = 1, 2, 4, 8, 16 over samples of one student;
 *  (d) the ranker's pairwise accuracy on held-out (positive, negative) pairs.
 * Every accuracy comes with a 95% Wilson interval. Runs on the GPU backend or the CPU reference.
 */
import type { BackendTensor } from '../../engine/backend/types.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import type { TextTokenizer } from '../../engine/infer/generate.ts';
import { answersEqual, extractAnswer, type AnswerKind } from '../answers/index.ts';
import { accuracyOf, loadRanker, loadStudent, solve, wilson } from '../eval.ts';
import type { StageConfig, StageName } from '../stages/config.ts';
import { runStage, type StageAdapters, type StageData, type StageResult } from '../stages/stages.ts';
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
  lambda: number;
  seed: number;
}

export const DEFAULT_REPRO: ReproConfig = {
  stage: {},
  m: 16,
  temperature: 0.7,
  maxNew: 96,
  voteStudent: 'nat',
  lambda: 1,
  seed: 1,
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
  ranker: { pairs: number; accuracy: number; ci95: [number, number] };
  seconds: number;
}

export type ReproLog = (line: string) => void;

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
  /** Called as each stage finishes (e.g. to save its adapters before the next one starts). */
  onStage: (name: StageName, r: StageResult) => Promise<void> | void = () => {},
  /** A stage trained before with this budget (a resumed run), or null to train it now. */
  reuse: (name: StageName) => Promise<StageResult | null> = async () => null,
): Promise<ReproResult> {
  const t0 = performance.now();
  const golds = test.map((p) => p.gold);
  const questions = test.map((p) => p.question);
  const stage = async (name: StageName, inputs: StageAdapters = {}): Promise<StageResult> => {
    const t = performance.now();
    const old = await reuse(name);
    if (old) {
      log(
        `reused ${name}: ${old.losses.length} steps, loss ${old.losses[0]?.toFixed(3)} → ${old.losses.at(-1)?.toFixed(3)}`,
      );
      return old;
    }
    const r = await runStage({
      stage: name,
      model,
      tokenizer: tok,
      data: train,
      config: cfg.stage,
      inputs,
      onProgress: (p) => {
        if (p.step % 50 === 0 && p.step < p.steps)
          log(
            `  ${name} step ${p.step}/${p.steps}: loss ${p.loss.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(0)} s)`,
          );
      },
    });
    log(
      `trained ${name}: ${r.losses.length} steps, loss ${r.losses[0]?.toFixed(3)} → ${r.losses.at(-1)?.toFixed(3)} (${((performance.now() - t) / 1000).toFixed(0)} s)`,
    );
    await onStage(name, r);
    return r;
  };
  const greedy = async (name: string, adapters: StageAdapters, stageName: string | null) => {
    const student = loadStudent(model, adapters, stageName);
    try {
      const texts = await solve(model, student, tok, questions, { maxNew: cfg.maxNew, batch: 16 });
      const a = accuracyOf(kind, texts, golds);
      log(
        `greedy ${name}: ${(100 * a.accuracy).toFixed(1)}% [${(100 * a.ci95[0]).toFixed(1)}, ${(100 * a.ci95[1]).toFixed(1)}]`,
      );
      return a;
    } finally {
      student.destroy();
    }
  };

  const results: Partial<Record<string, StageResult>> = {};
  // the method's own stages first (their adapters are what the app ships), then the baselines
  for (const s of ['kd', 'neg'] as const) results[s] = await stage(s);
  results['nat'] = await stage('nat', { neg: results['neg']!.adapters.lora! });
  results['nce'] = await stage('nce', results['nat']!.adapters);
  results['rank'] = await stage('rank');
  for (const s of ['mix', 'cl', 'nt', 'ul'] as const) results[s] = await stage(s);

  const table2: ReproResult['table2'] = {};
  const solved: Record<string, boolean[]> = {};
  for (const name of ['base', 'kd', 'neg', 'mix', 'cl', 'nt', 'ul', 'nat', 'nce']) {
    const r = results[name];
    const a = await greedy(name, r?.adapters ?? {}, r?.stage ?? null);
    solved[name] = a.solved;
    if (name !== 'neg') {
      table2[name] = {
        ...acc(a.correct, a.n),
        ...(r ? { first_loss: r.losses[0]!, last_loss: r.losses.at(-1)! } : {}),
      };
    }
  }
  const count = (f: (i: number) => boolean) => test.reduce((n, _, i) => n + (f(i) ? 1 : 0), 0);
  const P = solved['kd']!,
    N = solved['neg']!,
    A = solved['nat']!;
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

  // (c) voting over m samples of one student, scored by the ranker
  const vs = results[cfg.voteStudent]!;
  const student = loadStudent(model, vs.adapters, vs.stage);
  const ranker = loadRanker(model, tok, results['rank']!.adapters);
  const voting: ReproResult['voting'] = [];
  let rankerOut: ReproResult['ranker'];
  try {
    const qs = questions.flatMap((q) => Array.from({ length: cfg.m }, () => q));
    const texts = await solve(model, student, tok, qs, {
      maxNew: cfg.maxNew,
      batch: Math.min(64, Math.max(16, cfg.m)),
      temperature: cfg.temperature,
      seed: cfg.seed,
    });
    const scores = await ranker.score(texts.map((t, i) => ({ question: qs[i]!, rationale: t })));
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
      test.forEach((_, q) => {
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
        sc: acc(k.sc, test.length),
        ws: acc(k.ws, test.length),
        asc: acc(k.asc, test.length),
        early_stop: { ...acc(kes, test.length), mean_samples: used / Math.max(1, test.length) },
      });
      log(
        `m=${m}: SC ${pct(k.sc)} WS ${pct(k.ws)} ASC ${pct(k.asc)} early-stop ${pct(kes)} (${(used / test.length).toFixed(1)} samples)`,
      );
    }
    // (d) pairwise accuracy on held-out pairs: the first positive and first negative of each question
    const pairs = test.filter((p) => p.pos.length > 0 && p.neg.length > 0);
    const sp = await ranker.score(pairs.map((p) => ({ question: p.question, rationale: p.pos[0]! })));
    const sn = await ranker.score(pairs.map((p) => ({ question: p.question, rationale: p.neg[0]! })));
    const k = sp.filter((s, i) => s > sn[i]!).length;
    rankerOut = {
      pairs: pairs.length,
      accuracy: pairs.length ? k / pairs.length : 0,
      ci95: wilson(k, pairs.length),
    };
    log(`ranker pairwise accuracy ${pct(k, pairs.length)} over ${pairs.length} held-out pairs`);
  } finally {
    student.destroy();
    ranker.destroy();
  }
  function pct(k: number, n = test.length): string {
    return `${((100 * k) / Math.max(1, n)).toFixed(1)}%`;
  }
  return {
    n: test.length,
    config: cfg,
    table1,
    table2,
    voting,
    ranker: rankerOut,
    seconds: (performance.now() - t0) / 1000,
  };
}
