/**
 * matmul benchmark: GFLOP/s (2·B·K·N / time) and GB/s of weight bytes read, for f32 / q8_0 / q4_0 and
 * the file formats q4f16_1 (MLC, web-llm) / q4_k / q6_k (GGUF) weights of LLaMA-7b's shapes
 * (N,K) = (4096,4096) and (11008,4096), at B = 1 and 16 (decode). Weights are random bits in the
 * GPU layout (valid f16 scales); timing is wall clock around repeated dispatches after a warm-up,
 * ending with `gpu.sync()`. Names: matmul_<dtype>_<N>x<K>_b<B> (GFLOP/s) and …_gbs (GB/s).
 */
import type { Gpu } from '../src/engine/gpu/gpu.ts';
import { byteSize, type Tensor } from '../src/engine/gpu/tensor.ts';
import { gemvKey, matmulForward, matmulForwardGemv, type GemvConfig } from '../src/engine/ops/matmul.ts';
import type { WeightDType } from '../src/engine/quant-gpu.ts';
import { f32ToF16 } from '../src/engine/quant.ts';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

const DTYPES = ['f32', 'q8_0', 'q4_0', 'q4f16_1', 'q4_k', 'q6_k'] as const;
const SHAPES = [
  [4096, 4096],
  [11008, 4096],
] as const; // (N, K)
const BATCHES = [1, 16] as const;

/**
 * A (N,K) weight of random content: f32 values in [-1, 1), or random quants with f16 scales 0.01
 * (q4_k: d and dmin of every 36-word block; its 6-bit scales stay random).
 */
export function randomWeight(
  gpu: Gpu,
  dtype: WeightDType,
  N: number,
  K: number,
  label = `bench.w.${dtype}`,
): Tensor {
  const t = gpu.tensor([N, K], label, dtype);
  const words = new Uint32Array(byteSize([N, K], dtype) / 4);
  let s = 0x9e3779b9;
  const next = (): number => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  if (dtype === 'f32') {
    const f = new Float32Array(words.buffer);
    for (let i = 0; i < f.length; i++) f[i] = next() / 2 ** 31 - 1;
  } else if (dtype === 'q4_k') {
    for (let i = 0; i < words.length; i++) words[i] = next();
    const h = f32ToF16(0.01);
    for (let i = 0; i < words.length; i += 36) words[i] = h | (h << 16);
  } else {
    // quant words, then f16 scales two per u32: one per 32 values (q8_0, q4_0, q4f16_1) or per 256 (q6_k)
    const scaleWords = Math.ceil((N * K) / (dtype === 'q6_k' ? 512 : 64));
    const quantWords = words.length - scaleWords;
    for (let i = 0; i < quantWords; i++) words[i] = next();
    const h = f32ToF16(0.01);
    words.fill(h | (h << 16), quantWords);
  }
  gpu.upload(t, words);
  return t;
}

/**
 * Seconds per call of `run` (dispatches only): after a warm-up (pipeline compile, first touch),
 * batches of calls between syncs until `minMs` have passed; a batch doubles while it takes under
 * 50 ms, so a fast GPU is not timed on sync round trips.
 */
export async function timeDispatches(
  gpu: Gpu,
  run: () => void,
  minMs: number,
  iters: number,
): Promise<number> {
  run();
  await gpu.sync();
  let n = 0;
  let batch = iters;
  const t0 = performance.now();
  let t1: number;
  do {
    const tb = performance.now();
    for (let i = 0; i < batch; i++) run();
    await gpu.sync();
    n += batch;
    t1 = performance.now();
    if (minMs > 0 && t1 - tb < 50) batch *= 2;
  } while (t1 - t0 < minMs);
  return (t1 - t0) / 1000 / n;
}

function input(gpu: Gpu, B: number, K: number): Tensor {
  return gpu.fromData(
    [B, K],
    new Float32Array(B * K).map((_, i) => Math.sin(i)),
    'bench.x',
  );
}

export async function benchMatmul(gpu: Gpu, opts: { quick: boolean }): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  const minMs = opts.quick ? 0 : 500; // full runs keep dispatching until this much time has passed
  const iters = opts.quick ? 2 : 10;
  for (const dtype of DTYPES) {
    for (const [N, K] of SHAPES) {
      const w = randomWeight(gpu, dtype, N, K);
      for (const B of BATCHES) {
        const x = input(gpu, B, K);
        const out = gpu.tensor([B, N], 'bench.out');
        const sec = await timeDispatches(gpu, () => matmulForward(gpu, out, x, w, B, K, N), minMs, iters);
        const name = `matmul_${dtype}_${N}x${K}_b${B}`;
        results.push({ name, value: (2 * B * K * N) / sec / 1e9, unit: 'GFLOP/s' });
        results.push({ name: `${name}_gbs`, value: w.byteLength / sec / 1e9, unit: 'GB/s' });
        gpu.destroyBuffer(x.buffer);
        gpu.destroyBuffer(out.buffer);
      }
      gpu.destroyBuffer(w.buffer);
    }
  }
  return results;
}

/** The decode-kernel shapes a sweep tries (ops/matmul.ts GemvConfig). */
function gemvCandidates(B: number, wgBytes: number): GemvConfig[] {
  const shapes: [number, number][] = [];
  for (const TPR of [8, 16, 32, 64])
    for (const RPW of [1, 2, 4, 8]) if (TPR * RPW >= 32 && TPR * RPW <= 256) shapes.push([TPR, RPW]);
  const out: GemvConfig[] = [];
  for (const [TPR, RPW] of shapes)
    for (const RT of [undefined, 2, 4].filter((rt) => TPR * RPW * (rt ?? 1) * 64 <= wgBytes))
      for (const BT of B === 1 ? [undefined] : [8, 16])
        out.push({ TPR, RPW, ...(RT ? { RT } : {}), ...(BT ? { BT } : {}) });
  return out;
}

export interface GemvSweep {
  /** The fastest shape per decode-kernel class (gemvKey), by total time over SHAPES. */
  best: Record<string, GemvConfig>;
  /** Every class's candidates, fastest first: µs summed over SHAPES. */
  table: { key: string; cfg: GemvConfig; us: number }[];
}

/**
 * Times every candidate decode-kernel shape on LLaMA-7b's two matrix shapes, for f32, q4_0 (class
 * q) and q4f16_1 (class u) weights at B = 1 and 16. Hardware GPUs only (software GPUs keep their
 * fixed shape).
 */
export async function sweepGemv(
  gpu: Gpu,
  opts: { quick: boolean; shapes?: readonly (readonly [number, number])[] },
): Promise<GemvSweep> {
  const shapes = opts.shapes ?? SHAPES;
  const table: GemvSweep['table'] = [];
  const best: Record<string, GemvConfig> = {};
  for (const dtype of ['f32', 'q4_0', 'q4f16_1'] as const) {
    const ws = shapes.map(([N, K]) => randomWeight(gpu, dtype, N, K));
    for (const B of BATCHES) {
      const key = gemvKey(dtype, B);
      const xs = shapes.map(([, K]) => input(gpu, B, K));
      const outs = shapes.map(([N]) => gpu.tensor([B, N], 'bench.out'));
      const rows: GemvSweep['table'] = [];
      for (const cfg of gemvCandidates(B, gpu.limits.maxComputeWorkgroupStorageSize ?? 16384)) {
        let sec = 0;
        for (let s = 0; s < shapes.length; s++) {
          const [N, K] = shapes[s]!;
          sec += await timeDispatches(
            gpu,
            () => matmulForwardGemv(gpu, outs[s]!, xs[s]!, ws[s]!, B, K, N, false, cfg),
            opts.quick ? 0 : 30,
            opts.quick ? 1 : 8,
          );
        }
        rows.push({ key, cfg, us: sec * 1e6 });
      }
      rows.sort((a, b) => a.us - b.us);
      best[key] = rows[0]!.cfg;
      table.push(...rows);
      for (const t of [...xs, ...outs]) gpu.destroyBuffer(t.buffer);
    }
    for (const w of ws) gpu.destroyBuffer(w.buffer);
  }
  return { best, table };
}
