import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import {
  headSize,
  kvDim,
  paramCount,
  validateConfig,
  type LlamaConfig,
} from '../../src/engine/model/config.ts';
import { WEIGHT_NAMES, weightSizes, type LlamaWeightsF32 } from '../../src/engine/model/weights.ts';
import { parseLlama2c, writeLlama2c } from '../../src/engine/io/llama2c.ts';
import { rng } from '../helpers/fd.ts';

function load(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function expectError(f: () => unknown, code: string, message: RegExp): void {
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

const tiny: LlamaConfig = {
  dim: 8,
  hiddenDim: 12,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 10,
  maxSeqLen: 6,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

function randomWeights(c: LlamaConfig, seed: number): LlamaWeightsF32 {
  const r = rng(seed);
  const sizes = weightSizes(c);
  const make = (n: number) => Float32Array.from({ length: n }, () => r() * 2 - 1);
  const w = {} as Record<keyof LlamaWeightsF32, Float32Array>;
  for (const n of WEIGHT_NAMES) w[n] = make(sizes[n]);
  if (c.sharedClassifier) w.wcls = w.tokenEmbedding;
  return w;
}

function header(h: number[], totalBytes = 28): ArrayBuffer {
  const buf = new ArrayBuffer(totalBytes);
  h.forEach((v, i) => new DataView(buf).setInt32(4 * i, v, true));
  return buf;
}

const stories = load('public/models/stories260K.bin');

describe('llama2.c checkpoints', () => {
  it('parses stories260K', () => {
    const { config, weights } = parseLlama2c(stories, 'stories260K.bin');
    expect(config).toEqual({
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      vocabSize: 512,
      maxSeqLen: 512,
      ropeTheta: 10000,
      normEps: 1e-5,
      sharedClassifier: true,
    });
    expect(headSize(config)).toBe(8);
    expect(kvDim(config)).toBe(32);
    expect(weights.wcls).toBe(weights.tokenEmbedding);
    expect(weights.wk.length).toBe(5 * 32 * 64);
    expect(weights.w2.length).toBe(5 * 64 * 172);
    // 260K parameters; the file = header + parameters + legacy freq_cis (512 × 8 floats)
    expect(paramCount(config)).toBe(260032);
    expect(stories.byteLength).toBe(28 + 4 * (260032 + 512 * 8));
    // the views sit where the file says: first embedding value, last rms_final value
    const v = new DataView(stories);
    expect(weights.tokenEmbedding[0]).toBe(v.getFloat32(28, true));
    expect(weights.rmsFinal[63]).toBe(v.getFloat32(28 + 4 * 260031, true));
  });

  it('round-trips through writeLlama2c (shared and unshared classifier)', () => {
    for (const sharedClassifier of [false, true]) {
      const c = { ...tiny, sharedClassifier };
      const w = randomWeights(c, 7);
      const buf = writeLlama2c(c, w);
      const back = parseLlama2c(buf);
      expect(back.config).toEqual(c);
      for (const n of WEIGHT_NAMES) expect(Array.from(back.weights[n])).toEqual(Array.from(w[n]));
      expect(back.weights.wcls === back.weights.tokenEmbedding).toBe(sharedClassifier);
    }
    // and stories260K is reproduced byte for byte, freq_cis included (within float rounding of cos/sin)
    const { config, weights } = parseLlama2c(stories);
    const again = new Uint8Array(writeLlama2c(config, weights));
    expect(again.length).toBe(stories.byteLength);
    const body = 28 + 4 * 260032;
    expect(Buffer.compare(again.subarray(0, body), new Uint8Array(stories, 0, body))).toBe(0);
    const fOurs = new Float32Array(again.buffer, body),
      fTheirs = new Float32Array(stories, body);
    let maxDiff = 0;
    for (let i = 0; i < fOurs.length; i++) maxDiff = Math.max(maxDiff, Math.abs(fOurs[i]! - fTheirs[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('accepts a shared-classifier file without the legacy freq_cis', () => {
    const buf = stories.slice(0, 28 + 4 * 260032);
    expect(parseLlama2c(buf).config.dim).toBe(64);
  });

  it('rejects truncated files with the sizes and what to do', () => {
    expectError(
      () => parseLlama2c(stories.slice(0, 1000), 'stories260K.bin'),
      'TRUNCATED_FILE',
      /stories260K\.bin.*1,040,156 bytes.*has 1,000: the file is incomplete — download it again/,
    );
    expectError(() => parseLlama2c(stories.slice(0, 10)), 'TRUNCATED_FILE', /10 bytes.*download it again/);
    // unshared: wcls is needed
    const w = writeLlama2c(tiny, randomWeights(tiny, 1));
    expectError(() => parseLlama2c(w.slice(0, w.byteLength - 4)), 'TRUNCATED_FILE', /incomplete/);
  });

  it('rejects nonsense headers and other formats', () => {
    expectError(() => parseLlama2c(header([0, 172, 5, 8, 4, 512, 512], 4096)), 'BAD_FILE', /dim is 0/);
    expectError(
      () => parseLlama2c(header([64, -172, 5, 8, 4, 512, 512], 4096)),
      'BAD_FILE',
      /hiddenDim is -172/,
    );
    expectError(
      () => parseLlama2c(header([64, 172, 5, 7, 7, 512, 512], 4096)),
      'BAD_FILE',
      /dim 64 is not a multiple of nHeads 7/,
    );
    expectError(
      () => parseLlama2c(header([64, 172, 5, 8, 3, 512, 512], 4096)),
      'BAD_FILE',
      /nHeads 8 is not a multiple of nKvHeads 3/,
    );
    expectError(
      () => parseLlama2c(header([64, 172, 5, 64, 64, 512, 512], 4096)),
      'BAD_FILE',
      /head size 1 is odd/,
    );
    expectError(
      () => parseLlama2c(header([64, 172, 5, 8, 4, 512, 1e9], 4096)),
      'BAD_FILE',
      /maxSeqLen is 1000000000, larger than/,
    );
    const gguf = new Uint8Array(64);
    gguf.set([0x47, 0x47, 0x55, 0x46, 3]);
    expectError(() => parseLlama2c(gguf.buffer), 'BAD_MAGIC', /GGUF/);
    expectError(
      () => parseLlama2c(header([0x616b3432, 2, 64, 172, 5, 8, 4], 256)),
      'BAD_MAGIC',
      /version 1\/2/,
    );
    const st = new TextEncoder().encode('        {"__metadata__":{}}');
    new DataView(st.buffer).setBigUint64(0, BigInt(st.length - 8), true);
    expectError(() => parseLlama2c(st.buffer), 'BAD_MAGIC', /safetensors/);
    // text is not a checkpoint
    expectError(
      () =>
        parseLlama2c(
          new TextEncoder().encode('Once upon a time, there was a file that was not a model.').buffer,
        ),
      'BAD_FILE',
      /not a llama2.c checkpoint/,
    );
  });

  it('rejects a file longer than the header says (beyond the legacy freq_cis)', () => {
    const longer = new Uint8Array(stories.byteLength + 8);
    longer.set(new Uint8Array(stories));
    expectError(() => parseLlama2c(longer.buffer), 'BAD_FILE', /1,056,540 bytes but the file has 1,056,548/);
  });

  it("validateConfig uses the caller's code", () => {
    expectError(
      () => validateConfig({ ...tiny, nKvHeads: 3 }),
      'BAD_ARGUMENT',
      /nHeads 4 is not a multiple of nKvHeads 3: fix the model configuration/,
    );
    expectError(() => validateConfig({ ...tiny, normEps: 0 }), 'BAD_ARGUMENT', /normEps/);
    expect(() => validateConfig(tiny)).not.toThrow();
  });
});
