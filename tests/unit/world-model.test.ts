/**
 * The committed built-in student (public/models/arith-student.*) and the pre-training fixture
 * (tests/fixtures/pretrain-50.json), both written by PyTorch (tools/), read by our engine.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readLlamaSafetensors, writeLlamaSafetensors } from '../../src/engine/io/checkpoint.ts';
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import { paramCount } from '../../src/engine/model/config.ts';
import { uniformStream } from '../../src/engine/model/lora.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';
import { RefLlama } from '../../src/engine/ref/llama.ts';
import { Rng, WORLD_CHARS } from '../../src/method/world/index.ts';

function bytes(path: string): ArrayBuffer {
  const b = readFileSync(new URL(`../../${path}`, import.meta.url));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}
function json<T>(path: string): T {
  return JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')) as T;
}

interface Fixture {
  config: Parameters<typeof randomLlamaWeights>[0];
  initSeed: number;
  chars: string;
  adamw: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; maxGradNorm: number };
  batches: string[][];
  losses: number[];
  gradNorms: number[];
  lrs: number[];
  initProbe: Record<'tokenEmbedding' | 'wq' | 'w2', { first: number[]; sum: number }>;
  after50: Record<string, [number, number]>;
}

/** Mean next-token cross-entropy of BOS + text + EOS over all targets (the fixture's packing). */
function meanLoss(model: RefLlama, tok: CharTokenizer, texts: readonly string[]): number {
  let total = 0;
  let n = 0;
  for (const text of texts) {
    const ids = tok.encode(text, true, true);
    for (let t = 0; t + 1 < ids.length; t++) {
      const logits = model.forward(ids[t]!, t);
      let mx = -Infinity;
      for (const x of logits) mx = Math.max(mx, x);
      let s = 0;
      for (const x of logits) s += Math.exp(x - mx);
      total += Math.log(s) + mx - logits[ids[t + 1]!]!;
      n++;
    }
  }
  return total / n;
}

describe('world Rng', () => {
  it('is the same mulberry32 stream as the engine uniformStream', () => {
    for (const seed of [1, 42, 20240101]) {
      const a = new Rng(seed);
      const b = uniformStream(seed);
      for (let i = 0; i < 5; i++) expect((a.nextU32() / 4294967296) * 2 - 1).toBe(b());
    }
  });
});

describe('arith-student (committed model)', () => {
  const file = bytes('public/models/arith-student.safetensors');
  const { config, weights } = readLlamaSafetensors(file, 'arith-student.safetensors');
  const tok = CharTokenizer.fromJSON(json('public/models/arith-student.tokenizer.json'));

  it('is byte-for-byte what writeLlamaSafetensors writes, with the world tokenizer', () => {
    expect(Buffer.compare(Buffer.from(writeLlamaSafetensors(config, weights)), Buffer.from(file))).toBe(0);
    expect(tok.chars).toBe(WORLD_CHARS);
    expect(config.vocabSize).toBe(tok.vocabSize);
    expect(config.sharedClassifier).toBe(true);
    expect(paramCount(config)).toBeLessThan(500_000);
  });

  it('runs in our reference engine exactly as in PyTorch (greedy continuations)', () => {
    const g = json<{ prompts: string[]; outputs: string[] }>('tests/fixtures/arith-student-greedy.json');
    const model = new RefLlama(config, weights);
    const nl = tok.encode('\n', false, false)[0]!;
    g.prompts.forEach((prompt, i) => {
      const ids = tok.encode(prompt, true, false);
      const out: number[] = [];
      let token = ids[0]!;
      for (let pos = 0; pos < ids.length + 40; pos++) {
        const logits = model.forward(token, pos);
        let next: number;
        if (pos + 1 < ids.length) next = ids[pos + 1]!;
        else {
          next = 0;
          for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[next]!) next = v;
          if (next === tok.eos || next === nl) break;
          out.push(next);
        }
        token = next;
      }
      expect(tok.decode(out), prompt).toBe(g.outputs[i]);
    });
  });
});

describe('pretrain-50 fixture', () => {
  const fx = json<Fixture>('tests/fixtures/pretrain-50.json');

  it('is well formed: 50 batches of encodable texts, 50 losses, grad norms and learning rates', () => {
    const tok = new CharTokenizer(fx.chars);
    expect(fx.chars).toBe(WORLD_CHARS);
    expect(fx.batches.length).toBe(50);
    for (const b of fx.batches) {
      expect(b.length).toBe(fx.batches[0]!.length);
      for (const t of b) expect(tok.encode(t, true, true).length).toBeLessThanOrEqual(fx.config.maxSeqLen);
    }
    for (const k of ['losses', 'gradNorms', 'lrs'] as const) {
      expect(fx[k].length).toBe(50);
      expect(fx[k].every(Number.isFinite)).toBe(true);
    }
    expect(fx.losses[49]!).toBeLessThan(fx.losses[0]! / 3);
  });

  it('its initial weights are randomLlamaWeights(config, initSeed)', () => {
    const w = randomLlamaWeights(fx.config, fx.initSeed);
    for (const name of ['tokenEmbedding', 'wq', 'w2'] as const) {
      expect(Array.from(w[name].slice(0, 4))).toEqual(fx.initProbe[name].first);
      let s = 0;
      for (const x of w[name]) s += x;
      expect(s).toBeCloseTo(fx.initProbe[name].sum, 6);
    }
  });

  it('step 1 loss (before any update) is what our reference forward gives', () => {
    const model = new RefLlama(fx.config, randomLlamaWeights(fx.config, fx.initSeed));
    const loss = meanLoss(model, new CharTokenizer(fx.chars), fx.batches[0]!);
    expect(Math.abs(loss - fx.losses[0]!) / fx.losses[0]!).toBeLessThan(1e-5);
  });
});
