// PEFT import / export (src/method/peft.ts): key names, shapes and adapter_config.json as PEFT
// writes them (peft's LoraLayer: lora_A = nn.Linear(in, r), lora_B = nn.Linear(r, out),
// scaling = lora_alpha / r; save_pretrained strips the adapter name and writes metadata
// {"format": "pt"}), exact round trips, the q_proj / k_proj row order of transformers' LLaMA
// (checked against a rotate_half RoPE), whole adapter sets through a zip, and every refusal.
//
// The PEFT-layout files of the refusal tests are written here by hand with our safetensors
// writer (keys typed out, not produced by the code under test): Debian has python3-torch but no
// python `safetensors` package, so there is no PyTorch-written fixture.
import { readFileSync } from 'node:fs';
import { strToU8, zipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import {
  readLlamaSafetensors,
  readLoraSafetensors,
  writeLoraSafetensors,
} from '../../src/engine/io/checkpoint.ts';
import { readSafetensors, toFloat32, writeSafetensors } from '../../src/engine/io/safetensors.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { uniformStream, type LoraState } from '../../src/engine/model/lora.ts';
import { ropeForward } from '../../src/engine/ref/rope.ts';
import {
  exportAdapterSet,
  importAdapterFiles,
  isZip,
  unzipFiles,
  zipFiles,
} from '../../src/method/adapter-zip.ts';
import { loraToPeft, peftToLora } from '../../src/method/peft.ts';

const ab = (u: Uint8Array) => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
/** Byte equality (vitest's deep equality is slow on megabytes). */
const same = (a: Uint8Array | undefined, b: ArrayBuffer | undefined) =>
  a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
const json = (u: Uint8Array) => JSON.parse(new TextDecoder().decode(u)) as Record<string, unknown>;

// tiny GQA model: HS 8 (the row permutation is not its own inverse), kvDim 8
const tiny: LlamaConfig = {
  dim: 16,
  hiddenDim: 24,
  nLayers: 2,
  nHeads: 2,
  nKvHeads: 1,
  vocabSize: 10,
  maxSeqLen: 8,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: true,
};
const SHAPES: Record<string, [number, number]> = {
  q: [16, 16],
  k: [8, 16],
  v: [8, 16],
  o: [16, 16],
  gate: [24, 16],
  up: [24, 16],
  down: [16, 24],
};
const ALL = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

function tinyLora(targets: (typeof ALL)[number][] = [...ALL], rank = 3, alpha = 6, seed = 5): LoraState {
  const rnd = uniformStream(seed);
  const tensors: LoraState['tensors'] = {};
  for (let l = 0; l < tiny.nLayers; l++)
    for (const t of targets) {
      const [out, inp] = SHAPES[t]!;
      tensors[`layers.${l}.${t}.A`] = { shape: [rank, inp], data: new Float32Array(rank * inp).map(rnd) };
      tensors[`layers.${l}.${t}.B`] = { shape: [out, rank], data: new Float32Array(out * rank).map(rnd) };
    }
  return {
    config: { rank, alpha, dropout: 0.05, targets },
    model: { dim: 16, hiddenDim: 24, nLayers: 2, kvDim: 8 },
    tensors,
  };
}

/** torch's `w.view(NH, HS/2, 2, cols).transpose(1, 2).reshape(NH*HS, cols)`, by strides. */
function hfPermute(w: Float32Array, NH: number, HS: number): Float32Array {
  const cols = w.length / (NH * HS);
  const out = new Float32Array(w.length);
  let o = 0;
  for (let h = 0; h < NH; h++)
    for (let j = 0; j < 2; j++)
      // after the transpose, dim 1 is the old dim 2 (size 2)
      for (let i = 0; i < HS / 2; i++)
        for (let c = 0; c < cols; c++) out[o++] = w[((h * (HS / 2) + i) * 2 + j) * cols + c]!;
  return out;
}

/** ΔW (out, in) = scale · B A, in float64. */
function deltaW(
  A: Float32Array,
  B: Float32Array,
  out: number,
  inp: number,
  r: number,
  scale: number,
): Float64Array {
  const d = new Float64Array(out * inp);
  for (let o = 0; o < out; o++)
    for (let i = 0; i < inp; i++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += B[o * r + k]! * A[k * inp + i]!;
      d[o * inp + i] = scale * s;
    }
  return d;
}

describe('PEFT export: the layout PEFT writes', () => {
  const s = tinyLora();
  const peft = loraToPeft(s, tiny, { baseModel: 'arith-student' });

  it('keys, shapes, dtype and metadata of adapter_model.safetensors', () => {
    const { metadata, tensors } = readSafetensors(ab(peft['adapter_model.safetensors']));
    expect(metadata).toEqual({ format: 'pt' });
    const want: [string, number[]][] = [];
    const mod = {
      q: 'self_attn.q_proj',
      k: 'self_attn.k_proj',
      v: 'self_attn.v_proj',
      o: 'self_attn.o_proj',
      gate: 'mlp.gate_proj',
      up: 'mlp.up_proj',
      down: 'mlp.down_proj',
    };
    for (const l of [0, 1])
      for (const t of ALL) {
        const [out, inp] = SHAPES[t]!;
        want.push([`base_model.model.model.layers.${l}.${mod[t]}.lora_A.weight`, [3, inp]]);
        want.push([`base_model.model.model.layers.${l}.${mod[t]}.lora_B.weight`, [out, 3]]);
      }
    expect([...tensors.keys()].sort()).toEqual(want.map(([k]) => k).sort());
    for (const [k, shape] of want) {
      expect(tensors.get(k)!.shape).toEqual(shape);
      expect(tensors.get(k)!.dtype).toBe('F32');
    }
    expect(tensors.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape).toEqual([
      3, 24,
    ]);
  });

  it('adapter_config.json', () => {
    const c = json(peft['adapter_config.json']);
    expect(c).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 3,
      lora_alpha: 6,
      lora_dropout: 0.05,
      bias: 'none',
      base_model_name_or_path: 'arith-student',
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
      use_rslora: false,
      use_dora: false,
      fan_in_fan_out: false,
      inference_mode: true,
      rank_pattern: {},
      alpha_pattern: {},
    });
  });

  it('A and the non-RoPE B carry over as they are; q / k B rows in transformers order', () => {
    const { tensors } = readSafetensors(ab(peft['adapter_model.safetensors']));
    const get = (k: string) => toFloat32(tensors.get(`base_model.model.model.layers.1.${k}.weight`)!);
    expect(get('self_attn.q_proj.lora_A')).toEqual(s.tensors['layers.1.q.A']!.data);
    expect(get('mlp.down_proj.lora_B')).toEqual(s.tensors['layers.1.down.B']!.data);
    expect(get('self_attn.v_proj.lora_B')).toEqual(s.tensors['layers.1.v.B']!.data);
    expect(get('self_attn.q_proj.lora_B')).toEqual(hfPermute(s.tensors['layers.1.q.B']!.data, 2, 8));
    expect(get('self_attn.k_proj.lora_B')).toEqual(hfPermute(s.tensors['layers.1.k.B']!.data, 1, 8));
    // rows by hand: HF row h·HS + j·HS/2 + i = our row h·HS + 2i + j (h 1, i 1: j 0 → 9 ← 10, j 1 → 13 ← 11)
    const q = get('self_attn.q_proj.lora_B');
    const ours = s.tensors['layers.1.q.B']!.data;
    const row = (m: Float32Array, n: number) => [...m.subarray(n * 3, (n + 1) * 3)];
    expect(row(q, 9)).toEqual(row(ours, 10));
    expect(row(q, 13)).toEqual(row(ours, 11));
    expect(row(q, 0)).toEqual(row(ours, 0));
  });

  it('the permuted q with rotate_half RoPE equals our q with adjacent-pair RoPE, permuted', () => {
    // transformers' LLaMA: q = rope_half(x (W + s B A)ᵀ) with W, B in its row order; ours: pairs (2i, 2i+1)
    const NH = 2,
      HS = 8,
      C = 16,
      r = 3,
      scale = 2;
    const rnd = uniformStream(9);
    const W = new Float32Array(C * C).map(rnd);
    const A = s.tensors['layers.0.q.A']!.data;
    const B = s.tensors['layers.0.q.B']!.data;
    const Bhf = toFloat32(
      readSafetensors(ab(peft['adapter_model.safetensors'])).tensors.get(
        'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
      )!,
    );
    const x = new Float64Array(C).map(rnd);
    const pos = 3;
    const proj = (w: Float32Array, b: Float32Array) => {
      const d = deltaW(A, b, C, C, r, scale);
      const out = new Float64Array(C);
      for (let o = 0; o < C; o++) {
        let acc = 0;
        for (let i = 0; i < C; i++) acc += (w[o * C + i]! + d[o * C + i]!) * x[i]!;
        out[o] = acc;
      }
      return out;
    };
    const qOurs = proj(W, B);
    const roped = new Float64Array(C);
    ropeForward(roped, qOurs, new Uint32Array([pos]), 1, NH, HS, 10000);
    const qHf = proj(hfPermute(W, NH, HS), Bhf);
    const half = new Float64Array(C);
    for (let h = 0; h < NH; h++)
      for (let i = 0; i < HS / 2; i++) {
        const th = pos / Math.pow(10000, (2 * i) / HS);
        const a = qHf[h * HS + i]!,
          b = qHf[h * HS + i + HS / 2]!;
        half[h * HS + i] = a * Math.cos(th) - b * Math.sin(th);
        half[h * HS + i + HS / 2] = b * Math.cos(th) + a * Math.sin(th);
      }
    const want = hfPermute(new Float32Array(roped), NH, HS);
    for (let i = 0; i < C; i++) expect(half[i]).toBeCloseTo(want[i]!, 5);
  });
});

describe('PEFT round trips', () => {
  it('ours → PEFT → ours is exact, tensors and file bytes (both q/k layouts)', () => {
    const s = tinyLora(['q', 'k', 'v', 'down']);
    for (const qkLayout of ['hf', 'llama2c'] as const) {
      const p = loraToPeft(s, tiny, { qkLayout });
      const { base, ...back } = peftToLora(p['adapter_config.json'], p['adapter_model.safetensors'], tiny, {
        qkLayout,
      });
      expect(base).toBeNull();
      expect(back).toEqual(s);
      expect(writeLoraSafetensors(back)).toEqual(writeLoraSafetensors(s));
    }
  });

  it("scaling is preserved: PEFT's lora_alpha / r · B A equals ours alpha / rank · B A", () => {
    const s = tinyLora(['v', 'gate'], 4, 8);
    const p = loraToPeft(s, tiny, { qkLayout: 'llama2c' });
    const c = json(p['adapter_config.json']) as { r: number; lora_alpha: number };
    const { tensors } = readSafetensors(ab(p['adapter_model.safetensors']));
    const f = (k: string) =>
      toFloat32(tensors.get(`base_model.model.model.layers.0.mlp.gate_proj.${k}.weight`)!);
    const peftDelta = deltaW(f('lora_A'), f('lora_B'), 24, 16, c.r, c.lora_alpha / c.r);
    const ours = deltaW(
      s.tensors['layers.0.gate.A']!.data,
      s.tensors['layers.0.gate.B']!.data,
      24,
      16,
      4,
      8 / 4,
    );
    expect(peftDelta).toEqual(ours);
    const back = peftToLora(p['adapter_config.json'], p['adapter_model.safetensors'], tiny, {
      qkLayout: 'llama2c',
    });
    expect(back.config.alpha / back.config.rank).toBe(2);
  });

  it('F16 / BF16 PEFT weights are read (as PyTorch often saves them)', () => {
    const s = tinyLora(['v'], 1, 1);
    const p = loraToPeft(s, tiny);
    const { tensors } = readSafetensors(ab(p['adapter_model.safetensors']));
    const half: Parameters<typeof writeSafetensors>[0] = {};
    for (const [k, t] of tensors) {
      const f = toFloat32(t);
      const u = new Uint16Array(f.length);
      const bits = new Uint32Array(f.buffer);
      for (let i = 0; i < f.length; i++) u[i] = bits[i]! >>> 16; // bf16 by truncation
      half[k] = { dtype: 'BF16', shape: t.shape, data: u };
    }
    const back = peftToLora(p['adapter_config.json'], writeSafetensors(half), tiny);
    const a = back.tensors['layers.0.v.A']!.data;
    const want = s.tensors['layers.0.v.A']!.data;
    for (let i = 0; i < a.length; i++)
      expect(Math.abs(a[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) / 128);
  });
});

describe('adapter sets through a zip (the built-in student and its adapters)', () => {
  const student = readLlamaSafetensors(ab(readFileSync('public/models/arith-student.safetensors'))).config;
  const dir = (d: string, files: string[]) =>
    Object.fromEntries(files.map((f) => [f, ab(readFileSync(`public/models/adapters/${d}/${f}`))]));

  it('a one-LoRA set: PEFT files at the top of the zip; imported back byte for byte', () => {
    const files = dir('kd', ['lora.safetensors', 'result.json']);
    const zip = zipFiles(exportAdapterSet(files, student, { baseModel: 'arith-student' }));
    expect(isZip(zip)).toBe(true);
    const inside = unzipFiles(zip);
    expect(Object.keys(inside).sort()).toEqual([
      'README.txt',
      'adapter_config.json',
      'adapter_model.safetensors',
      'result.json',
    ]);
    const keys = [...readSafetensors(ab(inside['adapter_model.safetensors']!)).tensors.keys()];
    expect(keys).toHaveLength(4 * 7 * 2);
    expect(keys).toContain('base_model.model.model.layers.3.mlp.down_proj.lora_B.weight');
    const back = importAdapterFiles(inside, student);
    expect(back.stage).toBe('kd');
    expect(back.base).toBe('arith-student');
    expect(Object.keys(back.files).sort()).toEqual(['lora.safetensors', 'result.json']);
    expect(back.files['lora.safetensors']).toEqual(new Uint8Array(files['lora.safetensors']!));
    expect(back.files['result.json']).toEqual(new Uint8Array(files['result.json']!));
    // the stage can be named at import
    expect(importAdapterFiles(inside, student, { stage: 'neg' }).stage).toBe('neg');
  });

  it('the two loose files dropped together: a set with stage kd', () => {
    const files = dir('nce', ['lora.safetensors']);
    const out = exportAdapterSet(files, student);
    const back = importAdapterFiles(
      {
        'adapter_config.json': out['adapter_config.json']!,
        'adapter_model.safetensors': out['adapter_model.safetensors']!,
      },
      student,
    );
    expect(back.stage).toBe('kd');
    expect(back.folders).toEqual(['']);
    expect(back.files['lora.safetensors']).toEqual(new Uint8Array(files['lora.safetensors']!));
  });

  it('a PEFT folder inside a zip (as zipping a saved folder gives) is found', () => {
    const out = exportAdapterSet(dir('kd', ['lora.safetensors']), student);
    const zip = zipSync({
      'my-adapter/adapter_config.json': out['adapter_config.json']!,
      'my-adapter/adapter_model.safetensors': out['adapter_model.safetensors']!,
      '__MACOSX/my-adapter/._adapter_config.json': strToU8('junk'),
    });
    const back = importAdapterFiles(unzipFiles(zip), student);
    expect(back.folders).toEqual(['my-adapter/']);
  });

  it('NAT: one PEFT folder per LoRA, the unit in our format; imported back byte for byte', () => {
    const files = dir('nat', ['lora.safetensors', 'neg.safetensors', 'nat.safetensors', 'result.json']);
    const inside = unzipFiles(zipFiles(exportAdapterSet(files, student)));
    expect(Object.keys(inside).sort()).toEqual([
      'README.txt',
      'lora/adapter_config.json',
      'lora/adapter_model.safetensors',
      'nat.safetensors',
      'neg/adapter_config.json',
      'neg/adapter_model.safetensors',
      'result.json',
    ]);
    const back = importAdapterFiles(inside, student);
    expect(back.stage).toBe('nat');
    for (const f of Object.keys(files)) expect(same(back.files[f], files[f]), f).toBe(true);
    expect(Object.keys(back.files).sort()).toEqual(Object.keys(files).sort());
  });
});

describe('refusals, with messages a student can act on', () => {
  const s = tinyLora(['q', 'v']);
  const good = loraToPeft(s, tiny);
  const cfg = json(good['adapter_config.json']);
  const withConfig = (patch: Record<string, unknown>) => strToU8(JSON.stringify({ ...cfg, ...patch }));
  const imp =
    (files: Record<string, Uint8Array>, model = tiny) =>
    () =>
      importAdapterFiles(files, model);
  const both = (c: Uint8Array, w: Uint8Array = good['adapter_model.safetensors']) => ({
    'adapter_config.json': c,
    'adapter_model.safetensors': w,
  });
  const err = (code: string, msg: RegExp) =>
    expect.objectContaining({ code, message: expect.stringMatching(msg) });

  it('an adapter for another model: width, layer count', () => {
    const wide = { ...tiny, dim: 32 };
    expect(imp(both(good['adapter_config.json']), wide)).toThrow(
      err('SHAPE_MISMATCH', /made for another model: its q_proj lora_A is 3×16, the model in use needs 3×32/),
    );
    const deep = { ...tiny, nLayers: 3 };
    expect(imp(both(good['adapter_config.json']), deep)).toThrow(
      err('SHAPE_MISMATCH', /model with fewer layers \(2\); the model in use has 3/),
    );
    expect(imp(both(good['adapter_config.json']), { ...tiny, nLayers: 1 })).toThrow(
      err('SHAPE_MISMATCH', /more layers/),
    );
    // and exporting an adapter of one model with another model's configuration
    expect(() => loraToPeft(s, wide)).toThrow(err('SHAPE_MISMATCH', /trained for another model \(dim 16/));
  });

  it('not LoRA, DoRA, rsLoRA and other settings we cannot run', () => {
    expect(imp(both(withConfig({ peft_type: 'IA3' })))).toThrow(
      err('BAD_FILE', /PEFT "IA3" adapter; dust2gold reads LoRA/),
    );
    expect(imp(both(withConfig({ use_dora: true })))).toThrow(err('BAD_FILE', /DoRA/));
    expect(imp(both(withConfig({ use_rslora: true })))).toThrow(err('BAD_FILE', /rank-stabilized/));
    expect(imp(both(withConfig({ bias: 'all' })))).toThrow(err('BAD_FILE', /bias/));
    expect(imp(both(withConfig({ rank_pattern: { q_proj: 4 } })))).toThrow(err('BAD_FILE', /rank_pattern/));
    expect(imp(both(withConfig({ layers_to_transform: [0] })))).toThrow(err('BAD_FILE', /every layer/));
    expect(imp(both(withConfig({ modules_to_save: ['lm_head'] })))).toThrow(err('BAD_FILE', /lm_head/));
    expect(imp(both(withConfig({ init_lora_weights: 'pissa' })))).toThrow(
      err('BAD_FILE', /base model's weights/),
    );
    expect(imp(both(strToU8('{"peft_type": LORA')))).toThrow(err('BAD_FILE', /not JSON/));
  });

  it('unknown target modules, stray weights, config and weights that do not belong together', () => {
    expect(imp(both(withConfig({ target_modules: ['q_proj', 'c_attn'] })))).toThrow(
      err('BAD_FILE', /"c_attn" is not one of the LLaMA layers/),
    );
    const gpt2 = writeSafetensors(
      {
        'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': {
          dtype: 'F32',
          shape: [1, 2],
          data: new Float32Array(2),
        },
      },
      { format: 'pt' },
    );
    expect(imp(both(good['adapter_config.json'], gpt2))).toThrow(
      err('BAD_FILE', /not a LoRA matrix of a LLaMA layer/),
    );
    expect(imp(both(withConfig({ target_modules: ['q_proj', 'v_proj', 'k_proj'] })))).toThrow(
      err('BAD_FILE', /lacks base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight/),
    );
    expect(imp(both(withConfig({ target_modules: ['q_proj'] })))).toThrow(
      err('BAD_FILE', /does not list in target_modules/),
    );
  });

  it('missing files, a pickle, a damaged zip, two adapters at once', () => {
    expect(imp({ 'adapter_model.safetensors': good['adapter_model.safetensors'] })).toThrow(
      err('BAD_FILE', /adapter_config\.json is missing.*both files together/),
    );
    expect(imp({ 'adapter_config.json': good['adapter_config.json'] })).toThrow(
      err('BAD_FILE', /adapter_model\.safetensors is missing/),
    );
    expect(imp({ 'adapter_model.bin': new Uint8Array(4) })).toThrow(
      err('BAD_FILE', /pickle.*safe_serialization/),
    );
    expect(imp({ 'notes.txt': strToU8('hi') })).toThrow(
      err('BAD_FILE', /"notes\.txt" is not a PEFT adapter/),
    );
    expect(() => unzipFiles(strToU8('PK\x03\x04 not really'), 'x.zip')).toThrow(
      err('BAD_FILE', /x\.zip could not be unpacked/),
    );
    expect(
      imp({
        ...both(good['adapter_config.json']),
        'b/adapter_config.json': good['adapter_config.json'],
        'b/adapter_model.safetensors': good['adapter_model.safetensors'],
      }),
    ).toThrow(err('BAD_ARGUMENT', /holds 2 PEFT adapters/));
    const truncated = good['adapter_model.safetensors'].subarray(0, 100);
    expect(imp(both(good['adapter_config.json'], truncated))).toThrow(err('TRUNCATED_FILE', /incomplete/));
  });

  it('our own adapter file is not mistaken for PEFT, and exporting a set without a LoRA is refused', () => {
    const ours = writeLoraSafetensors(s);
    expect(imp(both(good['adapter_config.json'], ours))).toThrow(err('BAD_FILE', /not a LoRA matrix/));
    expect(() => exportAdapterSet({ 'result.json': ab(strToU8('{}')) }, tiny)).toThrow(
      err('BAD_ARGUMENT', /no LoRA/),
    );
    expect(readLoraSafetensors(ab(ours)).config).toEqual(s.config);
  });
});
