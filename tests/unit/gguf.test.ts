import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { fromBlob, fromBytes, fromUrl, type ByteSource } from '../../src/engine/io/bytesource.ts';
import {
  dequantizeTensor,
  GGML_TYPES,
  ggmlByteSize,
  ggmlTypeId,
  readGgufHeader,
  readTensorBytes,
  readTensorChunks,
  SUPPORTED_GGML_TYPES,
  type GgufKV,
  type SupportedGgmlType,
} from '../../src/engine/io/gguf.ts';
import {
  f32Decimal,
  ggufDims,
  ggufNameToOurs,
  llamaConfigFromGguf,
  llamaTensorsFromGguf,
  oursToGgufName,
  readLlamaF32,
} from '../../src/engine/io/gguf-llama.ts';
import { kvDim, LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import {
  WEIGHT_NAMES,
  weightSizes,
  type LlamaWeightsF32,
  type WeightName,
} from '../../src/engine/model/weights.ts';
import { dequantize, f16ToF32, f32ToF16, quantize } from '../../src/engine/quant.ts';
import {
  dequantizeQ4_K,
  dequantizeQ6_K,
  quantizeQ4_K,
  quantizeQ6_K,
  QK_K,
} from '../../src/engine/quant-k.ts';
import {
  llamaGguf,
  llamaGgufMetadata,
  llamaGgufTensors,
  meta,
  writeGguf,
  type GgufWriteTensor,
} from '../../tools/gguf-write.ts';
import { rng } from '../helpers/fd.ts';

async function expectReject(p: Promise<unknown>, code: string, message: RegExp): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return e as EngineError;
  }
  throw new Error(`expected EngineError ${code}`);
}

function expectThrow(f: () => unknown, code: string, message: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(EngineError);
    expect((e as EngineError).code).toBe(code);
    expect((e as EngineError).message).toMatch(message);
    return;
  }
  throw new Error(`expected EngineError ${code}`);
}

/** Big enough for K-quants (rows of 256 and 512), small enough to write 12 files quickly. */
function config(shared: boolean): LlamaConfig {
  return {
    dim: 256,
    hiddenDim: 512,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: 40,
    maxSeqLen: 64,
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: shared,
  };
}

function randomWeights(c: LlamaConfig, seed: number): LlamaWeightsF32 {
  const r = rng(seed);
  const sizes = weightSizes(c);
  const w = {} as Record<WeightName, Float32Array>;
  for (const n of WEIGHT_NAMES) w[n] = Float32Array.from({ length: sizes[n] }, () => 0.1 * (r() * 2 - 1));
  if (c.sharedClassifier) w.wcls = w.tokenEmbedding;
  return w;
}

/** What a reader must give back for values written as `type`. */
function expected(type: string, x: Float32Array): Float32Array {
  switch (type) {
    case 'F32':
      return x;
    case 'F16':
      return x.map((v) => f16ToF32(f32ToF16(v)));
    case 'Q8_0':
      return dequantize('q8_0', quantize('q8_0', x), x.length);
    case 'Q4_0':
      return dequantize('q4_0', quantize('q4_0', x), x.length);
    case 'Q4_K':
      return dequantizeQ4_K(quantizeQ4_K(x), x.length);
    case 'Q6_K':
      return dequantizeQ6_K(quantizeQ6_K(x), x.length);
  }
  throw new Error(type);
}

/**
 * A coarse per-format bound on |x − x̂| from the input alone, per block (quant-k.test.ts derives the
 * fine K-quant ones). F16: half an f16 ulp (2^-11 relative, 2^-25 absolute for subnormals). Q8_0 and
 * Q4_0 (llama.cpp's reference, which rounds with the f32 scale and stores it as f16): Q8_0
 * ≤ d/2 + 127·|d − f16(d)| < amax/127·(0.5 + 0.07); Q4_0 ≤ |d| + 8·|d − f16(d)| < amax/8·1.01 (values of
 * the other sign than the extreme one clamp to 7·d). Q4_K: (range + dmin)/30 + d/2 < 0.035·R, R the
 * 256-block's range including 0. Q6_K: amax/62 + d/2 < 0.0163·amax. Plus float32 rounding.
 */
function coarseBounds(type: string, x: Float32Array): Float64Array {
  const out = new Float64Array(x.length);
  if (type === 'F32') return out;
  if (type === 'F16') return Float64Array.from(x, (v) => Math.abs(v) * 2 ** -11 + 2 ** -25);
  const bs = type.endsWith('_K') ? QK_K : 32;
  for (let b = 0; b < x.length; b += bs) {
    let lo = 0;
    let hi = 0;
    for (let j = b; j < b + bs; j++) {
      lo = Math.min(lo, x[j]!);
      hi = Math.max(hi, x[j]!);
    }
    const amax = Math.max(-lo, hi);
    const bound =
      type === 'Q8_0'
        ? (amax / 127) * 0.57
        : type === 'Q4_0'
          ? (amax / 8) * 1.01
          : type === 'Q4_K'
            ? 0.035 * (hi - lo)
            : 0.0163 * amax;
    out.fill(bound + 1e-7, b, b + bs);
  }
  return out;
}

/** Index of the first value that differs (Object.is semantics but −0 == 0), or −1. */
function firstDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++)
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) return i;
  return -1;
}

/** A ByteSource that records what was read. */
function counting(src: ByteSource): ByteSource & { bytesRead: number; reads: number } {
  const s = {
    size: src.size,
    name: src.name,
    bytesRead: 0,
    reads: 0,
    read(offset: number, length: number) {
      s.bytesRead += length;
      s.reads++;
      return src.read(offset, length);
    },
  };
  return s;
}

const TYPES = SUPPORTED_GGML_TYPES.flatMap((t) => [
  [t, 2],
  [t, 3],
]) as [SupportedGgmlType, 2 | 3][];

describe('GGUF LLaMA files written for every supported type read back', () => {
  it.each(TYPES)('%s, version %d', async (type, version) => {
    const c = config(version === 2); // v2 files: shared classifier; v3: output.weight present
    const w = randomWeights(c, version * 100 + type.length);
    const bytes = llamaGguf(c, w, type, { version });
    const src = counting(fromBytes(bytes, 'tiny.gguf'));
    const file = await readGgufHeader(src, { firstChunk: 256 });
    expect(src.bytesRead).toBeLessThan(file.headerSize + 8192); // the header only, not the data

    expect(file.version).toBe(version);
    expect(file.alignment).toBe(32);
    expect(file.dataOffset % 32).toBe(0);
    const want = llamaGgufMetadata(c, type);
    expect([...file.metadata.keys()]).toEqual([...want.keys()]);
    for (const [k, kv] of want) {
      // f32 values come back as the float32 they were stored as
      const v = kv.type === 'f32' ? { type: 'f32', value: Math.fround(kv.value) } : kv;
      expect(file.metadata.get(k), k).toEqual(v);
    }
    expect(llamaConfigFromGguf(file)).toEqual(c);

    const tensors = llamaTensorsFromGguf(file);
    expect(tensors.length).toBe(file.tensors.length);
    expect(tensors.length).toBe(2 + (c.sharedClassifier ? 0 : 1) + 9 * c.nLayers);
    for (const t of tensors) {
      const isMatrix = t.info.dims.length === 2;
      expect(t.info.typeName, t.info.name).toBe(isMatrix ? type : 'F32');
      const n = t.info.nElements;
      const src32 = w[t.weight].subarray((t.layer ?? 0) * n, ((t.layer ?? 0) + 1) * n);
      const got = dequantizeTensor(t.info, await readTensorBytes(file, src, t.info));
      expect(firstDiff(got, expected(t.info.typeName, src32)), t.info.name).toBe(-1);
      const bound = coarseBounds(t.info.typeName, src32);
      let worst = 0;
      for (let i = 0; i < n; i++)
        worst = Math.max(worst, Math.abs(got[i]! - src32[i]!) / (bound[i]! || 1e-300));
      expect(worst, `${t.info.name}: error / ${t.info.typeName} bound`).toBeLessThanOrEqual(1);
    }
  });

  it('readLlamaF32 assembles our layout (per-layer tensors concatenated, shared classifier)', async () => {
    for (const shared of [true, false]) {
      const c = config(shared);
      const w = randomWeights(c, 5);
      const bytes = llamaGguf(c, w, 'F32', { version: 3, alignment: 64 });
      const src = fromBytes(bytes, 'f32.gguf');
      const file = await readGgufHeader(src);
      expect(file.alignment).toBe(64);
      expect(file.metadata.get('general.alignment')).toEqual({ type: 'u32', value: 64 });
      for (const t of file.tensors) expect(t.fileOffset % 64).toBe(0);
      const { config: got, weights } = await readLlamaF32(file, src);
      expect(got).toEqual(c);
      for (const n of WEIGHT_NAMES) expect(firstDiff(weights[n], w[n]), n).toBe(-1);
      expect(weights.wcls === weights.tokenEmbedding).toBe(shared);
    }
  });

  it('a small-dim model keeps rows that are not a multiple of the block size in F32', async () => {
    const c: LlamaConfig = { ...config(true), dim: 64, hiddenDim: 80, nHeads: 4, nKvHeads: 4 };
    const bytes = llamaGguf(c, randomWeights(c, 9), 'Q8_0');
    const file = await readGgufHeader(fromBytes(bytes, 'small.gguf'));
    const types = Object.fromEntries(file.tensors.map((t) => [t.name, t.typeName]));
    expect(types['blk.0.attn_q.weight']).toBe('Q8_0'); // rows of 64
    expect(types['blk.0.ffn_down.weight']).toBe('F32'); // rows of 80
    expect(types['blk.0.ffn_up.weight']).toBe('Q8_0');
    expect(llamaConfigFromGguf(file)).toEqual(c);
  });
});

describe('GGUF metadata', () => {
  const all: [string, GgufKV][] = [
    ['t.u8', meta.u8(255)],
    ['t.i8', meta.i8(-128)],
    ['t.u16', meta.u16(65535)],
    ['t.i16', meta.i16(-32768)],
    ['t.u32', meta.u32(4294967295)],
    ['t.i32', meta.i32(-2147483648)],
    ['t.f32', meta.f32(0.15625)],
    ['t.f64', meta.f64(0.1)],
    ['t.u64', meta.u64(2n ** 64n - 1n)],
    ['t.i64', meta.i64(-(2n ** 63n))],
    ['t.bool_true', meta.bool(true)],
    ['t.bool_false', meta.bool(false)],
    ['t.string', meta.string('héllo ▁wörld 🙂')],
    ['t.empty', meta.string('')],
    ['t.arr_u8', meta.array('u8', [0, 1, 255])],
    ['t.arr_i64', meta.array('i64', [-1n, 2n ** 62n])],
    ['t.arr_f32', meta.array('f32', [0.5, -2, 1024])],
    ['t.arr_bool', meta.array('bool', [true, false])],
    ['t.arr_str', meta.array('string', ['a', '', 'ccc'])],
    ['t.arr_empty', meta.array('u32', [])],
    [
      't.nested',
      meta.array('array', [
        { itemType: 'string', items: ['x', 'y'] },
        { itemType: 'array', items: [{ itemType: 'i16', items: [-5, 7] }] },
        { itemType: 'f64', items: [] },
      ]),
    ],
  ];

  it.each([2, 3] as const)(
    'every value type round-trips (version %d), read 16 bytes at a time',
    async (version) => {
      const bytes = writeGguf({ version, metadata: new Map(all), tensors: [] });
      const file = await readGgufHeader(fromBytes(bytes, 'meta.gguf'), { firstChunk: 16 });
      expect([...file.metadata]).toEqual(all);
      expect(file.tensors).toEqual([]);
      expect(file.headerSize).toBe(bytes.length - (file.dataOffset - file.headerSize)); // only padding after
    },
  );

  it('f32 values are stored as float32; f32Decimal gives the shortest decimal back', async () => {
    const bytes = writeGguf({ version: 3, metadata: { 'a.eps': meta.f32(1e-5) }, tensors: [] });
    const file = await readGgufHeader(fromBytes(bytes));
    const v = file.metadata.get('a.eps')!.value as number;
    expect(v).toBe(Math.fround(1e-5));
    expect(v).not.toBe(1e-5);
    expect(f32Decimal(v)).toBe(1e-5);
    expect(f32Decimal(Math.fround(1e-6))).toBe(1e-6);
    expect(f32Decimal(10000)).toBe(10000);
    expect(f32Decimal(Math.fround(0.1))).toBe(0.1);
  });

  it('a LLaMA-2-7B-shaped header gives its config (vocabulary from the token list)', async () => {
    const tokens = Array.from({ length: 32000 }, (_, i) => `t${i}`);
    const md = new Map<string, GgufKV>([
      ['general.architecture', meta.string('llama')],
      ['llama.context_length', meta.u32(4096)],
      ['llama.embedding_length', meta.u32(4096)],
      ['llama.block_count', meta.u32(32)],
      ['llama.feed_forward_length', meta.u32(11008)],
      ['llama.rope.dimension_count', meta.u32(128)],
      ['llama.attention.head_count', meta.u32(32)],
      ['llama.attention.head_count_kv', meta.u32(32)],
      ['llama.attention.layer_norm_rms_epsilon', meta.f32(1e-5)],
      ['tokenizer.ggml.tokens', meta.array('string', tokens)],
    ]);
    const src = counting(fromBytes(writeGguf({ version: 2, metadata: md, tensors: [] }), '7b.gguf'));
    const file = await readGgufHeader(src, { firstChunk: 1024 });
    expect(src.reads).toBeGreaterThan(3); // read in growing chunks
    expect(llamaConfigFromGguf(file)).toEqual({
      ...LLAMA_7B,
      maxSeqLen: 4096,
      sharedClassifier: true, // no output.weight in this tensor-less header
    });
  });
});

describe('GGUF tensors', () => {
  it('byte sizes per type (block size / type size)', () => {
    expect(ggmlByteSize(ggmlTypeId('F32'), 10)).toBe(40);
    expect(ggmlByteSize(ggmlTypeId('F16'), 10)).toBe(20);
    expect(ggmlByteSize(ggmlTypeId('Q4_0'), 4096)).toBe(128 * 18);
    expect(ggmlByteSize(ggmlTypeId('Q8_0'), 4096)).toBe(128 * 34);
    expect(ggmlByteSize(ggmlTypeId('Q4_K'), 4096 * 4096)).toBe(65536 * 144);
    expect(ggmlByteSize(ggmlTypeId('Q6_K'), 4096)).toBe(16 * 210);
    expect(ggmlByteSize(ggmlTypeId('Q5_K'), 256)).toBe(176);
    expect(ggmlTypeId('Q4_K')).toBe(12);
    expect(ggmlTypeId('Q6_K')).toBe(14);
    expect(ggmlTypeId('Q8_0')).toBe(8);
    expect(ggmlTypeId('BF16')).toBe(30);
    expect(Object.keys(GGML_TYPES).length).toBe(35);
  });

  it('chunks of a tensor: whole rows (or whole blocks), concatenating to the tensor', async () => {
    const r = rng(3);
    const data = Float32Array.from({ length: 512 * 6 }, () => r() - 0.5);
    const bytes = writeGguf({
      version: 3,
      metadata: {},
      tensors: [
        { name: 'a', type: 'Q4_K', dims: [512, 6], data },
        { name: 'b', type: 'F16', dims: [512, 6], data },
      ],
    });
    const src = fromBytes(bytes);
    const file = await readGgufHeader(src);
    for (const info of file.tensors) {
      const whole = await readTensorBytes(file, src, info);
      const full = dequantizeTensor(info, whole);
      for (const chunkBytes of [1, 300, 2 * 288, 5000, 1 << 20]) {
        const parts: Uint8Array[] = [];
        let next = 0;
        for await (const ch of readTensorChunks(file, src, info, chunkBytes)) {
          expect(ch.start).toBe(next);
          next += ch.count;
          const rowBytes = info.byteSize / 6;
          const unit = rowBytes <= chunkBytes ? 512 : GGML_TYPES[info.type]!.blockSize;
          expect(ch.count % unit).toBe(0);
          expect(ch.bytes.length).toBeLessThanOrEqual(Math.max(chunkBytes, GGML_TYPES[info.type]!.typeSize));
          expect(dequantizeTensor({ ...info, nElements: ch.count }, ch.bytes)).toEqual(
            full.subarray(ch.start, ch.start + ch.count),
          );
          parts.push(ch.bytes);
        }
        expect(next).toBe(info.nElements);
        expect(Buffer.concat(parts)).toEqual(Buffer.from(whole));
      }
    }
  });

  it('ggml dims are [K, N] for an N×K matrix; names map both ways', () => {
    const c = config(false);
    expect(ggufDims(c, 'wk')).toEqual([256, kvDim(c)]);
    expect(ggufDims(c, 'w2')).toEqual([512, 256]);
    expect(ggufDims(c, 'w1')).toEqual([256, 512]);
    expect(ggufDims(c, 'tokenEmbedding')).toEqual([256, 40]);
    const pairs: [string, WeightName, number | null][] = [
      ['token_embd.weight', 'tokenEmbedding', null],
      ['output_norm.weight', 'rmsFinal', null],
      ['output.weight', 'wcls', null],
      ['blk.0.attn_norm.weight', 'rmsAtt', 0],
      ['blk.7.attn_q.weight', 'wq', 7],
      ['blk.12.attn_k.weight', 'wk', 12],
      ['blk.1.attn_v.weight', 'wv', 1],
      ['blk.31.attn_output.weight', 'wo', 31],
      ['blk.2.ffn_norm.weight', 'rmsFfn', 2],
      ['blk.3.ffn_gate.weight', 'w1', 3],
      ['blk.4.ffn_down.weight', 'w2', 4],
      ['blk.5.ffn_up.weight', 'w3', 5],
    ];
    for (const [g, weight, layer] of pairs) {
      expect(ggufNameToOurs(g)).toEqual({ weight, layer });
      expect(oursToGgufName(weight, layer)).toBe(g);
    }
    expect(ggufNameToOurs('blk.01.attn_q.weight')).toBeNull();
    expect(ggufNameToOurs('rope_freqs.weight')).toBeNull();
    expect(ggufNameToOurs('blk.0.attn_q.bias')).toBeNull();
    expectThrow(() => oursToGgufName('wq'), 'BAD_ARGUMENT', /per layer/);
  });
});

/** A Range-serving fake fetch over `bytes`. */
function rangeServer(
  bytes: Uint8Array,
  opts: { ignoreRange?: boolean; hideContentRange?: boolean; short?: boolean } = {},
) {
  const log = { requests: 0, bytesSent: 0 };
  const f = (async (_url: string | URL | Request, init?: RequestInit) => {
    log.requests++;
    const range = new Headers(init?.headers).get('Range');
    if (init?.method === 'HEAD') {
      return new Response(null, { status: 200, headers: { 'Content-Length': String(bytes.length) } });
    }
    if (!range || opts.ignoreRange) {
      log.bytesSent += bytes.length;
      return new Response(bytes.slice(), { status: 200 });
    }
    const m = /^bytes=(\d+)-(\d+)$/.exec(range)!;
    const a = Number(m[1]);
    if (a >= bytes.length) return new Response(null, { status: 416 });
    const b = Math.min(Number(m[2]), bytes.length - 1);
    let body = bytes.slice(a, b + 1);
    if (opts.short && body.length > 1) body = body.slice(0, body.length - 1);
    log.bytesSent += body.length;
    const headers: Record<string, string> = opts.hideContentRange
      ? {}
      : { 'Content-Range': `bytes ${a}-${b}/${bytes.length}` };
    return new Response(body, { status: 206, headers });
  }) as typeof fetch;
  return { fetch: f, log };
}

describe('byte sources', () => {
  const c = config(false);
  const bytes = llamaGguf(c, randomWeights(c, 11), 'Q4_0', { version: 3 });

  it('fromUrl reads the header and tensors with Range requests', async () => {
    const server = rangeServer(bytes);
    const src = await fromUrl('https://models.example/dir/tiny%20model.gguf?download=1', server.fetch);
    expect(src.name).toBe('tiny model.gguf');
    expect(src.size).toBe(bytes.length);
    const file = await readGgufHeader(src, { firstChunk: 512 });
    expect(server.log.bytesSent).toBeLessThan(file.headerSize + 4096);
    const ref = await readGgufHeader(fromBytes(bytes, 'tiny model.gguf'));
    expect(file).toEqual(ref);
    const info = file.tensorsByName.get('blk.1.ffn_down.weight')!;
    expect(await readTensorBytes(file, src, info)).toEqual(
      bytes.subarray(info.fileOffset, info.fileOffset + info.byteSize),
    );
  });

  it('fromUrl falls back to HEAD when Content-Range is hidden (CORS)', async () => {
    const server = rangeServer(bytes, { hideContentRange: true });
    const src = await fromUrl('https://x.example/m.gguf', server.fetch);
    expect(src.size).toBe(bytes.length);
    expect((await src.read(0, 4)).length).toBe(4);
  });

  it('fromUrl refuses a server that ignores Range, and reports short reads and HTTP errors', async () => {
    await expectReject(
      fromUrl('https://x.example/m.gguf', rangeServer(bytes, { ignoreRange: true }).fetch),
      'BAD_ARGUMENT',
      /^The server of https:\/\/x\.example\/m\.gguf ignores HTTP Range requests .*download the file and open it from disk/,
    );
    const short = await fromUrl('https://x.example/m.gguf', rangeServer(bytes, { short: true }).fetch);
    await expectReject(
      short.read(100, 50),
      'TRUNCATED_FILE',
      /^m\.gguf: reading 50 bytes at offset 100 gave only 49/,
    );
    const notFound = (async () =>
      new Response('nope', { status: 404, statusText: 'Not Found' })) as typeof fetch;
    await expectReject(
      fromUrl('https://x.example/gone.gguf', notFound),
      'BAD_ARGUMENT',
      /answered 404 Not Found/,
    );
    const down = (async () => {
      throw new TypeError('fetch failed');
    }) as typeof fetch;
    await expectReject(
      fromUrl('https://x.example/m.gguf', down),
      'BAD_ARGUMENT',
      /Could not reach .*fetch failed/,
    );
  });

  it('reads past the end are TRUNCATED_FILE, bad ranges BAD_ARGUMENT', async () => {
    const src = fromBytes(new Uint8Array(10), 'ten.bin');
    await expectReject(
      src.read(8, 4),
      'TRUNCATED_FILE',
      /ten\.bin ends after 10 bytes .* bytes up to 12 are needed/,
    );
    await expectReject(src.read(-1, 2), 'BAD_ARGUMENT', /non-negative integers/);
  });

  it('fromBlob reads a File by slices', async () => {
    const file = new File([bytes], 'from-disk.gguf');
    const src = fromBlob(file);
    expect(src.name).toBe('from-disk.gguf');
    const gguf = await readGgufHeader(src);
    expect(llamaConfigFromGguf(gguf)).toEqual(c);
    const info = gguf.tensors[3]!;
    expect(await readTensorBytes(gguf, src, info)).toEqual(
      bytes.subarray(info.fileOffset, info.fileOffset + info.byteSize),
    );
    await expectReject(
      readTensorBytes(gguf, fromBytes(bytes.subarray(1)), info),
      'BAD_ARGUMENT',
      /same file/,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// A file written by ggml itself (not by our writer): ggml's gguf_write_to_file (src/gguf.cpp,
// ggml commit d99724f) with every scalar metadata type and two arrays, and six tensors whose blocks
// ggml's own quantizers made (ggml_quantize_chunk: llama.cpp's search-based Q4_K and Q6_K, the
// reference Q8_0 and Q4_0); EXPECTED_SHA256 is the sha256 of the float32 values ggml's to_float
// (dequantize_row_q4_K, …) gives for all tensors in file order. Made with a 100-line C program
// linked against ggml-base, kept out of the repository.
const GGML_FILE = [
  'R0dVRgMAAAAGAAAAAAAAAA8AAAAAAAAAFAAAAAAAAABnZW5lcmFsLmFyY2hpdGVjdHVyZQgAAAAEAAAAAAAAAHRlc3QEAAAAAAAA',
  'AHgudTgAAAAAyAQAAAAAAAAAeC5pOAEAAACcBQAAAAAAAAB4LnUxNgIAAABg6gUAAAAAAAAAeC5pMTYDAAAA0IoFAAAAAAAAAHgu',
  'dTMyBAAAAAAoa+4FAAAAAAAAAHguaTMyBQAAAABsyogFAAAAAAAAAHguZjMyBgAAAKzFJzcFAAAAAAAAAHgudTY0CgAAAAAACMWh',
  '2Mz5BQAAAAAAAAB4Lmk2NAsAAAAAAHwdr5MZgwUAAAAAAAAAeC5mNjQMAAAAmpmZmZmZuT8GAAAAAAAAAHguYm9vbAcAAAABBQAA',
  'AAAAAAB4LnN0cggAAAAGAAAAAAAAAGjDqWxsbwkAAAAAAAAAeC5hcnJfaTMyCQAAAAUAAAADAAAAAAAAAP////8AAAAABwAAAAkA',
  'AAAAAAAAeC5hcnJfc3RyCQAAAAgAAAADAAAAAAAAAAUAAAAAAAAAPHVuaz4AAAAAAAAAAAMAAAAAAAAAdG9rAwAAAAAAAABxNGsC',
  'AAAAAAEAAAAAAAACAAAAAAAAAAwAAAAAAAAAAAAAAAMAAAAAAAAAcTZrAgAAAAABAAAAAAAAAgAAAAAAAAAOAAAAIAEAAAAAAAAC',
  'AAAAAAAAAHE4AgAAAEAAAAAAAAAAAgAAAAAAAAAIAAAA4AIAAAAAAAACAAAAAAAAAHE0AgAAAEAAAAAAAAAAAgAAAAAAAAACAAAA',
  'gAMAAAAAAAADAAAAAAAAAGYxNgEAAAAIAAAAAAAAAAEAAADgAwAAAAAAAAMAAAAAAAAAZjMyAQAAAAQAAAAAAAAAAAAAAAAEAAAA',
  'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAADlDr0U7/z6Pfn/8/kfkQzPLxAjQwTwEhNDJDA0NRBDMiI1EjUlMyISITIjQSBE',
  'MRASMTETExAwETMzDjExIxPxExIiM0IDIQMTACIyQBITMBMQMgIBQRNCAiEhARERQxEAEjIhPjAAAjLyIQESQRIg0YHSosCy83DQ',
  'AbMT4SKRkOAyksPhITGTcFKTgrGRTlEKD4wS7/F/9vD++/317bBBJAAjLyIRQUDwICQxEURDBEEAJDIUMCBAITJBM0EUIgIyEzEk',
  'IgAxEiEzMQIzHkMCQzHiMiMTMiISAkIDQCJCIDQBQSMgAhQwIxJCJCMxJAMjIRESIiESLjNEEzD0ERQBSfxLHkcpOgkWJkgqMBE+',
  'AhcGQCk4Sx47KgEBMhxDFkXwBNQ9Pvwl80LwHD3u3T3dMbdgXdqBJGJqFCHbJ+KGus0CDR3AMEvl/BTgzAHO8BM51cJFWouvnmnn',
  'DhEiDW4VD2hS8dJ6vstwmZBgLqseBSKiIQDx4B5V4UtMLb5DDi6E9mf/IWbqBPEAaCjQ7rw6gG+k3hNfbB/MYHMS9FJvPlSqlqVp',
  'kaZaZppJZZlVaRm/WaBWKw6WrzkDsPpfH6/vebIUcYNcm0stKEPghmOHrGoW6uYYlqUmFqGpaVnqxWWTEo4TgBKIEPCT74MToO4S',
  'kQVDSrGxL28BsQNtLtuvDUG9qxd3feEEcxK8+ULGxLMpQevLI10tFW5AIa47HE8vdM0B4xAg8MxHRA/PwwkRPjHFHEH8VLDNxz6F',
  'bZ3mobtIhQ91PCDeLm0gDG07YSOTBUREEBxKuQkKTBPzCsIwshZF9CLzsAMkTjMidX3CAA20I6ZlGhTlKWZa4mUlFdVFqpWzdS2I',
  'V0SGlIVSeZGEkYZgiyyFlFq1tZqFQp9NolydvUkaaUppCdXYGTnFqrJGqjqg7ZYToxLuhBCJEoASEYsTiAUAAAAAAAAAAAAAAAAA',
  'AAAAAAAAAAAAAAAAAAAA3Rh/DAX/CQj4/fsU7e7yEwP8Ae0C/vT/B/j09fL1EwkN9usY+fcOFf1/DQcL7gPy7gr49P32AQj39xD4',
  '9O4E7Afs7veXGADv8Qr09hXqE/V/Du37FfT///v5/wEU9BDsARPu/QT29Bjw/BL+APr3Agv+9wj4CxN/7gP49PEDDPkF7RQT/RL/',
  'DQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAI+ogIl3eHmYeHmHiXmHeJh4dzGpiHeZmXdwiXeZiZeHd3mJd0Cod3mJeJiYeZh5l4CJ',
  'eZiHh/aoeJmJiIiHeXiYiHiJiJiIgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAANw0lx/woMwlyqU6qBcY/iQAAAAAAAAAAAAAAAAA',
  'AAAAViOyPn09przvOyY9Y1MoPQAAAAAAAAAAAAAAAAAAAAA=',
].join('');
const GGML_EXPECTED_SHA256 = '6c8b80cc8da592926f74b5ed2060445dcefdacbfa349d81e3638efa859e849d9';

describe('a GGUF file written by ggml', () => {
  it('reads its metadata and tensors, and dequantizes bit-identically to ggml', async () => {
    const bytes = new Uint8Array(Buffer.from(GGML_FILE, 'base64'));
    const src = fromBytes(bytes, 'ggml.gguf');
    const file = await readGgufHeader(src, { firstChunk: 32 });
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expect(file.dataOffset).toBe(704);
    expect([...file.metadata]).toEqual([
      ['general.architecture', meta.string('test')],
      ['x.u8', meta.u8(200)],
      ['x.i8', meta.i8(-100)],
      ['x.u16', meta.u16(60000)],
      ['x.i16', meta.i16(-30000)],
      ['x.u32', meta.u32(4000000000)],
      ['x.i32', meta.i32(-2000000000)],
      ['x.f32', meta.f32(Math.fround(1e-5))],
      ['x.u64', meta.u64(18000000000000000000n)],
      ['x.i64', meta.i64(-9000000000000000000n)],
      ['x.f64', meta.f64(0.1)],
      ['x.bool', meta.bool(true)],
      ['x.str', meta.string('héllo')],
      ['x.arr_i32', meta.array('i32', [-1, 0, 7])],
      ['x.arr_str', meta.array('string', ['<unk>', '', 'tok'])],
    ]);
    expect(file.tensors.map((t) => [t.name, t.typeName, t.dims, t.offset])).toEqual([
      ['q4k', 'Q4_K', [256, 2], 0],
      ['q6k', 'Q6_K', [256, 2], 288],
      ['q8', 'Q8_0', [64, 2], 736],
      ['q4', 'Q4_0', [64, 2], 896],
      ['f16', 'F16', [8], 992],
      ['f32', 'F32', [4], 1024],
    ]);
    const values: Float32Array[] = [];
    for (const t of file.tensors) values.push(dequantizeTensor(t, await readTensorBytes(file, src, t)));
    const [q4k, q6k, q8, q4, f16, f32] = values as [
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
      Float32Array,
    ];
    // spot values printed from ggml's output
    expect([q4k[0], q4k[1], q4k[2], q4k[300]]).toEqual([
      0.23073220252990723, -0.06593799591064453, -0.00660395622253418, -0.02849721908569336,
    ]);
    expect([q6k[0], q6k[1], q6k[300]]).toEqual([
      0.29625892639160156, -0.037032365798950195, 0.008946418762207031,
    ]);
    expect([q8[0], q8[1], q8[2]]).toEqual([
      0.30158042907714844,
      0.02849578857421875,
      Math.fround(0.011873245),
    ]);
    expect([q4[0], q4[1], q4[2]]).toEqual([0.284912109375, -0.035614013671875, 0.035614013671875]);
    expect([f16[0], f16[1], f16[2]]).toEqual([0.3037109375, 0.007411956787109375, -0.0096435546875]);
    expect([f32[0], f32[1], f32[2]]).toEqual([0.3479258418083191, -0.020292991772294044, 0.0405845008790493]);
    const all = new Float32Array(values.reduce((n, v) => n + v.length, 0));
    let o = 0;
    for (const v of values) {
      all.set(v, o);
      o += v.length;
    }
    expect(createHash('sha256').update(new Uint8Array(all.buffer)).digest('hex')).toBe(GGML_EXPECTED_SHA256);
  });
});

describe('our writer against ggml', () => {
  it('writes the same bytes as ggml for the same metadata and tensor blocks', async () => {
    const bytes = new Uint8Array(Buffer.from(GGML_FILE, 'base64'));
    const src = fromBytes(bytes, 'ggml.gguf');
    const file = await readGgufHeader(src);
    const tensors: GgufWriteTensor[] = [];
    for (const t of file.tensors) {
      tensors.push({
        name: t.name,
        type: t.typeName as SupportedGgmlType,
        dims: [...t.dims],
        rawBytes: await readTensorBytes(file, src, t),
      });
    }
    const ours = writeGguf({ version: 3, metadata: file.metadata, tensors });
    expect(Buffer.from(ours).equals(Buffer.from(bytes))).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------
// Broken files

/** A small file: two metadata entries and two F32 tensors. */
function small(tensors?: GgufWriteTensor[], version: 2 | 3 = 3, md?: Record<string, GgufKV>): Uint8Array {
  return writeGguf({
    version,
    metadata: md ?? { 'general.architecture': meta.string('test'), 'a.list': meta.array('u8', [1, 2, 3]) },
    tensors: tensors ?? [
      { name: 'w', type: 'F32', dims: [4, 2], data: new Float32Array(8).fill(1) },
      { name: 'v', type: 'F32', dims: [8], data: new Float32Array(8).fill(2) },
    ],
  });
}

function patchU32(b: Uint8Array, at: number, v: number): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setUint32(at, v, true);
  return c;
}

function patchU64(b: Uint8Array, at: number, v: bigint): Uint8Array {
  const c = b.slice();
  new DataView(c.buffer).setBigUint64(at, v, true);
  return c;
}

const read = (b: Uint8Array, name = 'model.gguf') => readGgufHeader(fromBytes(b, name), { firstChunk: 16 });

describe('GGUF: broken files give typed errors with readable messages', () => {
  it('truncated anywhere in the header → TRUNCATED_FILE', async () => {
    const b = small();
    const file = await read(b);
    for (let cut = 0; cut < file.headerSize; cut++) {
      await expectReject(
        read(b.subarray(0, cut)),
        'TRUNCATED_FILE',
        /model\.gguf .*(too short|inside its header)/,
      );
    }
    await expectReject(
      read(b.subarray(0, 30)),
      'TRUNCATED_FILE',
      /^model\.gguf ends after 30 bytes, inside its header \(reading metadata entry 1 of 2 needs bytes up to 32\): the download stopped early/,
    );
    await expectReject(
      read(b.subarray(0, file.headerSize - 3)),
      'TRUNCATED_FILE',
      /reading tensor info 2 of 2 \("v"\)/,
    );
  });

  it('truncated in the data → TRUNCATED_FILE naming the tensor', async () => {
    const c = config(true);
    const b = llamaGguf(c, randomWeights(c, 1), 'Q6_K');
    const file = await read(b);
    const last = [...file.tensors].sort((x, y) => y.fileOffset - x.fileOffset)[0]!;
    const cut = last.fileOffset + 100;
    await expectReject(
      read(b.subarray(0, cut)),
      'TRUNCATED_FILE',
      new RegExp(
        `^model\\.gguf ends after ${cut.toLocaleString('en-US')} of ${(last.fileOffset + last.byteSize).toLocaleString('en-US')} bytes .*tensor ${last.name.replaceAll('.', '\\.')} \\(bytes .*\\) is missing or cut off: the download stopped early`,
      ),
    );
    // cut inside the padding before the data: the first tensor is missing
    await expectReject(
      read(b.subarray(0, file.headerSize + 1)),
      'TRUNCATED_FILE',
      /tensor token_embd\.weight/,
    );
  });

  it('bad magic → BAD_MAGIC', async () => {
    const zip = new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]);
    await expectReject(
      read(zip, 'weights.zip'),
      'BAD_MAGIC',
      /^weights\.zip is not a GGUF file: it starts with bytes 50 4b 03 04, not "GGUF"\. Choose a \.gguf model file/,
    );
    await expectReject(
      read(patchU32(small(), 0, 0x67676a74)),
      'BAD_MAGIC',
      /a GGJT file, llama\.cpp's format from before GGUF/,
    );
    await expectReject(
      read(new Uint8Array([0x47, 0x47])),
      'TRUNCATED_FILE',
      /is 2 bytes, too short to be a GGUF file/,
    );
  });

  it('versions other than 2 and 3 → BAD_FILE', async () => {
    await expectReject(
      read(patchU32(small(), 4, 1)),
      'BAD_FILE',
      /^model\.gguf uses GGUF version 1, an early format .*no longer reads/,
    );
    await expectReject(
      read(patchU32(small(), 4, 4)),
      'BAD_FILE',
      /GGUF version 4, newer than dust2gold reads \(2 and 3\)/,
    );
    await expectReject(read(patchU32(small(), 4, 0x03000000)), 'BAD_FILE', /big-endian GGUF file/);
    await expectReject(read(patchU32(small(), 4, 0)), 'BAD_FILE', /GGUF version 0, which does not exist/);
  });

  it('an unknown or removed tensor type id → BAD_FILE naming the tensor', async () => {
    const t = (rawType: number): GgufWriteTensor[] => [
      { name: 'blk.0.attn_q.weight', type: 'F32', dims: [32], data: new Float32Array(32), rawType },
    ];
    await expectReject(
      read(small(t(99))),
      'BAD_FILE',
      /^model\.gguf: tensor blk\.0\.attn_q\.weight has ggml type 99, which is not a type GGUF defines/,
    );
    await expectReject(
      read(small(t(31))),
      'BAD_FILE',
      /tensor blk\.0\.attn_q\.weight is Q4_0_4_4, a layout llama\.cpp no longer stores/,
    );
  });

  it('a known type dust2gold cannot read (Q5_K) → BAD_FILE when the tensor is used', async () => {
    const b = small([
      {
        name: 'blk.0.attn_q.weight',
        type: 'F32',
        dims: [256, 2],
        rawType: 13,
        rawBytes: new Uint8Array(2 * 176),
      },
    ]);
    const file = await read(b);
    expect(file.tensors[0]!.typeName).toBe('Q5_K');
    expect(file.tensors[0]!.byteSize).toBe(352);
    const src = fromBytes(b, 'model.gguf');
    expectThrow(
      () => dequantizeTensor(file.tensors[0]!, new Uint8Array(352)),
      'BAD_FILE',
      /^blk\.0\.attn_q\.weight is Q5_K, which dust2gold cannot read yet; use a Q4_0, Q8_0, Q4_K_M or Q6_K file/,
    );
    expect((await readTensorBytes(file, src, file.tensors[0]!)).length).toBe(352);

    // in a LLaMA file, llamaTensorsFromGguf names it before anything is loaded
    const c = config(true);
    const tensors = llamaGgufTensors(c, randomWeights(c, 2), 'Q4_K').map((t) =>
      t.name === 'blk.1.ffn_down.weight' ? { ...t, rawType: 13, rawBytes: new Uint8Array(256 * 2 * 176) } : t,
    );
    const llama = await read(writeGguf({ version: 3, metadata: llamaGgufMetadata(c, 'Q4_K'), tensors }));
    expectThrow(
      () => llamaTensorsFromGguf(llama),
      'BAD_FILE',
      /^blk\.1\.ffn_down\.weight is Q5_K, which dust2gold cannot read yet; use a Q4_0, Q8_0, Q4_K_M or Q6_K file/,
    );
  });

  it('an offset past the end → TRUNCATED_FILE naming the tensor', async () => {
    const b = small([
      { name: 'w', type: 'F32', dims: [8], data: new Float32Array(8) },
      { name: 'far', type: 'F32', dims: [8], data: new Float32Array(8), rawOffset: 1 << 30 },
    ]);
    await expectReject(
      read(b),
      'TRUNCATED_FILE',
      /^model\.gguf ends after 256 of 1,073,742,048 bytes \(256 B of 1\.0 GiB\): tensor far \(bytes 1,073,742,016–1,073,742,048\) is missing or cut off: the download stopped early \(or the header is corrupt\)/,
    );
    const huge = small([
      { name: 'h', type: 'F32', dims: [8], data: new Float32Array(8), rawOffset: 2 ** 60 },
    ]);
    await expectReject(read(huge), 'BAD_FILE', /tensor h has a data offset of 2\^53 or more/);
  });

  it('a misaligned offset → BAD_FILE; overlapping tensors → BAD_FILE', async () => {
    const mis = small([
      { name: 'w', type: 'F32', dims: [8], data: new Float32Array(8) },
      { name: 'odd', type: 'F32', dims: [8], data: new Float32Array(8), rawOffset: 48 },
    ]);
    await expectReject(
      read(mis),
      'BAD_FILE',
      /^model\.gguf: tensor odd starts at byte 48 of the data section, not a multiple of the file's alignment \(32 bytes\)/,
    );
    const overlap = small([
      { name: 'w', type: 'F32', dims: [16], data: new Float32Array(16) },
      { name: 'x', type: 'F32', dims: [16], data: new Float32Array(16), rawOffset: 32 },
    ]);
    await expectReject(read(overlap), 'BAD_FILE', /tensors w \(bytes .*\) and x \(from byte .*\) overlap/);
  });

  it('absurd counts, bad values and duplicates → BAD_FILE', async () => {
    await expectReject(
      read(patchU64(small(), 8, 1n << 40n)),
      'BAD_FILE',
      /holds 1099511627776 tensors, beyond any real model/,
    );
    await expectReject(
      read(patchU64(small(), 16, 1n << 62n)),
      'BAD_FILE',
      /metadata entries, beyond any real model/,
    );
    // 'a.list' is entry 2: key at 24 + 8 + 20 (general.architecture) + 4 + 8 + 4 ('test') = 68
    const listCount = 68 + 8 + 6 + 4 + 4;
    await expectReject(
      read(patchU64(small(), listCount, 1n << 40n)),
      'BAD_FILE',
      /is an array of 1099511627776 items/,
    );
    await expectReject(
      read(patchU64(small(), listCount, 100000n)),
      'TRUNCATED_FILE',
      /reading metadata entry 2 of 2 \("a\.list"\)/,
    );
    const bools = writeGguf({ version: 3, metadata: { 'a.b': meta.bool(true) }, tensors: [] });
    const bad = bools.slice();
    bad[24 + 8 + 3 + 4] = 2;
    await expectReject(read(bad), 'BAD_FILE', /"a\.b"\) is a bool stored as 2/);
    const dup = writeGguf({ version: 3, metadata: { 'a.b': meta.u8(1), 'a.c': meta.u8(2) }, tensors: [] });
    const d2 = dup.slice();
    d2[24 + 8 + 3 + 4 + 1 + 8 + 2] = 0x62; // 'a.c' → 'a.b'
    await expectReject(read(d2), 'BAD_FILE', /the metadata key "a\.b" appears twice/);
    const badType = patchU32(bools, 24 + 8 + 3, 13);
    await expectReject(read(badType), 'BAD_FILE', /value type 13, which GGUF does not define/);
    const twice = small([
      { name: 'w', type: 'F32', dims: [8], data: new Float32Array(8) },
      { name: 'w', type: 'F32', dims: [8], data: new Float32Array(8) },
    ]);
    await expectReject(read(twice), 'BAD_FILE', /the tensor name "w" appears twice/);
    const align = writeGguf({ version: 3, metadata: { 'general.alignment': meta.u32(24) }, tensors: [] });
    await expectReject(
      read(align),
      'BAD_FILE',
      /general\.alignment is 24 \(u32\); it must be a u32 power of two/,
    );
    const rows = small([{ name: 'q', type: 'Q8_0', dims: [64], data: new Float32Array(64), rawType: 8 }]);
    const r2 = patchU64(rows, rows.indexOf(0x71, 40) + 1 + 4, 48n); // dims[0] 64 → 48
    await expectReject(
      read(r2),
      'BAD_FILE',
      /tensor q is Q8_0 with rows of 48 values, not a multiple of its block size 32/,
    );
  });

  it('LLaMA checks: architecture, keys, shapes, missing and extra tensors, vocabulary', async () => {
    const c = config(false);
    const w = randomWeights(c, 4);
    const md = llamaGgufMetadata(c, 'Q8_0');
    const tensors = llamaGgufTensors(c, w, 'Q8_0');
    const file = (m: Map<string, GgufKV>, t: GgufWriteTensor[]) =>
      read(writeGguf({ version: 3, metadata: m, tensors: t }));

    const cfgErr = async (m: Map<string, GgufKV>, t: GgufWriteTensor[], code: string, re: RegExp) => {
      const f = await file(m, t);
      expectThrow(() => llamaTensorsFromGguf(f), code, re);
    };
    const without = (k: string) => {
      const m = new Map(md);
      m.delete(k);
      return m;
    };

    await cfgErr(
      new Map(md).set('general.architecture', meta.string('gpt2')),
      tensors,
      'BAD_FILE',
      /^model\.gguf is a "gpt2" model; dust2gold runs LLaMA-architecture models/,
    );
    await cfgErr(without('general.architecture'), tensors, 'BAD_FILE', /has no general\.architecture/);
    await cfgErr(
      without('llama.block_count'),
      tensors,
      'BAD_FILE',
      /^model\.gguf has no llama\.block_count, which every LLaMA GGUF file carries/,
    );
    await cfgErr(
      new Map(md).set('llama.expert_count', meta.u32(8)),
      tensors,
      'BAD_FILE',
      /mixture-of-experts model \(8 experts/,
    );
    await cfgErr(
      new Map(md).set('llama.rope.scaling.type', meta.string('yarn')),
      tensors,
      'BAD_FILE',
      /uses "yarn" RoPE scaling/,
    );
    await cfgErr(
      new Map(md).set('llama.block_count', meta.string('two')),
      tensors,
      'BAD_FILE',
      /metadata llama\.block_count is a string, expected a number/,
    );
    // the header says 4 KV heads, the tensors were written for 2
    await cfgErr(
      new Map(md).set('llama.attention.head_count_kv', meta.u32(4)),
      tensors,
      'SHAPE_MISMATCH',
      /^model\.gguf: blk\.0\.attn_k\.weight has dims \[256, 128\] but the model its header describes needs \[256, 256\] \(ggml lists the contiguous dimension first/,
    );
    await cfgErr(
      md,
      tensors.filter((t) => t.name !== 'blk.1.ffn_up.weight'),
      'BAD_FILE',
      /^model\.gguf has no blk\.1\.ffn_up\.weight, which its header's 2-layer LLaMA needs/,
    );
    await cfgErr(
      md,
      [...tensors, { name: 'rope_freqs.weight', type: 'F32', dims: [32], data: new Float32Array(32) }],
      'BAD_FILE',
      /holds tensors a plain LLaMA model does not have \(rope_freqs\.weight\)/,
    );
    const fewTokens = new Map(md).set('tokenizer.ggml.tokens', meta.array('string', ['a', 'b']));
    await cfgErr(
      fewTokens,
      tensors,
      'VOCAB_MISMATCH',
      /the tokenizer lists 2 tokens but token_embd\.weight has 40 rows/,
    );
    // and the happy path of the same pieces
    expect(llamaTensorsFromGguf(await file(md, tensors)).length).toBe(tensors.length);
  });
});
