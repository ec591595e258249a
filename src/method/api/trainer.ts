/**
 * The trainer worker's engine (Train view): one stage of the method (`runStage`) on the student,
 * with live progress, pause / resume / cancel, checkpoints as plain data (the app keeps them in
 * IndexedDB) and the stage's files at the end (what `stageFiles` writes: the app saves them as an
 * adapter set). Plain data in and out; big buffers cross the worker boundary transferred.
 *
 * Inputs from earlier stages come as adapter-set files: NAT and the linear mix take a Neg set
 * (its `lora.safetensors` is the negative LoRA), NCE takes a NAT set (positive LoRA, negative
 * LoRA and integration unit). A lost GPU device ends the run with EngineError('DEVICE_LOST'); the
 * app resumes it from its last checkpoint on a fresh device. Before a run allocates anything, its
 * data and one step's memory plan are checked as train-plan.ts plans them (the Train view's planner
 * worker does the same without a GPU device).
 *
 * @example
 *   const t = new TrainerEngine();
 *   await t.init();                                    // navigator.gpu in a worker
 *   await t.load({ modelUrl: '/models/arith-student.safetensors' });
 *   // or a GGUF LLaMA: its header is read, the weights load when a run starts
 *   await t.open({ gguf: file, key: 'gguf:1', name: 'llama-2-7b' });
 *   const { plan, data: seen } = await t.plan({ stage: 'kd', data, config: { recompute: true } });
 *   plan?.verdict; // 'ok' | 'refused' (with the planner's suggestions)
 *   const r = await t.start({ stage: 'kd', data, config: { steps: 20 } }, (e) => {
 *     if (e.type === 'progress') console.log(e.step, e.loss);
 *     if (e.type === 'checkpoint') return store(e.checkpoint);  // awaited before the next step
 *   });
 *   r.files['lora.safetensors'];                       // Uint8Array
 */
import * as Comlink from 'comlink';
import { EngineError, toPlainError, type PlainError } from '../../engine/errors.ts';
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { GpuErrorWatch } from '../../engine/gpu/gpu.ts';
import type { LlamaConfig } from '../../engine/model/config.ts';
import { paramCount } from '../../engine/model/config.ts';
import type { LoraTarget } from '../../engine/model/llama.ts';
import { DEFAULT_STAGE, STAGES, type StageConfig } from '../stages/config.ts';
import { stageFiles } from '../stages/files.ts';
import {
  runStage,
  type StageAdapters,
  type StageCheckpoint,
  type StageData,
  type StageProgress,
} from '../stages/stages.ts';
import { OUR_WEIGHTS, type BigStudent, type LoadProgress, type StudentTokenizer } from './big-student.ts';
import { openGgufStudent } from './gguf-student.ts';
import { openMlcStudent } from './mlc-student.ts';
import {
  isBigSource,
  StudentRuntime,
  type RuntimeOptions,
  type StudentModelInfo,
  type StudentSource,
} from './runtime.ts';
import {
  prepareRun,
  sourceKey,
  type Prepared,
  type TrainPlanRequest,
  type TrainPlanResult,
  type TrainStudent,
} from './train-plan.ts';
import { shapesOf, stageInputs, type InputShapes } from './stage-inputs.ts';

export { inputSetFor, inputShapes, stageInputs, type InputShapes } from './stage-inputs.ts';
export type { TrainPlanView, TrainSuggestion } from './big-student.ts';
export {
  checkStageData,
  measureItems,
  sequencesPerExample,
  stageSides,
  TrainPlanner,
  type DataCheck,
  type SideCheck,
  type TrainPlanRequest,
  type TrainPlanResult,
  type TrainStudent,
} from './train-plan.ts';

/** The built-in student's recipe (public/models/arith-student.md): LoRA r 8 on all seven linear layers. */
export const ALL_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];
export const STUDENT_RECIPE: Readonly<Partial<StageConfig>> = {
  rank: 8,
  alpha: 16,
  dropout: 0.05,
  targets: [...ALL_TARGETS],
  lr: 5e-3,
  batchSize: 16,
  steps: 350,
  seed: 1,
};

/** A run: what `plan` takes, and the inputs of an earlier stage and the checkpoint interval. */
export interface TrainRequest extends TrainPlanRequest {
  /** An earlier stage's adapter-set files (Neg for nat / linmix, NAT for nce), by file name. */
  inputs?: Record<string, ArrayBuffer>;
  /** Steps between checkpoints (default 10; 0 = none but the final one). */
  checkpointEvery?: number;
}

/** Per-step figures, by stage: NAT mean α per layer, NCE β per sequence, ranker pair accuracy. */
export interface StepMetrics {
  alpha?: number[];
  beta?: number[];
  pairAccuracy?: number;
}

export interface ProgressEvent {
  type: 'progress';
  step: number;
  steps: number;
  loss: number;
  gradNorm: number;
  lr: number;
  /** Loss tokens (pairs for the ranker and CL) per second over this step. */
  tokensPerSecond: number;
  /** Wall time of this step, ms. */
  stepMs: number;
  metrics: StepMetrics;
}

export interface CheckpointEvent {
  type: 'checkpoint';
  checkpoint: StageCheckpoint;
}

export interface DoneEvent {
  type: 'done';
  /** The stage's files (`stageFiles`), by name. */
  files: Record<string, Uint8Array>;
  steps: number;
  losses: number[];
}

export interface ErrorEvent {
  type: 'error';
  error: PlainError;
}

/** A big model's weights coming onto the GPU when its run starts (per tensor or chunk read). */
export interface LoadEvent extends LoadProgress {
  type: 'load';
}

export type TrainerEvent = ProgressEvent | CheckpointEvent | DoneEvent | ErrorEvent | LoadEvent;

/** What `start` resolves to: the stage's files, or none when it was cancelled. */
export interface TrainOutcome {
  cancelled: boolean;
  steps: number;
  losses: number[];
  files: Record<string, Uint8Array> | null;
}

function metricsOf(m: StageProgress['metrics']): StepMetrics {
  const out: StepMetrics = {};
  if (Array.isArray(m['alpha'])) out.alpha = m['alpha'];
  if (Array.isArray(m['beta'])) out.beta = m['beta'];
  if (typeof m['pair_acc'] === 'number') out.pairAccuracy = m['pair_acc'];
  return out;
}

/** The buffers of a checkpoint, to transfer instead of copying. */
function buffersOf(c: StageCheckpoint): ArrayBuffer[] {
  const seen = new Set<ArrayBuffer>();
  const add = (a: Float32Array) => {
    if (a.buffer instanceof ArrayBuffer) seen.add(a.buffer);
  };
  for (const a of Object.values(c.adapters))
    for (const t of Object.values((a as { tensors: Record<string, { data: Float32Array }> }).tensors))
      add(t.data);
  for (const x of Object.values(c.optimizer.m)) add(x);
  for (const x of Object.values(c.optimizer.v)) add(x);
  return [...seen];
}

/** A student opened by `open` / `load`: the source, and for a big model what its header says. */
interface Opened {
  key: string;
  src: StudentSource;
  big: BigStudent<unknown> | null;
  /** measureItems per data key (the app names its data; the same data is not tokenized again). */
  lengths: Map<string, { pos: Int32Array; neg: Int32Array }>;
}

export class TrainerEngine {
  private rt: StudentRuntime | null = null;
  private source: StudentSource | null = null;
  private student: Opened | null = null;
  private gpuObject: GPU | undefined;
  private running = false;
  private abort: AbortController | null = null;
  private paused = false;
  private wake: (() => void) | null = null;
  private opening: Promise<StudentRuntime> | null = null;
  /** An `open` under way (calls at the same time for the same key share it). */
  private openingStudent: { key: string; done: Promise<TrainStudent> } | null = null;

  /** `opts.caches`: where MLC models are read from (the browser's Cache Storage by default). */
  constructor(private readonly opts: RuntimeOptions = {}) {}

  /** Opens the GPU: navigator.gpu in a worker; Node's GPU (nodeGpu()) in tests. */
  async init(gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu): Promise<GpuInfo> {
    this.gpuObject = gpu;
    // calls at the same time share one device
    this.opening ??= (async () => {
      try {
        if (!this.rt || this.rt.gpu.state !== 'ready') {
          this.rt?.destroy();
          this.rt = null;
          this.rt = await StudentRuntime.open(gpu, {}, this.opts);
        }
        return this.rt;
      } finally {
        this.opening = null;
      }
    })();
    return (await this.opening).info;
  }

  /** Loads the base model now (a big one is planned for inference first, as Solve's `load`). */
  async load(src: StudentSource): Promise<StudentModelInfo> {
    if (this.running) throw new EngineError('BAD_ARGUMENT', 'A run is in progress: cancel it first.');
    if (!this.rt) await this.init();
    const key = sourceKey(src);
    const withKey = { ...src, key };
    // a big model's header first (what planning needs: its weight types and tokenizer)
    if (isBigSource(src) && !(this.student?.key === key && this.student.big)) await this.open(src);
    const info = await this.rt!.load(withKey);
    this.source = withKey;
    const keep = this.student?.key === key ? this.student : null;
    this.student = { key, src: withKey, big: keep?.big ?? null, lengths: keep?.lengths ?? new Map() };
    return info;
  }

  /**
   * The student runs train: our models are loaded at once (small); a GGUF or MLC model's header is
   * read (config, tokenizer, weight types: what planning and tokenizing need) and its weights load
   * when a run starts, after its plan fits. The same key again reads nothing.
   */
  async open(src: StudentSource): Promise<TrainStudent> {
    const key = sourceKey(src);
    const pending = this.openingStudent;
    if (pending && pending.key === key) return pending.done;
    if (pending) await pending.done.catch(() => {});
    const done = this.openNow(src);
    this.openingStudent = { key, done };
    try {
      return await done;
    } finally {
      if (this.openingStudent?.done === done) this.openingStudent = null;
    }
  }

  private async openNow(src: StudentSource): Promise<TrainStudent> {
    if (this.running) throw new EngineError('BAD_ARGUMENT', 'A run is in progress: cancel it first.');
    if (!this.rt) await this.init();
    const rt = this.rt!;
    const key = sourceKey(src);
    if (this.student?.key === key && (this.student.big || rt.modelInfo?.key === key)) {
      // a Blob that crossed the worker boundary again is a new object for the same bytes
      this.student.src = { ...src, key };
      if (this.student.big && src.gguf)
        await openGgufStudent({ ...src, key }, this.student.big, rt.be.maxTensorBytes);
      return this.describe(this.student);
    }
    if (!isBigSource(src)) {
      await this.load(src);
      return this.describe(this.student!);
    }
    const big =
      src.mlcUrl !== undefined
        ? await openMlcStudent({ ...src, key }, null, this.opts.caches)
        : await openGgufStudent({ ...src, key }, null, rt.be.maxTensorBytes);
    // another big model held for an earlier run leaves the GPU (ours are small: they stay until replaced)
    if (rt.modelInfo && rt.modelInfo.key !== key && rt.modelInfo.format !== 'dust2gold') rt.unload();
    this.student = { key, src: { ...src, key }, big, lengths: new Map() };
    return this.describe(this.student);
  }

  private describe(o: Opened): TrainStudent {
    const rt = this.rt!;
    const loaded = rt.modelInfo !== null && rt.modelInfo.key === o.key;
    if (o.big)
      return {
        key: o.key,
        name: o.src.name ?? o.big.name,
        format: o.big.format,
        config: o.big.config,
        params: paramCount(o.big.config),
        tokenizer: { kind: 'spm', tokens: o.big.tokenizer.vocabSize },
        loaded,
      };
    const info = rt.modelInfo;
    if (!info || !loaded)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return {
      key: o.key,
      name: info.name,
      format: info.format ?? 'dust2gold',
      config: info.config,
      params: info.params,
      tokenizer: info.tokenizer ?? { kind: 'char', tokens: info.config.vocabSize },
      loaded,
    };
  }

  /** The student `open` / `load` gave, with what planning and tokenizing need. */
  private current(): {
    o: Opened;
    config: LlamaConfig;
    tok: StudentTokenizer;
    weights: BigStudent<unknown>['weights'];
  } {
    const o = this.student;
    const rt = this.rt;
    if (!o || !rt)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    if (o.big) return { o, config: o.big.config, tok: o.big.tokenizer, weights: o.big.weights };
    if (rt.modelInfo?.key !== o.key)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return { o, config: rt.modelInfo.config, tok: rt.tokenizer, weights: OUR_WEIGHTS };
  }

  /** The data as the student reads it (tokenized once per data key), and the plan for one step. */
  private prepare(req: TrainPlanRequest, shapes: InputShapes | undefined = req.inputShapes): Prepared {
    const { o, config, tok, weights } = this.current();
    return prepareRun(
      this.describe(o),
      { config, tok, weights },
      o.lengths,
      this.rt!.gpu.limits,
      req,
      shapes,
    );
  }

  /**
   * What a run with these settings would train on and the planner's verdict on its LoRA step,
   * without allocating anything (the student must be opened or loaded). `dataKey` names `data`:
   * the same key again is not tokenized again.
   */
  async plan(req: TrainPlanRequest): Promise<TrainPlanResult> {
    if (!STAGES.includes(req.stage))
      throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
    await Promise.resolve();
    return this.prepare(req).result;
  }

  get modelInfo(): StudentModelInfo | null {
    return this.rt?.modelInfo ?? null;
  }

  /** True while a run is going (paused included). */
  get busy(): boolean {
    return this.running;
  }

  /**
   * Trains one stage. Events: `progress` each step, `checkpoint` every `checkpointEvery` steps and
   * at the end (awaited: the run goes on once the app has stored it), `done` with the files, or
   * `error`. Resolves with the outcome; rejects with an EngineError (DEVICE_LOST when the GPU went).
   */
  async start(req: TrainRequest, onEvent: (e: TrainerEvent) => unknown): Promise<TrainOutcome> {
    if (this.running)
      throw new EngineError('BAD_ARGUMENT', 'A run is already in progress: pause or cancel it first.');
    // before anything of the run is allocated: the stage and its inputs, the data as the student
    // reads it, and the plan of one step (a refusal leaves the trainer as it was)
    let inputs: StageAdapters;
    let data: StageData;
    try {
      if (!STAGES.includes(req.stage))
        throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
      inputs = stageInputs(req.stage, req.inputs);
      const p = this.prepare(req, shapesOf(req.stage, inputs));
      if (p.error) throw p.error;
      data = p.data;
    } catch (e) {
      await this.report(onEvent, e);
      throw e;
    }
    this.running = true;
    this.paused = false;
    this.abort = new AbortController();
    let watched: GpuErrorWatch | null = null;
    let step: number | null = null; // the last step done in this call
    const batch = req.resume?.config.batchSize ?? req.config.batchSize ?? DEFAULT_STAGE.batchSize;
    try {
      const loaded = await this.loadForRun(onEvent, this.abort.signal);
      if (!loaded)
        return {
          cancelled: true,
          steps: req.resume?.step ?? 0,
          losses: [...(req.resume?.losses ?? [])],
          files: null,
        };
      const rt = await this.ready();
      const every = req.checkpointEvery ?? 10;
      const steps = req.resume?.config.steps ?? req.config.steps ?? DEFAULT_STAGE.steps;
      if (!(steps >= 1))
        throw new EngineError('BAD_ARGUMENT', `A run needs at least one step (got ${steps}).`);
      let last = performance.now();
      const watch = rt.gpu.watchErrors();
      watched = watch;
      const r = await runStage({
        stage: req.stage,
        model: rt.model,
        tokenizer: rt.tokenizer,
        data,
        config: req.config,
        inputs,
        signal: this.abort.signal,
        gate: async () => {
          await this.gate();
          await watch.check(); // what the GPU reported for the step before (setup for the first)
        },
        checkpointEvery: every,
        ...(req.resume ? { resume: req.resume } : {}),
        onProgress: (p) => {
          step = p.step;
          const now = performance.now();
          const e: ProgressEvent = {
            type: 'progress',
            step: p.step,
            steps: p.steps,
            loss: p.loss,
            gradNorm: p.gradNorm,
            lr: p.lr,
            tokensPerSecond: p.rate,
            stepMs: now - last,
            metrics: metricsOf(p.metrics),
          };
          last = now;
          void Promise.resolve(onEvent(e)).catch(() => {});
        },
        onCheckpoint: async (c) => {
          await watch.check(); // no checkpoint leaves of a step the GPU failed
          await onEvent(Comlink.transfer({ type: 'checkpoint', checkpoint: c }, buffersOf(c)));
          last = performance.now(); // the wait for storage is not the next step's time
        },
      });
      await watch.check(false);
      if (r.cancelled) return { cancelled: true, steps: r.losses.length, losses: r.losses, files: null };
      const files = stageFiles(r);
      // the event gets a copy (a few MB at most); the result takes the buffers themselves
      const done: DoneEvent = { type: 'done', files, steps: r.losses.length, losses: r.losses };
      await onEvent(done);
      const buffers = [...new Set(Object.values(files).map((b) => b.buffer as ArrayBuffer))];
      return Comlink.transfer({ cancelled: false, steps: r.losses.length, losses: r.losses, files }, buffers);
    } catch (e) {
      await watched?.close();
      const err = await this.runError(e, step, batch);
      await this.report(onEvent, err);
      throw err;
    } finally {
      this.running = false;
      this.paused = false;
      this.abort = null;
      this.wake?.();
      this.wake = null;
    }
  }

  private async report(onEvent: (e: TrainerEvent) => unknown, err: unknown): Promise<void> {
    try {
      await onEvent({ type: 'error', error: toPlainError(err) });
    } catch {
      // the listener is gone (page closed): the rejection still reports it
    }
  }

  /**
   * A big student opened for this run goes onto the GPU now (its plan fitted): whatever model the
   * worker held is freed first, the load reports progress and Cancel stops it (false: cancelled,
   * nothing of it left). Its inference plan is the smallest (the trainer has no KV cache).
   */
  private async loadForRun(onEvent: (e: TrainerEvent) => unknown, signal: AbortSignal): Promise<boolean> {
    const o = this.student;
    if (!o?.big || !this.rt) return true;
    if (this.rt.gpu.state !== 'ready') await this.init(this.gpuObject); // a lost device: a fresh one
    const rt = this.rt;
    if (rt.modelInfo?.key === o.key) return true;
    rt.unload();
    // the training plan checked the budget; the load's own (inference) plan keeps only its
    // binding-limit checks (a budget figure it could refuse under would be about inference)
    const src: StudentSource = {
      ...o.src,
      plan: {
        sequences: 1,
        context: Math.min(2, o.big.config.maxSeqLen),
        memoryBudget: Number.MAX_SAFE_INTEGER,
      },
    };
    try {
      await rt.load(src, {
        signal,
        onProgress: (p) => void Promise.resolve(onEvent({ type: 'load', ...p })).catch(() => {}),
      });
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError') return false;
      throw e;
    }
    this.source = src;
    return true;
  }

  /** Holds the run before its next step. */
  pause(): void {
    if (this.running) this.paused = true;
  }

  /** Lets a paused run go on. */
  resume(): void {
    this.paused = false;
    this.wake?.();
    this.wake = null;
  }

  /** Stops the run before its next step (a paused run too); `start` resolves with `cancelled`. */
  cancel(): void {
    this.abort?.abort();
    this.resume();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  destroy(): void {
    this.cancel();
    this.rt?.destroy();
    this.rt = null;
  }

  private async gate(): Promise<void> {
    while (this.paused && !this.abort?.signal.aborted) await new Promise<void>((r) => (this.wake = r));
    this.rt?.gpu.assertReady();
  }

  /** The runtime with a model; after a lost device, a fresh device with the same model. */
  private async ready(): Promise<StudentRuntime> {
    if (this.rt && this.rt.gpu.state !== 'ready' && this.source) {
      await this.init(this.gpuObject);
      await this.rt.load(this.source);
    }
    if (!this.rt?.modelInfo)
      throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet: load one before training.');
    return this.rt;
  }

  /**
   * Any failure while the device is lost is the device loss (the app resumes from a checkpoint).
   * A device lost mid-step fails the work in flight (a readback's map) before `device.lost`
   * settles: a failure that is not the engine's own waits a moment for it. Out of memory says
   * what to do in training's terms.
   */
  private async runError(e: unknown, step: number | null, batch: number): Promise<unknown> {
    if (e instanceof EngineError && e.code === 'OUT_OF_MEMORY')
      return new EngineError(
        'OUT_OF_MEMORY',
        `${step === null ? 'Setting up the run' : `Training step ${step}`} (batch ${batch}) needed more GPU ` +
          'memory than is free; nothing of it was kept. The run is paused at its last checkpoint: close other ' +
          'GPU-heavy tabs, then Resume goes on from there on a fresh GPU device. If it runs out again, cancel ' +
          'and start the run with a smaller batch.',
        { cause: e },
      );
    const gpu = this.rt?.gpu;
    if (gpu && (e instanceof EngineError ? gpu.state === 'lost' : await gpu.isLost()))
      return new EngineError(
        'DEVICE_LOST',
        `The GPU device was lost during training (${gpu.lostMessage || 'no reason given'}). ` +
          'Nothing of the run is lost: it is paused at its last checkpoint, and Resume goes on from there on a fresh GPU device.',
        { cause: e },
      );
    return e;
  }
}
