/**
 * `npm run bench` (table) / `npm run bench -- --json` (one JSON document):
 *   decode tokens/s at m = 1, 4, 16 on stories260K (and at m = 16 with an f16 KV cache) and on a
 *   random dim-512, 8-layer LLaMA;
 *   prefill tokens/s; LoRA training step ms; decode at LLaMA-7b's shapes with q4_0 and q4f16_1
 *   weights (32 layers on a hardware GPU; tokens/s, GB/s of weights, share of --bandwidth-gbs);
 *   matmul GFLOP/s and GB/s (f32, q8_0, q4_0, q4f16_1, q4_k, q6_k) at LLaMA-7b shapes.
 * Options: --quick (fewer iterations), --only <substring> (run matching groups), --profile (GPU
 * time per kernel for the decode runs, from timestamp queries), --layers-7b N, --bandwidth-gbs G
 * (the card's nominal memory bandwidth), --tune (hardware GPUs: sweep the decode kernels' shapes,
 * then rerun the decode groups with the fastest, suffix _tuned; the JSON's machine.tuning holds them).
 * Group `bindgroups`: decode with the bind-group cache on and off, side by side.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { GpuBackend } from '../src/engine/backend/gpu.ts';
import { Gpu } from '../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../src/engine/gpu/node.ts';
import { Profiler } from '../src/engine/gpu/profiler.ts';
import { rmsnormForward } from '../src/engine/ops/rmsnorm.ts';
import type { Tensor } from '../src/engine/gpu/tensor.ts';
import { parseLlama2c } from '../src/engine/io/llama2c.ts';
import { LlamaRunner } from '../src/engine/infer/runner.ts';
import type { KvType } from '../src/engine/kvcache.ts';
import type { LlamaConfig } from '../src/engine/model/config.ts';
import { loadLlama, destroyLlama, type LlamaModel } from '../src/engine/model/llama.ts';
import { createLora, destroyLora } from '../src/engine/model/lora.ts';
import { randomLlamaWeights } from '../src/engine/model/random.ts';
import { DEFAULT_ADAMW } from '../src/engine/train/adamw.ts';
import { LoraTrainer } from '../src/engine/train/trainer.ts';
import type { ActType } from '../src/engine/ops/act.ts';
import { copyGbs, llama7bConfig, randomQuantLlama, weightBytesPerStep } from './llama7b.ts';
import { benchMatmul, sweepGemv, type GemvSweep } from './matmul.ts';

export interface Result {
  name: string;
  value: number;
  unit: string;
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const profile = args.includes('--profile');
const only = args.includes('--only') ? (args[args.indexOf('--only') + 1] ?? '') : '';
const numArg = (flag: string): number | undefined =>
  args.includes(flag) ? Number(args[args.indexOf(flag) + 1]) : undefined;
const layers7b = numArg('--layers-7b');
/** The card's nominal memory bandwidth in GB/s, for the share figures (e.g. 3350 for an H100 SXM). */
const bandwidthGbs = numArg('--bandwidth-gbs');
const log = (s: string) => (json ? process.stderr : process.stdout).write(s + '\n');

async function decodeTps(
  model: LlamaModel<Tensor>,
  m: number,
  steps: number,
  kv: KvType = 'f32',
  act: ActType = 'f32',
): Promise<number> {
  const runner = new LlamaRunner(model, { slots: m, maxT: steps + 8, kv, act });
  const rows = (pos: number) =>
    Array.from({ length: m }, (_, s) => ({ slot: s, pos, token: ((s * 7 + pos) % 100) + 3 }));
  const all = (pos: number) => rows(pos).map((_, i) => i);
  await runner.forward(rows(0), all(0)); // warm-up: pipelines compiled
  await runner.forward(rows(1), all(1));
  const t0 = performance.now();
  for (let p = 2; p < steps + 2; p++) await runner.forward(rows(p), all(p)); // logits read back every step
  const s = (performance.now() - t0) / 1000;
  if (profile) {
    // Per-kernel GPU time of one more pass over the same steps (timed passes, outside the figure).
    const gpu = (model.be as GpuBackend).gpu;
    const prof = Profiler.attach(gpu);
    for (let p = 2; p < steps + 2; p++) {
      await runner.forward(rows(p), all(p));
      await prof.collect();
    }
    log(`  kernels per decode step, m = ${m}, ${kv} KV cache, ${act} activations (GPU ms per step):`);
    for (const r of prof.table()) log(`    ${r.kernel.padEnd(40)} ${(r.totalMs / steps).toFixed(3)}`);
    prof.detach();
  }
  runner.destroy();
  return (m * steps) / s;
}

async function prefillTps(model: LlamaModel<Tensor>, T: number): Promise<number> {
  const runner = new LlamaRunner(model, { slots: 1, maxT: T, maxRows: T });
  const rows = Array.from({ length: T }, (_, pos) => ({ slot: 0, pos, token: (pos % 100) + 3 }));
  await runner.forward(rows, [T - 1]);
  const reps = quick ? 2 : 5;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await runner.forward(rows, [T - 1]);
  const s = (performance.now() - t0) / 1000;
  runner.destroy();
  return (reps * T) / s;
}

/**
 * ms until m samples of one T-token prompt have their first logits: every sequence prefilled
 * (`shared` false), or the prompt once and its KV cache copied to the other m − 1 slots, as
 * generate() does for samples of one question.
 */
async function samplesPrefillMs(model: LlamaModel<Tensor>, m: number, T: number, shared: boolean) {
  const runner = new LlamaRunner(model, { slots: m, maxT: T + 8, maxRows: 128 });
  const prompt = Array.from({ length: T }, (_, pos) => (pos % 100) + 3);
  const run = async () => {
    const seqs = shared ? [0] : Array.from({ length: m }, (_, s) => s);
    const rows = seqs.flatMap((slot) => prompt.map((token, pos) => ({ slot, pos, token })));
    await runner.forward(
      rows,
      seqs.map((_, i) => (i + 1) * T - 1),
    );
    if (shared)
      runner.copySlot(
        0,
        Array.from({ length: m - 1 }, (_, s) => s + 1),
        T,
      );
    await model.be.sync();
  };
  await run();
  const reps = quick ? 1 : 3;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await run();
  runner.destroy();
  return (performance.now() - t0) / reps;
}

async function loraStepMs(model: LlamaModel<Tensor>, B: number, T: number): Promise<number> {
  const be = model.be;
  const adapter = createLora(be, model.config, { rank: 8, alpha: 16, dropout: 0.05, targets: ['q', 'v'] }, 1);
  const trainer = new LoraTrainer(model, adapter, DEFAULT_ADAMW);
  const ex = Array.from({ length: B }, (_, b) => {
    const tokens = Array.from({ length: T + 1 }, (_, t) => ((b * 31 + t * 7) % 200) + 3);
    return { tokens, lossMask: tokens.map((_, t) => (t === 0 ? 0 : 1)) };
  });
  await trainer.step(ex);
  const reps = quick ? 2 : 5;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) await trainer.step(ex);
  const ms = (performance.now() - t0) / reps;
  trainer.destroy();
  destroyLora(be, adapter);
  return ms;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

async function main(): Promise<void> {
  const gpu = await Gpu.create(await nodeGpu({ robustness: true }), { powerPreference: 'high-performance' });
  const be = new GpuBackend(gpu);
  const results: Result[] = [];
  const push = (name: string, value: number, unit: string) => {
    results.push({ name, value: Number(value.toPrecision(4)), unit });
    log(`${name.padEnd(34)} ${value.toPrecision(4).padStart(10)} ${unit}`);
  };
  const want = (group: string) => !only || group.includes(only);
  const steps = quick ? 8 : 32;

  // --tune (hardware GPUs): after the groups run on the default kernel shapes, sweep the decode
  // kernels' shapes, install the fastest (gpu.tuning), and run the decode groups again with the
  // suffix _tuned: before and after side by side on one machine.
  const tune = args.includes('--tune') && !gpu.info.software;
  let sweep: GemvSweep | null = null;
  const loadStories = (): LlamaModel<Tensor> => {
    const buf = readFileSync('public/models/stories260K.bin');
    const { config, weights } = parseLlama2c(
      buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer,
    );
    return loadLlama(be, config, weights);
  };
  /** Layers of the LLaMA-7b-shaped models (--layers-7b; 32 on a hardware GPU, 1 on a software one). */
  const L7 = layers7b ?? (gpu.info.software ? 1 : 32);
  const stories = async (suffix: string) => {
    const model = loadStories();
    // m = 1, 4, 16 side by side in `rounds` interleaved rounds, the median of each: a software GPU
    // on a shared machine swings ±15% run to run, most of all at m = 1 (latency-bound); the ratio
    // m16 / m1 is the median of the per-round ratios (issue bar: ≥ 8×)
    const rounds = quick || profile ? 1 : 5;
    const tps: Record<number, number[]> = { 1: [], 4: [], 16: [] };
    for (let r = 0; r < rounds; r++)
      for (const m of [1, 4, 16]) tps[m]!.push(await decodeTps(model, m, steps));
    for (const m of [1, 4, 16]) push(`decode_tps_m${m}${suffix}`, median(tps[m]!), 'tokens/s');
    push(
      `decode_ratio_m16_m1${suffix}`,
      median(tps[16]!.map((t, r) => t / tps[1]![r]!)),
      `× (median of ${rounds} rounds)`,
    );
    push(`decode_tps_m16_kvf16${suffix}`, await decodeTps(model, 16, steps, 'f16'), 'tokens/s');
    if (!suffix) {
      push('prefill_tps', await prefillTps(model, 128), 'tokens/s');
      const apart = await samplesPrefillMs(model, 16, 128, false);
      const shared = await samplesPrefillMs(model, 16, 128, true);
      push('samples_m16_p128_prefill_ms', apart, 'ms (16 samples of one 128-token prompt, each prefilled)');
      push(
        'samples_m16_p128_shared_prefill_ms',
        shared,
        'ms (the prompt once, its KV cache copied to 15 slots)',
      );
      push('lora_step_ms', await loraStepMs(model, 4, 64), 'ms');
    }
    destroyLlama(model);
  };
  const llama7b = async (suffix: string) => {
    const steps7b = quick ? 2 : gpu.info.software ? 3 : 32;
    if (!suffix) push('copy_gbs', await copyGbs(gpu, 2 ** 28, quick), 'GB/s (read + write)');
    for (const dtype of ['q4_0', 'q4f16_1'] as const) {
      const model = randomQuantLlama(be, llama7bConfig(L7), dtype);
      const gb = weightBytesPerStep(model) / 1e9;
      const tag = `llama7b_L${L7}_${dtype}`;
      if (!suffix) push(`${tag}_weights_gb`, gb, 'GB per decode step');
      // f16 activations (and KV cache) where the device has shader-f16
      const runs: (readonly [number, KvType, ActType])[] = [
        [1, 'f32', 'f32'],
        [16, 'f32', 'f32'],
        [16, 'f16', 'f32'],
      ];
      if (gpu.info.f16) runs.push([1, 'f16', 'f16'], [16, 'f16', 'f16']);
      for (const [m, kv, act] of runs) {
        const tps = await decodeTps(model, m, steps7b, kv, act);
        const kind = act === 'f16' ? '_actf16' : kv === 'f16' ? '_kvf16' : '';
        const name = `${tag}_decode_m${m}${kind}${suffix}`;
        push(`${name}_tps`, tps, 'tokens/s');
        const gbs = (gb * tps) / m; // a step reads the weights once for all m rows
        push(`${name}_gbs`, gbs, 'GB/s of weights');
        if (bandwidthGbs) push(`${name}_bw_share`, (100 * gbs) / bandwidthGbs, `% of ${bandwidthGbs} GB/s`);
      }
      destroyLlama(model);
    }
  };

  if (want('stories260K')) await stories('');
  if (want('rand512')) {
    const c: LlamaConfig = {
      dim: 512,
      hiddenDim: 1376,
      nLayers: 8,
      nHeads: 8,
      nKvHeads: 8,
      vocabSize: 32000,
      maxSeqLen: 1024,
      ropeTheta: 10000,
      normEps: 1e-5,
      sharedClassifier: false,
    };
    const model = loadLlama(be, c, randomLlamaWeights(c, 3));
    for (const m of [1, 4, 16])
      push(`rand512_decode_tps_m${m}`, await decodeTps(model, m, quick ? 4 : 16), 'tokens/s');
    push('rand512_prefill_tps', await prefillTps(model, 128), 'tokens/s');
    push('rand512_lora_step_ms', await loraStepMs(model, 2, 64), 'ms');
    destroyLlama(model);
  }
  if (want('llama7b')) await llama7b('');
  if (want('rmsnorm') && !gpu.info.software) {
    // The parallel RMSNorm forward at decode sizes with 64 and 256 threads per row, interleaved:
    // µs per dispatch over `n` dispatches in one submission (wall clock, synced).
    const C = 4096,
      n = quick ? 50 : 2000;
    for (const R of [1, 16]) {
      const x = gpu.fromData(
        [R, C],
        new Float32Array(R * C).map((_, i) => Math.sin(i)),
        'bench.x',
      );
      const w = gpu.fromData([C], new Float32Array(C).fill(1), 'bench.w');
      const out = gpu.tensor([R, C], 'bench.out');
      const rstd = gpu.tensor([R], 'bench.rstd');
      const t: Record<number, number[]> = { 64: [], 256: [] };
      for (let r = 0; r < 3; r++)
        for (const wg of [64, 256]) {
          rmsnormForward(gpu, out, rstd, x, w, R, C, 1e-5, 'parallel', wg);
          await gpu.sync();
          const t0 = performance.now();
          for (let i = 0; i < n; i++) rmsnormForward(gpu, out, rstd, x, w, R, C, 1e-5, 'parallel', wg);
          await gpu.sync();
          t[wg]!.push(((performance.now() - t0) * 1000) / n);
        }
      push(`rmsnorm_R${R}_C${C}_wg64_us`, median(t[64]!), 'µs per dispatch');
      push(`rmsnorm_R${R}_C${C}_wg256_us`, median(t[256]!), 'µs per dispatch');
      for (const b of [x, w, out, rstd]) gpu.destroyBuffer(b.buffer);
    }
  }
  if (want('gemvb1') && !gpu.info.software) {
    // The decode matmul at B = 1 (7B-shaped decode, m = 1): the one-row kernel (16 × 4, the
    // hardware default) against the `_r` kernel with the sweep's best B = 1 shape (RT weight rows
    // per thread), interleaved.
    for (const dtype of ['q4_0', 'q4f16_1'] as const) {
      const model = randomQuantLlama(be, llama7bConfig(L7), dtype);
      const key = dtype === 'q4_0' ? 'q_b1' : 'u_b1';
      const acts: ActType[] = gpu.info.f16 ? ['f32', 'f16'] : ['f32'];
      for (const act of acts) {
        const t: Record<string, number[]> = { rows: [], one: [] };
        for (let r = 0; r < (quick ? 1 : 3); r++)
          for (const k of ['one', 'rows'] as const) {
            const rows = key === 'q_b1' ? { TPR: 8, RPW: 8, RT: 2 } : { TPR: 8, RPW: 8, RT: 4 };
            gpu.tuning = { gemv: { [key]: k === 'one' ? { TPR: 16, RPW: 4 } : rows } };
            t[k]!.push(await decodeTps(model, 1, quick ? 2 : 32, 'f16', act));
          }
        gpu.tuning = {};
        const tag = `llama7b_L${L7}_${dtype}_decode_m1_act${act}`;
        push(`${tag}_one_row_tps`, median(t.one!), 'tokens/s (one-row kernel, 16 × 4)');
        push(`${tag}_rows_tps`, median(t.rows!), 'tokens/s (`_r`: RT rows per thread, the sweep’s best)');
        push(
          `${tag}_rows_speedup`,
          median(t.rows!.map((x, r) => x / t.one![r]!)),
          '× (median of the rounds)',
        );
      }
      destroyLlama(model);
    }
  }
  if (want('actf16') && gpu.info.f16) {
    // f16 against f32 activations on one LLaMA-7b-shaped q4_0 model, both with the f16 KV cache,
    // interleaved in `rounds` rounds (a GPU's decode speed drifts between runs): medians and the
    // median of the per-round ratios.
    const model = randomQuantLlama(be, llama7bConfig(L7), 'q4_0');
    const rounds = quick ? 1 : 3;
    const steps7b = quick ? 2 : 32;
    for (const m of [1, 16]) {
      const t: Record<ActType, number[]> = { f32: [], f16: [] };
      for (let r = 0; r < rounds; r++)
        for (const act of ['f32', 'f16'] as const)
          t[act].push(await decodeTps(model, m, steps7b, 'f16', act));
      const tag = `llama7b_L${L7}_q4_0_decode_m${m}_kvf16`;
      push(`${tag}_act_f32_tps`, median(t.f32), 'tokens/s');
      push(`${tag}_act_f16_tps`, median(t.f16), 'tokens/s');
      push(
        `${tag}_act_f16_speedup`,
        median(t.f16.map((x, r) => x / t.f32[r]!)),
        `× (median of ${rounds} rounds)`,
      );
    }
    destroyLlama(model);
  }
  if (want('train7b')) {
    // a LoRA step (r8 on q, v; AdamW) on the LLaMA-7b-shaped q4_0 model at 1 × 512 tokens with
    // activation recompute: the time, and the GPU bytes held after two steps (weights, adapter,
    // optimizer state and every pooled activation buffer: the pool keeps what it allocated)
    const T = gpu.info.software ? 16 : 512;
    const model = randomQuantLlama(be, llama7bConfig(L7), 'q4_0');
    const weights = gpu.liveBuffers.bytes;
    const adapter = createLora(
      be,
      model.config,
      { rank: 8, alpha: 16, dropout: 0.05, targets: ['q', 'v'] },
      1,
    );
    const trainer = new LoraTrainer(model, adapter, DEFAULT_ADAMW, 1234, { recompute: true });
    const tokens = Array.from({ length: T + 1 }, (_, t) => ((t * 7) % 200) + 3);
    const ex = [{ tokens, lossMask: tokens.map((_, t) => (t === 0 ? 0 : 1)) }];
    await trainer.step(ex);
    const t0 = performance.now();
    const { loss } = await trainer.step(ex);
    const tag = `llama7b_L${L7}_q4_0_lora_T${T}_recompute`;
    push(`${tag}_step_ms`, performance.now() - t0, `ms (loss ${loss.toPrecision(4)})`);
    push(`${tag}_gpu_gb`, gpu.liveBuffers.bytes / 1e9, `GB held (weights ${(weights / 1e9).toFixed(3)})`);
    trainer.destroy();
    destroyLora(be, adapter);
    destroyLlama(model);
  }
  if (tune) {
    sweep = await sweepGemv(gpu, { quick });
    gpu.tuning.gemv = sweep.best;
    for (const key of Object.keys(sweep.best)) {
      log(`  decode-kernel shapes for ${key}, fastest first (µs over both 7B shapes):`);
      for (const r of sweep.table.filter((t) => t.key === key).slice(0, 6))
        log(`    ${JSON.stringify(r.cfg).padEnd(44)} ${r.us.toFixed(1)}`);
    }
    if (want('stories260K')) await stories('_tuned');
    if (want('llama7b')) await llama7b('_tuned');
  }
  if (want('bindgroups')) {
    // decode with the bind-group cache (gpu/bindgroups.ts) on and off, interleaved in 3 rounds,
    // medians: stories260K, and on a hardware GPU the LLaMA-7b-shaped q4_0 model
    const was = gpu.bindGroups.enabled;
    const models: [string, LlamaModel<Tensor>, number][] = [['stories260K', loadStories(), steps]];
    if (!gpu.info.software)
      models.push([`llama7b_L${L7}_q4_0`, randomQuantLlama(be, llama7bConfig(L7), 'q4_0'), 16]);
    for (const [name, model, n] of models) {
      for (const m of [1, 16]) {
        const on: number[] = [];
        const off: number[] = [];
        for (let r = 0; r < (quick ? 1 : 3); r++) {
          gpu.bindGroups.enabled = true;
          on.push(await decodeTps(model, m, n));
          gpu.bindGroups.enabled = false;
          off.push(await decodeTps(model, m, n));
        }
        push(`${name}_decode_m${m}_bindgroup_cache_tps`, median(on), 'tokens/s');
        push(`${name}_decode_m${m}_no_bindgroup_cache_tps`, median(off), 'tokens/s');
      }
      destroyLlama(model);
    }
    gpu.bindGroups.enabled = was;
    gpu.bindGroups.clear();
  }
  if (want('matmul')) {
    for (const r of await benchMatmul(gpu, { quick })) push(r.name, r.value, r.unit);
  }
  const machine = {
    adapter: {
      vendor: gpu.info.vendor,
      architecture: gpu.info.architecture,
      device: gpu.info.device,
      description: gpu.info.description,
      software: gpu.info.software,
    },
    features: gpu.info.features,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    quick,
    ...(bandwidthGbs ? { bandwidthGbs } : {}),
    ...(sweep ? { tuning: { gemv: sweep.best }, sweep: sweep.table } : {}),
  };
  if (json) process.stdout.write(JSON.stringify({ machine, results }, null, 2) + '\n');
  else log(`\nmachine: ${JSON.stringify(machine.adapter)} on ${machine.cpu} ×${machine.cores}`);
  gpu.destroy();
}

await main();
process.exit(0);
