/**
 * The evaluator worker's engine (Compare view): greedy accuracy of several students on the same
 * held-out problems, the paper's Table 1 over them, and NCE's token-level KL(p_neg ‖ p_NAT) over a
 * rationale — "where the negative model would have gone another way". Definitions mirror the
 * CLI's `repro` (src/method/experiments/repro.ts): `solve` (with the runtime's KV type and planned context) + `accuracyOf` per student, Table 1 from
 * the D_pos (kd), D_neg (neg) and NAT students' solved sets; the KL and β are the ones NCE trains
 * with (`klForward`, `nceWeightsForward`, the same hooks as `nceObjective`). Plain data in and out.
 *
 * The student is the one chosen in Models: our safetensors model, or a big one (a GGUF file or URL,
 * web-llm's MLC build) loaded here through the same `StudentRuntime.load` as Solve's, planned for
 * `batch` sequences × a context (`inspect` shows the plan first; a refusal carries the planner's
 * suggestion), with the f16 KV cache the plan counts. This worker has its own GPU device, so a big
 * student here is a second copy of the weights next to Solve's: the app says so before it loads.
 *
 * @example
 *   const e = new EvalEngine();
 *   await e.init();                                   // navigator.gpu in a worker
 *   await e.load({ modelUrl: '/models/arith-student.safetensors' });
 *   const r = await e.evaluate({ sets: [{ id: 'base', name: 'base', files: {} }], problems, maxNew: 96, batch: 16 });
 *   r.sets[0].accuracy;                               // greedy accuracy of the base model
 *   const m = await e.klMap({ natFiles, question, rationale });
 *   m.beta;                                           // tanh(mean_t KL_t)
 *   // a GGUF student: planned for batch 16 × 512 positions, then loaded with progress
 *   const seen = await e.inspect({ gguf: file, plan: { sequences: 16, context: 512 } });
 *   if (seen.plan.verdict === 'ok') await e.load({ gguf: file, plan: { sequences: 16, context: 512 } }, onProgress);
 */
import type { ReproTable1 } from '../experiments/result.ts';
import { adapterMismatch as mismatchOf } from './adapter-fit.ts';
import type { BackendTensor } from '../../engine/backend/types.ts';
import { Tape } from '../../engine/autograd/tape.ts';
import { EngineError } from '../../engine/errors.ts';
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { TextTokenizer } from '../../engine/infer/generate.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import { llamaForward } from '../../engine/train/forward.ts';
import { packBatch, sequenceLength, uploadBatch } from '../../engine/train/trainer.ts';
import type { AnswerKind } from '../answers/index.ts';
import { accuracyOf, loadStudent, solve, wilson } from '../eval.ts';
import { readStageFiles } from '../stages/files.ts';
import type { StageAdapters } from '../stages/types.ts';
import { encodeExample, promptOf } from '../stages/text.ts';
import {
  isBigSource,
  StudentRuntime,
  unreadableChars,
  type GgufInspection,
  type LoadProgress,
  type MlcInspection,
  type StudentModelInfo,
  type StudentSource,
  type StudentTokenizer,
} from './runtime.ts';

/** A student to evaluate: an adapter set's files (as `stageFiles` writes them); `{}` = the base model. */
export interface EvalSet {
  id: string;
  name: string;
  files: Record<string, ArrayBuffer>;
}

export interface EvalProblem {
  question: string;
  /** The gold answer, extracted (e.g. "10"). */
  gold: string;
  kind: AnswerKind;
}

export interface EvalRequest {
  sets: readonly EvalSet[];
  problems: readonly EvalProblem[];
  /** New tokens at most per answer (repro: 96). */
  maxNew: number;
  /** Sequences decoded together (repro: 16). */
  batch: number;
}

export interface EvalProgress {
  /** Index of the set being evaluated, and how many there are. */
  set: number;
  sets: number;
  setName: string;
  /** Problems of this set done, of `problems`. */
  done: number;
  problems: number;
  /** Of all the work (sets × problems), 0..1. */
  fraction: number;
  elapsedMs: number;
}

export interface SetResult {
  id: string;
  name: string;
  /** What the set is as a student: 'base', 'lora', 'nat' or 'linmix'. */
  kind: string;
  /** Per problem: the greedy answer is right. */
  solved: boolean[];
  /** The greedy rationales. */
  texts: string[];
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
  seconds: number;
}

export interface EvalResult {
  sets: SetResult[];
  /** True when `cancel()` stopped the run: `sets` holds the sets finished before. */
  cancelled: boolean;
  seconds: number;
}

/** The paper's Table 1 (as repro's `table1`) plus the eight regions of the three-set Venn diagram. */
export interface Table1 extends ReproTable1 {
  /** Problems in exactly these sets (p = D_pos model, n = D_neg model, a = NAT); `none` = in no set. */
  regions: {
    p: number;
    n: number;
    a: number;
    pn: number;
    pa: number;
    na: number;
    pna: number;
    none: number;
  };
  total: number;
}

/**
 * Table 1 over the same problems: `pos`, `neg`, `nat` say per problem whether the D_pos model, the
 * D_neg model and NAT solved it. Same definitions as repro's table1; IoU = both / union (0 if empty).
 */
export function table1Of(pos: readonly boolean[], neg: readonly boolean[], nat: readonly boolean[]): Table1 {
  const total = pos.length;
  if (neg.length !== total || nat.length !== total)
    throw new EngineError(
      'BAD_ARGUMENT',
      `Table 1 compares students on the same problems: got ${pos.length}, ${neg.length} and ${nat.length} answers.`,
    );
  const r = { p: 0, n: 0, a: 0, pn: 0, pa: 0, na: 0, pna: 0, none: 0 };
  for (let i = 0; i < total; i++) {
    const key = `${pos[i] ? 'p' : ''}${neg[i] ? 'n' : ''}${nat[i] ? 'a' : ''}`;
    r[(key || 'none') as keyof typeof r]++;
  }
  const both = r.pn + r.pna;
  const union = r.p + r.n + r.pn + r.pa + r.na + r.pna;
  return {
    pos: r.p + r.pn + r.pa + r.pna,
    neg: r.n + r.pn + r.na + r.pna,
    both,
    union,
    iou: union ? both / union : 0,
    nat: r.a + r.pa + r.na + r.pna,
    nat_and_neg_only: r.na,
    regions: r,
    total,
  };
}

/** One loss token of the rationale (or EOS) and the two models' view of it. */
export interface KlToken {
  /** The token's text ('' for EOS). */
  text: string;
  eos: boolean;
  /** KL(p_neg ‖ p_NAT) of the distribution that predicts this token (nats). */
  kl: number;
  /** The most likely next token of the negative model and of NAT there ('' = EOS). */
  negTop: string;
  natTop: string;
}

export interface KlMap {
  tokens: KlToken[];
  /** tanh(mean KL) over the tokens: NCE's per-sequence weight is 0.5 + β. */
  beta: number;
  meanKl: number;
  maxKl: number;
}

export interface KlRequest {
  /** The files of a NAT set (lora + neg + nat safetensors). */
  natFiles: Record<string, ArrayBuffer>;
  question: string;
  rationale: string;
}

/** Throws a BAD_ARGUMENT error that says what is missing unless the adapters make a NAT model. */
export function requireNat(adapters: StageAdapters): void {
  const missing = [
    adapters.neg ? null : 'the negative LoRA (neg.safetensors)',
    adapters.lora ? null : 'the positive LoRA (lora.safetensors)',
    adapters.nat ? null : 'the integration unit (nat.safetensors)',
  ].filter((x): x is string => x !== null);
  if (missing.length > 0)
    throw new EngineError(
      'BAD_ARGUMENT',
      `The heat map compares a NAT model with its own negative model, and this adapter set has no ${missing.join(
        ' and no ',
      )}. Pick a set made by the NAT stage (it holds lora, neg and nat files).`,
    );
}

/**
 * KL(p_neg ‖ p_NAT) per rationale token of one (question, rationale), and NCE's β, on any backend:
 * the negative model is base + NAT's negative LoRA, NAT is the whole NAT student (as NCE's hooks).
 */
export async function tokenKl<T extends BackendTensor>(
  model: LlamaModel<T>,
  tok: TextTokenizer & { decode(ids: readonly number[]): string },
  adapters: StageAdapters,
  stage: string | null,
  question: string,
  rationale: string,
): Promise<KlMap> {
  requireNat(adapters);
  const be = model.be;
  const V = model.config.vocabSize;
  const ex = encodeExample(tok, question, rationale);
  const T = sequenceLength([ex], model.config.maxSeqLen);
  const p = packBatch([ex], T, 1);
  const nat = loadStudent(model, adapters, stage);
  const neg = loadStudent(model, { lora: adapters.neg! });
  const tape = new Tape(be);
  try {
    if (nat.kind !== 'nat') throw new EngineError('BAD_ARGUMENT', 'This adapter set is not a NAT model.');
    const batch = uploadBatch(tape, p);
    const zT = llamaForward(tape, model, batch, nat.hook(tape));
    const zN = llamaForward(tape, model, batch, neg.hook(tape));
    const kl = tape.alloc([T], 'klmap.kl');
    be.ops.klForward(kl, zN.t, zT.t, T, V);
    const mask = tape.alloc([T], 'klmap.mask');
    const m = p.weights.map((w) => (w !== 0 ? 1 : 0));
    be.write(mask, m);
    const beta = tape.alloc([1], 'klmap.beta');
    const weights = tape.alloc([T], 'klmap.weights');
    be.ops.nceWeightsForward(beta, weights, kl, mask, 1, T, 1);
    const [k, b, lt, ln] = await be.readMany([kl, beta, zT.t, zN.t]);
    const argmax = (z: Float32Array, t: number) => {
      let best = 0;
      for (let v = 1; v < V; v++) if (z[t * V + v]! > z[t * V + best]!) best = v;
      return best === tok.eos ? '' : tok.decode([best]);
    };
    const tokens: KlToken[] = [];
    for (let t = 0; t < T; t++) {
      if (!m[t]) continue;
      const id = p.targets[t]!;
      tokens.push({
        text: id === tok.eos ? '' : tok.decode([id]),
        eos: id === tok.eos,
        kl: k![t]!,
        negTop: argmax(ln!, t),
        natTop: argmax(lt!, t),
      });
    }
    const sum = tokens.reduce((s, x) => s + x.kl, 0);
    return {
      tokens,
      beta: b![0]!,
      meanKl: tokens.length ? sum / tokens.length : 0,
      maxKl: Math.max(0, ...tokens.map((x) => x.kl)),
    };
  } finally {
    tape.release();
    nat.destroy();
    neg.destroy();
  }
}

/**
 * Whether an adapter set was trained for a model of `config`'s shape: null, or why not (the check
 * Solve's `setStudent` makes, on the files' headers: nothing is allocated).
 */
export function adapterMismatch(
  config: LlamaConfig,
  files: Record<string, ArrayBuffer>,
  name: string,
): string | null {
  return mismatchOf(config, readStageFiles(files).adapters, `"${name}"`)?.message ?? null;
}

/** Thrown inside `solve`'s batch callback to stop a run; never leaves the engine. */
class Cancelled extends Error {}

export class EvalEngine {
  private rt: StudentRuntime | null = null;
  private cancelRequested = false;
  /** GPU work runs one call at a time (a heat map asked for during an evaluation waits for it). */
  private queue: Promise<unknown> = Promise.resolve();
  /** The GPU API `init` was given and the model last loaded: a lost device is reopened with both. */
  private gpuApi: GPU | undefined;
  private source: StudentSource | null = null;
  /** The load in flight (cancelLoad aborts it). */
  private loading: AbortController | null = null;

  /** Opens the GPU: navigator.gpu in a worker; Node's GPU (nodeGpu()) in tests. */
  async init(gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu): Promise<GpuInfo> {
    this.gpuApi = gpu;
    if (!this.rt || this.rt.gpu.state !== 'ready') {
      this.rt?.destroy();
      this.rt = null;
      this.rt = await StudentRuntime.open(gpu);
    }
    return this.rt.info;
  }

  /**
   * Loads the base model: the student chosen in Models (the built-in one unless the user chose
   * another). A big one (GGUF File / URL, MLC) is planned with `src.plan` (the app: its batch ×
   * context) and refused before anything is allocated (LIMIT_EXCEEDED / OUT_OF_MEMORY with the
   * planner's suggestion); `onProgress` per chunk read; `cancelLoad()` aborts. A failed or
   * cancelled load leaves the previous model loaded.
   */
  async load(src: StudentSource, onProgress?: (p: LoadProgress) => void): Promise<StudentModelInfo> {
    const abort = new AbortController();
    this.loading = abort;
    try {
      return await this.serial(async () => {
        const info = await this.runtime().load(src, {
          signal: abort.signal,
          ...(onProgress
            ? { onProgress: (p: LoadProgress) => void Promise.resolve(onProgress(p)).catch(() => {}) }
            : {}),
        });
        this.source = src;
        return info;
      });
    } finally {
      if (this.loading === abort) this.loading = null;
    }
  }

  /** Aborts the load in flight (it throws an AbortError and frees what it had allocated). */
  cancelLoad(): void {
    this.loading?.abort(
      new DOMException('The load was cancelled: nothing of it is left on the GPU.', 'AbortError'),
    );
  }

  /**
   * A big model's facts and the planner's verdict for `src.plan` on this worker's device, loading
   * nothing (GGUF: the header; MLC: web-llm's cache).
   */
  async inspect(src: StudentSource): Promise<GgufInspection | MlcInspection> {
    if (!isBigSource(src))
      throw new EngineError('BAD_ARGUMENT', 'Only a GGUF or MLC model is planned before it is loaded.');
    const rt = this.runtime();
    return src.mlcUrl !== undefined ? rt.inspectMlc(src) : rt.inspectGguf(src);
  }

  /** Frees the model (after the evaluation in flight, if any); `load` brings one back. */
  async unload(): Promise<void> {
    return this.serial(async () => {
      this.rt?.unload();
      this.source = null;
    });
  }

  get modelInfo(): StudentModelInfo | null {
    return this.rt?.modelInfo ?? null;
  }

  /** The characters of `text` the loaded model's tokenizer cannot read (empty: it reads it all). */
  unreadable(text: string): string[] {
    return this.rt?.modelInfo ? unreadableChars(this.rt.tokenizer, text) : [];
  }

  /** Whether an adapter set fits the loaded model: null, or why not (headers only, nothing allocated). */
  fits(files: Record<string, ArrayBuffer>, name = 'adapters'): string | null {
    return adapterMismatch(this.runtime().model.config, files, name);
  }

  /** Greedy answers of every set on the problems, in order; `cancel()` stops between batches. */
  async evaluate(req: EvalRequest, onProgress?: (p: EvalProgress) => void): Promise<EvalResult> {
    this.cancelRequested = false;
    return this.serial(async () => {
      const rt = await this.device();
      const { model, tokenizer: tok } = rt;
      if (req.problems.length === 0)
        throw new EngineError('BAD_ARGUMENT', 'No problems to evaluate: choose at least one.');
      if (!(req.maxNew >= 1) || !(req.batch >= 1))
        throw new EngineError(
          'BAD_ARGUMENT',
          `New tokens and batch must be at least 1 (got ${req.maxNew} and ${req.batch}).`,
        );
      const limits = rt.modelInfo?.limits;
      const name = rt.modelInfo?.name ?? 'The model';
      if (limits && req.batch > limits.sequences)
        throw new EngineError(
          'BAD_ARGUMENT',
          `${name} was loaded here for batches of at most ${limits.sequences} sequences (its memory plan): ` +
            `evaluate with a batch of at most ${limits.sequences}, or load it again planned for more.`,
        );
      const questions = req.problems.map((p) => p.question);
      readable(tok, questions, name);
      const t0 = performance.now();
      const total = req.sets.length * req.problems.length;
      const out: SetResult[] = [];
      // a browser reports a failed allocation as a GPU error, not a throw: each set's texts are
      // kept only once the GPU has said nothing went wrong while they were written
      const watch = rt.gpu.watchErrors();
      let current: string | null = null;
      try {
        for (const [i, set] of req.sets.entries()) {
          if (this.cancelRequested) throw new Cancelled();
          current = set.name;
          const { adapters, stage } = studentOf(set, model.config);
          const student = loadStudent(model, adapters, stage);
          const ts = performance.now();
          let texts: string[];
          try {
            onProgress?.(progress(i, set, 0));
            texts = await solve(model, student, tok, questions, {
              maxNew: req.maxNew,
              batch: req.batch,
              kv: rt.kv,
              act: rt.act,
              ...(limits ? { context: limits.context } : {}),
              onBatch: (done, n) => {
                onProgress?.(progress(i, set, done));
                // a set whose last batch is done is kept; the next one does not start
                if (this.cancelRequested && done < n) throw new Cancelled();
              },
            });
            await watch.check();
          } finally {
            student.destroy();
          }
          const solved = texts.map(
            (t, j) => accuracyOf(req.problems[j]!.kind, [t], [req.problems[j]!.gold]).solved[0]!,
          );
          const k = solved.filter(Boolean).length;
          out.push({
            id: set.id,
            name: set.name,
            kind: student.kind,
            solved,
            texts,
            n: solved.length,
            correct: k,
            accuracy: solved.length ? k / solved.length : 0,
            ci95: wilson(k, solved.length),
            seconds: (performance.now() - ts) / 1000,
          });
        }
      } catch (e) {
        if (!(e instanceof Cancelled)) throw await this.evalError(e, current, req.batch);
        return { sets: out, cancelled: true, seconds: (performance.now() - t0) / 1000 };
      } finally {
        await watch.close();
      }
      return { sets: out, cancelled: false, seconds: (performance.now() - t0) / 1000 };

      function progress(i: number, set: EvalSet, done: number): EvalProgress {
        const n = req.problems.length;
        return {
          set: i,
          sets: req.sets.length,
          setName: set.name,
          done,
          problems: n,
          fraction: total ? (i * n + done) / total : 1,
          elapsedMs: performance.now() - t0,
        };
      }
    });
  }

  /** Stops a running `evaluate` after its current batch (it resolves with `cancelled: true`). */
  cancel(): void {
    this.cancelRequested = true;
  }

  /** Table 1 of three students' solved lists (so the app needs no engine code in its bundle). */
  table1(pos: boolean[], neg: boolean[], nat: boolean[]): Table1 {
    return table1Of(pos, neg, nat);
  }

  /** KL(p_neg ‖ p_NAT) per rationale token and β, for the NAT set's model pair. */
  async klMap(req: KlRequest): Promise<KlMap> {
    return this.serial(async () => {
      const rt = await this.device();
      const { adapters, stage } = readStageFiles(req.natFiles);
      requireNat(adapters);
      if (req.rationale.trim() === '')
        throw new EngineError('BAD_ARGUMENT', 'The heat map needs a rationale: this one is empty.');
      return tokenKl(rt.model, rt.tokenizer, adapters, stage, req.question, req.rationale);
    });
  }

  destroy(): void {
    this.rt?.destroy();
    this.rt = null;
  }

  private runtime(): StudentRuntime {
    if (!this.rt) throw new EngineError('BAD_ARGUMENT', 'The evaluator has no GPU yet: call init() first.');
    return this.rt;
  }

  /**
   * The runtime, on a working device: after a lost device the next call opens a fresh one and
   * loads the same model again (what the user sees: Evaluate again just works).
   */
  private async device(): Promise<StudentRuntime> {
    const rt = this.runtime();
    if (rt.gpu.state === 'ready' || !this.source) return rt;
    rt.destroy();
    this.rt = null;
    const fresh = await StudentRuntime.open(this.gpuApi);
    this.rt = fresh;
    await fresh.load(this.source);
    return fresh;
  }

  /** An evaluation's failure in the user's terms: what happened to which student, what to do. */
  private async evalError(e: unknown, set: string | null, batch: number): Promise<unknown> {
    const which = set === null ? 'the students' : `"${set}"`;
    if (e instanceof EngineError && e.code === 'OUT_OF_MEMORY')
      return new EngineError(
        'OUT_OF_MEMORY',
        `Evaluating ${which} (batch ${batch}) needed more GPU memory than is free; no result of it was kept. ` +
          'Close other GPU-heavy tabs, or evaluate with a smaller batch.',
        { cause: e },
      );
    const gpu = this.rt?.gpu;
    if (gpu && (e instanceof EngineError ? gpu.state === 'lost' : await gpu.isLost()))
      return new EngineError(
        'DEVICE_LOST',
        `The GPU device was lost while evaluating ${which} (${gpu.lostMessage || 'no reason given'}); no result of this run was kept. ` +
          'Evaluate again: it opens the GPU afresh.',
        { cause: e },
      );
    return e;
  }

  private serial<R>(f: () => Promise<R>): Promise<R> {
    const run = this.queue.then(f, f);
    this.queue = run.catch(() => {});
    return run;
  }
}

/** Refuses questions the tokenizer cannot read (the character tokenizer knows only its alphabet). */
function readable(tok: StudentTokenizer, questions: readonly string[], name: string): void {
  for (const [i, q] of questions.entries()) {
    const bad = unreadableChars(tok, promptOf(q));
    if (bad.length > 0)
      throw new EngineError(
        'BAD_ARGUMENT',
        `${name}'s tokenizer cannot read ${bad
          .slice(0, 8)
          .map((c) => JSON.stringify(c))
          .join(' ')} in problem ${i + 1}. Evaluate it on problems it can read (the arithmetic world), ` +
          'or load a model whose tokenizer reads them (Models).',
      );
  }
}

/**
 * A set's student: `{}` files = the base model; a set made for another model, or without a student
 * LoRA (a ranker), is refused.
 */
function studentOf(set: EvalSet, config: LlamaConfig): { adapters: StageAdapters; stage: string | null } {
  if (Object.keys(set.files).length === 0) return { adapters: {}, stage: null };
  const misfit = adapterMismatch(config, set.files, set.name);
  if (misfit)
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${misfit} Leave it out of the students to compare, or load the model it was made for (Models).`,
    );
  const r = readStageFiles(set.files);
  if (!r.adapters.lora)
    throw new EngineError(
      'BAD_ARGUMENT',
      `"${set.name}" holds no student LoRA (lora.safetensors)${r.adapters.rank ? ': it is a ranker, which scores rationales but does not write them' : ''}. Leave it out of the students to compare.`,
    );
  return r;
}
