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
import { EngineError } from '../../engine/errors.ts';
import { answersEqual, extractAnswer, type AnswerKind } from '../answers/index.ts';
import { accuracyOf, loadRanker, loadStudent, solve, wilson } from '../eval.ts';
import type { StageName } from '../stages/config.ts';
import { runStage, type StageAdapters, type StageData, type StageResult } from '../stages/stages.ts';
import { countCorrect } from '../voting/index.ts';
import {
  acc,
  DEFAULT_REPRO,
  fingerprint,
  heldoutTag,
  priorMismatch,
  REPRO_CONTROLS,
  REPRO_PARTS,
  sameVoteProblems,
  type ReproConfig,
  type ReproLog,
  type ReproProblem,
  type ReproResult,
  type ReproStore,
} from './result.ts';

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

/** A trained stage's identity in cache keys: its steps and exact last loss. */
const stageTag = (r: StageResult | undefined) =>
  r ? `${r.stage}-${r.losses.length}-${r.losses.at(-1)!.toPrecision(8)}` : 'base';

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
  /**
   * An earlier run's result (a partial report) on the same held-out set with the same settings:
   * what it finished (Table 1, the votes and the ranker, each baseline and control) is taken from
   * it, and only its `pending` parts run. Refused with the reason when it does not match.
   */
  prior: ReproResult | null = null,
): Promise<ReproResult> {
  const t0 = performance.now();
  const golds = test.map((p) => p.gold);
  const questions = test.map((p) => p.question);
  const qTag = heldoutTag(questions);
  if (prior) {
    const why = priorMismatch(prior, qTag, cfg);
    if (why) throw new EngineError('BAD_ARGUMENT', `The earlier result cannot be resumed: ${why}.`);
  }
  /**
   * Parts the prior result finished (the votes and the ranker are one part: they run together,
   * and again when this run votes on another number of problems).
   */
  const priorDone = (part: string) =>
    prior !== null &&
    !prior.pending.includes(part) &&
    !(
      (part === 'voting' || part === 'ranker') &&
      (prior.pending.includes('voting') || prior.pending.includes('ranker') || !sameVoteProblems(prior, cfg))
    );
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

  // each stage trained (or read back) once, when first needed: a resumed run needs only what its
  // pending parts use
  const trained: Partial<Record<string, Promise<StageResult>>> = {};
  const plan: Record<string, () => Promise<StageResult>> = {
    kd: () => stage('kd'),
    neg: () => stage('neg'),
    nat: async () => stage('nat', { neg: (await need('neg')).adapters.lora! }),
    nce: async () => stage('nce', (await need('nat')).adapters),
    rank: () => stage('rank'),
    mix: () => stage('mix'),
    cl: () => stage('cl'),
    nt: () => stage('nt'),
    ul: () => stage('ul'),
    // Controls for NAT (docs/method.md, "Controls"): the same stage, steps and parameters with
    // the KD LoRA as its assistant (no negative data), and with a zero assistant (the unit alone)
    nat_kd: async () => stage('nat', { neg: (await need('kd')).adapters.lora! }, 'nat_kd'),
    nat_zero: async () => stage('nat', { neg: zeroLoraB((await need('neg')).adapters.lora!) }, 'nat_zero'),
  };
  const need = (key: string): Promise<StageResult> => (trained[key] ??= plan[key]!());
  /** Table 2's rows so far (a prior run's, then this run's). */
  const rows: ReproResult['table2'] = {};
  const greedyAcc: Record<string, Awaited<ReturnType<typeof greedy>>> = {};
  const evaluate = async (names: readonly string[]) => {
    for (const name of names) {
      const r = name === 'base' ? undefined : await need(name);
      const a = (greedyAcc[name] = await greedy(name, r));
      rows[name] = {
        ...acc(a.correct, a.n),
        ...(r ? { first_loss: r.losses[0]!, last_loss: r.losses.at(-1)! } : {}),
      };
    }
  };
  let table1: ReproResult['table1'];
  if (prior) {
    Object.assign(rows, prior.table2);
    table1 = prior.table1;
    const toRun = REPRO_PARTS.filter((p) => !priorDone(p));
    log(`resuming an earlier result: ${toRun.length ? toRun.join(', ') : 'nothing'} to run`);
  } else {
    // the method's own stages and their figures first (their adapters are what the app ships, and
    // a run stopped part-way has Table 1, the votes and the ranker), then the baselines
    for (const s of ['kd', 'neg', 'nat', 'nce', 'rank']) await need(s);
    await evaluate(['base', 'kd', 'neg', 'nat', 'nce']);
    delete rows['neg']; // Table 1's, not Table 2's
    const solved = (name: string) => greedyAcc[name]!.solved;
    const count = (f: (i: number) => boolean) => test.reduce((n, _, i) => n + (f(i) ? 1 : 0), 0);
    const P = solved('kd'),
      N = solved('neg'),
      A = solved('nat');
    const both = count((i) => P[i]! && N[i]!);
    const union = count((i) => P[i]! || N[i]!);
    table1 = {
      pos: count((i) => P[i]!),
      neg: count((i) => N[i]!),
      both,
      union,
      iou: union ? both / union : 0,
      nat: count((i) => A[i]!),
      nat_and_neg_only: count((i) => A[i]! && N[i]! && !P[i]!),
    };
  }

  let voting: ReproResult['voting'] = [];
  let rankerOut: ReproResult['ranker'] = null;
  /** The figures so far: Table 2's rows in the paper's order, then the controls. */
  const snapshot = (pending: readonly string[]): ReproResult => {
    const table2: ReproResult['table2'] = {};
    for (const name of ['base', 'kd', 'mix', 'cl', 'nt', 'ul', 'nat', 'nce', ...REPRO_CONTROLS])
      if (rows[name]) table2[name] = rows[name];
    return {
      n: test.length,
      heldout: qTag,
      config: cfg,
      table1,
      table2,
      voting,
      ranker: rankerOut,
      seconds: (prior?.seconds ?? 0) + (performance.now() - t0) / 1000,
      pending: [...pending],
    };
  };
  if (!prior) await report(snapshot(REPRO_PARTS));

  // (c) voting over m samples of one student, scored by the ranker (stored in chunks of questions)
  if (priorDone('voting')) {
    voting = prior!.voting;
    rankerOut = prior!.ranker;
  } else await votesAndRanker();
  async function votesAndRanker() {
    const vs = await need(cfg.voteStudent);
    const rk = await need('rank');
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
      const answers = texts.map((t) => extractAnswer(kind, t));
      for (const m of [1, 2, 4, 8, 16].filter((x) => x <= cfg.m)) {
        const { correct, samples } = countCorrect(
          golds.slice(0, nv).map((gold, q) => ({
            gold,
            samples: Array.from({ length: m }, (_, j) => ({
              answer: answers[q * cfg.m + j]!,
              score: scores[q * cfg.m + j]!,
            })),
          })),
          { equal, lambda: cfg.lambda },
        );
        const k = correct;
        voting.push({
          m,
          sc: acc(k.sc, nv),
          ws: acc(k.ws, nv),
          asc: acc(k.asc, nv),
          early_stop: { ...acc(k.early_stop, nv), mean_samples: samples.early_stop / Math.max(1, nv) },
        });
        log(
          `m=${m}: SC ${pct(k.sc, nv)} WS ${pct(k.ws, nv)} ASC ${pct(k.asc, nv)} early-stop ${pct(k.early_stop, nv)} (${(samples.early_stop / nv).toFixed(1)} samples)`,
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
  }

  // the baselines, then the controls, each reported as its greedy figure is in
  const rest = REPRO_PARTS.slice(2);
  const remaining = () => rest.filter((p) => !rows[p]);
  if (!priorDone('voting')) await report(snapshot(remaining()));
  for (const part of rest) {
    if (priorDone(part)) continue;
    await evaluate([part]);
    if (remaining().length) await report(snapshot(remaining()));
  }
  function pct(k: number, n = test.length): string {
    return `${((100 * k) / Math.max(1, n)).toFixed(1)}%`;
  }
  const done = snapshot([]);
  await report(done);
  return done;
}
