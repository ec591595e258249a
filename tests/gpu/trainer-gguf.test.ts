// Training a GGUF LLaMA through the trainer worker's engine (Node, Dawn): stories260K written to
// GGUF by our writer (llama2.c's tok512 vocabulary as its SentencePiece tokenizer). `open` reads
// the header only (nothing on the GPU); `plan` tokenizes the world's teacher data with the GGUF's
// own tokenizer and gives the planner's figures for one LoRA step (the same as planMemory's for
// that request); a plan over the budget is refused before anything is allocated and leaves the
// trainer as it was (no model, or the model it held); three KD steps load the weights (progress
// events), the loss falls, and recompute on gives the same losses, bit for bit, as recompute off.
// The Train view's planner (no GPU device: the adapter's limits, files read on the CPU) gives the
// trainer's plan exactly, for the GGUF and for the built-in student.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { SpmTokenizer } from '../../src/engine/io/spm.ts';
import { planMemory } from '../../src/engine/plan.ts';
import type { StudentRuntime } from '../../src/method/api/runtime.ts';
import { TrainPlanner } from '../../src/method/api/train-plan.ts';
import { TrainerEngine, type TrainerEvent, type TrainRequest } from '../../src/method/api/trainer.ts';
import { readStageFiles } from '../../src/method/stages/files.ts';
import { encodeExample } from '../../src/method/stages/text.ts';
import type { StageData, TrainItem } from '../../src/method/stages/types.ts';
import { generateProblems, teacherSamples } from '../../src/method/world/index.ts';
import { stories260KGguf, tok512Vocab } from '../helpers/stories-gguf.ts';

const GGUF = stories260KGguf('F32');
const file = () => new File([GGUF], 'stories260K.gguf');
const MiB = 2 ** 20;

// 24 world questions × 4 teacher samples: D_pos / D_neg by the teacher's own verdicts
const problems = generateProblems(24, 5);
const data = { pos: [] as TrainItem[], neg: [] as TrainItem[] } satisfies StageData;
teacherSamples(problems, 4, 5).forEach((ss, i) => {
  for (const s of ss)
    (s.correct ? data.pos : data.neg).push({ question: problems[i]!.question, rationale: s.text });
});
// four right rationales and a batch of four: every step sees the same examples, so the loss must fall
const four: StageData = { pos: data.pos.slice(0, 4), neg: [] };
const quick = {
  steps: 3,
  batchSize: 4,
  lr: 1e-2,
  warmup: 0,
  rank: 4,
  alpha: 8,
  dropout: 0,
  targets: ['q' as const, 'k' as const, 'v' as const, 'o' as const],
  seed: 3,
};

function collect() {
  const events: TrainerEvent[] = [];
  return { events, on: (e: TrainerEvent) => void events.push(e) };
}

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

describe('TrainerEngine with a GGUF student (stories260K)', () => {
  let t: TrainerEngine;
  const rt = () => (t as unknown as { rt: StudentRuntime }).rt;
  beforeAll(async () => {
    t = new TrainerEngine();
    await t.init(await nodeGpu());
  }, 120_000);

  it('open reads the header only; plan tokenizes with the GGUF tokenizer and gives the planner’s figures', async () => {
    const none = rt().gpu.liveBuffers;
    const st = await t.open({ gguf: file(), name: 'stories260K', key: 'stories' });
    expect(st).toEqual({
      key: 'stories',
      name: 'stories260K',
      format: 'gguf',
      config: expect.objectContaining({
        dim: 64,
        hiddenDim: 172,
        nLayers: 5,
        vocabSize: 512,
        maxSeqLen: 512,
      }),
      params: 260_032,
      tokenizer: { kind: 'spm', tokens: 512 },
      loaded: false,
    });
    expect(rt().gpu.liveBuffers).toEqual(none);
    expect(t.modelInfo).toBeNull();

    const r = await t.plan({ stage: 'kd', data, config: { ...quick, recompute: true }, dataKey: 'world' });
    // every example reads (byte fallback); the longest is what llama2c's tok512 makes of it
    const tok = new SpmTokenizer(tok512Vocab(), 'tok512');
    const positions = (it: TrainItem) => encodeExample(tok, it.question, it.rationale).tokens.length - 1;
    const longest = Math.max(...data.pos.map(positions));
    expect(r.data).toEqual({
      maxSeq: 512,
      context: 512,
      longest,
      pos: { total: data.pos.length, kept: data.pos.length, unreadable: 0, tooLong: 0, chars: [] },
      neg: { total: data.neg.length, kept: data.neg.length, unreadable: 0, tooLong: 0, chars: [] },
    });
    expect(longest).toBeGreaterThan(20);
    expect(r.problem).toBeNull();
    const p = r.plan!;
    expect([p.batch, p.seq, p.rank, p.recompute, p.verdict, p.error]).toEqual([
      4,
      longest,
      4,
      true,
      'ok',
      null,
    ]);
    const want = planMemory({
      kind: 'training',
      config: st.config,
      weights: { matrices: 'f32' }, // an all-F32 file lands as it is
      limits: {
        maxBufferSize: rt().gpu.limits['maxBufferSize']!,
        maxStorageBufferBindingSize: rt().gpu.limits['maxStorageBufferBindingSize']!,
      },
      batch: 4,
      seq: longest,
      lora: { rank: 4, targets: quick.targets, dropout: 0 },
      recompute: true,
    });
    expect(p.items).toEqual(want.items);
    expect(p.items.weights).toBe(1_040_128);
    expect(p.budgetAssumed).toBe(true);
    // a cap of 20 tokens per example leaves the longer ones out, counted
    const capped = await t.plan({ stage: 'kd', data, config: quick, dataKey: 'world', maxSeq: 19 });
    const over = data.pos.filter((x) => positions(x) > 19).length;
    expect(capped.data.pos).toMatchObject({ kept: data.pos.length - over, tooLong: over });
    expect(rt().gpu.liveBuffers).toEqual(none);
  }, 120_000);

  it('a plan over the budget is refused before anything is allocated; the trainer stays as it was', async () => {
    const none = rt().gpu.liveBuffers;
    const c = collect();
    const req: TrainRequest = { stage: 'kd', data: four, config: quick, memoryBudget: MiB };
    const err = await engineError(t.start(req, c.on));
    expect(err.code).toBe('OUT_OF_MEMORY');
    expect(err.message).toMatch(
      /^A LoRA training step on 4 × \d+ tokens needs [\d.]+ MiB .* budget is 1\.0 MiB/,
    );
    expect(c.events).toEqual([{ type: 'error', error: expect.objectContaining({ code: 'OUT_OF_MEMORY' }) }]);
    expect(rt().gpu.liveBuffers).toEqual(none);
    expect(t.modelInfo).toBeNull();
    expect(t.busy).toBe(false);
    // a cap no example fits: nothing to train on, said before anything is allocated
    const short = await engineError(t.start({ stage: 'kd', data: four, config: quick, maxSeq: 4 }, () => {}));
    expect(short.code).toBe('BAD_ARGUMENT');
    expect(short.message).toMatch(
      /^None of the 4 examples of D_pos is left to train on: 0 have characters .* 4 are longer than 5 tokens/,
    );
    expect(rt().gpu.liveBuffers).toEqual(none);
  }, 120_000);

  let off: number[];
  it('3 KD steps: the weights load with progress, the loss falls, the files read back', async () => {
    const c = collect();
    const r = await t.start({ stage: 'kd', data: four, config: { ...quick, recompute: false } }, c.on);
    const loads = c.events.filter((e) => e.type === 'load');
    expect(loads.length).toBeGreaterThan(10);
    expect(loads.at(-1)).toEqual({
      type: 'load',
      bytesDone: 1_040_128,
      bytesTotal: 1_040_128,
      tensor: 'blk.4.ffn_down.weight',
    });
    expect(t.modelInfo).toMatchObject({ key: 'stories', format: 'gguf', name: 'stories260K' });
    expect(r.cancelled).toBe(false);
    expect(r.losses).toHaveLength(3);
    expect(r.losses[1]!).toBeLessThan(r.losses[0]!);
    expect(r.losses[2]!).toBeLessThan(r.losses[1]!);
    const files = Object.fromEntries(
      Object.entries(r.files!).map(([k, v]) => [
        k,
        v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength),
      ]),
    ) as Record<string, ArrayBuffer>;
    const back = readStageFiles(files);
    expect(back.stage).toBe('kd');
    expect(back.adapters.lora!.config).toMatchObject({ rank: 4, targets: quick.targets });
    off = r.losses;
  }, 240_000);

  it('recompute on gives the same losses, bit for bit; a refusal keeps the loaded model', async () => {
    const r = await t.start({ stage: 'kd', data: four, config: { ...quick, recompute: true } }, () => {});
    expect(r.losses).toEqual(off);
    const held = rt().gpu.liveBuffers;
    const err = await engineError(
      t.start({ stage: 'kd', data: four, config: quick, memoryBudget: MiB }, () => {}),
    );
    expect(err.code).toBe('OUT_OF_MEMORY');
    expect(rt().gpu.liveBuffers).toEqual(held);
    expect(t.modelInfo).toMatchObject({ key: 'stories', format: 'gguf' });
  }, 240_000);

  it('the planner (no device) gives the trainer’s plan, for the GGUF and for the built-in student', async () => {
    const gpu = await nodeGpu();
    const p = new TrainPlanner();
    const req: TrainRequest = { stage: 'kd', data, config: quick, dataKey: 'world', memoryBudget: 64 * MiB };
    expect(await p.open({ gguf: file(), name: 'stories260K', key: 'stories' }, gpu)).toMatchObject({
      key: 'stories',
      format: 'gguf',
      loaded: false,
    });
    const mine = await p.plan(req);
    const theirs = await t.plan(req);
    expect(mine.plan).toEqual(theirs.plan);
    expect(mine.data).toEqual(theirs.data);
    const buf = (f: string) => {
      const b = readFileSync(`public/models/${f}`);
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    };
    const builtin = {
      modelBytes: buf('arith-student.safetensors'),
      tokenizerJson: JSON.parse(
        readFileSync('public/models/arith-student.tokenizer.json', 'utf8'),
      ) as unknown,
      name: 'arith-student',
      key: 'builtin',
    };
    expect(await p.open(builtin, gpu)).toMatchObject({ format: 'dust2gold', tokenizer: { kind: 'char' } });
    const other = new TrainerEngine();
    await other.init(gpu);
    try {
      await other.open(builtin);
      const a = await p.plan({ ...req, dataKey: 'w2' });
      expect(a.plan?.verdict).toBe('ok');
      expect(a.plan).toEqual((await other.plan({ ...req, dataKey: 'w2' })).plan);
      // NCE with the shipped NAT set: its two LoRAs (r8 on all seven sites) and its unit (d_u 64 on
      // all seven) are counted as they are, not with this run's r4 on q, k, v, o
      const natSet = Object.fromEntries(
        ['lora', 'neg', 'nat'].map((n) => [`${n}.safetensors`, buf(`adapters/nat/${n}.safetensors`)]),
      );
      const nce = { ...req, stage: 'nce' as const, dataKey: 'w2' };
      const shapes = await p.inputShapes('nce', natSet);
      const r8 = { rank: 8, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], dropout: 0.05 };
      expect(shapes).toEqual({ neg: r8, pos: r8, du: 64 });
      const given = await p.plan({ ...nce, inputShapes: shapes });
      const guessed = await p.plan(nce);
      expect(given.plan).toEqual((await other.plan({ ...nce, inputShapes: shapes })).plan);
      // per layer (dim 64, hidden 176): a rank-r LoRA holds 512r values on q, k, v, o and 1232r on
      // all seven; the unit 1024·d_u on q, k, v, o and 2576·d_u on all seven; 4 layers, 4 bytes each
      expect(given.plan!.items.adapters - guessed.plan!.items.adapters).toBe(
        4 * 4 * (2 * (1232 * 8 - 512 * 4) + (2576 - 1024) * 64),
      );
      // NAT beside the shipped Neg set (r8 on all seven): the positive LoRA (this run's r4) sits on
      // the negative one's seven sites, as the stage puts it, and so does the unit
      const negSet = { 'lora.safetensors': buf('adapters/neg/lora.safetensors') };
      const nat = {
        ...req,
        stage: 'nat' as const,
        dataKey: 'w2',
        inputShapes: await p.inputShapes('nat', negSet),
      };
      // a set NCE cannot build on: the trainer's refusal
      const wrong = await p.inputShapes('nce', negSet).catch((e: unknown) => e);
      expect(wrong).toBeInstanceOf(EngineError);
      expect((wrong as EngineError).message).toMatch(/^NCE needs a NAT adapter set .* Pick a NAT set\.$/);
      const natPlan = (await p.plan(nat)).plan!;
      expect(natPlan).toEqual((await other.plan(nat)).plan);
      expect(natPlan.items.adapters).toBe(4 * 4 * (1232 * 4 + 1232 * 8 + 2576 * 64));
    } finally {
      other.destroy();
    }
  }, 240_000);
});
