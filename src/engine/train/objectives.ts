/**
 * The method's training objectives beyond plain likelihood (METHOD.md §2–4), each an `Objective`
 * for `Trainer`: NCE distillation, the ranker's pairwise loss, and the baselines NT, UL and CL.
 * Every loss is a mean over the loss tokens of the whole step (all micro-batches), like CE.
 */
import type { BackendTensor } from '../backend/types.ts';
import * as ad from '../autograd/ops.ts';
import type { Tape, Var } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import type { LlamaModel } from '../model/llama.ts';
import type { RankerHead } from '../model/ranker.ts';
import {
  llamaForward,
  llamaHidden,
  type BatchTensors,
  type ForwardOptions,
  type SiteHook,
  type TrainableWeights,
} from './forward.ts';
import {
  countLossTokens,
  packBatch,
  sequenceLength,
  uploadBatch,
  type Example,
  type Objective,
  type ObjectiveContext,
} from './trainer.ts';

/** Builds a hook for one forward on a tape (seed: dropout; training: dropout on). */
export type HookFactory<T extends BackendTensor> = (
  tape: Tape<T>,
  seed: number,
  training: boolean,
) => SiteHook<T> | null;

/** The forward's options for a micro-batch (the trainer's recompute setting). */
function forwardOptions(ctx: ObjectiveContext): ForwardOptions {
  return { recompute: ctx.recompute ?? false };
}

/** Σ_j l[j] · w[j] over the j with a weight (a masked position's loss is never read). */
function dot(l: ArrayLike<number>, w: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < l.length; j++) if (w[j]) s += l[j]! * w[j]!;
  return s;
}

/** Σ_j losses[j] · weights[j] on the host (the loss value of a micro-batch). */
async function weighted<T extends BackendTensor>(
  model: LlamaModel<T>,
  losses: T,
  weights: ArrayLike<number> | T,
): Promise<number> {
  const l = await model.be.read(losses);
  const w =
    ArrayBuffer.isView(weights) || Array.isArray(weights)
      ? (weights as ArrayLike<number>)
      : await model.be.read(weights as T);
  return dot(l, w);
}

function likelihoodPrepare<T extends BackendTensor>(model: LlamaModel<T>) {
  return (examples: readonly Example[]) => {
    const total = countLossTokens(examples);
    if (total === 0) throw new EngineError('BAD_ARGUMENT', 'this batch has no tokens that carry loss');
    sequenceLength(examples, model.config.maxSeqLen);
    return { tokens: total };
  };
}

/** 1 where a row carries loss, else 0 (from packed weights). */
function lossMask(weights: Float32Array): Float32Array {
  return weights.map((w) => (w !== 0 ? 1 : 0));
}

/**
 * NCE (METHOD.md §2): the student S learns from the frozen NAT model T with per-sequence weight
 * β = tanh(mean_t KL(p_N‖p_T)) from the frozen negative model N:
 *   L = 0.5 · CE(S) + 0.5 · mean_t [ −Σ_v p_T log p_S · (0.5 + β) ]
 * Logs come from log-softmax (no 1e-7). Metrics: `beta` (one value per sequence).
 */
export function nceObjective<T extends BackendTensor>(
  model: LlamaModel<T>,
  hooks: NceHooks<T>,
): Objective<T, Example> {
  return {
    prepare: likelihoodPrepare(model),
    async run(tape, chunk, ctx) {
      const p = packBatch(chunk, sequenceLength(chunk, model.config.maxSeqLen), ctx.norm.tokens);
      const s = nceStep(tape, model, p, hooks, ctx);
      // one round trip for the step's figures: CE, KD and their weights, β
      const [lce, lkd, wkd, b] = await model.be.readMany([s.ce, s.kd, s.kdWeights, s.beta]);
      const loss = dot(lce!, s.ceWeights) + dot(lkd!, wkd!);
      return { loss, metrics: { beta: [...b!] } };
    },
  };
}

export interface NceHooks<T extends BackendTensor> {
  teacher: HookFactory<T>;
  negative: HookFactory<T>;
  student: HookFactory<T>;
}

/**
 * NCE's micro-batch on the tape (no readback): the three forwards, the KL, β, and the losses with
 * the student's logit gradient. The memory planner traces this same code (plan/meter.ts).
 */
export function nceStep<T extends BackendTensor>(
  tape: Tape<T>,
  model: LlamaModel<T>,
  p: ReturnType<typeof packBatch>,
  hooks: NceHooks<T>,
  ctx: ObjectiveContext,
  trainable: TrainableWeights<T> | null = null,
): { ce: T; kd: T; kdWeights: T; beta: T; ceWeights: Float32Array } {
  const { ops } = model.be;
  const V = model.config.vocabSize;
  const batch = uploadBatch(tape, p);
  const N = p.B * p.T;
  const fo = forwardOptions(ctx);
  // the frozen teacher and negative model need no backward: each runs on its own sub-tape (layer
  // by layer under recompute) and only its logits outlive it
  const frozen = (hook: HookFactory<T>): Var<T> => {
    const sub = tape.sub(false);
    try {
      const z = llamaForward(sub, model, batch, hook(sub, 0, false), null, fo);
      if (!sub.handOver(z.t, tape)) throw new Error('the logits of a frozen forward are its own tensor');
      return z;
    } finally {
      sub.release();
    }
  };
  const zT = frozen(hooks.teacher);
  const zN = frozen(hooks.negative);
  const zS = llamaForward(tape, model, batch, hooks.student(tape, ctx.seed, ctx.training), trainable, fo);
  const kl = tape.alloc([N], 'nce.kl');
  ops.klForward(kl, zN.t, zT.t, N, V);
  const mask = tape.alloc([N], 'nce.mask');
  model.be.write(mask, lossMask(p.weights));
  const beta = tape.alloc([p.B], 'nce.beta');
  const kdWeights = tape.alloc([N], 'nce.kd_weights');
  ops.nceWeightsForward(beta, kdWeights, kl, mask, p.B, p.T, 0.5 / ctx.norm.tokens);
  const ceWeights = p.weights.map((w) => 0.5 * w);
  const ceW = tape.alloc([N], 'nce.ce_weights');
  model.be.write(ceW, ceWeights);
  const ce = tape.alloc([N], 'nce.ce');
  const kd = tape.alloc([N], 'nce.kd');
  const dz = zS.requiresGrad && ctx.training ? tape.grad(zS).grad : null;
  ops.crossentropyForwardBackward(ce, dz, zS.t, batch.targets, ceW, N, V);
  ops.softCrossentropyForwardBackward(kd, dz, zT.t, zS.t, kdWeights, N, V, true);
  return { ce, kd, kdWeights, beta, ceWeights };
}

/** A sequence of a contrastive baseline: positive (teacher got it right) or negative. */
export interface SignedExample extends Example {
  negative: boolean;
}

/**
 * NT and UL (METHOD.md §4) on a step that mixes positive and negative sequences:
 *   NT: L = mean_pos CE − γ · mean_neg CE          (γ = 0.05)
 *   UL: L = mean_pos CE + γ · mean_neg [−log(1 − p(r_t))]
 * Each mean is over that side's loss tokens in the step. A step without positives is refused.
 */
export function negativeObjective<T extends BackendTensor>(
  model: LlamaModel<T>,
  hook: HookFactory<T>,
  kind: 'nt' | 'ul',
  gamma = 0.05,
): Objective<T, SignedExample> {
  const V = model.config.vocabSize;
  return {
    prepare(examples) {
      const pos = countLossTokens(examples.filter((e) => !e.negative));
      if (pos === 0) throw new EngineError('BAD_ARGUMENT', 'this batch has no positive rationale tokens');
      sequenceLength(examples, model.config.maxSeqLen);
      return { tokens: pos, neg: countLossTokens(examples.filter((e) => e.negative)) };
    },
    async run(tape, chunk, ctx) {
      const posTokens = ctx.norm.tokens;
      const negTokens = ctx.norm['neg']!;
      const p = packBatch(chunk, sequenceLength(chunk, model.config.maxSeqLen), 1);
      const N = p.B * p.T;
      const ceW = new Float32Array(N);
      const negW = new Float32Array(N);
      chunk.forEach((ex, b) => {
        for (let t = 0; t < p.T; t++) {
          const m = p.weights[b * p.T + t]!;
          if (!ex.negative) ceW[b * p.T + t] = m / posTokens;
          else if (negTokens > 0) negW[b * p.T + t] = (gamma * m) / negTokens;
        }
      });
      if (kind === 'nt') for (let j = 0; j < N; j++) if (negW[j]) ceW[j] = -negW[j]!;
      p.weights.set(ceW);
      const batch = uploadBatch(tape, p);
      const z = llamaForward(
        tape,
        model,
        batch,
        hook(tape, ctx.seed, ctx.training),
        null,
        forwardOptions(ctx),
      );
      const dz = z.requiresGrad && ctx.training ? tape.grad(z).grad : null;
      const ce = tape.alloc([N], 'ce');
      model.be.ops.crossentropyForwardBackward(ce, dz, z.t, batch.targets, batch.weights, N, V);
      let loss = await weighted(model, ce, ceW);
      if (kind === 'ul') {
        const w = tape.alloc([N], 'ul.weights');
        model.be.write(w, negW);
        const ul = tape.alloc([N], 'ul');
        model.be.ops.unlikelihoodForwardBackward(ul, dz, z.t, batch.targets, w, N, V, true);
        loss += await weighted(model, ul, negW);
      }
      return { loss };
    },
  };
}

/** A positive and a negative rationale of the same question (ranker, CL). */
export interface PairExample {
  pos: Example;
  neg: Example;
}

function pairPrepare<T extends BackendTensor>(model: LlamaModel<T>) {
  return (pairs: readonly PairExample[]) => {
    if (pairs.length === 0)
      throw new EngineError('BAD_ARGUMENT', 'no (positive, negative) pairs in this batch');
    sequenceLength(
      pairs.flatMap((q) => [q.pos, q.neg]),
      model.config.maxSeqLen,
    );
    return { tokens: pairs.length };
  };
}

/** Pads the shorter side so both batches share T. */
function packSide(side: readonly Example[], T: number) {
  return packBatch(side, T, Math.max(1, countLossTokens(side)));
}

/** The mask of rationale tokens among the inputs: lossMask[t] for t < T. */
export function rationaleMask(side: readonly Example[], T: number): Float32Array {
  const m = new Float32Array(side.length * T);
  side.forEach((ex, b) => {
    for (let t = 0; t < T && t < ex.tokens.length; t++) m[b * T + t] = ex.lossMask[t] ?? 0;
  });
  return m;
}

/**
 * The ranker's head on the tape: z (P, 1) for P sequences from their final hidden states, mean-
 * pooled over rationale tokens (the inputs whose lossMask is 1; EOS is never an input).
 */
export function rankerLogits<T extends BackendTensor>(
  tape: Tape<T>,
  model: LlamaModel<T>,
  batch: BatchTensors<T>,
  mask: T,
  head: RankerHead<T>,
  hook: SiteHook<T> | null,
  trainHead: boolean,
  opts: ForwardOptions = {},
): Var<T> {
  const P = batch.B;
  const k = (p: RankerHead<T>['w1']) => (trainHead ? tape.param(p) : tape.constant(p.value));
  const hid = llamaHidden(tape, model, batch, hook, null, opts);
  const h = ad.meanpool(tape, hid, mask, P, batch.T);
  const h1 = ad.add(
    tape,
    ad.elu(tape, ad.bias(tape, ad.linear(tape, h, k(head.w1), null, 'rank.w1'), k(head.b1))),
    h,
  );
  const h2 = ad.add(
    tape,
    ad.elu(tape, ad.bias(tape, ad.linear(tape, h1, k(head.w2), null, 'rank.w2'), k(head.b2))),
    h1,
  );
  return ad.bias(tape, ad.linear(tape, h2, k(head.w), null, 'rank.w'), k(head.b));
}

/**
 * The ranker (METHOD.md §3): per pair L = (1 − σ(z⁺))³ + σ(z⁻)³, mean over the step's pairs.
 * Metrics: `pairs_right` (count of s⁺ > s⁻), `pairs` (count).
 */
export function rankerObjective<T extends BackendTensor>(
  model: LlamaModel<T>,
  head: RankerHead<T>,
  hook: HookFactory<T>,
): Objective<T, PairExample> {
  return {
    prepare: pairPrepare(model),
    async run(tape, chunk, ctx) {
      const T = sequenceLength(
        chunk.flatMap((q) => [q.pos, q.neg]),
        model.config.maxSeqLen,
      );
      const P = chunk.length;
      const side = (exs: Example[], seed: number) => {
        const b = uploadBatch(tape, packSide(exs, T));
        const mask = tape.alloc([P * T], 'rank.mask');
        model.be.write(mask, rationaleMask(exs, T));
        return rankerLogits(
          tape,
          model,
          b,
          mask,
          head,
          hook(tape, seed, ctx.training),
          ctx.training,
          forwardOptions(ctx),
        );
      };
      const zp = side(
        chunk.map((q) => q.pos),
        ctx.seed,
      );
      const zn = side(
        chunk.map((q) => q.neg),
        ctx.seed + 0x3c6ef372,
      );
      const losses = tape.alloc([P], 'rank.loss');
      const grads = ctx.training && zp.requiresGrad;
      model.be.ops.ranklossForwardBackward(
        losses,
        grads ? tape.grad(zp).grad : null,
        grads ? tape.grad(zn).grad : null,
        zp.t,
        zn.t,
        P,
        1 / ctx.norm.tokens,
      );
      const [l, sp, sn] = (await model.be.readMany([losses, zp.t, zn.t])) as [
        Float32Array,
        Float32Array,
        Float32Array,
      ];
      let right = 0;
      for (let i = 0; i < P; i++) if (sp[i]! > sn[i]!) right++;
      return {
        loss: l.reduce((a, b) => a + b, 0) / ctx.norm.tokens,
        metrics: { pairs_right: right, pairs: P },
      };
    },
  };
}

/**
 * CL (METHOD.md §4, our reading): MLE on the positive plus a margin between the length-normalised
 * log-likelihoods of the pair, max(0, m − (ℓ⁺ − ℓ⁻)), m = 1. The margin's gradient goes back as
 * per-token CE weights (±1/len when the margin is active), after a forward pass to find which
 * pairs are active. Loss = mean over pairs of [CE⁺ (token mean over the step's positives) + margin].
 */
export function contrastiveObjective<T extends BackendTensor>(
  model: LlamaModel<T>,
  hook: HookFactory<T>,
  margin = 1,
): Objective<T, PairExample> {
  const V = model.config.vocabSize;
  return {
    prepare(pairs) {
      pairPrepare(model)(pairs);
      return { tokens: countLossTokens(pairs.map((q) => q.pos)), pairs: pairs.length };
    },
    async run(tape, chunk, ctx) {
      const posTokens = ctx.norm.tokens;
      const nPairs = ctx.norm['pairs']!;
      const all = [...chunk.map((q) => q.pos), ...chunk.map((q) => q.neg)];
      const T = sequenceLength(all, model.config.maxSeqLen);
      const p = packBatch(all, T, 1);
      const N = p.B * p.T;
      const P = chunk.length;
      const batch = uploadBatch(tape, p);
      // the hook is built once: both passes see the same dropout masks
      const hooks = hook(tape, ctx.seed, ctx.training);
      const z = llamaForward(tape, model, batch, hooks, null, forwardOptions(ctx));
      const ce = tape.alloc([N], 'cl.ce');
      model.be.ops.crossentropyForwardBackward(ce, null, z.t, batch.targets, batch.weights, N, V);
      const nll = await model.be.read(ce);
      const len = (b: number) => {
        let n = 0;
        for (let t = 0; t < T; t++) n += p.weights[b * T + t]! !== 0 ? 1 : 0;
        return Math.max(1, n);
      };
      const ll = (b: number) => {
        let s = 0;
        for (let t = 0; t < T; t++) if (p.weights[b * T + t]! !== 0) s -= nll[b * T + t]!;
        return s / len(b);
      };
      const w = new Float32Array(N);
      let loss = 0;
      for (let i = 0; i < P; i++) {
        const gap = margin - (ll(i) - ll(P + i));
        if (gap > 0) loss += gap / nPairs;
        for (let t = 0; t < T; t++) {
          const j = i * T + t,
            jn = (P + i) * T + t;
          if (p.weights[j]! !== 0) w[j] = 1 / posTokens + (gap > 0 ? 1 / (nPairs * len(i)) : 0);
          // d(margin)/d(ℓ⁻) = +1 → d/d(nll⁻) = −1/len: a negative CE weight pushes the negative down
          if (p.weights[jn]! !== 0 && gap > 0) w[jn] = -1 / (nPairs * len(P + i));
        }
      }
      for (let i = 0; i < P; i++)
        for (let t = 0; t < T; t++) if (p.weights[i * T + t]! !== 0) loss += nll[i * T + t]! / posTokens;
      if (ctx.training && z.requiresGrad) {
        const wt = tape.alloc([N], 'cl.weights');
        model.be.write(wt, w);
        const ce2 = tape.alloc([N], 'cl.ce2');
        model.be.ops.crossentropyForwardBackward(ce2, tape.grad(z).grad, z.t, batch.targets, wt, N, V);
      }
      return { loss };
    },
  };
}
