/**
 * Differentiable ops on the tape: each runs the forward kernel now and records its backward.
 * Shapes: rows N = B·T tokens; features last.
 */
import type { BackendTensor } from '../backend/types.ts';
import { EngineError } from '../errors.ts';
import { Tape, Var } from './tape.ts';

/** out (N,C) = wte[tokens]. The embedding is frozen here (LoRA never targets it). */
export function embedding<T extends BackendTensor>(tape: Tape<T>, tokens: T, wte: Var<T>, N: number): Var<T> {
  const C = wte.shape[1]!;
  const out = tape.output([N, C], 'emb', [wte]);
  tape.be.ops.embeddingForward(out.t, tokens, wte.t, N, C);
  tape.record('embedding', [out], () => {
    if (wte.requiresGrad) {
      tape.be.ops.embeddingBackward(tape.grad(wte).grad, out.grad!, tokens, N, C, wte.shape[0]!);
    }
  });
  return out;
}

export function rmsnorm<T extends BackendTensor>(tape: Tape<T>, x: Var<T>, w: Var<T>, eps: number): Var<T> {
  const [N, C] = x.shape as [number, number];
  const out = tape.output([N, C], 'rmsnorm', [x, w]);
  const rstd = tape.alloc([N], 'rstd');
  tape.be.ops.rmsnormForward(out.t, rstd, x.t, w.t, N, C, eps);
  tape.record('rmsnorm', [out], () => {
    const dw = w.requiresGrad ? tape.grad(w).grad : null;
    if (x.requiresGrad) {
      const g = tape.grad(x);
      tape.be.ops.rmsnormBackward(g.grad, dw, out.grad!, x.t, w.t, rstd, N, C, g.accumulate);
    } else if (dw) {
      const scratch = tape.alloc([N, C], 'rmsnorm.dx(unused)');
      tape.be.ops.rmsnormBackward(scratch, dw, out.grad!, x.t, w.t, rstd, N, C, false);
    }
  });
  return out;
}

/** A LoRA adapter at one linear site: y += scale · B (A · drop(x)). */
export interface LoraSite<T extends BackendTensor> {
  readonly A: Var<T> & { readonly shape: readonly number[] }; // (R, K)
  readonly B: Var<T>; // (N, R)
  readonly scale: number;
  readonly dropout: number;
  /** Dropout seed for this step and site (the backward regenerates the same mask). */
  readonly seed: number;
}

/**
 * y (rows, N) = x (rows, K) · Wᵀ [+ LoRA]. W is frozen (f32 or quantized) unless it is a
 * trainable parameter (f32 only: full fine-tuning, the NAT unit, heads); LoRA A/B are trainable.
 */
export function linear<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  W: Var<T>,
  lora: LoraSite<T> | null = null,
  label = 'linear',
): Var<T> {
  const { ops } = tape.be;
  const [rows, K] = x.shape as [number, number];
  const N = W.shape[0]!;
  if (W.requiresGrad && W.t.dtype !== 'f32') {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${label}: a ${W.t.dtype} weight cannot be trained; only f32 weights take gradients.`,
    );
  }
  const y = tape.output([rows, N], label, lora ? [x, W, lora.A, lora.B] : [x, W]);
  ops.matmulForward(y.t, x.t, W.t, rows, K, N, false);
  const back = lora ? loraPath(tape, y, x, lora, label) : null;
  tape.record(label, [y], () => {
    const dy = y.grad!;
    back?.();
    if (W.requiresGrad) ops.matmulBackwardWeight(tape.grad(W).grad, dy, x.t, rows, K, N);
    if (x.requiresGrad) {
      const g = tape.grad(x);
      ops.matmulBackwardInput(g.grad, dy, W.t, rows, K, N, g.accumulate);
    }
  });
  return y;
}

/**
 * The LoRA delta alone: scale · B (A · drop(x)), (rows, N) with N = B's rows. NAT adds two of these
 * to one base output.
 */
export function loraDelta<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  lora: LoraSite<T>,
  label = 'lora',
): Var<T> {
  const rows = x.shape[0]!;
  const N = lora.B.shape[0]!;
  const y = tape.output([rows, N], label, [x, lora.A, lora.B]);
  tape.be.zero(y.t);
  const back = loraPath(tape, y, x, lora, label);
  tape.record(label, [y], back);
  return y;
}

/**
 * y += scale · B (A · drop(x)) now; returns the backward (into A, B and x) for the caller's tape
 * node, to run after y's gradient is complete. The scale is applied to the rank-R intermediate.
 */
function loraPath<T extends BackendTensor>(
  tape: Tape<T>,
  y: Var<T>,
  x: Var<T>,
  lora: LoraSite<T>,
  label: string,
): () => void {
  const { ops } = tape.be;
  const [rows, K] = x.shape as [number, number];
  const N = y.shape[1]!;
  const R = lora.A.shape[0]!;
  let xd: T = x.t;
  if (lora.dropout > 0) {
    xd = tape.alloc([rows, K], `${label}.drop`);
    ops.dropoutForward(xd, x.t, rows * K, lora.dropout, lora.seed);
  }
  const u = tape.alloc([rows, R], `${label}.lora_u`);
  ops.matmulForward(u, xd, lora.A.t, rows, K, R, false);
  ops.scaleInplace(u, lora.scale, rows * R);
  ops.matmulForward(y.t, u, lora.B.t, rows, R, N, true);
  return () => {
    const dy = y.grad!;
    if (lora.B.requiresGrad) ops.matmulBackwardWeight(tape.grad(lora.B).grad, dy, u, rows, R, N);
    if (!lora.A.requiresGrad && !x.requiresGrad) return;
    const du = tape.alloc([rows, R], `${label}.d_lora_u`);
    ops.matmulBackwardInput(du, dy, lora.B.t, rows, R, N, false);
    ops.scaleInplace(du, lora.scale, rows * R);
    if (lora.A.requiresGrad) ops.matmulBackwardWeight(tape.grad(lora.A).grad, du, xd, rows, K, R);
    if (!x.requiresGrad) return;
    if (lora.dropout > 0) {
      const dxdrop = tape.alloc([rows, K], `${label}.d_drop`);
      ops.matmulBackwardInput(dxdrop, du, lora.A.t, rows, K, R, false);
      const g = tape.grad(x);
      ops.dropoutBackward(g.grad, dxdrop, rows * K, lora.dropout, lora.seed, g.accumulate);
    } else {
      const g = tape.grad(x);
      ops.matmulBackwardInput(g.grad, du, lora.A.t, rows, K, R, g.accumulate);
    }
  };
}

export function rope<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  positions: T,
  NH: number,
  HS: number,
  theta: number,
): Var<T> {
  const N = x.shape[0]!;
  const out = tape.output(x.shape, 'rope', [x]);
  tape.be.ops.ropeForward(out.t, x.t, positions, N, NH, HS, theta);
  tape.record('rope', [out], () => {
    if (!x.requiresGrad) return;
    const g = tape.grad(x);
    tape.be.ops.ropeBackward(g.grad, out.grad!, positions, N, NH, HS, theta, g.accumulate);
  });
  return out;
}

/** Causal GQA attention over B sequences of T tokens. q (B·T, NH·HS), k/v (B·T, NKV·HS). */
export function attention<T extends BackendTensor>(
  tape: Tape<T>,
  q: Var<T>,
  k: Var<T>,
  v: Var<T>,
  B: number,
  T: number,
  NH: number,
  NKV: number,
  HS: number,
): Var<T> {
  const out = tape.output([B * T, NH * HS], 'attn', [q, k, v]);
  const att = tape.alloc([B, NH, T, T], 'att');
  tape.be.ops.attentionForward(out.t, att, q.t, k.t, v.t, B, T, NH, NKV, HS);
  tape.record('attention', [out], () => {
    if (!q.requiresGrad && !k.requiresGrad && !v.requiresGrad) return;
    // The kernel writes all three input gradients with one flag: give it fresh buffers when the
    // flags would differ, then fold them in.
    const gq = tape.grad(q),
      gk = tape.grad(k),
      gv = tape.grad(v);
    const datt = tape.alloc([B, NH, T, T], 'datt');
    const same = gq.accumulate === gk.accumulate && gk.accumulate === gv.accumulate;
    if (same) {
      tape.be.ops.attentionBackward(
        gq.grad,
        gk.grad,
        gv.grad,
        datt,
        out.grad!,
        q.t,
        k.t,
        v.t,
        att,
        B,
        T,
        NH,
        NKV,
        HS,
        gq.accumulate,
      );
      return;
    }
    const tq = tape.alloc(q.shape, 'dq'),
      tk = tape.alloc(k.shape, 'dk'),
      tv = tape.alloc(v.shape, 'dv');
    tape.be.ops.attentionBackward(tq, tk, tv, datt, out.grad!, q.t, k.t, v.t, att, B, T, NH, NKV, HS, false);
    addInto(tape, gq, tq, Tape.size(q));
    addInto(tape, gk, tk, Tape.size(k));
    addInto(tape, gv, tv, Tape.size(v));
  });
  return out;
}

function addInto<T extends BackendTensor>(
  tape: Tape<T>,
  g: { grad: T; accumulate: boolean },
  src: T,
  n: number,
): void {
  if (g.accumulate) tape.be.ops.addInplace(g.grad, src, n);
  else tape.be.copy(src, g.grad, n);
}

export function add<T extends BackendTensor>(tape: Tape<T>, a: Var<T>, b: Var<T>): Var<T> {
  const n = Tape.size(a);
  const out = tape.output(a.shape, 'add', [a, b]);
  tape.be.ops.residualForward(out.t, a.t, b.t, n);
  tape.record('add', [out], () => {
    for (const v of [a, b]) if (v.requiresGrad) addInto(tape, tape.grad(v), out.grad!, n);
  });
  return out;
}

export function swiglu<T extends BackendTensor>(tape: Tape<T>, gate: Var<T>, up: Var<T>): Var<T> {
  const n = Tape.size(gate);
  const out = tape.output(gate.shape, 'swiglu', [gate, up]);
  tape.be.ops.swigluForward(out.t, gate.t, up.t, n);
  tape.record('swiglu', [out], () => {
    const gg = tape.grad(gate),
      gu = tape.grad(up);
    if (gg.accumulate === gu.accumulate) {
      tape.be.ops.swigluBackward(gg.grad, gu.grad, out.grad!, gate.t, up.t, n, gg.accumulate);
    } else {
      const tg = tape.alloc(gate.shape, 'dgate'),
        tu = tape.alloc(up.shape, 'dup');
      tape.be.ops.swigluBackward(tg, tu, out.grad!, gate.t, up.t, n, false);
      addInto(tape, gg, tg, n);
      addInto(tape, gu, tu, n);
    }
  });
  return out;
}

/**
 * Fused logits → cross-entropy: per-row losses (N) now, and d(logits) = weights·(softmax − onehot)
 * written straight into the logits' gradient (the loss is Σ weights·losses).
 */
export function crossentropy<T extends BackendTensor>(
  tape: Tape<T>,
  logits: Var<T>,
  targets: T,
  weights: T,
): T {
  const [N, V] = logits.shape as [number, number];
  const losses = tape.alloc([N], 'losses');
  if (logits.requiresGrad) {
    const g = tape.grad(logits);
    tape.be.ops.crossentropyForwardBackward(losses, g.grad, logits.t, targets, weights, N, V);
  } else {
    tape.be.ops.crossentropyForwardBackward(losses, null, logits.t, targets, weights, N, V);
  }
  return losses;
}

/** Elementwise op with a backward of the form dinp = or += f'(inp)·dout (gelu, elu). */
function unary<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  label: string,
  fwd: (out: T, inp: T, n: number) => void,
  bwd: (dinp: T, dout: T, inp: T, n: number, accumulate: boolean) => void,
): Var<T> {
  const n = Tape.size(x);
  const out = tape.output(x.shape, label, [x]);
  fwd(out.t, x.t, n);
  tape.record(label, [out], () => {
    if (!x.requiresGrad) return;
    const g = tape.grad(x);
    bwd(g.grad, out.grad!, x.t, n, g.accumulate);
  });
  return out;
}

/** GELU, exact (erf) form. */
export function gelu<T extends BackendTensor>(tape: Tape<T>, x: Var<T>): Var<T> {
  const { ops } = tape.be;
  return unary(tape, x, 'gelu', ops.geluForward, ops.geluBackward);
}

/** ELU, alpha = 1. */
export function elu<T extends BackendTensor>(tape: Tape<T>, x: Var<T>): Var<T> {
  const { ops } = tape.be;
  return unary(tape, x, 'elu', ops.eluForward, ops.eluBackward);
}

/** x (N,C) + b (C) per row (a new Var; x is not changed). */
export function bias<T extends BackendTensor>(tape: Tape<T>, x: Var<T>, b: Var<T>): Var<T> {
  const [N, C] = x.shape as [number, number];
  const out = tape.output(x.shape, 'bias', [x, b]);
  tape.be.copy(x.t, out.t, N * C);
  tape.be.ops.biasForward(out.t, b.t, N, C);
  tape.record('bias', [out], () => {
    if (b.requiresGrad) tape.be.ops.biasBackward(tape.grad(b).grad, out.grad!, N, C);
    if (x.requiresGrad) addInto(tape, tape.grad(x), out.grad!, N * C);
  });
  return out;
}

/** Masked mean over the T tokens of each of B sequences: x (B·T, C) → (B, C); mask (B·T) f32. */
export function meanpool<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  mask: T,
  B: number,
  T: number,
): Var<T> {
  const C = x.shape[1]!;
  const out = tape.output([B, C], 'meanpool', [x]);
  tape.be.ops.meanpoolForward(out.t, x.t, mask, B, T, C);
  tape.record('meanpool', [out], () => {
    if (!x.requiresGrad) return;
    const g = tape.grad(x);
    tape.be.ops.meanpoolBackward(g.grad, out.grad!, mask, B, T, C, g.accumulate);
  });
  return out;
}

/**
 * NAT's mixing (METHOD.md §1): out = base + (1 − α)·vpos + α·vneg with α = σ(q·kneg − q·kpos) − 0.5
 * per row. Returns the output and α (N) (not differentiable: for display).
 */
export function natmix<T extends BackendTensor>(
  tape: Tape<T>,
  q: Var<T>,
  kpos: Var<T>,
  kneg: Var<T>,
  vpos: Var<T>,
  vneg: Var<T>,
  base: Var<T>,
): { out: Var<T>; alpha: T } {
  const [N, U] = q.shape as [number, number];
  const C = base.shape[1]!;
  const { ops } = tape.be;
  const out = tape.output([N, C], 'natmix', [q, kpos, kneg, vpos, vneg, base]);
  const alpha = tape.alloc([N], 'nat.alpha');
  ops.natmixForward(out.t, alpha, q.t, kpos.t, kneg.t, vpos.t, vneg.t, base.t, N, U, C);
  tape.record('natmix', [out], () => {
    const dout = out.grad!;
    const ins = [q, kpos, kneg, vpos, vneg];
    if (ins.some((v) => v.requiresGrad)) {
      // One accumulate flag for all five gradients: fresh buffers, then fold them in.
      const tmp = ins.map((v) => tape.alloc(v.shape, `d(${v.t.label}).natmix`));
      const [dq, dkp, dkn, dvp, dvn] = tmp as [T, T, T, T, T];
      ops.natmixBackward(
        dq,
        dkp,
        dkn,
        dvp,
        dvn,
        dout,
        q.t,
        kpos.t,
        kneg.t,
        vpos.t,
        vneg.t,
        alpha,
        N,
        U,
        C,
        false,
      );
      ins.forEach((v, i) => {
        if (v.requiresGrad) addInto(tape, tape.grad(v), tmp[i]!, Tape.size(v));
      });
    }
    if (base.requiresGrad) addInto(tape, tape.grad(base), dout, N * C);
  });
  return { out, alpha };
}

/**
 * A checkpointed segment y = segment(x) (gradient checkpointing). The forward runs the segment on
 * a sub-tape, keeps only y (handed to `tape`) and releases everything else the segment made. The
 * backward re-runs the segment from the saved x on a fresh, replaying sub-tape, seeds y's
 * gradient, runs that tape's backward (parameter gradients `+=` as always; dropout masks come back
 * from their seeds), passes x's gradient to `tape` and releases the rest, y's gradient included
 * (this node is its only reader). The same kernels run in the same order as without the
 * checkpoint, so values and gradients are the same bits; the price is one more forward of the
 * segment.
 *
 * `segment` must record every op on the tape it is given (site adapters receive their tape for
 * this) and be deterministic: it runs twice per step. Anything it reports once per step (NAT's α)
 * it reports only when `sub.replaying` is false, through `sub.keep`.
 */
export function checkpoint<T extends BackendTensor>(
  tape: Tape<T>,
  x: Var<T>,
  segment: (sub: Tape<T>, x: Var<T>) => Var<T>,
  label = 'checkpoint',
): Var<T> {
  // The segment's view of x: the same tensor, its own gradient (a parameter's stays the parameter's).
  const input = () => new Var(x.t, x.requiresGrad, x.param);
  const fwd = tape.sub(false);
  let out: Var<T>;
  try {
    const y = segment(fwd, input());
    let t = y.t;
    if (!fwd.handOver(t, tape)) {
      t = tape.alloc(y.shape, label, y.t.dtype === 'u32' ? 'u32' : 'f32');
      tape.be.copy(y.t, t, Tape.size(y));
    }
    out = new Var(t, y.requiresGrad);
  } finally {
    fwd.release();
  }
  tape.record(label, [out], () => {
    const re = tape.sub(true);
    try {
      const xin = input();
      const y = segment(re, xin);
      y.grad = out.grad;
      re.backward();
      if (xin.grad) {
        // x's first gradient is taken over as it is (no copy); a later one is added to it
        if (x.grad) tape.be.ops.addInplace(x.grad, xin.grad, Tape.size(x));
        else if (re.handOver(xin.grad, tape)) x.grad = xin.grad;
        else tape.be.copy(xin.grad, tape.grad(x).grad, Tape.size(x));
      }
    } finally {
      re.release();
      if (out.grad) tape.free(out.grad);
      out.grad = null;
    }
  });
  return out;
}
