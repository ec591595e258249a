/**
 * The Solve engine (the inference worker's side of the Solve view): one question, m sampled
 * rationales in ONE batch on the student (base model + a stage's adapters), each finished sample's
 * answer extracted and scored by the ranker between decode steps, and the SC / WS / ASC votes and
 * the early-stopping point recomputed as samples finish. Plain data in, plain data out: the UI gets
 * text, answers and numbers, never a tensor.
 *
 * @example
 *   const solver = new SolverEngine();
 *   await solver.init();                                  // navigator.gpu (a GPU in Node tests)
 *   await solver.load({ modelUrl: '/models/arith-student.safetensors' });
 *   // or a GGUF LLaMA: planned (inspect), then loaded with progress; cancelLoad() aborts it
 *   await solver.inspect({ gguf: file, plan: { sequences: 16 } });
 *   await solver.load({ gguf: file, plan: { sequences: 16 } }, (p) => bar(p.bytesDone / p.bytesTotal));
 *   await solver.setStudent(kdFiles, 'KD');               // files as `stageFiles` writes them; null = base
 *   await solver.setRanker(rankFiles, 'ranker');          // null = no ranker (ASC falls back to SC)
 *   const r = await solver.solve({ question, kind: 'arith', gold: '48', m: 16 }, (events) => {});
 *   r.votes.final; // ASC's answer
 */
import { adapterMismatch } from './adapter-fit.ts';
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import type { InferenceAdapter } from '../../engine/infer/adapters.ts';
import { generate } from '../../engine/infer/generate.ts';
import { LlamaRunner } from '../../engine/infer/runner.ts';
import { CharTokenizer } from '../../engine/io/chartok.ts';
import { kvBytesPerValue } from '../../engine/kvcache.ts';
import { kvDim, type LlamaConfig } from '../../engine/model/config.ts';
import { answersEqual, extractAnswer, type AnswerKind } from '../answers/index.ts';
import { loadRanker, loadStudent, type Ranker, type Student } from '../eval.ts';
import { readStageFiles } from '../stages/files.ts';
import type { StageAdapters } from '../stages/types.ts';
import { promptOf } from '../stages/text.ts';
import { summarizeVotes, type VoteSummary } from '../voting/summary.ts';
import {
  isBigSource,
  MAX_SAMPLES,
  StudentRuntime,
  unreadableChars,
  type GgufInspection,
  type MlcInspection,
  type LoadProgress,
  type StudentModelInfo,
  type StudentSource,
  type StudentTokenizer,
} from './runtime.ts';

/** Samples per question at most (the view's m). */
export { MAX_SAMPLES };

export { summarizeVotes };
export type { AnswerTally, EarlyStopInfo, VoteSummary } from '../voting/summary.ts';

export interface SolveRequest {
  question: string;
  /** Answer kind: how answers are read and compared. */
  kind: AnswerKind;
  /** The gold answer (already extracted), when known: each answer gets ✓ / ✗. */
  gold?: string | null;
  /** Samples, 1..32. */
  m: number;
  /** Default 0.7; 0 is greedy. */
  temperature?: number;
  /** Default 1 (no nucleus cut). */
  topp?: number;
  /** Default 1; sample i uses the i-th stream of this seed (as `eval.ts` `solve`). */
  seed?: number;
  /** New tokens per sample at most (default 160, capped by the model's context). */
  maxNew?: number;
  /** ASC's λ in w = 1 + λ·s (default 1). */
  lambda?: number;
}

/** Why a sample ended: a stop token, the token limit, or Stop. */
export type EndReason = 'stop' | 'length' | 'stopped';

export interface SampleResult {
  text: string;
  answer: string | null;
  /** The ranker's s ∈ (0, 1); null without a ranker (or cut off by Stop). */
  score: number | null;
  correct: boolean | null;
  /** New tokens. */
  tokens: number;
  reason: EndReason;
}

/** Streamed to the view, several per message (one message per decode step). */
export type SolveEvent =
  | { type: 'text'; seq: number; text: string }
  | { type: 'done'; seq: number; sample: SampleResult }
  | { type: 'score'; seq: number; score: number }
  | { type: 'votes'; votes: VoteSummary }
  | { type: 'stats'; tokens: number; ms: number };

export interface SolveResult {
  samples: SampleResult[];
  votes: VoteSummary;
  /** New tokens over all samples. */
  tokens: number;
  /** Wall time of the batch (prefill, decode and ranker). */
  ms: number;
  tokensPerSecond: number;
  stopped: boolean;
  student: string;
  ranker: string | null;
}

export interface AdapterInfo {
  name: string;
  stage: string | null;
  /** base, lora, nat or linmix */
  kind: Student<Tensor>['kind'];
}

function shapeCheck(config: LlamaConfig, a: StageAdapters, what: string): void {
  const m = adapterMismatch(config, a, what);
  if (m) throw new EngineError('SHAPE_MISMATCH', `${m.message} ${m.hint}`);
}

/** Plain text of the tokens after the prompt, as `eval.ts` decodes a continuation. */
function decodeTokens(tok: StudentTokenizer, prev: number, toks: readonly number[]): string {
  const parts: Uint8Array[] = [];
  for (const t of toks) {
    parts.push(tok.decodeBytes(prev, t));
    prev = t;
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return new TextDecoder().decode(bytes);
}

export class SolverEngine {
  private rt: StudentRuntime | null = null;
  private student: Student<Tensor> | null = null;
  private studentInfo: AdapterInfo = { name: 'base', stage: null, kind: 'base' };
  private ranker: Ranker | null = null;
  private rankerName: string | null = null;
  private runner: LlamaRunner<Tensor> | null = null;
  private runnerAdapter: InferenceAdapter<Tensor> | null = null;
  private running = false;
  private stopRequested = false;
  /** The GGUF load in flight (cancelLoad aborts it). */
  private loading: AbortController | null = null;

  /** Uses `runtime` (shared with another engine of the worker) instead of opening its own. */
  constructor(runtime?: StudentRuntime) {
    if (runtime) this.rt = runtime;
  }

  /** Opens the GPU: navigator.gpu in a worker, or the `GPU` given (Node tests). */
  async init(gpu?: GPU): Promise<GpuInfo> {
    if (!this.rt || this.rt.gpu.state !== 'ready') {
      this.rt?.destroy();
      this.rt = null;
      this.rt = await StudentRuntime.open(gpu ?? (globalThis.navigator as Navigator | undefined)?.gpu);
    }
    return this.rt.info;
  }

  private get runtime(): StudentRuntime {
    if (!this.rt) throw new EngineError('BAD_ARGUMENT', 'The GPU is not open yet: call init() first.');
    return this.rt;
  }

  private idle(what: string): void {
    if (this.running)
      throw new EngineError('BAD_ARGUMENT', `Cannot ${what} while samples are running: press Stop first.`);
    if (this.loading)
      throw new EngineError(
        'BAD_ARGUMENT',
        `Cannot ${what} while a model is loading: wait, or cancel the load.`,
      );
  }

  /**
   * Loads a base model (the built-in arith-student, a URL or a dropped file, or a GGUF LLaMA as a
   * File / Blob or URL, with `onProgress` per chunk read and `cancelLoad()` to abort). The student
   * and the ranker belong to the old model: both are reset to none (set them again). A load that
   * fails or is cancelled leaves the old model, student and ranker as they were.
   */
  async load(src: StudentSource, onProgress?: (p: LoadProgress) => void): Promise<StudentModelInfo> {
    this.idle('load a model');
    const abort = new AbortController();
    this.loading = abort;
    let info: StudentModelInfo;
    try {
      if (isBigSource(src)) this.dropRunner(); // the KV cache goes first: the plan counts only the new model's
      info = await this.runtime.load(src, {
        signal: abort.signal,
        ...(onProgress
          ? { onProgress: (p: LoadProgress) => void Promise.resolve(onProgress(p)).catch(() => {}) }
          : {}),
      });
    } finally {
      this.loading = null;
    }
    this.dropStudent();
    this.dropRanker();
    this.dropRunner();
    return info;
  }

  /** Aborts the load in flight (it throws an AbortError and frees what it had allocated). */
  cancelLoad(): void {
    this.loading?.abort(
      new DOMException('The load was cancelled: nothing of it is left on the GPU.', 'AbortError'),
    );
  }

  /** A GGUF file's header facts and the memory planner's verdict for `src.plan`, loading nothing. */
  async inspect(src: StudentSource): Promise<GgufInspection> {
    return this.runtime.inspectGguf(src);
  }

  /** An MLC model's facts (from web-llm's cache) and the planner's verdict for `src.plan`, loading nothing. */
  async inspectMlc(src: StudentSource): Promise<MlcInspection> {
    return this.runtime.inspectMlc(src);
  }

  /** Frees the model (and the student, ranker and KV cache that go with it). */
  unload(): void {
    this.idle('unload the model');
    this.dropStudent();
    this.dropRanker();
    this.dropRunner();
    this.rt?.unload();
  }

  /**
   * Whether an adapter set fits the loaded model: null, or why not (the SHAPE_MISMATCH message
   * `setStudent` / `setRanker` would throw), checked on the files' headers without allocating.
   */
  fits(files: Record<string, ArrayBuffer>, name = 'adapters'): string | null {
    try {
      shapeCheck(this.runtime.model.config, readStageFiles(files).adapters, `"${name}"`);
      return null;
    } catch (e) {
      if (e instanceof EngineError) return e.message;
      throw e;
    }
  }

  modelInfo(): StudentModelInfo | null {
    return this.rt?.modelInfo ?? null;
  }

  /** The characters of `text` the model's tokenizer cannot read (empty: it can read it all). */
  unreadable(text: string): string[] {
    const tok = this.rt?.modelInfo ? this.rt.tokenizer : null;
    if (!tok) return [];
    return unreadableChars(tok, text);
  }

  /**
   * The student: a stage's files (`readStageFiles`), or null for the base model. A set that does
   * not fit the model throws SHAPE_MISMATCH and leaves the previous student in place.
   */
  async setStudent(files: Record<string, ArrayBuffer> | null, name = 'adapters'): Promise<AdapterInfo> {
    this.idle('change the student');
    const model = this.runtime.model;
    if (files === null) {
      this.dropStudent();
      return this.studentInfo;
    }
    const { stage, adapters } = readStageFiles(files);
    if (!adapters.lora)
      throw new EngineError(
        'BAD_ARGUMENT',
        `"${name}" holds no student (no lora.safetensors${stage ? `; it is a ${stage} set` : ''}). ` +
          'Pick the output of a student stage (kd, nat, nce, mix, nt, ul, cl, linmix).',
      );
    shapeCheck(model.config, adapters, `"${name}"`);
    const student = await this.onDevice(
      () => loadStudent(model, adapters, stage),
      (s) => s.destroy(),
      `the student "${name}"`,
      this.student ? `the student "${this.studentInfo.name}"` : 'the base model (no adapters)',
    );
    this.dropStudent();
    this.student = student;
    this.studentInfo = { name, stage, kind: student.kind };
    return this.studentInfo;
  }

  /** The ranker: a rank stage's files, or null for none (ASC then votes like SC). */
  async setRanker(files: Record<string, ArrayBuffer> | null, name = 'ranker'): Promise<string | null> {
    this.idle('change the ranker');
    const rt = this.runtime;
    if (files === null) {
      this.dropRanker();
      return null;
    }
    const { adapters } = readStageFiles(files);
    if (!adapters.rank || !adapters.head)
      throw new EngineError(
        'BAD_ARGUMENT',
        `"${name}" holds no ranker (rank.safetensors + head.safetensors): pick the output of a rank stage.`,
      );
    shapeCheck(rt.model.config, adapters, `"${name}"`);
    const ranker = await this.onDevice(
      () => loadRanker(rt.model, rt.tokenizer, adapters),
      (r) => r.destroy(),
      `the ranker "${name}"`,
      this.ranker ? `the ranker "${this.rankerName}"` : 'no ranker (ASC votes like SC)',
    );
    this.dropRanker();
    this.ranker = ranker;
    this.rankerName = name;
    return name;
  }

  /** Asks the running batch to end after its current step (finished samples keep their results). */
  stop(): void {
    this.stopRequested = true;
  }

  /**
   * m samples of one question in one batch. `onEvents` gets each decode step's pieces of text, the
   * samples that ended (answer extracted), their ranker scores (scored between decode steps) and the
   * votes so far.
   */
  async solve(req: SolveRequest, onEvents: (events: SolveEvent[]) => void): Promise<SolveResult> {
    this.idle('start another run');
    const rt = this.runtime;
    const model = rt.model,
      tok = rt.tokenizer;
    const m = req.m;
    if (!Number.isInteger(m) || m < 1 || m > MAX_SAMPLES)
      throw new EngineError(
        'BAD_ARGUMENT',
        `Samples m = ${m}: choose a whole number from 1 to ${MAX_SAMPLES}.`,
      );
    const temperature = req.temperature ?? 0.7;
    const topp = req.topp ?? 1;
    if (!(temperature >= 0) || !(topp > 0 && topp <= 1))
      throw new EngineError(
        'BAD_ARGUMENT',
        `Temperature ${temperature} and top-p ${topp}: the temperature is ≥ 0 and top-p in (0, 1].`,
      );
    const question = req.question.trim();
    if (!question) throw new EngineError('BAD_ARGUMENT', 'Type or pick a question first.');
    const limits = rt.modelInfo?.limits;
    if (limits && m > limits.sequences)
      throw new EngineError(
        'BAD_ARGUMENT',
        `${rt.modelInfo?.name ?? 'This model'} was loaded for at most ${limits.sequences} samples at once (the memory plan in Models): ` +
          `ask for at most ${limits.sequences}, or load it again in Models planned for more.`,
      );
    const prompt = this.encodePrompt(question);
    const maxSeq = Math.min(model.config.maxSeqLen, limits?.context ?? Infinity);
    if (prompt.length >= maxSeq)
      throw new EngineError(
        'BAD_ARGUMENT',
        `This question takes ${prompt.length} tokens with its prompt; the model reads at most ${maxSeq}` +
          `${limits && limits.context < model.config.maxSeqLen ? ' (the context it was loaded for in Models)' : ''}, ` +
          'with room left for the answer. Pick a shorter question or a model with a longer context.',
      );
    const maxNew = Math.max(1, Math.floor(req.maxNew ?? 160));
    // positions count BOS and the prompt; the token sampled at the last position is kept (run.c)
    const steps = Math.min(maxSeq, prompt.length + maxNew - 1);
    const kind = req.kind;
    const gold = req.gold ?? null;
    const lambda = req.lambda ?? 1;
    const runner = await this.allocRunner(m, steps);

    this.running = true;
    this.stopRequested = false;
    const t0 = performance.now();
    const skip = prompt.length - 1; // forced prompt tokens come through onToken first
    const seen = new Array<number>(m).fill(0);
    const toks: number[][] = Array.from({ length: m }, () => []);
    const results: (SampleResult | null)[] = new Array<SampleResult | null>(m).fill(null);
    const unscored: number[] = [];
    let pending: SolveEvent[] = [];
    let newTokens = 0;
    const votes = () =>
      summarizeVotes(
        results.map((r) =>
          r ? { answer: r.answer, ...(r.score !== null ? { score: r.score } : {}) } : null,
        ),
        kind,
        gold,
        lambda,
      );
    const finish = (s: number, reason: EndReason) => {
      const text = decodeTokens(tok, prompt.at(-1)!, toks[s]!);
      const answer = extractAnswer(kind, text);
      const sample: SampleResult = {
        text,
        answer,
        score: null,
        correct: gold === null ? null : answer !== null && answersEqual(kind, answer, gold),
        tokens: toks[s]!.length,
        reason,
      };
      results[s] = sample;
      pending.push({ type: 'done', seq: s, sample });
      unscored.push(s);
    };
    const scoreFinished = async () => {
      if (!this.ranker || unscored.length === 0) return;
      const batch = unscored.splice(0);
      const scores = await this.ranker.score(batch.map((s) => ({ question, rationale: results[s]!.text })));
      batch.forEach((s, i) => {
        results[s]!.score = scores[i]!;
        pending.push({ type: 'score', seq: s, score: scores[i]! });
      });
    };
    const flush = (changed: boolean) => {
      if (changed) pending.push({ type: 'votes', votes: votes() });
      pending.push({ type: 'stats', tokens: newTokens, ms: performance.now() - t0 });
      const out = pending;
      pending = [];
      onEvents(out);
    };
    let stopped: boolean;
    try {
      await generate(
        runner,
        tok,
        Array.from({ length: m }, () => prompt),
        {
          steps,
          temperature,
          topp,
          seed: req.seed ?? 1,
          stopTokens: [tok.eos, tok.bos],
          onToken: (s, token, text) => {
            if (seen[s]!++ < skip || token < 0) return;
            toks[s]!.push(token);
            newTokens++;
            if (text) pending.push({ type: 'text', seq: s, text });
          },
          onStep: async (ended) => {
            // a sequence at the step limit ended by length; any other one sampled a stop token
            for (const s of ended) finish(s, seen[s]! >= steps - 1 ? 'length' : 'stop');
            if (!this.stopRequested) await scoreFinished();
            flush(ended.length > 0 || pending.some((e) => e.type === 'score'));
          },
          shouldStop: () => this.stopRequested,
        },
      );
      stopped = results.some((r) => r === null);
      if (stopped) for (let s = 0; s < m; s++) if (!results[s]) finish(s, 'stopped');
      unscored.splice(0); // Stop: samples cut off keep no score (the vote gives them the mean)
      if (pending.length) flush(true);
    } catch (e) {
      throw await this.lostError(e);
    } finally {
      this.running = false;
      this.stopRequested = false;
    }
    const ms = performance.now() - t0;
    const samples = results.map((r) => r!);
    return {
      samples,
      votes: votes(),
      tokens: newTokens,
      ms,
      tokensPerSecond: newTokens / Math.max(1e-9, ms / 1000),
      stopped,
      student: this.studentInfo.name,
      ranker: this.rankerName,
    };
  }

  /**
   * A failure while the device is lost is the device loss. A device lost mid-run fails the work in
   * flight (a readback's map) before `device.lost` settles: a failure that is not the engine's own
   * waits a moment for it.
   */
  private async lostError(e: unknown): Promise<unknown> {
    const gpu = this.rt?.gpu;
    if (!gpu || !(e instanceof EngineError ? gpu.state === 'lost' : await gpu.isLost())) return e;
    return new EngineError(
      'DEVICE_LOST',
      `The GPU device was lost while sampling (${gpu.lostMessage || 'no reason given'}): this run's samples are gone.`,
      { cause: e },
    );
  }

  /** The prompt's tokens, with a message a student understands when the tokenizer cannot read it. */
  private encodePrompt(question: string): number[] {
    const tok = this.runtime.tokenizer;
    const refuse = (cause?: unknown) => {
      const unknown = this.unreadable(promptOf(question)).slice(0, 12);
      const name = this.runtime.modelInfo?.name ?? 'this model';
      return new EngineError(
        'BAD_ARGUMENT',
        `The model's tokenizer cannot read ${unknown.map((c) => JSON.stringify(c)).join(' ')} in this question: ` +
          (tok instanceof CharTokenizer
            ? `${name} knows only the characters of the arithmetic world. Pick a problem of the arithmetic world, or load a model with a larger vocabulary (Models).`
            : `${name}'s vocabulary has no tokens for them (no byte fallback). Pick another question, or load a model whose tokenizer reads them (Models).`),
        { cause },
      );
    };
    if (!(tok instanceof CharTokenizer) && this.unreadable(promptOf(question)).length > 0) throw refuse();
    try {
      return tok.encode(promptOf(question), true, false);
    } catch (e) {
      if (!(e instanceof EngineError)) throw e;
      throw refuse(e);
    }
  }

  /**
   * `runnerFor` inside the device's out-of-memory scope: the KV cache for m samples is the one big
   * allocation of a run, and a browser reports a failed allocation as a GPU error, not a throw.
   * A runner the GPU could not hold is dropped (a smaller request then makes a fresh one).
   */
  private async allocRunner(m: number, steps: number): Promise<LlamaRunner<Tensor>> {
    try {
      return await this.runtime.gpu.checked(() => this.runnerFor(m, steps));
    } catch (e) {
      this.dropRunner();
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      const c = this.runtime.model.config;
      const cache = 2 * c.nLayers * m * steps * kvDim(c) * kvBytesPerValue(this.runtime.kv);
      throw new EngineError(
        'OUT_OF_MEMORY',
        `The GPU has no room for ${m} samples of up to ${steps} tokens at once (their ${this.runtime.kv} KV cache needs ` +
          `${formatBytes(cache)}). Close other GPU-heavy tabs, or ask for fewer samples or a smaller model.`,
        { cause: e },
      );
    }
  }

  /**
   * Makes adapter tensors inside the device's error scopes: a browser reports a failed allocation
   * as a GPU error, not a throw, so without this a student or ranker the GPU could not hold would
   * be installed half-made. On an error what `make` built is freed and the current one stays.
   */
  private async onDevice<R>(make: () => R, free: (r: R) => void, what: string, kept: string): Promise<R> {
    let made: R | null = null;
    try {
      return await this.runtime.gpu.checked(() => (made = make()));
    } catch (e) {
      if (made !== null) free(made);
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      throw new EngineError(
        'OUT_OF_MEMORY',
        `The GPU has no room for ${what}; Solve goes on with ${kept}. Close other GPU-heavy tabs, or load a smaller model.`,
        { cause: e },
      );
    }
  }

  /** A runner with ≥ m slots and ≥ steps positions (kept between runs), with the student's adapter. */
  private runnerFor(m: number, steps: number): LlamaRunner<Tensor> {
    const model = this.runtime.model;
    if (!this.runner || this.runner.slots < m || this.runner.maxT < steps) {
      const slots = Math.max(m, this.runner?.slots ?? 0);
      const maxT = Math.max(steps, this.runner?.maxT ?? 0);
      this.dropRunner();
      this.runner = new LlamaRunner(model, {
        slots,
        maxT,
        maxRows: Math.max(64, slots),
        kv: this.runtime.kv,
        act: this.runtime.act,
      });
    }
    if (!this.runnerAdapter && this.student) {
      this.runnerAdapter = this.student.inference(this.runner.maxRows);
      this.runner.setAdapter(this.runnerAdapter);
    }
    return this.runner;
  }

  private dropRunner(): void {
    this.runner?.destroy();
    this.runner = null;
    this.runnerAdapter?.destroy();
    this.runnerAdapter = null;
  }

  private dropStudent(): void {
    this.runner?.setAdapter(null);
    this.runnerAdapter?.destroy();
    this.runnerAdapter = null;
    this.student?.destroy();
    this.student = null;
    this.studentInfo = { name: 'base', stage: null, kind: 'base' };
  }

  private dropRanker(): void {
    this.ranker?.destroy();
    this.ranker = null;
    this.rankerName = null;
  }

  /** Frees everything on the device (and the device, when this engine opened it). */
  dispose(): void {
    this.dropRunner();
    this.dropStudent();
    this.dropRanker();
    this.rt?.destroy();
    this.rt = null;
  }
}
