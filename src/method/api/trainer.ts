/**
 * The trainer worker's engine (Train view): one stage of the method (`runStage`) on the student,
 * with live progress, pause / resume / cancel, checkpoints as plain data (the app keeps them in
 * IndexedDB) and the stage's files at the end (what `stageFiles` writes: the app saves them as an
 * adapter set). Plain data in and out; big buffers cross the worker boundary transferred.
 *
 * Inputs from earlier stages come as adapter-set files: NAT and the linear mix take a Neg set
 * (its `lora.safetensors` is the negative LoRA), NCE takes a NAT set (positive LoRA, negative
 * LoRA and integration unit). A lost GPU device ends the run with EngineError('DEVICE_LOST'); the
 * app resumes it from its last checkpoint on a fresh device.
 *
 * @example
 *   const t = new TrainerEngine();
 *   await t.init();                                    // navigator.gpu in a worker
 *   await t.load({ modelUrl: '/models/arith-student.safetensors' });
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
import type { LoraTarget } from '../../engine/model/llama.ts';
import { DEFAULT_STAGE, STAGES, type StageConfig, type StageName } from '../stages/config.ts';
import { readStageFiles, stageFiles } from '../stages/files.ts';
import {
  runStage,
  type StageAdapters,
  type StageCheckpoint,
  type StageData,
  type StageProgress,
} from '../stages/stages.ts';
import { StudentRuntime, type StudentModelInfo, type StudentSource } from './runtime.ts';

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

/** Which earlier adapter set a stage needs: NAT / linear mix a Neg set, NCE a NAT set. */
export function inputSetFor(stage: StageName): 'neg' | 'nat' | null {
  if (stage === 'nat' || stage === 'linmix') return 'neg';
  if (stage === 'nce') return 'nat';
  return null;
}

export interface TrainRequest {
  stage: StageName;
  /** D_pos and D_neg (the training side of the held-out split). */
  data: StageData;
  /** Over DEFAULT_STAGE; ignored on resume (the checkpoint's config holds). */
  config: Partial<StageConfig>;
  /** An earlier stage's adapter-set files (Neg for nat / linmix, NAT for nce), by file name. */
  inputs?: Record<string, ArrayBuffer>;
  /** Continue from this checkpoint (same stage, data and inputs). */
  resume?: StageCheckpoint;
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

export type TrainerEvent = ProgressEvent | CheckpointEvent | DoneEvent | ErrorEvent;

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

/** The inputs a stage takes from an adapter set's files; a clear refusal when the set is not one. */
export function stageInputs(stage: StageName, files: Record<string, ArrayBuffer> | undefined): StageAdapters {
  const need = inputSetFor(stage);
  if (!need) return {};
  const has = files && Object.keys(files).some((f) => f.endsWith('.safetensors'));
  if (!has) {
    throw new EngineError(
      'BAD_ARGUMENT',
      need === 'neg'
        ? `${stage === 'nat' ? 'NAT' : 'The linear mix'} learns next to a frozen negative LoRA, and none was given. ` +
            'Pick a Neg adapter set (the built-in "Negative LoRA" works), or train the Neg stage first.'
        : 'NCE distils the NAT model, and none was given. Pick a NAT adapter set (the built-in "NAT" works), ' +
            'or train the NAT stage first.',
    );
  }
  const { stage: from, adapters } = readStageFiles(files);
  if (need === 'neg') {
    // a Neg set's LoRA is the negative one; a NAT or linear-mix set carries it as `neg`
    const neg =
      from === 'neg' ? adapters.lora : (adapters.neg ?? (from === null ? adapters.lora : undefined));
    if (!neg)
      throw new EngineError(
        'BAD_ARGUMENT',
        `This adapter set comes from the ${from ?? 'unknown'} stage and holds no negative LoRA. ` +
          'Pick a set trained with the Neg stage (on D_neg).',
      );
    return { neg };
  }
  if (!adapters.lora || !adapters.neg || !adapters.nat)
    throw new EngineError(
      'BAD_ARGUMENT',
      `NCE needs a NAT adapter set (positive LoRA, negative LoRA and integration unit); this one comes from ` +
        `the ${from ?? 'unknown'} stage and holds ${Object.keys(files).sort().join(', ')}. Pick a NAT set.`,
    );
  return { lora: adapters.lora, neg: adapters.neg, nat: adapters.nat };
}

export class TrainerEngine {
  private rt: StudentRuntime | null = null;
  private source: StudentSource | null = null;
  private gpuObject: GPU | undefined;
  private running = false;
  private abort: AbortController | null = null;
  private paused = false;
  private wake: (() => void) | null = null;

  /** Opens the GPU: navigator.gpu in a worker; Node's GPU (nodeGpu()) in tests. */
  async init(gpu: GPU | undefined = (globalThis.navigator as Navigator | undefined)?.gpu): Promise<GpuInfo> {
    this.gpuObject = gpu;
    if (!this.rt || this.rt.gpu.state !== 'ready') {
      this.rt?.destroy();
      this.rt = null;
      this.rt = await StudentRuntime.open(gpu);
    }
    return this.rt.info;
  }

  /** Loads the base model (the app passes the built-in student's URL unless the user chose another). */
  async load(src: StudentSource): Promise<StudentModelInfo> {
    if (this.running) throw new EngineError('BAD_ARGUMENT', 'A run is in progress: cancel it first.');
    if (!this.rt) await this.init();
    const info = await this.rt!.load(src);
    this.source = src;
    return info;
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
    this.running = true;
    this.paused = false;
    this.abort = new AbortController();
    let watched: GpuErrorWatch | null = null;
    let step: number | null = null; // the last step done in this call
    const batch = req.resume?.config.batchSize ?? req.config.batchSize ?? DEFAULT_STAGE.batchSize;
    try {
      if (!STAGES.includes(req.stage))
        throw new EngineError('BAD_ARGUMENT', `There is no stage "${String(req.stage)}".`);
      const inputs = stageInputs(req.stage, req.inputs);
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
        data: req.data,
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
      try {
        await onEvent({ type: 'error', error: toPlainError(err) });
      } catch {
        // the listener is gone (page closed): the rejection below still reports it
      }
      throw err;
    } finally {
      this.running = false;
      this.paused = false;
      this.abort = null;
      this.wake?.();
      this.wake = null;
    }
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
