// loadLlamaMlc: web-llm's q4f16_1 / q4f32_1 shards (written by tools/mlc-write.ts) streamed onto a
// backend. The CPU backend holds exactly readMlcWeightsF32's values (the f32 reference of the same
// files); on the GPU the logits equal those values loaded as f32, also with the matrices split by
// rows on a GPU with a small binding limit; a shard cut short mid-load or an abort leaves no tensor
// behind.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import type { LoadProgress } from '../../src/engine/io/load-gguf.ts';
import { loadLlamaMlc } from '../../src/engine/io/load-mlc.ts';
import {
  memoryFolder,
  openMlc,
  readMlcWeightsF32,
  type MlcFolder,
  type MlcQuantization,
} from '../../src/engine/io/mlc.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../src/engine/model/llama.ts';
import type { LlamaWeightsF32, WeightName } from '../../src/engine/model/weights.ts';
import { randomLlamaWeights, writeMlc } from '../../tools/mlc-write.ts';
import { checkOp } from '../helpers/checkop.ts';
import { cpuWeights } from '../helpers/backends.ts';
import { testGpu } from '../helpers/gpu.ts';
import { logitsOf } from '../helpers/runner.ts';

const CONFIG: LlamaConfig = {
  dim: 128,
  hiddenDim: 352,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 80,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
const PROMPT = [1, 9, 44, 3, 79, 9, 0, 51];

function folder(config: LlamaConfig, quantization: MlcQuantization, seed = 2, maxShardBytes = 64 << 10) {
  const files = writeMlc(config, randomLlamaWeights(config, seed), { quantization, maxShardBytes });
  return { files, folder: memoryFolder(`tiny-${quantization}-MLC`, files) };
}

/** Equal element for element (=== : the q4_0 repack gives −0 where MLC's (7 − 7)·scale gives +0). */
function expectSame(got: Record<WeightName, Float32Array>, want: LlamaWeightsF32): void {
  for (const k of Object.keys(got) as WeightName[]) {
    expect(got[k].length, k).toBe(want[k].length);
    expect(
      got[k].every((v, i) => v === want[k][i]),
      k,
    ).toBe(true);
  }
}

/** A backend recording which of its weight / data tensors are alive. */
function counting<T extends BackendTensor>(be: Backend<T>) {
  const live = new Set<T>();
  let made = 0;
  const w = Object.create(be) as Backend<T>;
  Object.assign(w, {
    weight(...a: Parameters<Backend<T>['weight']>) {
      const t = be.weight(...a);
      live.add(t);
      made++;
      return t;
    },
    fromData(...a: Parameters<Backend<T>['fromData']>) {
      const t = be.fromData(...a);
      live.add(t);
      made++;
      return t;
    },
    destroy(t: T) {
      live.delete(t);
      be.destroy(t);
    },
  });
  return { be: w, live, made: () => made };
}

/** The folder, with `shard`'s reads failing past byte `cut` as a download cut short would. */
function cutShard(f: MlcFolder, shard: string, cut: number): MlcFolder {
  return {
    name: f.name,
    open: async (path) => {
      const src = await f.open(path);
      if (!src || path !== shard) return src;
      return {
        size: src.size,
        name: src.name,
        read: (offset, length) =>
          offset + length > cut
            ? Promise.reject(
                new EngineError('TRUNCATED_FILE', `${src.name}: only ${cut} bytes arrived; fetch it again.`),
              )
            : src.read(offset, length),
      };
    },
  };
}

describe('loadLlamaMlc', () => {
  for (const quantization of ['q4f16_1', 'q4f32_1'] as const) {
    it(`${quantization}: the CPU backend holds exactly readMlcWeightsF32's values`, async () => {
      const mlc = await openMlc(folder(CONFIG, quantization).folder);
      const model = await loadLlamaMlc(new CpuBackend(), mlc);
      expectSame(cpuWeights(model), await readMlcWeightsF32(mlc));
      expect(model.tensors.length).toBe(3 + 9 * CONFIG.nLayers);
    });
  }

  it('dtypes: q4f16_1 matrices as they are, the embedding repacked to q4_0, padded rows f32', async () => {
    const be = new GpuBackend(await testGpu());
    // hidden 352 = 11 groups: w2's rows (K = 352) are whole groups; hidden 100 pads w2's rows
    const a = await loadLlamaMlc(be, await openMlc(folder(CONFIG, 'q4f16_1').folder));
    const b = await loadLlamaMlc(be, await openMlc(folder({ ...CONFIG, hiddenDim: 100 }, 'q4f16_1').folder));
    const c = await loadLlamaMlc(be, await openMlc(folder(CONFIG, 'q4f32_1').folder));
    try {
      expect([a.tokenEmbedding.dtype, a.layers[0]!.wq.dtype, a.layers[1]!.w2.dtype, a.wcls.dtype]).toEqual([
        'q4_0',
        'q4f16_1',
        'q4f16_1',
        'q4f16_1',
      ]);
      expect([b.layers[0]!.w1.dtype, b.layers[0]!.w2.dtype]).toEqual(['q4f16_1', 'f32']);
      expect([c.layers[0]!.wq.dtype, c.wcls.dtype]).toEqual(['q4_0', 'q4_0']);
    } finally {
      for (const m of [a, b, c]) destroyLlama(m);
    }
  });

  for (const [name, config, quantization, matrices] of [
    ['q4f16_1', CONFIG, 'q4f16_1', undefined],
    ['q4f16_1 repacked to q4_0', CONFIG, 'q4f16_1', 'q4_0'],
    ['q4f32_1', CONFIG, 'q4f32_1', undefined],
    [
      'q4f16_1, tied classifier, padded w2 rows',
      { ...CONFIG, sharedClassifier: true, hiddenDim: 100 },
      'q4f16_1',
      undefined,
    ],
  ] as const) {
    it(`GPU logits = the same values loaded as f32: ${name}`, async () => {
      const be = new GpuBackend(await testGpu());
      const mlc = await openMlc(folder(config, quantization).folder);
      const model = await loadLlamaMlc(be, mlc, matrices ? { matrices } : {});
      const ref = loadLlama(be, config, await readMlcWeightsF32(mlc));
      try {
        if (config.sharedClassifier) expect(model.wcls).toBe(model.tokenEmbedding);
        const want = await logitsOf(ref, PROMPT);
        checkOp('model_logits', await logitsOf(model, PROMPT), want);
        expect(Math.max(...want) - Math.min(...want)).toBeGreaterThan(1);
      } finally {
        destroyLlama(model);
        destroyLlama(ref);
      }
    });
  }

  it('on a GPU that binds 16 KiB: q4f16_1 matrices split by rows (words and scales), the same logits', async () => {
    const mlc = await openMlc(folder(CONFIG, 'q4f16_1').folder);
    const gpu = await Gpu.create(await nodeGpu(), { limits: { maxStorageBufferBindingSize: 16384 } });
    const be = new GpuBackend(gpu);
    // the runner binds (maxRows × hiddenDim) f32 activations whole: 8 rows fit
    const run = async (m: LlamaModel<Tensor>) => {
      const runner = new LlamaRunner(m, { slots: 1, maxT: PROMPT.length, maxRows: 8 });
      try {
        const rows = PROMPT.map((token, pos) => ({ slot: 0, pos, token }));
        return await runner.forward(
          rows,
          rows.map((_, i) => i),
        );
      } finally {
        runner.destroy();
      }
    };
    const model = await loadLlamaMlc(be, mlc);
    const ref = await loadLlamaMlc(new GpuBackend(await testGpu()), mlc);
    try {
      // w1 (352 × 128) and w2 (128 × 352): 352 rows × 72 bytes and 128 rows × 198 bytes
      expect(model.layers[1]!.w1.dtype).toBe('q4f16_1');
      expect(model.layers[1]!.w1.parts?.map((p) => p.rows)).toEqual([227, 125]);
      expect(model.layers[0]!.w2.parts?.map((p) => p.rows)).toEqual([82, 46]);
      expect(model.layers[0]!.wq.parts).toBeUndefined();
      const got = await gpu.checked(() => run(model));
      expect(Array.from(got)).toEqual(Array.from(await run(ref))); // the same kernels per part
    } finally {
      destroyLlama(model);
      destroyLlama(ref);
      gpu.destroy();
    }
  });

  it('progress ends at the bytes of every record; abort mid-load frees everything', async () => {
    const { files, folder: f } = folder(CONFIG, 'q4f16_1');
    const mlc = await openMlc(f);
    const seen: LoadProgress[] = [];
    destroyLlama(await loadLlamaMlc(new CpuBackend(), mlc, { onProgress: (p) => seen.push(p) }));
    const manifest = JSON.parse(new TextDecoder().decode(files.get('tensor-cache.json'))) as {
      records: { records: { nbytes: number }[] }[];
    };
    const total = manifest.records.flatMap((s) => s.records).reduce((a, r) => a + r.nbytes, 0);
    expect(seen[0]).toEqual({ bytesDone: 0, bytesTotal: total, tensor: 'model.embed_tokens' });
    expect(seen.at(-1)).toEqual({ bytesDone: total, bytesTotal: total, tensor: 'lm_head' });
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.bytesDone).toBeGreaterThan(seen[i - 1]!.bytesDone);
    // q, k and v come out of one fused qkv_proj: three reads of it
    expect(seen.filter((p) => p.tensor === 'model.layers.1.self_attn.qkv_proj').length).toBe(3);

    const gpu = new GpuBackend(await testGpu());
    const before = gpu.gpu.liveBuffers;
    const ac = new AbortController();
    const err = await loadLlamaMlc(gpu, mlc, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.tensor === 'model.layers.0.mlp.down_proj') ac.abort();
      },
    }).catch((e: unknown) => e);
    expect((err as DOMException).name).toBe('AbortError');
    expect(gpu.gpu.liveBuffers).toEqual(before);
  });

  it('a shard cut short mid-load: TRUNCATED_FILE, nothing left allocated', async () => {
    const { files, folder: f } = folder(CONFIG, 'q4f16_1');
    const shards = [...files.keys()].filter((n) => n.startsWith('params_shard_')).sort();
    expect(shards.length).toBeGreaterThan(3);
    const last = shards.at(-1)!;
    const mlc = await openMlc(cutShard(f, last, 16));
    const gpu = new GpuBackend(await testGpu());
    const before = gpu.gpu.liveBuffers;
    const c = counting(gpu);
    const err = await loadLlamaMlc(c.be, mlc).catch((e: unknown) => e);
    expect((err as EngineError).code).toBe('TRUNCATED_FILE');
    expect(c.made()).toBeGreaterThan(5);
    expect(c.live.size).toBe(0);
    expect(gpu.gpu.liveBuffers).toEqual(before);
  });
});
