import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import {
  bf16ToF32,
  dequantizeMlcQ4,
  f32ToBf16,
  memoryFolder,
  mlcCacheKeys,
  mlcQ4ToQ4_0,
  mlcWordsPerRow,
  openMlc,
  parseMlcManifest,
  permuteMlcRows,
  quantizeMlcQ4,
  readMlcQ4,
  readMlcSite,
  readMlcVector,
  readMlcWeightsF32,
  ropeRowOrder,
  type ByteSource,
  type MlcFolder,
  type MlcModel,
  type MlcQ4,
  type MlcQuantization,
} from '../../src/engine/io/mlc.ts';
import { headSize, kvDim, type LlamaConfig } from '../../src/engine/model/config.ts';
import { LINEAR_SITES, siteShape } from '../../src/engine/model/llama.ts';
import type { LlamaWeightsF32 } from '../../src/engine/model/weights.ts';
import { permuteRopeRows } from '../../src/engine/model/rope-order.ts';
import { dequantizeQ4_0, f16ToF32, f32ToF16 } from '../../src/engine/quant.ts';
import {
  randomLlamaWeights,
  TensorCacheSharder,
  writeMlc,
  type MlcWriteOptions,
} from '../../tools/mlc-write.ts';

async function expectError(
  p: Promise<unknown> | (() => unknown),
  code: string,
  message: RegExp,
): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return;
  }
  throw new Error(`expected EngineError ${code}`);
}

/** GQA, unshared classifier, everything a multiple of 32. */
const gqa: LlamaConfig = {
  dim: 64,
  hiddenDim: 96,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 40,
  maxSeqLen: 128,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
/** Row lengths 48 and 80: the last group of each row is padded. Tied embeddings. */
const padded: LlamaConfig = {
  dim: 48,
  hiddenDim: 80,
  nLayers: 1,
  nHeads: 4,
  nKvHeads: 4,
  vocabSize: 24,
  maxSeqLen: 64,
  ropeTheta: 500000,
  normEps: 1e-6,
  sharedClassifier: true,
};

const bytesEq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);
const toF16 = (x: number) => f16ToF32(f32ToF16(x));

/** Per-element bound of the format: |x − x̂| ≤ bound(s, x) with s the stored scale of x's group. */
function bound(quant: MlcQuantization, format: 'raw' | 'f32-to-bf16') {
  if (quant === 'q4f16_1')
    // f16 weights: x → f16 (2^-11 relative), q from f16 arithmetic (≤ 3·2^-9 off before rounding)
    return (s: number, x: number) => s * (0.5 + 2 ** -7) + 2 ** -11 * Math.abs(x) + 2 ** -25;
  if (format === 'raw') return (s: number) => s * (0.5 + 2 ** -16);
  // q from the f32 scale, stored scale rounded to bf16 (≤ 2^-8 relative): (q − 7) moves ≤ 7·2^-8·s
  return (s: number) => s * (0.5 + 8 * 2 ** -8);
}

function expectWithin(m: MlcQ4, x: Float32Array, b: (s: number, x: number) => number): number {
  const xhat = dequantizeMlcQ4(m);
  expect(xhat.length).toBe(x.length);
  const G = Math.ceil(m.cols / 32);
  let worst = 0;
  for (let r = 0; r < m.rows; r++)
    for (let k = 0; k < m.cols; k++) {
      const s = m.scale[r * G + (k >> 5)]!;
      const xi = x[r * m.cols + k]!;
      const err = Math.abs(xi - xhat[r * m.cols + k]!);
      if (!(err <= b(s, xi))) throw new Error(`row ${r} col ${k}: |${xi} − ${xhat[r * m.cols + k]}| > bound`);
      if (s > 0) worst = Math.max(worst, err / s);
    }
  return worst;
}

function layerSlice(c: LlamaConfig, w: LlamaWeightsF32, l: number, site: (typeof LINEAR_SITES)[number]) {
  const [n, k] = siteShape(c, site);
  return w[site].subarray(l * n * k, (l + 1) * n * k);
}

function countingFolder(files: Map<string, Uint8Array>): { folder: MlcFolder; read: { bytes: number } } {
  const inner = memoryFolder('model', files);
  const read = { bytes: 0 };
  return {
    read,
    folder: {
      name: inner.name,
      open: async (p) => {
        const s = await inner.open(p);
        if (!s) return null;
        const src: ByteSource = {
          name: s.name,
          size: s.size,
          read: async (o, n) => {
            const b = await s.read(o, n);
            read.bytes += b.length;
            return b;
          },
        };
        return src;
      },
    },
  };
}

const write = (c: LlamaConfig, seed: number, opts: MlcWriteOptions = {}) => {
  const w = randomLlamaWeights(c, seed);
  return { w, files: writeMlc(c, w, opts) };
};

describe('MLC group quantization (q4f16_1 / q4f32_1)', () => {
  it('dequantizes hand-packed words: low nibble first, (q − 7) · scale, padding dropped', () => {
    const m: MlcQ4 = {
      rows: 1,
      cols: 40,
      qWeight: Uint32Array.from([0x76543210, 0xfedcba98, 0x77777777, 0x0000000e, 0x00000f70, 0, 0, 0]),
      scale: Float32Array.from([0.5, 0.25]),
    };
    const want = [
      ...[0, 1, 2, 3, 4, 5, 6, 7].map((q) => (q - 7) * 0.5),
      ...[8, 9, 10, 11, 12, 13, 14, 15].map((q) => (q - 7) * 0.5),
      ...Array<number>(8).fill(0),
      3.5,
      ...Array<number>(7).fill(-3.5),
      -1.75, // k = 32: nibble 0 of the second group's first word
      0,
      2, // nibble 15: (15 − 7) · 0.25
      ...Array<number>(5).fill(-1.75),
    ];
    expect(Array.from(dequantizeMlcQ4(m))).toEqual(want);
    expect(mlcWordsPerRow(40)).toBe(8);
  });

  it('quantizes values on the grid exactly: scale = max|w| / 7, q = w / scale + 7', () => {
    const k = [7, -7, 3, -1, 0, 5, -6, 2, 1, -2, 4, -3, 6, -5, -4, 0];
    const w = Float32Array.from([...k, ...k].map((v) => v * 0.125));
    for (const quant of ['q4f16_1', 'q4f32_1'] as const) {
      const m = quantizeMlcQ4(w, 1, 32, quant);
      expect(Array.from(m.scale)).toEqual([0.125]);
      expect(Array.from(dequantizeMlcQ4(m))).toEqual(Array.from(w));
      expect(m.qWeight[0]).toBe(
        (0xe |
          (0x0 << 4) |
          (0xa << 8) |
          (0x6 << 12) |
          (0x7 << 16) |
          (0xc << 20) |
          (0x1 << 24) |
          (0x9 << 28)) >>>
          0,
      );
    }
  });

  it('rounds in the model dtype and ties away from zero (tir.round)', () => {
    const row = new Float32Array(32);
    row[0] = 1;
    const f16 = quantizeMlcQ4(row, 1, 32, 'q4f16_1');
    const f32 = quantizeMlcQ4(row, 1, 32, 'q4f32_1');
    expect(f16.scale[0]).toBe(0.142822265625); // f16(1/7) = 1170 · 2^-13
    expect(f32.scale[0]).toBe(Math.fround(1 / 7));
    // scale exactly 1: w = −0.5 → 6.5 → 7 (not 6), w = −2.5 → 4.5 → 5, w = 0.5 → 7.5 → 8
    const t = Float32Array.from([7, -0.5, -2.5, 0.5, 2.5, -7, ...Array<number>(26).fill(0)]);
    for (const quant of ['q4f16_1', 'q4f32_1'] as const)
      expect(Array.from(dequantizeMlcQ4(quantizeMlcQ4(t, 1, 32, quant)).subarray(0, 6))).toEqual([
        7, 0, -2, 1, 3, -7,
      ]);
  });

  it('stores q = 7 for an all-zero group and refuses values the dtype cannot hold', async () => {
    const m = quantizeMlcQ4(new Float32Array(64), 2, 32, 'q4f16_1');
    expect(Array.from(m.qWeight)).toEqual(Array<number>(8).fill(0x77777777));
    expect(Array.from(m.scale)).toEqual([0, 0]);
    expect(dequantizeMlcQ4(m).every((v) => v === 0)).toBe(true);
    const big = new Float32Array(32);
    big[3] = 70000; // beyond f16's 65504
    await expectError(
      () => quantizeMlcQ4(big, 1, 32, 'q4f16_1'),
      'BAD_ARGUMENT',
      /element \(0, 3\) is 70000/,
    );
    expect(quantizeMlcQ4(big, 1, 32, 'q4f32_1').scale[0]).toBe(Math.fround(70000 / 7));
    big[3] = NaN;
    await expectError(() => quantizeMlcQ4(big, 1, 32, 'q4f32_1'), 'BAD_ARGUMENT', /NaN/);
  });

  it('converts f32 to bf16 like tvmjs: nearest even, truncation beyond the largest bf16', () => {
    expect(f32ToBf16(1)).toBe(0x3f80);
    expect(f32ToBf16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(f32ToBf16(1 + 3 * 2 ** -8)).toBe(0x3f82); // tie → even (up)
    expect(f32ToBf16(-2.75)).toBe(0xc030);
    expect(f32ToBf16(3.4e38)).toBe(0x7f7f); // truncated, not rounded to Inf
    expect(bf16ToF32(0x3f82)).toBe(1.015625);
    expect(bf16ToF32(0xc030)).toBe(-2.75);
  });

  it('repacks to GGUF q4_0 blocks with identical values (d = −scale, q′ = 15 − q)', () => {
    const w = randomLlamaWeights(gqa, 3).wq.subarray(0, 64 * 64);
    for (const quant of ['q4f16_1', 'q4f32_1'] as const) {
      const m = quantizeMlcQ4(w, 64, 64, quant);
      if (quant === 'q4f32_1')
        for (let i = 0; i < m.scale.length; i++) m.scale[i] = bf16ToF32(f32ToBf16(m.scale[i]!));
      const { blocks, inexactScales } = mlcQ4ToQ4_0(m);
      expect(inexactScales).toBe(0);
      const a = dequantizeQ4_0(blocks, 64 * 64);
      const b = dequantizeMlcQ4(m);
      expect(a.every((v, i) => v === b[i])).toBe(true);
    }
    // every nibble, including 15 (which MLC never writes): (15 − 7)·s = (0 − 8)·(−s)
    const all: MlcQ4 = {
      rows: 1,
      cols: 32,
      qWeight: Uint32Array.from([0x76543210, 0xfedcba98, 0x76543210, 0xfedcba98]),
      scale: Float32Array.from([0.375]),
    };
    const a = dequantizeQ4_0(mlcQ4ToQ4_0(all).blocks, 32);
    const b = dequantizeMlcQ4(all);
    expect(a.every((v, i) => v === b[i])).toBe(true); // === : q4_0 gives −0 where MLC gives 0
    expect(Array.from(b.subarray(0, 16), (v) => v / 0.375)).toEqual([
      -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    // a bf16 scale below f16's precision is counted, not hidden
    expect(mlcQ4ToQ4_0({ ...all, scale: Float32Array.from([bf16ToF32(0x3581)]) }).inexactScales).toBe(1);
    expect(() => mlcQ4ToQ4_0(quantizeMlcQ4(new Float32Array(40), 1, 40, 'q4f16_1'))).toThrow(
      /multiple of 32/,
    );
  });
});

describe('RoPE row order', () => {
  it('maps HF rotate_half rows to our adjacent pairs (from rope-order.ts permuteRopeRows)', () => {
    expect(Array.from(ropeRowOrder(1, 4))).toEqual([0, 2, 1, 3]);
    expect(Array.from(ropeRowOrder(2, 4))).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    expect(Array.from(ropeRowOrder(1, 8))).toEqual([0, 4, 1, 5, 2, 6, 3, 7]);
  });

  it('round-trips packed rows and agrees with permuteRopeRows on the values', () => {
    const hf = randomLlamaWeights(gqa, 5).wq.subarray(0, 64 * 64);
    const m = quantizeMlcQ4(hf, 64, 64, 'q4f16_1');
    const order = ropeRowOrder(4, 16);
    const ours = permuteMlcRows(m, order);
    expect(Array.from(dequantizeMlcQ4(ours))).toEqual(
      Array.from(permuteRopeRows(dequantizeMlcQ4(m), 4, 16, false)),
    );
    const inverse = new Uint32Array(order.length);
    order.forEach((src, i) => (inverse[src] = i));
    const back = permuteMlcRows(ours, inverse);
    expect(Array.from(back.qWeight)).toEqual(Array.from(m.qWeight));
    expect(Array.from(back.scale)).toEqual(Array.from(m.scale));
  });
});

describe('MLC folders: write, open, read back', () => {
  const cases: [string, LlamaConfig, MlcWriteOptions][] = [
    ['q4f16_1, GQA, unshared classifier', gqa, { quantization: 'q4f16_1' }],
    ['q4f32_1 (bf16-encoded scales), GQA', gqa, { quantization: 'q4f32_1' }],
    ['q4f32_1 with raw float32', gqa, { quantization: 'q4f32_1', encodeFormat: 'raw' }],
    ['q4f16_1, padded groups, tied embedding', padded, { quantization: 'q4f16_1', maxShardBytes: 4096 }],
  ];
  for (const [label, c, opts] of cases)
    it(`every tensor dequantizes to the writer's input within the bound: ${label}`, async () => {
      const { w, files } = write(c, 11, opts);
      const model = await openMlc(memoryFolder('tiny-MLC', files));
      expect(model.config).toEqual(c);
      expect(model.quantization).toBe(opts.quantization);
      const quant = opts.quantization!;
      const b = bound(quant, opts.encodeFormat ?? 'f32-to-bf16');
      let worst = 0;
      for (let l = 0; l < c.nLayers; l++)
        for (const site of LINEAR_SITES)
          worst = Math.max(
            worst,
            expectWithin(await readMlcSite(model, l, site), layerSlice(c, w, l, site), b),
          );
      worst = Math.max(
        worst,
        expectWithin(await readMlcQ4(model, 'model.embed_tokens'), w.tokenEmbedding, b),
      );
      if (!c.sharedClassifier) expectWithin(await readMlcQ4(model, 'lm_head'), w.wcls, b);
      expect(worst).toBeGreaterThan(0.45); // the bound is met by quantizing, not by luck
      // norms: exactly the model dtype's rounding of the input
      const round =
        quant === 'q4f16_1'
          ? toF16
          : opts.encodeFormat === 'raw'
            ? (x: number) => x
            : (x: number) => bf16ToF32(f32ToBf16(x));
      const n1 = await readMlcVector(model, 'model.layers.0.post_attention_layernorm.weight');
      expect(Array.from(n1)).toEqual(Array.from(w.rmsFfn.subarray(0, c.dim), round));
      // the f32 reference: the same numbers, assembled in our layout
      const all = await readMlcWeightsF32(model);
      for (let l = 0; l < c.nLayers; l++)
        for (const site of LINEAR_SITES)
          expect(Array.from(layerSlice(c, all, l, site))).toEqual(
            Array.from(dequantizeMlcQ4(await readMlcSite(model, l, site))),
          );
      expect(Array.from(all.rmsFinal)).toEqual(Array.from(w.rmsFinal, round));
      expect(all.wcls === all.tokenEmbedding).toBe(c.sharedClassifier);
    });

  it('stores q/k in HF order, fused as [q; k; v] and [gate; up]; the split equals the separate matrices', async () => {
    const c = gqa;
    const { w, files } = write(c, 12);
    const model = await openMlc(memoryFolder('m', files));
    const C = c.dim;
    const KV = kvDim(c);
    const H = c.hiddenDim;
    const hs = headSize(c);
    const qkv = await readMlcQ4(model, 'model.layers.1.self_attn.qkv_proj');
    expect(qkv.rows).toBe(C + 2 * KV);
    const rows = (m: MlcQ4, a: number, n: number) => ({
      rows: n,
      cols: m.cols,
      qWeight: m.qWeight.subarray(a * 8, (a + n) * 8),
      scale: m.scale.subarray(a * 2, (a + n) * 2),
    });
    const same = (a: MlcQ4, b: MlcQ4) => {
      expect(Array.from(a.qWeight)).toEqual(Array.from(b.qWeight));
      expect(Array.from(a.scale)).toEqual(Array.from(b.scale));
    };
    same(permuteMlcRows(rows(qkv, 0, C), ropeRowOrder(c.nHeads, hs)), await readMlcSite(model, 1, 'wq'));
    same(permuteMlcRows(rows(qkv, C, KV), ropeRowOrder(c.nKvHeads, hs)), await readMlcSite(model, 1, 'wk'));
    same(rows(qkv, C + KV, KV), await readMlcSite(model, 1, 'wv'));
    const gu = await readMlcQ4(model, 'model.layers.1.mlp.gate_up_proj');
    const r = (m: MlcQ4, a: number, n: number) => ({
      rows: n,
      cols: m.cols,
      qWeight: m.qWeight.subarray(a * 8, (a + n) * 8),
      scale: m.scale.subarray(a * 2, (a + n) * 2),
    });
    same(r(gu, 0, H), await readMlcSite(model, 1, 'w1'));
    same(r(gu, H, H), await readMlcSite(model, 1, 'w3'));
    // the file's q rows approximate HF's order of our wq, and not our own order
    const fileQ = dequantizeMlcQ4(rows(qkv, 0, C));
    const hfQ = permuteRopeRows(layerSlice(c, w, 1, 'wq'), c.nHeads, hs, true);
    const maxDiff = (a: Float32Array, b: Float32Array) =>
      a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
    expect(maxDiff(fileQ, hfQ)).toBeLessThan(0.02);
    expect(maxDiff(fileQ, layerSlice(c, w, 1, 'wq'))).toBeGreaterThan(0.1);
  });

  it('reads only the rows a site needs (two range reads)', async () => {
    const { files } = write(gqa, 13);
    const { folder, read } = countingFolder(files);
    const model = await openMlc(folder);
    read.bytes = 0;
    await readMlcSite(model, 0, 'wk');
    expect(read.bytes).toBe(kvDim(gqa) * (8 * 4 + 2 * 2)); // KV rows × (8 words + 2 f16 scales)
  });

  it('writes shards like tvmjs: cap, out-of-band tensors, offsets, md5sum, metadata', async () => {
    const s = new TensorCacheSharder(1000);
    const rec = (name: string, n: number) =>
      s.add({ name, shape: [n], dtype: 'uint32', format: 'raw', nbytes: n }, new Uint8Array(n).fill(n & 255));
    rec('a', 300);
    rec('b', 300);
    rec('c', 600); // 600 + 600 ≥ 1000 and 2·600 ≥ 1000: a shard of its own, numbered first
    rec('d', 300);
    rec('e', 200); // 900 + 200 ≥ 1000: closes the pending shard
    s.commit();
    expect(
      s.shards.map((x) => [x.dataPath, x.nbytes, x.records.map((r) => `${r.name}@${r.byteOffset}`)]),
    ).toEqual([
      ['params_shard_0.bin', 600, ['c@0']],
      ['params_shard_1.bin', 900, ['a@0', 'b@300', 'd@600']],
      ['params_shard_2.bin', 200, ['e@0']],
    ]);

    const { files } = write(gqa, 14, { maxShardBytes: 2048 });
    const manifest = parseMlcManifest(files.get('tensor-cache.json')!);
    expect(manifest.records.length).toBeGreaterThan(3);
    for (const sh of manifest.records) {
      const bytes = files.get(sh.dataPath)!;
      expect(bytes.length).toBe(sh.nbytes);
      expect(sh.md5sum).toBe(createHash('md5').update(bytes).digest('hex'));
      expect(sh.nbytes < 2048 || sh.records.length === 1).toBe(true);
      let off = 0;
      for (const r of sh.records) {
        expect(r.byteOffset).toBe(off);
        expect(r.format).toBe('f32-to-bf16'); // every record carries the dump's encode format
        off += r.nbytes;
      }
    }
    const names = manifest.records.flatMap((sh) => sh.records.map((r) => r.name));
    expect(names.length).toBe(2 + 2 * 10 + 1 + 2); // embedding, 2 layers × (4 matrices + 2 norms), norm, lm_head
    expect(manifest.metadata.ParamSize).toBe(names.length);
  });

  it('reads the older ndarray-cache.json name', async () => {
    const { files } = write(padded, 15, { manifestName: 'ndarray-cache.json' });
    expect(files.has('tensor-cache.json')).toBe(false);
    const model = await openMlc(memoryFolder('old', files));
    expect(model.manifestName).toBe('ndarray-cache.json');
  });
});

describe('MLC bad input', () => {
  const base = () => write(gqa, 21, { maxShardBytes: 4096 }).files;
  const editJson = (
    files: Map<string, Uint8Array>,
    name: string,
    f: (j: Record<string, unknown>) => void,
  ) => {
    const j = JSON.parse(new TextDecoder().decode(files.get(name)!)) as Record<string, unknown>;
    f(j);
    files.set(name, new TextEncoder().encode(JSON.stringify(j)));
    return files;
  };
  type J = Record<string, unknown> & { records: { dataPath: string; records: Record<string, unknown>[] }[] };
  const open = (files: Map<string, Uint8Array>) => openMlc(memoryFolder('Llama-MLC', files));

  it('a manifest naming a missing shard', async () => {
    const files = base();
    files.delete('params_shard_1.bin');
    await expectError(
      open(files),
      'BAD_FILE',
      /tensor-cache\.json lists params_shard_1\.bin, but there is no such file/,
    );
  });

  it('a shard shorter than the manifest says', async () => {
    const files = base();
    const b = files.get('params_shard_0.bin')!;
    files.set('params_shard_0.bin', b.subarray(0, b.length - 10));
    await expectError(
      open(files),
      'TRUNCATED_FILE',
      new RegExp(`params_shard_0\\.bin ends after ${(b.length - 10).toLocaleString('en-US')} of`),
    );
  });

  it('a record past the end of its shard', async () => {
    const files = editJson(base(), 'tensor-cache.json', (j) => {
      const r = (j as J).records[0]!.records.at(-1)!;
      r.byteOffset = (r.byteOffset as number) + 64;
    });
    await expectError(open(files), 'TRUNCATED_FILE', /but tensor .* lies at bytes/);
  });

  it('a shard longer than the manifest says', async () => {
    const files = base();
    const b = files.get('params_shard_2.bin')!;
    files.set('params_shard_2.bin', Uint8Array.from([...b, 0, 0, 0, 0]));
    await expectError(
      open(files),
      'BAD_FILE',
      /params_shard_2\.bin has .* bytes but tensor-cache\.json says/,
    );
  });

  it('an unknown dtype, an unknown format, a wrong nbytes, a non-JSON manifest', async () => {
    await expectError(
      open(editJson(base(), 'tensor-cache.json', (j) => ((j as J).records[0]!.records[0]!.dtype = 'int4'))),
      'BAD_FILE',
      /dtype "int4"; dust2gold reads uint32, float16, float32 and bfloat16/,
    );
    await expectError(
      open(
        editJson(base(), 'tensor-cache.json', (j) => ((j as J).records[0]!.records[0]!.format = 'q4-packed')),
      ),
      'BAD_FILE',
      /format "q4-packed"; known formats are "raw" and "f32-to-bf16"/,
    );
    await expectError(
      open(editJson(base(), 'tensor-cache.json', (j) => ((j as J).records[0]!.records[0]!.nbytes = 4))),
      'BAD_FILE',
      /has nbytes 4, but shape/,
    );
    const files = base();
    files.set('tensor-cache.json', new TextEncoder().encode('<html>404</html>'));
    await expectError(open(files), 'BAD_FILE', /tensor-cache\.json is not JSON/);
  });

  it('a non-LLaMA model, another quantization, RoPE scaling, tensor parallel shards', async () => {
    await expectError(
      open(editJson(base(), 'mlc-chat-config.json', (j) => (j.model_type = 'qwen2'))),
      'BAD_FILE',
      /"qwen2" model; dust2gold loads MLC LLaMA models only/,
    );
    await expectError(
      open(editJson(base(), 'mlc-chat-config.json', (j) => (j.quantization = 'q0f16'))),
      'BAD_FILE',
      /quantized as "q0f16"; dust2gold reads q4f16_1 and q4f32_1/,
    );
    await expectError(
      open(
        editJson(base(), 'mlc-chat-config.json', (j) => {
          (j.model_config as Record<string, unknown>).rope_scaling = { rope_type: 'llama3', factor: 8 };
        }),
      ),
      'BAD_FILE',
      /RoPE scaling "llama3"/,
    );
    await expectError(
      open(
        editJson(base(), 'mlc-chat-config.json', (j) => {
          (j.model_config as Record<string, unknown>).tensor_parallel_shards = 2;
        }),
      ),
      'BAD_FILE',
      /split for 2 GPUs/,
    );
  });

  it('a configuration that does not match the tensors, or a folder without one', async () => {
    await expectError(
      open(
        editJson(base(), 'mlc-chat-config.json', (j) => {
          (j.model_config as Record<string, unknown>).vocab_size = 41;
        }),
      ),
      'SHAPE_MISMATCH',
      /model\.embed_tokens\.q_weight has shape \[40, 8\] but mlc-chat-config\.json implies \[41, 8\]/,
    );
    await expectError(
      open(
        editJson(base(), 'mlc-chat-config.json', (j) => {
          (j.model_config as Record<string, unknown>).num_hidden_layers = 3;
        }),
      ),
      'BAD_FILE',
      /has no tensor model\.layers\.2\.self_attn\.qkv_proj\.q_weight/,
    );
    const files = base();
    files.delete('mlc-chat-config.json');
    await expectError(open(files), 'BAD_FILE', /Llama-MLC has no mlc-chat-config\.json/);
    const noManifest = base();
    noManifest.delete('tensor-cache.json');
    await expectError(open(noManifest), 'BAD_FILE', /no tensor-cache\.json \(or ndarray-cache\.json\)/);
  });

  it('refuses the whole-model f32 reference for a model too large for it', async () => {
    const model = await open(base());
    const huge: MlcModel = { ...model, config: { ...model.config, vocabSize: 1 << 21, dim: 4096 } };
    await expectError(readMlcWeightsF32(huge), 'LIMIT_EXCEEDED', /load it quantized/);
  });
});

describe("web-llm's cache keys", () => {
  it('resolves files against the model URL the way web-llm does', () => {
    const k = mlcCacheKeys('https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC', {
      records: [{ dataPath: 'params_shard_0.bin' }, { dataPath: 'params_shard_107.bin' }],
    });
    const base = 'https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC/resolve/main/';
    expect(k).toEqual({
      base,
      config: { cache: 'webllm/config', url: `${base}mlc-chat-config.json` },
      manifests: [
        { cache: 'webllm/model', url: `${base}tensor-cache.json` },
        { cache: 'webllm/model', url: `${base}ndarray-cache.json` },
      ],
      tokenizer: [
        { cache: 'webllm/model', url: `${base}tokenizer.json` },
        { cache: 'webllm/model', url: `${base}tokenizer.model` },
      ],
      shards: [
        { cache: 'webllm/model', url: `${base}params_shard_0.bin` },
        { cache: 'webllm/model', url: `${base}params_shard_107.bin` },
      ],
    });
  });

  it('keeps an explicit revision, appends resolve/main/ on any host, refuses relative URLs', async () => {
    expect(mlcCacheKeys('https://huggingface.co/mlc-ai/X-MLC/resolve/v0.2/').base).toBe(
      'https://huggingface.co/mlc-ai/X-MLC/resolve/v0.2/',
    );
    expect(mlcCacheKeys('http://localhost:8000/models/tiny/').manifests[0]!.url).toBe(
      'http://localhost:8000/models/tiny/resolve/main/tensor-cache.json',
    );
    expect(mlcCacheKeys('https://huggingface.co/mlc-ai/X-MLC').shards).toEqual([]);
    await expectError(() => mlcCacheKeys('models/tiny'), 'BAD_ARGUMENT', /not an absolute URL/);
  });

  it('bytes stay bytes: a shard read back equals what the writer wrote', async () => {
    const { files } = write(padded, 31);
    const model = await openMlc(memoryFolder('m', files));
    const loc = model.tensors.get('model.embed_tokens.q_weight')!;
    const got = await loc.source.read(loc.record.byteOffset, loc.record.nbytes);
    const want = files
      .get(loc.shard.dataPath)!
      .subarray(loc.record.byteOffset, loc.record.byteOffset + loc.record.nbytes);
    expect(bytesEq(got, want)).toBe(true);
  });
});
