// The whole model against PyTorch: a tiny LLaMA with GQA and LoRA on q and v — logits, loss,
// every LoRA gradient, and 5 clipped AdamW steps — on the CPU reference and on the GPU.
import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../../src/engine/backend/types.ts';
import { Tape } from '../../src/engine/autograd/tape.ts';
import * as ad from '../../src/engine/autograd/ops.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { loadLora } from '../../src/engine/model/lora.ts';
import { llamaForward, loraHook } from '../../src/engine/train/forward.ts';
import { LoraTrainer, countLossTokens, packBatch } from '../../src/engine/train/trainer.ts';
import { checkOp } from '../helpers/checkop.ts';
import { fixtureExamples, loadTinyFixture } from '../helpers/fixture.ts';
import { testGpu } from '../helpers/gpu.ts';
import { TOL } from '../helpers/tolerances.ts';

const f = loadTinyFixture();

async function run<T extends BackendTensor>(be: Backend<T>) {
  const model = loadLlama(be, f.config, f.weights);
  const adapter = loadLora(be, f.config, f.lora);
  const ex = fixtureExamples(f);
  const p = packBatch(ex, 10, countLossTokens(ex));
  const tape = new Tape(be);
  const batch = {
    B: p.B,
    T: p.T,
    tokens: be.fromData([20], p.tokens, 'tokens'),
    targets: be.fromData([20], p.targets, 'targets'),
    weights: be.fromData([20], p.weights, 'weights'),
    positions: be.fromData([20], p.positions, 'positions'),
  };
  const logits = llamaForward(tape, model, batch, loraHook(tape, adapter, 0, true));
  const losses = ad.crossentropy(tape, logits, batch.targets, batch.weights);
  tape.backward();
  const logitsOut = await be.read(logits.t);
  const l = await be.read(losses);
  let loss = 0;
  for (let i = 0; i < l.length; i++) loss += l[i]! * p.weights[i]!;
  const grads: Record<string, Float32Array> = {};
  for (const prm of adapter.params) grads[prm.name] = await be.read(prm.grad);
  tape.release();
  for (const prm of adapter.params) be.zero(prm.grad);

  const a = f.adamw;
  const trainer = new LoraTrainer(model, adapter, {
    lr: a.lr,
    beta1: a.beta1,
    beta2: a.beta2,
    eps: a.eps,
    weightDecay: a.weight_decay,
    maxGradNorm: a.max_grad_norm,
  });
  const stepLosses: number[] = [];
  const norms: number[] = [];
  for (let s = 0; s < a.steps; s++) {
    const r = await trainer.step(ex);
    stepLosses.push(r.loss);
    norms.push(r.gradNorm);
  }
  const final: Record<string, Float32Array> = {};
  for (const prm of adapter.params) final[prm.name] = await be.read(prm.value);
  return { logits: logitsOut, loss, grads, stepLosses, norms, final };
}

for (const kind of ['cpu', 'gpu'] as const) {
  describe(`tiny LLaMA + LoRA vs PyTorch (${kind})`, () => {
    it('logits, loss, every LoRA gradient, 5 AdamW steps', async () => {
      const be = kind === 'cpu' ? new CpuBackend() : new GpuBackend(await testGpu());
      const r = await run(be as unknown as Backend<BackendTensor>);
      const tol = TOL.model_fixture!;
      checkOp(`${kind}:logits`, r.logits, f.logits, tol);
      checkOp(`${kind}:loss`, [r.loss], [f.loss], tol);
      expect(Object.keys(r.grads).sort()).toEqual(Object.keys(f.loraGrads).sort());
      for (const [name, g] of Object.entries(f.loraGrads))
        checkOp(`${kind}:grad ${name}`, r.grads[name]!, g, tol);
      checkOp(`${kind}:adamw losses`, r.stepLosses, f.adamwLosses, tol);
      checkOp(`${kind}:grad norms`, r.norms, f.adamwGradNorms, tol);
      for (const [name, v] of Object.entries(f.loraFinal))
        checkOp(`${kind}:final ${name}`, r.final[name]!, v, tol);
    });
  });
}
