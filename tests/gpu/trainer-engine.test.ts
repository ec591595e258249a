// The trainer worker's engine in Node on Dawn, on the built-in student and the world's teacher
// data: a few steps give progress and checkpoint events and files that read back as the stage's
// adapters; a run pauses and goes on, cancels, resumes from a checkpoint with the losses of an
// unbroken run, refuses NAT without a negative LoRA, and turns a lost device into DEVICE_LOST
// (then resumes on a fresh device).
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import {
  TrainerEngine,
  type CheckpointEvent,
  type ProgressEvent,
  type TrainerEvent,
  type TrainRequest,
} from '../../src/method/api/trainer.ts';
import { readStageFiles } from '../../src/method/stages/files.ts';
import type { StageCheckpoint, StageData, TrainItem } from '../../src/method/stages/stages.ts';
import { generateProblems, teacherSamples } from '../../src/method/world/index.ts';

const MODELS = 'public/models/';
const buf = (p: string): ArrayBuffer => {
  const b = readFileSync(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
const setFiles = (dir: string, names: string[]) =>
  Object.fromEntries(names.map((n) => [n, buf(`${MODELS}adapters/${dir}/${n}`)]));

// 30 world questions × 4 teacher samples: D_pos / D_neg by the teacher's own verdicts
const problems = generateProblems(30, 5);
const samples = teacherSamples(problems, 4, 5);
const data = { pos: [] as TrainItem[], neg: [] as TrainItem[] } satisfies StageData;
samples.forEach((ss, i) => {
  for (const s of ss)
    (s.correct ? data.pos : data.neg).push({ question: problems[i]!.question, rationale: s.text });
});

const quick = {
  steps: 4,
  batchSize: 4,
  lr: 5e-3,
  warmup: 0,
  rank: 4,
  alpha: 8,
  targets: ['q' as const, 'v' as const],
};

function collect() {
  const events: TrainerEvent[] = [];
  const progress = () => events.filter((e): e is ProgressEvent => e.type === 'progress');
  const checkpoints = () => events.filter((e): e is CheckpointEvent => e.type === 'checkpoint');
  // in-process the checkpoint is the engine's object: keep a copy, as IndexedDB would
  const on = (e: TrainerEvent) =>
    void events.push(e.type === 'checkpoint' ? { ...e, checkpoint: structuredClone(e.checkpoint) } : e);
  return { events, progress, checkpoints, on };
}

describe('TrainerEngine on the built-in student', () => {
  let t: TrainerEngine;
  beforeAll(async () => {
    t = new TrainerEngine();
    await t.init(await nodeGpu());
    const info = await t.load({
      modelBytes: buf(`${MODELS}arith-student.safetensors`),
      tokenizerJson: JSON.parse(readFileSync(`${MODELS}arith-student.tokenizer.json`, 'utf8')) as unknown,
      name: 'arith-student',
    });
    expect(info.config.dim).toBe(64);
    expect(data.pos.length).toBeGreaterThan(4);
    expect(data.neg.length).toBeGreaterThan(4);
  }, 120_000);

  let whole: { losses: number[]; checkpoints: StageCheckpoint[] };

  it('kd: progress every step, checkpoints every 2 steps and at the end, files that read back', async () => {
    const c = collect();
    const r = await t.start({ stage: 'kd', data, config: quick, checkpointEvery: 2 }, c.on);
    expect(c.progress().map((p) => p.step)).toEqual([1, 2, 3, 4]);
    expect(c.progress().every((p) => p.steps === 4 && Number.isFinite(p.loss) && p.tokensPerSecond > 0)).toBe(
      true,
    );
    expect(c.progress()[0]!.metrics).toEqual({});
    expect(c.checkpoints().map((e) => e.checkpoint.step)).toEqual([2, 4]);
    expect(c.checkpoints()[0]!.checkpoint.losses).toEqual(r.losses.slice(0, 2));
    expect(r.cancelled).toBe(false);
    expect(r.losses).toEqual(c.progress().map((p) => p.loss));
    const done = c.events.find((e) => e.type === 'done');
    expect(done?.type === 'done' && Object.keys(done.files).sort()).toEqual([
      'lora.safetensors',
      'result.json',
    ]);
    const files = Object.fromEntries(
      Object.entries(r.files!).map(([k, v]) => [
        k,
        v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength),
      ]),
    ) as Record<string, ArrayBuffer>;
    const back = readStageFiles(files);
    expect(back.stage).toBe('kd');
    expect(back.adapters.lora!.config.rank).toBe(4);
    expect(back.adapters.lora!.tensors).toEqual(c.checkpoints()[1]!.checkpoint.adapters.lora!.tensors);
    expect(c.events.at(-1)!.type).toBe('done');
    whole = { losses: r.losses, checkpoints: c.checkpoints().map((e) => e.checkpoint) };
  }, 240_000);

  it('resumes from a checkpoint with the losses of the unbroken run', async () => {
    const c = collect();
    const r = await t.start(
      { stage: 'kd', data, config: {}, resume: whole.checkpoints[0]!, checkpointEvery: 2 },
      c.on,
    );
    expect(c.progress().map((p) => p.step)).toEqual([3, 4]);
    expect(r.losses.slice(0, 2)).toEqual(whole.losses.slice(0, 2));
    expect(r.losses).toHaveLength(4);
    for (let i = 2; i < 4; i++) expect(r.losses[i]).toBeCloseTo(whole.losses[i]!, 5);
  }, 240_000);

  it('waits while paused, goes on after resume; cancel stops a run without files', async () => {
    const c = collect();
    let firstAt = 0;
    const run = t.start({ stage: 'kd', data, config: { ...quick, steps: 3 } }, (e) => {
      c.on(e);
      if (e.type === 'progress' && e.step === 1) {
        t.pause();
        firstAt = Date.now();
      }
    });
    while (!t.isPaused) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 400));
    expect(c.progress().map((p) => p.step)).toEqual([1]);
    expect(t.busy).toBe(true);
    t.resume();
    const r = await run;
    expect(firstAt).toBeGreaterThan(0);
    expect(c.progress().map((p) => p.step)).toEqual([1, 2, 3]);
    expect(r.cancelled).toBe(false);

    const d = collect();
    const cancelled = await t.start({ stage: 'kd', data, config: { ...quick, steps: 50 } }, (e) => {
      d.on(e);
      if (e.type === 'progress' && e.step === 2) t.cancel();
    });
    expect(cancelled).toEqual({ cancelled: true, steps: 2, losses: cancelled.losses, files: null });
    expect(cancelled.losses).toHaveLength(2);
    expect(d.events.some((e) => e.type === 'done')).toBe(false);

    // cancelling a paused run ends it too
    const p = t.start({ stage: 'kd', data, config: { ...quick, steps: 50 } }, (e) => {
      if (e.type === 'progress' && e.step === 1) t.pause();
    });
    while (!t.isPaused) await new Promise((r) => setTimeout(r, 20));
    t.cancel();
    expect((await p).steps).toBe(1);
    expect(t.busy).toBe(false);
  }, 240_000);

  it('refuses NAT without a negative LoRA, and a second run while one is going', async () => {
    const c = collect();
    const err = await t.start({ stage: 'nat', data, config: quick }, c.on).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('BAD_ARGUMENT');
    expect((err as EngineError).message).toMatch(/negative LoRA.*Neg adapter set/);
    expect(c.events).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'BAD_ARGUMENT' }) }]);
    // a KD set is not a negative LoRA; NCE needs a NAT set
    const kd = setFiles('kd', ['lora.safetensors', 'result.json']);
    await expect(t.start({ stage: 'nat', data, config: quick, inputs: kd }, () => {})).rejects.toThrow(
      /kd stage and holds no negative LoRA/,
    );
    await expect(t.start({ stage: 'nce', data, config: quick, inputs: kd }, () => {})).rejects.toThrow(
      /NCE needs a NAT adapter set/,
    );
    const first = t.start({ stage: 'kd', data, config: { ...quick, steps: 2 } }, () => {});
    await expect(t.start({ stage: 'kd', data, config: quick }, () => {})).rejects.toThrow(
      /already in progress/,
    );
    await first;
  }, 240_000);

  it('nat on the built-in Neg set reports mean α per layer; nce on the built-in NAT set reports β', async () => {
    const c = collect();
    const neg = setFiles('neg', ['lora.safetensors', 'result.json']);
    const r = await t.start({ stage: 'nat', data, config: { ...quick, steps: 2 }, inputs: neg }, c.on);
    const alpha = c.progress().map((p) => p.metrics.alpha);
    expect(alpha).toHaveLength(2);
    expect(alpha.every((a) => a?.length === 4 && a.every((x) => x > -0.5 && x < 0.5))).toBe(true);
    const back = readStageFiles(
      Object.fromEntries(Object.entries(r.files!).map(([k, v]) => [k, v.slice().buffer])) as Record<
        string,
        ArrayBuffer
      >,
    );
    expect(back.stage).toBe('nat');
    expect(back.adapters.neg).toEqual(readStageFiles(neg).adapters.lora); // frozen
    expect(back.adapters.nat).toBeDefined();

    const d = collect();
    const nat = setFiles('nat', ['lora.safetensors', 'nat.safetensors', 'neg.safetensors', 'result.json']);
    await t.start({ stage: 'nce', data, config: { ...quick, steps: 1 }, inputs: nat }, d.on);
    expect(d.progress()[0]!.metrics.beta).toHaveLength(quick.batchSize);
  }, 240_000);

  it('a lost device ends the run with DEVICE_LOST; a fresh device resumes from the checkpoint', async () => {
    const c = collect();
    const req: TrainRequest = { stage: 'kd', data, config: { ...quick, steps: 4 }, checkpointEvery: 2 };
    const err = await t
      .start(req, (e) => {
        c.on(e);
        // the driver takes the device away after the first checkpoint
        if (e.type === 'checkpoint' && e.checkpoint.step === 2)
          (t as unknown as { rt: { gpu: { device: GPUDevice } } }).rt.gpu.device.destroy();
      })
      .catch((e: unknown) => e);
    expect((err as EngineError).code).toBe('DEVICE_LOST');
    expect(c.events.at(-1)).toMatchObject({ type: 'error', error: { code: 'DEVICE_LOST' } });
    const resumed = await t.start({ ...req, resume: c.checkpoints()[0]!.checkpoint }, () => {});
    expect(resumed.losses.slice(0, 2)).toEqual(c.checkpoints()[0]!.checkpoint.losses);
    for (let i = 2; i < 4; i++) expect(resumed.losses[i]).toBeCloseTo(whole.losses[i]!, 5);
  }, 240_000);
});
