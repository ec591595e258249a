// The PyTorch fixture (tests/fixtures/tiny_llama_lora.json, written by tools/make_fixtures.py) is
// self-consistent: shapes match its config, the stored logits reproduce the stored loss, the
// AdamW trace starts at that loss and decreases. Matching the model itself is the engine's test.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const FIXTURE = new URL('../fixtures/tiny_llama_lora.json', import.meta.url);

interface Arr<A> {
  shape: number[];
  data: A;
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function field(o: unknown, key: string): unknown {
  if (!isRecord(o) || !(key in o)) throw new Error(`fixture: missing key "${key}"`);
  return o[key];
}

function num(o: unknown, key: string): number {
  const v = field(o, key);
  if (typeof v !== 'number') throw new Error(`fixture: "${key}" is not a number`);
  return v;
}

function shapeOf(o: unknown): number[] {
  const s = field(o, 'shape');
  if (!Array.isArray(s) || !s.every((d): d is number => Number.isInteger(d))) {
    throw new Error('fixture: bad shape');
  }
  return s;
}

function bytes(o: unknown, key: 'f32' | 'f64', shape: number[]): DataView {
  const b64 = field(o, key);
  if (typeof b64 !== 'string') throw new Error(`fixture: "${key}" is not a base64 string`);
  const buf = Buffer.from(b64, 'base64');
  const n = shape.reduce((a, d) => a * d, 1);
  const width = key === 'f32' ? 4 : 8;
  if (buf.byteLength !== n * width)
    throw new Error(`fixture: ${buf.byteLength} bytes for [${shape.join(', ')}]`);
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** {"shape", "f32": base64 of little-endian float32} → Float32Array. */
function decodeF32(o: unknown): Arr<Float32Array> {
  const shape = shapeOf(o),
    view = bytes(o, 'f32', shape);
  const data = new Float32Array(view.byteLength / 4);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(4 * i, true);
  return { shape, data };
}

/** {"shape", "f64": base64 of little-endian float64} → Float64Array. */
function decodeF64(o: unknown): Arr<Float64Array> {
  const shape = shapeOf(o),
    view = bytes(o, 'f64', shape);
  const data = new Float64Array(view.byteLength / 8);
  for (let i = 0; i < data.length; i++) data[i] = view.getFloat64(8 * i, true);
  return { shape, data };
}

function ints2d(o: unknown): number[][] {
  if (!Array.isArray(o)) throw new Error('fixture: expected an array of rows');
  return o.map((row) => {
    if (!Array.isArray(row) || !row.every((v): v is number => Number.isInteger(v))) {
      throw new Error('fixture: expected integer rows');
    }
    return row;
  });
}

function at(a: ArrayLike<number>, i: number): number {
  const v = a[i];
  if (v === undefined) throw new Error(`index ${i} out of range`);
  return v;
}

const fx: unknown = JSON.parse(readFileSync(FIXTURE, 'utf8'));
const cfg = field(fx, 'config');
const C = num(cfg, 'dim'),
  HID = num(cfg, 'hidden_dim'),
  L = num(cfg, 'n_layers');
const NH = num(cfg, 'n_heads'),
  NKV = num(cfg, 'n_kv_heads'),
  V = num(cfg, 'vocab_size');
const HS = C / NH;
const R = num(field(fx, 'lora'), 'rank');
const tokens = ints2d(field(fx, 'tokens'));
const targets = ints2d(field(fx, 'targets'));
const mask = ints2d(field(fx, 'loss_mask'));
const B = tokens.length,
  T = tokens[0]?.length ?? 0;

function loraShapes(): Record<string, number[]> {
  const s: Record<string, number[]> = {};
  for (let l = 0; l < L; l++) {
    s[`layers.${l}.q.A`] = [R, C];
    s[`layers.${l}.q.B`] = [NH * HS, R];
    s[`layers.${l}.v.A`] = [R, C];
    s[`layers.${l}.v.B`] = [NKV * HS, R];
  }
  return s;
}

describe('tiny_llama_lora fixture', () => {
  it('has the documented config', () => {
    expect([C, HID, L, NH, NKV, V, R]).toEqual([32, 64, 2, 4, 2, 40, 4]);
    expect(Number.isInteger(HS) && NH % NKV === 0).toBe(true);
    expect(num(cfg, 'rope_theta')).toBe(10000);
    expect(num(cfg, 'norm_eps')).toBe(1e-5);
    expect(num(field(fx, 'lora'), 'scale')).toBe(num(field(fx, 'lora'), 'alpha') / R);
    expect(num(field(fx, 'adamw'), 'steps')).toBe(5);
  });

  it('weight and LoRA shapes match the config', () => {
    const weights: Record<string, number[]> = { tok_embeddings: [V, C], norm: [C], output: [V, C] };
    for (let l = 0; l < L; l++) {
      const p = `layers.${l}.`;
      Object.assign(weights, {
        [p + 'attention_norm']: [C],
        [p + 'ffn_norm']: [C],
        [p + 'wq']: [NH * HS, C],
        [p + 'wk']: [NKV * HS, C],
        [p + 'wv']: [NKV * HS, C],
        [p + 'wo']: [C, NH * HS],
        [p + 'w1']: [HID, C],
        [p + 'w2']: [C, HID],
        [p + 'w3']: [HID, C],
      });
    }
    const w = field(fx, 'weights');
    expect(Object.keys(w as object).sort()).toEqual(Object.keys(weights).sort());
    for (const [k, s] of Object.entries(weights)) {
      const a = decodeF32(field(w, k));
      expect(a.shape, k).toEqual(s);
      expect(a.data.every(Number.isFinite), k).toBe(true);
    }
    for (const group of ['lora_init', 'lora_grads', 'lora_final']) {
      const g = field(fx, group);
      expect(Object.keys(g as object).sort(), group).toEqual(Object.keys(loraShapes()).sort());
      for (const [k, s] of Object.entries(loraShapes())) {
        const a = group === 'lora_init' ? decodeF32(field(g, k)) : decodeF64(field(g, k));
        expect(a.shape, `${group}.${k}`).toEqual(s);
        expect(a.data.every(Number.isFinite), `${group}.${k}`).toBe(true);
      }
    }
  });

  it('batch: next-token targets, prompt masked, tokens in range', () => {
    expect([B, T]).toEqual([2, 10]);
    for (let b = 0; b < B; b++) {
      const tok = tokens[b] ?? [],
        tgt = targets[b] ?? [],
        m = mask[b] ?? [];
      expect([tok.length, tgt.length, m.length]).toEqual([T, T, T]);
      expect(tok.slice(1)).toEqual(tgt.slice(0, T - 1));
      expect([...tok, ...tgt].every((v) => v >= 0 && v < V)).toBe(true);
      expect(m).toEqual([0, 0, 0, 1, 1, 1, 1, 1, 1, 1]);
    }
  });

  it('stored logits reproduce the stored loss (float64 cross-entropy)', () => {
    const logits = decodeF64(field(fx, 'logits'));
    const loss = decodeF64(field(fx, 'loss'));
    expect(logits.shape).toEqual([B, T, V]);
    expect(loss.shape).toEqual([]);
    let sum = 0,
      count = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        if (at(mask[b] ?? [], t) === 0) continue;
        const row = logits.data.subarray((b * T + t) * V, (b * T + t + 1) * V);
        let max = -Infinity;
        for (const x of row) max = Math.max(max, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - max);
        sum += max + Math.log(z) - at(row, at(targets[b] ?? [], t));
        count++;
      }
    }
    const expected = at(loss.data, 0);
    expect(Math.abs(sum / count - expected)).toBeLessThan(1e-12 * expected);
  });

  it('AdamW trace: starts at the loss, decreases, first grad norm is the LoRA gradient norm', () => {
    const loss = at(decodeF64(field(fx, 'loss')).data, 0);
    const losses = decodeF64(field(fx, 'adamw_losses'));
    const norms = decodeF64(field(fx, 'adamw_grad_norms'));
    expect(losses.shape).toEqual([5]);
    expect(norms.shape).toEqual([5]);
    expect(at(losses.data, 0)).toBe(loss);
    for (let i = 1; i < 5; i++) expect(at(losses.data, i)).toBeLessThan(at(losses.data, i - 1));
    let sq = 0;
    for (const k of Object.keys(loraShapes()))
      for (const g of decodeF64(field(field(fx, 'lora_grads'), k)).data) sq += g * g;
    expect(Math.abs(Math.sqrt(sq) - at(norms.data, 0))).toBeLessThan(1e-12);
    // clipping at max_grad_norm = 1 is exercised both ways
    expect(norms.data.some((n) => n < 0.98) && norms.data.some((n) => n > 1.02)).toBe(true);
  });
});
