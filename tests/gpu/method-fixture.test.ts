// The method's losses against PyTorch (tools/make_method_fixtures.py) on the tiny LLaMA of
// tiny_llama_lora.json: NAT (integration unit + both LoRAs), NCE and the ranker — forward values
// and every gradient, on the CPU reference and on the GPU.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { Tape } from '../../src/engine/autograd/tape.ts';
import * as ad from '../../src/engine/autograd/ops.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { loadLora, type LoraState } from '../../src/engine/model/lora.ts';
import { loadNatUnit } from '../../src/engine/model/nat.ts';
import { loadRankerHead } from '../../src/engine/model/ranker.ts';
import { natInference } from '../../src/engine/infer/adapters.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { llamaForward, loraHook } from '../../src/engine/train/forward.ts';
import { natHook, type NatAlphas } from '../../src/engine/train/nat.ts';
import { nceObjective, rankerObjective } from '../../src/engine/train/objectives.ts';
import {
  countLossTokens,
  likelihoodObjective,
  packBatch,
  uploadBatch,
} from '../../src/engine/train/trainer.ts';
import { fullParams } from '../../src/engine/model/full.ts';
import { loadRanker } from '../../src/method/eval.ts';
import { checkOp } from '../helpers/checkop.ts';
import { decode, fixtureExamples, loadTinyFixture, type Blob } from '../helpers/fixture.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TOL } from '../helpers/tolerances.ts';

const f = loadTinyFixture();
const j = JSON.parse(readFileSync('tests/fixtures/method_fixtures.json', 'utf8'));
const f32s = (o: Record<string, Blob>) =>
  Object.fromEntries(
    Object.entries(o).map(([k, b]) => [k, { shape: b.shape, data: decode(b) as Float32Array }]),
  );
const f64 = (b: Blob) => decode(b) as Float64Array;
const loraState = (tensors: Record<string, Blob>): LoraState => ({ ...f.lora, tensors: f32s(tensors) });
const examples = fixtureExamples(f);
const tol = TOL.model_fixture!;

async function grads<T extends BackendTensor>(
  be: Backend<T>,
  params: { name: string; grad: T }[],
  prefix = '',
) {
  const out: Record<string, Float32Array> = {};
  for (const p of params) out[prefix + p.name] = await be.read(p.grad);
  return out;
}

function expectGrads(tag: string, got: Record<string, Float32Array>, want: Record<string, Blob>) {
  expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
  for (const [name, b] of Object.entries(want)) checkOp(`${tag}:grad ${name}`, got[name]!, f64(b), tol);
}

async function backend(kind: 'cpu' | 'gpu'): Promise<Backend<BackendTensor>> {
  const be = kind === 'cpu' ? new CpuBackend() : new GpuBackend(await testGpu());
  return be as unknown as Backend<BackendTensor>;
}

for (const kind of ['cpu', 'gpu'] as const) {
  describe(`method losses vs PyTorch (${kind})`, () => {
    it('NAT: logits, loss, α per site, gradients of LoRA_pos and the integration unit', async () => {
      const be = await backend(kind);
      const model = loadLlama(be, f.config, f.weights);
      const pos = loadLora(be, f.config, f.lora);
      const neg = loadLora(be, f.config, loraState(j.neg_lora));
      const unit = loadNatUnit(be, f.config, {
        config: { du: j.du, targets: ['q', 'v'] },
        model: { dim: f.config.dim, hiddenDim: f.config.hiddenDim, nLayers: f.config.nLayers },
        tensors: f32s(j.unit),
      });
      const p = packBatch(examples, 10, countLossTokens(examples));
      const tape = new Tape(be);
      const batch = uploadBatch(tape, p);
      const alphas: NatAlphas<BackendTensor>[] = [];
      const hook = natHook(tape, pos, neg, unit, { trainable: true, training: true, seed: 0 }, alphas);
      const logits = llamaForward(tape, model, batch, hook);
      const losses = ad.crossentropy(tape, logits, batch.targets, batch.weights);
      tape.backward();
      checkOp(`${kind}:nat logits`, await be.read(logits.t), f64(j.nat.logits), tol);
      const l = await be.read(losses);
      checkOp(`${kind}:nat loss`, [l.reduce((a, x, i) => a + x * p.weights[i]!, 0)], f64(j.nat.loss), tol);
      expect(alphas.map((a) => `layers.${a.layer}.${a.site === 'wq' ? 'q' : 'v'}`).sort()).toEqual(
        Object.keys(j.nat.alphas).sort(),
      );
      for (const a of alphas) {
        const key = `layers.${a.layer}.${a.site === 'wq' ? 'q' : 'v'}`;
        checkOp(`${kind}:nat alpha ${key}`, await be.read(a.alpha), f64(j.nat.alphas[key]), tol);
      }
      const got = { ...(await grads(be, pos.params, 'pos.')), ...(await grads(be, unit.params, 'unit.')) };
      expectGrads(`${kind}:nat`, got, j.nat.grads);
      // LoRA_neg is frozen: no gradient reached it
      for (const prm of neg.params) expect((await be.read(prm.grad)).every((x) => x === 0)).toBe(true);
      tape.release();
      // the KV-cache runner with the NAT inference adapter gives the same logits, row by row
      const runner = new LlamaRunner(model, { slots: 2, maxT: 10 });
      const nat = natInference(model, pos, neg, unit, runner.maxRows);
      runner.setAdapter(nat);
      const rows = f.tokens.flatMap((seq, slot) => seq.map((token, pos) => ({ slot, pos, token })));
      const logitsRun = await runner.forward(
        rows,
        rows.map((_, i) => i),
      );
      checkOp(`${kind}:nat runner logits`, logitsRun, f64(j.nat.logits), TOL.model_logits!);
      runner.destroy();
      nat.destroy();
    });

    it('NCE: β per sequence, loss, gradients of the student LoRA', async () => {
      const be = await backend(kind);
      const model = loadLlama(be, f.config, f.weights);
      const pos = loadLora(be, f.config, f.lora);
      const neg = loadLora(be, f.config, loraState(j.neg_lora));
      const unit = loadNatUnit(be, f.config, {
        config: { du: j.du, targets: ['q', 'v'] },
        model: { dim: f.config.dim, hiddenDim: f.config.hiddenDim, nLayers: f.config.nLayers },
        tensors: f32s(j.unit),
      });
      const student = loadLora(be, f.config, loraState(j.student_lora));
      const obj = nceObjective(model, {
        teacher: (tape) => natHook(tape, pos, neg, unit, { trainable: false, training: false, seed: 0 }),
        negative: (tape) => loraHook(tape, neg, 0, false, true),
        student: (tape, seed, training) => loraHook(tape, student, seed, training),
      });
      const tape = new Tape(be);
      const r = await obj.run(tape, examples, { norm: obj.prepare(examples), seed: 0, training: true });
      tape.backward();
      tape.release();
      checkOp(`${kind}:nce beta`, r.metrics!['beta'] as number[], f64(j.nce.beta), tol);
      checkOp(`${kind}:nce loss`, [r.loss], f64(j.nce.loss), tol);
      expectGrads(`${kind}:nce`, await grads(be, student.params), j.nce.grads);
      for (const prm of [...pos.params, ...neg.params, ...unit.params])
        expect((await be.read(prm.grad)).every((x) => x === 0)).toBe(true);
    });

    it('full fine-tuning: loss and the gradient of every base weight', async () => {
      const be = await backend(kind);
      const model = loadLlama(be, f.config, f.weights);
      const full = fullParams(model);
      const obj = likelihoodObjective(model, () => null, full.trainable);
      const tape = new Tape(be);
      const r = await obj.run(tape, examples, { norm: obj.prepare(examples), seed: 0, training: true });
      tape.backward();
      tape.release();
      checkOp(`${kind}:full loss`, [r.loss], f64(j.full.loss), tol);
      const ours = (name: string) =>
        name
          .replace('tok_embeddings', 'tokenEmbedding')
          .replace('attention_norm', 'rmsAtt')
          .replace('ffn_norm', 'rmsFfn')
          .replace(/^norm$/, 'rmsFinal')
          .replace(/^output$/, 'wcls');
      const got = await grads(be, full.params);
      expect(Object.keys(got).sort()).toEqual(Object.keys(j.full.grads).map(ours).sort());
      for (const [name, b] of Object.entries(j.full.grads as Record<string, Blob>))
        checkOp(`${kind}:full grad ${name}`, got[ours(name)]!, decode(b), tol);
      full.destroy();
    });

    it('ranker: loss and gradients of the rank LoRA and the head', async () => {
      const be = await backend(kind);
      const model = loadLlama(be, f.config, f.weights);
      const rank = loadLora(be, f.config, loraState(j.rank_lora));
      const head = loadRankerHead(be, { dim: f.config.dim, tensors: f32s(j.head) });
      const obj = rankerObjective(model, head, (tape, seed, training) =>
        loraHook(tape, rank, seed, training),
      );
      // the fixture's rationale mask is the inputs t ≥ 4: the examples' lossMask marks exactly those
      const pairs = [{ pos: examples[0]!, neg: examples[1]! }];
      for (const [b, row] of (j.rank_mask as number[][]).entries())
        row.forEach((m, t) => expect(examples[b]!.lossMask[t]).toBe(m));
      const tape = new Tape(be);
      const r = await obj.run(tape, pairs, { norm: obj.prepare(pairs), seed: 0, training: true });
      tape.backward();
      tape.release();
      checkOp(`${kind}:rank loss`, [r.loss], f64(j.rank.loss), tol);
      expect(r.metrics).toEqual({ pairs_right: 1, pairs: 1 }); // s⁺ 0.82 > s⁻ 0.51
      const got = { ...(await grads(be, rank.params, 'lora.')), ...(await grads(be, head.params, 'head.')) };
      expectGrads(`${kind}:rank`, got, j.rank.grads);
      // scoring (inference) gives the fixture's scores
      const ranker = loadRanker(
        model,
        { encode: () => [], bos: 1, eos: 2, vocabSize: f.config.vocabSize },
        {
          rank: loraState(j.rank_lora),
          head: { dim: f.config.dim, tensors: f32s(j.head) },
        },
      );
      checkOp(`${kind}:rank scores`, await ranker.scoreExamples(examples), f64(j.rank.scores), tol);
      ranker.destroy();
    });
  });
}
