/**
 * Training-kernel benchmark: GPU ms per kernel for one LoRA training step of a tiny random LLaMA
 * (default dim 32, 2 layers, 4 heads, vocab 128, batch 4 × 35 tokens, LoRA rank 8 on q and v), with
 * every kernel in its GPU variant ("gpu": workgroup tiles and barrier reductions) and in its
 * software-GPU variant ("software": register-blocked / serial kernels, what `gpu.info.software`
 * picks). Both run on the same device through two `Gpu` contexts that differ only in
 * `info.software`, each with its own copy of the model; steps alternate A/B so a load change on
 * the machine hits both, and the figures are medians over the rounds.
 *
 *   node --import tsx --import ./tools/raw-hooks.mjs bench/train-kernels.ts [--rounds 7] [--json]
 *        [--dim 32] [--hidden 96] [--layers 2] [--heads 4] [--kv-heads 4] [--vocab 128]
 *        [--batch 4] [--seq 35] [--rank 8]
 *
 * Per-kernel times come from timestamp queries (one timed pass per dispatch, src/engine/gpu/profiler.ts)
 * in profiled steps; the step wall time comes from unprofiled steps. Kernels are grouped by their
 * GPU entry point (a variant's suffix `_rb`, `_rb1`, `_rb_q`, `_serial`, `_serial4` is dropped).
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { GpuBackend } from '../src/engine/backend/gpu.ts';
import { Gpu } from '../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../src/engine/gpu/node.ts';
import { Profiler } from '../src/engine/gpu/profiler.ts';
import type { Tensor } from '../src/engine/gpu/tensor.ts';
import type { LlamaConfig } from '../src/engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../src/engine/model/llama.ts';
import { createLora, destroyLora, type LoraAdapter } from '../src/engine/model/lora.ts';
import { randomLlamaWeights } from '../src/engine/model/random.ts';
import { DEFAULT_ADAMW } from '../src/engine/train/adamw.ts';
import { LoraTrainer, type Example } from '../src/engine/train/trainer.ts';

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    json: { type: 'boolean', default: false },
    dim: { type: 'string', default: '32' },
    hidden: { type: 'string', default: '96' },
    layers: { type: 'string', default: '2' },
    heads: { type: 'string', default: '4' },
    'kv-heads': { type: 'string', default: '4' },
    vocab: { type: 'string', default: '128' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '35' },
    rank: { type: 'string', default: '8' },
  },
});
const int = (s: string | undefined): number => Number.parseInt(s ?? '', 10);
const rounds = int(opt.rounds);
const B = int(opt.batch);
const T = int(opt.seq);
const log = (s: string): void => void (opt.json ? process.stderr : process.stdout).write(s + '\n');

const config: LlamaConfig = {
  dim: int(opt.dim),
  hiddenDim: int(opt.hidden),
  nLayers: int(opt.layers),
  nHeads: int(opt.heads),
  nKvHeads: int(opt['kv-heads']),
  vocabSize: int(opt.vocab),
  maxSeqLen: Math.max(64, T + 1),
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

/** A fixed batch: B sequences of T + 1 tokens, loss on every position after the first. */
const examples: Example[] = Array.from({ length: B }, (_, b) => {
  const tokens = Array.from({ length: T + 1 }, (_, t) => (b * 31 + t * 7) % config.vocabSize);
  return { tokens, lossMask: tokens.map((_, t) => (t === 0 ? 0 : 1)) };
});

interface Side {
  name: 'gpu' | 'software';
  gpu: Gpu;
  model: LlamaModel<Tensor>;
  adapter: LoraAdapter<Tensor>;
  trainer: LoraTrainer<Tensor>;
  prof: Profiler | null;
  /** Per round: GPU ms per kernel group, and the step's wall ms (unprofiled). */
  kernels: Map<string, number>[];
  /** Dispatches per kernel group in one step. */
  calls: Map<string, number>;
  wall: number[];
}

function side(name: Side['name'], gpu: Gpu): Side {
  const be = new GpuBackend(gpu);
  const model = loadLlama(be, config, randomLlamaWeights(config, 3));
  const lora = { rank: int(opt.rank), alpha: 2 * int(opt.rank), dropout: 0.05, targets: ['q', 'v'] } as const;
  const adapter = createLora(be, config, { ...lora, targets: [...lora.targets] }, 1);
  const trainer = new LoraTrainer(model, adapter, DEFAULT_ADAMW);
  return { name, gpu, model, adapter, trainer, prof: null, kernels: [], calls: new Map(), wall: [] };
}

const group = (label: string): string => label.replace(/_(rb1|rb_q|rb|serial4|serial)$/, '');

async function profiledStep(s: Side): Promise<void> {
  s.prof ??= Profiler.attach(s.gpu);
  s.prof.reset();
  await s.trainer.step(examples);
  await s.prof.collect();
  const ms = new Map<string, number>();
  s.calls.clear();
  for (const r of s.prof.table()) {
    const g = group(r.kernel);
    ms.set(g, (ms.get(g) ?? 0) + r.totalMs);
    s.calls.set(g, (s.calls.get(g) ?? 0) + r.calls);
  }
  s.kernels.push(ms);
  s.gpu.profiler = null; // the next wall-clock step runs without timed passes
}

async function wallStep(s: Side): Promise<void> {
  const t0 = performance.now();
  await s.trainer.step(examples);
  s.wall.push(performance.now() - t0);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? 0 : n % 2 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

async function main(): Promise<void> {
  const base = await Gpu.create(await nodeGpu({ robustness: true }));
  const gpuSide = side('gpu', Gpu.fromDevice(base.device, { ...base.info, software: false }));
  const swSide = side('software', Gpu.fromDevice(base.device, { ...base.info, software: true }));
  const sides = [gpuSide, swSide];
  for (const s of sides) await s.trainer.step(examples); // warm-up: pipelines compiled
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 ? [...sides].reverse() : sides; // alternate who goes first
    for (const s of order) await profiledStep(s);
    for (const s of order) {
      s.prof!.detach();
      s.prof = null;
      await wallStep(s);
    }
  }

  const names = new Set(sides.flatMap((s) => s.kernels.flatMap((m) => [...m.keys()])));
  const med = (s: Side, k: string): number => median(s.kernels.map((m) => m.get(k) ?? 0));
  const rows = [...names]
    .map((k) => ({
      kernel: k,
      calls: swSide.calls.get(k) ?? 0,
      gpu: med(gpuSide, k),
      software: med(swSide, k),
    }))
    .sort((a, b) => b.gpu - a.gpu);
  const total = (s: Side): number => median(s.kernels.map((m) => [...m.values()].reduce((a, b) => a + b, 0)));
  const result = {
    config: { ...config, batch: B, seq: T, rank: int(opt.rank), rounds },
    kernels: rows.map((r) => ({ ...r, speedup: r.software > 0 ? r.gpu / r.software : null })),
    gpuMsPerStep: { gpu: total(gpuSide), software: total(swSide) },
    wallMsPerStep: { gpu: median(gpuSide.wall), software: median(swSide.wall) },
    machine: {
      adapter: base.info.description || base.info.device || base.info.vendor,
      software: base.info.software,
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cores: os.cpus().length,
      loadavg: os.loadavg().map((x) => Number(x.toFixed(2))),
    },
  };

  const f = (x: number): string => x.toFixed(1).padStart(9);
  log(`GPU ms per training step (median of ${rounds} A/B rounds), B=${B} T=${T}:`);
  log(`${'kernel'.padEnd(44)} calls ${'gpu'.padStart(9)} ${'software'.padStart(9)}  speed-up`);
  for (const r of result.kernels) {
    const sp = r.speedup === null ? '' : `${r.speedup.toFixed(1)}×`;
    log(`${r.kernel.padEnd(44)} ${String(r.calls).padStart(5)} ${f(r.gpu)} ${f(r.software)}  ${sp}`);
  }
  const { gpuMsPerStep: g, wallMsPerStep: w } = result;
  log(
    `${'all kernels (GPU ms)'.padEnd(50)} ${f(g.gpu)} ${f(g.software)}  ${(g.gpu / g.software).toFixed(1)}×`,
  );
  log(
    `${'step wall ms (unprofiled)'.padEnd(50)} ${f(w.gpu)} ${f(w.software)}  ${(w.gpu / w.software).toFixed(1)}×`,
  );
  log(`machine: ${JSON.stringify(result.machine)}`);
  if (opt.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');

  for (const s of sides) {
    s.trainer.destroy();
    destroyLora(s.model.be, s.adapter);
    destroyLlama(s.model);
  }
  base.destroy();
}

await main();
process.exit(0);
