// f16 activations (ops/act.ts, LlamaRunner's `act`): where the adapter offers shader-f16 the
// inference kernels take f16 inputs and outputs, compute in f32 and round each store once.
// - Every kernel the runner uses, given f16 tensors, against the CPU reference or the kernel's own
//   f32 build on the same (f16-representable) values: f16 outputs within one f16 rounding, f32
//   outputs of f16 inputs equal to the f32 path's.
// - The runner: stories260K and a random model with LLaMA-7b's layer shapes (1 layer, q4_0) at
//   m = 16, and a LoRA at its sites, with act 'f16' against act 'f32' on the same weights.
// - Every device: each such shader built with i32 standing in for f16 compiles (a missed
//   conversion would not), so the f16 builds' typing is checked where they cannot be compiled.
// - Without shader-f16 (SwiftShader, this project's CI): the runner and every kernel refuse f16
//   with FEATURE_MISSING. The f16 group is skipped there and runs on a GPU that has the feature;
//   D2G_REQUIRE_F16=1 (the GPU runs) makes a missing feature a failure instead.
import { describe, expect, it } from 'vitest';
import attentionDecodeWgsl from '../../shaders/attention_decode.wgsl?raw';
import f16Wgsl from '../../shaders/f16.wgsl?raw';
import matmulWgsl from '../../shaders/matmul.wgsl?raw';
import gemvWgsl from '../../shaders/matmul_gemv.wgsl?raw';
import quantWgsl from '../../shaders/matmul_quant.wgsl?raw';
import residualWgsl from '../../shaders/residual.wgsl?raw';
import rmsnormWgsl from '../../shaders/rmsnorm.wgsl?raw';
import ropeWgsl from '../../shaders/rope.wgsl?raw';
import splitWgsl from '../../shaders/split_cols.wgsl?raw';
import swigluWgsl from '../../shaders/swiglu.wgsl?raw';
import { GpuBackend, uploadWeightSplit } from '../../src/engine/backend/gpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import type { Tensor } from '../../src/engine/gpu/tensor.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner, type Row } from '../../src/engine/infer/runner.ts';
import { packKvF16 } from '../../src/engine/kvcache.ts';
import { LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../src/engine/model/llama.ts';
import { createLora, destroyLora } from '../../src/engine/model/lora.ts';
import type { ActType } from '../../src/engine/ops/act.ts';
import * as ops from '../../src/engine/ops/index.ts';
import { f16ToF32, f32ToF16 } from '../../src/engine/quant.ts';
import * as ref from '../../src/engine/ref/index.ts';
import { llama7bConfig, randomQuantLlama } from '../../bench/llama7b.ts';
import { randArray } from '../helpers/fd.ts';
import { testGpu } from '../helpers/gpu.ts';
import { EXPECTED, stories260K } from '../helpers/stories.ts';

const gpu = await testGpu();
const be = new GpuBackend(gpu);
const f16 = gpu.info.f16;
const required = process.env.D2G_REQUIRE_F16 === '1';

/** Each value rounded to f16 (to nearest, ties to even), as f32. */
const round16 = (a: ArrayLike<number>): Float32Array => Float32Array.from(a, (x) => f16ToF32(f32ToF16(x)));

/** A tensor of `type` holding `values` (rounded to f16 for f16). */
function put(values: Float32Array, type: ActType | 'u32', label: string, shape = [values.length]): Tensor {
  if (type === 'u32') return gpu.fromData(shape, Uint32Array.from(values), label);
  const t = be.empty(shape, label, type);
  be.write(t, values);
  return t;
}

/**
 * |got − want| within one f16 rounding of want (2^-10 relative: the nearest f16 of a value within
 * f32 error of want) plus `abs` (for sums that cancel).
 */
function near16(got: Float32Array, want: Float32Array, abs = 0): void {
  expect(got.length).toBe(want.length);
  let worst = 0,
    at = -1;
  for (let i = 0; i < want.length; i++) {
    const excess = Math.abs(got[i]! - want[i]!) - (2 ** -10 * Math.abs(want[i]!) + abs + 2 ** -24);
    if (excess > worst) [worst, at] = [excess, i];
  }
  expect(at === -1 ? 'ok' : `at ${at}: got ${got[at]}, want ${want[at]}`).toBe('ok');
}

/** max |got − want| ≤ rel · max |want|. */
function nearRel(got: Float32Array, want: Float32Array, rel: number): number {
  let d = 0,
    m = 0;
  for (let i = 0; i < want.length; i++) {
    d = Math.max(d, Math.abs(got[i]! - want[i]!));
    m = Math.max(m, Math.abs(want[i]!));
  }
  expect(d).toBeLessThanOrEqual(rel * m);
  return d / m;
}

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return e instanceof EngineError ? e.code : String(e);
  }
  return 'no error';
};

/** Rows of logits whose argmax agrees, of `V` each. */
function argmaxAgreement(a: Float32Array, b: Float32Array, V: number): number {
  let same = 0;
  const n = a.length / V;
  const arg = (x: Float32Array, r: number) => {
    let best = 0;
    for (let j = 1; j < V; j++) if (x[r * V + j]! > x[r * V + best]!) best = j;
    return best;
  };
  for (let r = 0; r < n; r++) if (arg(a, r) === arg(b, r)) same++;
  return same / n;
}

/**
 * Compiles `code` inside a validation error scope (a failed compile is also a device error, which
 * the Gpu would otherwise report at the next check): its error messages and the scope's error.
 */
async function compile(code: string): Promise<[GPUCompilationMessage[], GPUError | null]> {
  gpu.device.pushErrorScope('validation');
  const module = gpu.device.createShaderModule({ code });
  const messages = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error');
  return [messages, await gpu.device.popErrorScope()];
}

describe('the f16 builds convert every aliased load and store', () => {
  // Every device: each shader that takes f16 activations, built with i32 in place of its aliases.
  // WGSL mixes neither i32 nor f16 with f32 implicitly, so a load or store the kernel forgot to
  // convert fails this compile as it would the f16 build (which needs shader-f16 to compile).
  const files: [string, string, string[]][] = [
    ['rmsnorm', rmsnormWgsl, ['OUT_T']],
    ['rope', ropeWgsl, ['X_T']],
    ['swiglu', swigluWgsl, ['ACT_T']],
    ['residual', residualWgsl, ['Y_T']],
    ['split_cols', splitWgsl, ['DST_T', 'SRC_T']],
    ['attention_decode', attentionDecodeWgsl, ['ACT_T']],
    ['matmul', `${f16Wgsl}\n${matmulWgsl}\n${quantWgsl}`, ['IN_T', 'OUT_T']],
    ['matmul_gemv', `${f16Wgsl}\n${gemvWgsl}\n${quantWgsl}`, ['IN_T', 'OUT_T']],
  ];
  for (const [name, wgsl, aliases] of files)
    it(`${name}.wgsl with ${aliases.join(', ')} = i32 compiles; with f32 too`, async () => {
      for (const ty of ['i32', 'f32']) {
        const prefix = aliases.map((a) => `alias ${a} = ${ty};`).join('\n');
        const [errors] = await compile(`${prefix}\n${wgsl}`);
        expect(errors.map((e) => `${ty}: line ${e.lineNum - aliases.length}: ${e.message}`)).toEqual([]);
      }
    });
  it('a forgotten conversion fails that compile', async () => {
    const [errors, scoped] = await compile(
      `alias Y_T = i32;\n${residualWgsl.replace('a_x[i] += f32(a_y[i]);', 'a_x[i] += a_y[i];')}`,
    );
    expect(errors.length).toBeGreaterThan(0);
    expect(scoped).not.toBeNull(); // caught here, not left for the next test's error check
  });
});

describe.skipIf(f16)('without shader-f16: f16 activations are refused', () => {
  it('the adapter does not offer shader-f16 (else the group below runs)', () => {
    expect(required ? 'D2G_REQUIRE_F16=1 but the adapter lacks shader-f16' : 'ok').toBe('ok');
  });

  it('LlamaRunner with act f16 and each kernel given an f16 tensor: FEATURE_MISSING', () => {
    const { config, weights } = stories260K();
    const model = loadLlama(be, config, weights);
    expect(code(() => new LlamaRunner(model, { slots: 1, maxT: 8, act: 'f16' }))).toBe('FEATURE_MISSING');
    const h = be.empty([4, 8], 'h', 'f16');
    const x = put(randArray(Float32Array, 32, 1), 'f32', 'x', [4, 8]);
    const w = put(new Float32Array(8).fill(1), 'f32', 'w');
    const rstd = be.empty([4], 'rstd');
    const W = put(randArray(Float32Array, 64, 2), 'f32', 'W', [8, 8]);
    expect(code(() => ops.rmsnormForward(gpu, h, rstd, x, w, 4, 8, 1e-5))).toBe('FEATURE_MISSING');
    expect(code(() => ops.matmulForward(gpu, x, h, W, 4, 8, 8))).toBe('FEATURE_MISSING');
    expect(code(() => ops.addInplace(gpu, x, h, 32))).toBe('FEATURE_MISSING');
    expect(code(() => ops.swigluForward(gpu, h, h, h, 32))).toBe('FEATURE_MISSING');
    expect(code(() => ops.castInto(gpu, h, x, 32))).toBe('FEATURE_MISSING');
    // a type the activations never take, on any device
    expect(code(() => ops.castInto(gpu, be.empty([32], 'u', 'u32'), x, 32))).toBe('BAD_ARGUMENT');
    for (const t of [h, x, w, rstd, W]) be.destroy(t);
    destroyLlama(model);
  });
});

describe.skipIf(!f16 && !required)('f16 activations on a GPU with shader-f16', () => {
  it('the adapter offers shader-f16', () => {
    expect(f16).toBe(true);
  });

  it('castInto: f32 → f16 rounds each value to a nearest f16, f16 → f32 is exact', async () => {
    const n = 4099;
    const v = randArray(Float32Array, n, 11, -1, 1).map((x, i) => x * 10 ** ((i % 9) - 4));
    const a = put(v, 'f32', 'a');
    const h = be.empty([n], 'h', 'f16');
    const back = be.empty([n], 'back');
    ops.castInto(gpu, h, a, n);
    ops.castInto(gpu, back, h, n);
    const got = await be.read(h);
    near16(got, v);
    expect(await be.read(back)).toEqual(got);
    let exact = 0;
    const want = round16(v);
    for (let i = 0; i < n; i++) if (got[i] === want[i]) exact++;
    console.log(`castInto f32→f16: ${exact} of ${n} values are the round-to-nearest-even f16`);
    for (const t of [a, h, back]) be.destroy(t);
  });

  it('rmsnorm into f16, rope and swiglu on f16, the residual add of an f16 y: the CPU reference', async () => {
    const N = 5,
      C = 96,
      NH = 6,
      HS = 16;
    const xv = randArray(Float32Array, N * C, 21, -3, 3);
    const wv = randArray(Float32Array, C, 22, 0.5, 1.5);
    const x = put(xv, 'f32', 'x', [N, C]);
    const w = put(wv, 'f32', 'w');
    const rstd = be.empty([N], 'rstd');
    const h = be.empty([N, C], 'h', 'f16');
    ops.rmsnormForward(gpu, h, rstd, x, w, N, C, 1e-5);
    const hWant = new Float32Array(N * C);
    ref.rmsnormForward(hWant, new Float32Array(N), xv, wv, N, C, 1e-5);
    near16(await be.read(h), hWant);

    const qv = round16(randArray(Float32Array, N * C, 23, -2, 2));
    const pos = Float32Array.from({ length: N }, (_, i) => 3 + 7 * i);
    const q = put(qv, 'f16', 'q', [N, C]);
    const positions = put(pos, 'u32', 'pos');
    ops.ropeForwardInplace(gpu, q, positions, N, NH, HS, 10000);
    const qWant = qv.slice();
    ref.ropeForwardInplace(qWant, Uint32Array.from(pos), N, NH, HS, 10000);
    near16(await be.read(q), qWant, 1e-6);

    for (const n of [N * C, N * C - 1]) {
      const gv = round16(randArray(Float32Array, n, 24, -6, 6));
      const uv = round16(randArray(Float32Array, n, 25, -2, 2));
      const [g, u, s] = [put(gv, 'f16', 'g'), put(uv, 'f16', 'u'), be.empty([n], 's', 'f16')];
      ops.swigluForward(gpu, s, g, u, n);
      const sWant = new Float32Array(n);
      ref.swigluForward(sWant, gv, uv, n);
      near16(await be.read(s), sWant, 1e-6);
      for (const t of [g, u, s]) be.destroy(t);
    }

    for (const n of [N * C, N * C - 1]) {
      const av = randArray(Float32Array, n, 26, -5, 5);
      const yv = round16(randArray(Float32Array, n, 27, -5, 5));
      const [a, y] = [put(av, 'f32', 'a'), put(yv, 'f16', 'y')];
      ops.addInplace(gpu, a, y, n);
      const want = av.slice();
      ref.addInplace(want, yv, n);
      expect(await be.read(a)).toEqual(want); // an exact f16 → f32 load, then the same f32 add
      for (const t of [a, y]) be.destroy(t);
    }
    for (const t of [x, w, rstd, h, q, positions]) be.destroy(t);
  });

  it('the KV cache write and attention decode with f16 q, k, v and output: the f32 path on the same values', async () => {
    const R = 6,
      NH = 8,
      NKV = 2,
      HS = 64,
      maxT = 24,
      S = 3;
    const C = NH * HS,
      KVD = NKV * HS;
    const info = put(Float32Array.from([0, 0, 1, 5, 2, 11, 0, 1, 1, 6, 2, 12]), 'u32', 'info');
    const results: Record<ActType, Float32Array> = { f32: new Float32Array(), f16: new Float32Array() };
    const qv = round16(randArray(Float32Array, R * C, 31, -1, 1));
    const kv = round16(randArray(Float32Array, R * KVD, 32, -1, 1));
    const vv = round16(randArray(Float32Array, R * KVD, 33, -1, 1));
    for (const t of ['f32', 'f16'] as const) {
      const kc = gpu.fromData([S, maxT, KVD / 2], packKvF16(new Float32Array(S * maxT * KVD)), 'kc');
      const vc = gpu.fromData([S, maxT, KVD / 2], packKvF16(new Float32Array(S * maxT * KVD)), 'vc');
      const [q, k, v, out] = [put(qv, t, 'q'), put(kv, t, 'k'), put(vv, t, 'v'), be.empty([R, C], 'out', t)];
      ops.kvCacheWrite(gpu, kc, vc, k, v, info, R, NKV, HS, maxT);
      ops.attentionDecode(gpu, out, q, kc, vc, info, R, NH, NKV, HS, maxT);
      results[t] = await be.read(out);
      for (const x of [kc, vc, q, k, v, out]) be.destroy(x);
    }
    near16(results.f16, results.f32, 1e-6);
    be.destroy(info);
  });

  for (const dtype of ['f32', 'q4_0', 'q4f16_1'] as const) {
    it(`matmul, ${dtype} weights, gemv and tiled rows, f16 in and/or out, split weights: the f32 path on the same values`, async () => {
      const K = 256,
        N = 96;
      const Wv = randArray(Float32Array, N * K, 41, -1, 1);
      const W = be.weight(dtype, [N, K], Wv, 'W');
      const split = uploadWeightSplit(gpu, dtype, Wv, N, K, 'Wsplit', (byteSizeOf(dtype, K) * N) / 3);
      expect(split.parts?.length).toBeGreaterThan(1);
      for (const B of [1, 4, 16, 33]) {
        const xv = round16(randArray(Float32Array, B * K, 42 + B, -1, 1));
        const initv = round16(randArray(Float32Array, B * N, 43 + B, -1, 1));
        const run = (inT: ActType, outT: ActType, accumulate: boolean, weight = W) => {
          const x = put(xv, inT, 'x', [B, K]);
          const out = put(initv, outT, 'out', [B, N]);
          ops.matmulForward(gpu, out, x, weight, B, K, N, accumulate);
          return be.read(out).finally(() => [x, out].forEach((t) => be.destroy(t)));
        };
        for (const accumulate of [false, true]) {
          const want = await run('f32', 'f32', accumulate);
          // f16 inputs are exact in f32: the same sums; f16 outputs: those sums rounded once
          nearRel(await run('f16', 'f32', accumulate), want, 1e-6);
          near16(await run('f16', 'f16', accumulate), want, 1e-6);
          near16(await run('f32', 'f16', accumulate), want, 1e-6);
        }
        // a weight split across buffers: each part's columns stored into the f16 output
        near16(await run('f16', 'f16', false, split), await run('f32', 'f32', false), 1e-6);
      }
      be.destroy(W);
      be.destroy(split);
    });
  }

  const { config, weights, tokenizer } = stories260K();

  /** Logits of every row of `tokens` (one slot, prefill) with the runner's act and the model's adapter. */
  async function teacherForced(model: LlamaModel<Tensor>, tokens: number[], act: ActType, adapter = false) {
    const runner = new LlamaRunner(model, { slots: 1, maxT: tokens.length, kv: 'f16', act });
    let lora = null;
    if (adapter) {
      lora = createLora(be, config, { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'o', 'down'] }, 5);
      lora.layers.forEach((layer, l) => {
        for (const pair of Object.values(layer)) {
          const [n, r] = pair!.B.value.shape as [number, number];
          be.write(pair!.B.value, randArray(Float32Array, n * r, 100 + l, -0.3, 0.3));
        }
      });
      runner.setAdapter(lora);
    }
    const rows: Row[] = tokens.map((token, pos) => ({ slot: 0, pos, token }));
    const logits = await runner.forward(
      rows,
      rows.map((_, i) => i),
    );
    runner.destroy();
    if (lora) destroyLora(be, lora);
    return logits;
  }

  it('stories260K: f16 activations give the f32 logits within 2% and llama2.c greedy text', async () => {
    const model = loadLlama(be, config, weights);
    const f32Run = new LlamaRunner(model, { slots: 1, maxT: 200, kv: 'f16' });
    const ref32 = await generate(f32Run, tokenizer, [[tokenizer.bos]], {
      steps: 64,
      temperature: 0,
      topp: 0.9,
      seed: 1,
      stopTokens: [tokenizer.bos],
    });
    f32Run.destroy();
    const tokens = [tokenizer.bos, ...ref32.tokens[0]!];
    const V = config.vocabSize;
    for (const adapter of [false, true]) {
      const a = await teacherForced(model, tokens, 'f32', adapter);
      const b = await teacherForced(model, tokens, 'f16', adapter);
      const rel = nearRel(b, a, 0.02);
      const agree = argmaxAgreement(a, b, V);
      console.log(
        `stories260K${adapter ? ' + LoRA' : ''}: max |Δlogit| ${rel.toExponential(2)} of max |logit|; argmax agrees at ${(100 * agree).toFixed(1)}% of ${tokens.length} positions`,
      );
      expect(agree).toBeGreaterThanOrEqual(0.95);
    }
    const runner = new LlamaRunner(model, { slots: 1, maxT: 200, act: 'f16' });
    expect(runner.kv).toBe('f16');
    const res = await generate(runner, tokenizer, [[tokenizer.bos]], {
      steps: 200,
      temperature: 0,
      topp: 0.9,
      seed: 42,
      stopTokens: [tokenizer.bos],
    });
    runner.destroy();
    const text = res.texts[0]!;
    let same = 0;
    while (same < text.length && text[same] === EXPECTED.greedy_200[same]) same++;
    console.log(
      `stories260K greedy with f16 activations: the first ${same} of ${EXPECTED.greedy_200.length} characters are llama2.c's`,
    );
    expect(same).toBeGreaterThanOrEqual(40);
    destroyLlama(model);
  });

  it("LLaMA-7b's layer shapes (q4_0, 1 layer): decode at m = 16 with f16 activations gives the f32 logits within 2%", async () => {
    const c: LlamaConfig = { ...llama7bConfig(1), vocabSize: 512, maxSeqLen: 64 };
    expect(c.dim).toBe(LLAMA_7B.dim);
    const model = randomQuantLlama(be, c, 'q4_0');
    const m = 16,
      V = c.vocabSize;
    const runOf = async (act: ActType) => {
      const runner = new LlamaRunner(model, { slots: m, maxT: 8, kv: 'f16', act });
      const out: Float32Array[] = [];
      for (let pos = 0; pos < 4; pos++) {
        const rows = Array.from({ length: m }, (_, slot) => ({
          slot,
          pos,
          token: (slot * 31 + pos * 7) % V,
        }));
        out.push(
          await runner.forward(
            rows,
            rows.map((_, i) => i),
          ),
        );
      }
      runner.destroy();
      return Float32Array.from(out.flatMap((x) => [...x]));
    };
    const a = await runOf('f32');
    const b = await runOf('f16');
    const rel = nearRel(b, a, 0.02);
    const agree = argmaxAgreement(a, b, V);
    console.log(
      `7B shapes: max |Δlogit| ${rel.toExponential(2)} of max |logit|; argmax agrees on ${(100 * agree).toFixed(1)}% of ${a.length / V} rows`,
    );
    expect(agree).toBeGreaterThanOrEqual(0.9);
    destroyLlama(model);
  });
});

/** Bytes of one weight row of K values. */
function byteSizeOf(dtype: 'f32' | 'q4_0' | 'q4f16_1', K: number): number {
  return dtype === 'f32' ? 4 * K : (K / 32) * 18;
}
