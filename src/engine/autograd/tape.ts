/**
 * A reverse-mode autograd tape over backend tensors. Each op runs its forward kernel at once and
 * records a closure for its backward; `backward()` replays them in reverse. Only what leads to a
 * trainable parameter gets a gradient: frozen base weights (f32 or quantized) never do.
 *
 * Gradient contract (docs/engine.md): parameter gradients `+=` (so micro-batches accumulate);
 * an activation gradient is written by its first consumer in reverse order and added to by the
 * rest (the `accumulate` flag of every backward kernel).
 *
 * Gradient checkpointing (`checkpoint` in ops.ts) runs a segment on a sub-tape (`sub`): its
 * forward keeps only the output, and its backward re-runs the segment on a fresh, `replaying`
 * sub-tape. Ops record on whichever tape they are given; a sub-tape's tensors go back to the
 * pool when it is released, except those handed to its parent (`handOver`) or kept for the step
 * (`keep`).
 *
 * @example
 *   const tape = new Tape(be);
 *   const h = tape.rmsnorm(x, w, 1e-5);
 *   ...
 *   tape.backward();   // fills every Param.grad (+=)
 *   tape.release();    // activations and their gradients go back to the pool
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { EngineError } from '../errors.ts';
import { numel } from '../gpu/tensor.ts';

/** A trainable tensor: value, gradient (+=), and a name for save/restore. */
export interface Param<T> {
  readonly name: string;
  readonly value: T;
  readonly grad: T;
}

export class Var<T extends BackendTensor> {
  grad: T | null = null;
  constructor(
    readonly t: T,
    readonly requiresGrad: boolean,
    /** Set when this Var is a trainable parameter: its gradient lives in `param.grad`. */
    readonly param: Param<T> | null = null,
  ) {}
  get shape(): readonly number[] {
    return this.t.shape;
  }
}

interface Node {
  readonly label: string;
  readonly outputs: readonly Var<BackendTensor>[];
  readonly backward: () => void;
}

export class Tape<T extends BackendTensor> {
  private nodes: Node[] = [];
  private owned = new Set<T>();
  private done = false;
  /**
   * @param parent The tape this one is a segment of (`sub`), or null for a step's tape.
   * @param replaying true while a checkpointed segment is re-run for its backward: what the
   *   segment's first forward already reported (NAT's α, say) must not be reported again.
   */
  constructor(
    readonly be: Backend<T>,
    readonly parent: Tape<T> | null = null,
    readonly replaying = false,
  ) {}

  /** A tape for a segment of this one (gradient checkpointing); it replays if this one does. */
  sub(replaying: boolean): Tape<T> {
    return new Tape(this.be, this, replaying || this.replaying);
  }

  /** The step's tape: the outermost parent. */
  get root(): Tape<T> {
    return this.parent ? this.parent.root : this;
  }

  /** A frozen input: no gradient is computed for it. */
  constant(t: T): Var<T> {
    return new Var(t, false);
  }

  /** A trainable parameter. */
  param(p: Param<T>): Var<T> {
    return new Var(p.value, true, p);
  }

  /** Scratch memory that lives until `release()`. */
  alloc(shape: readonly number[], label: string, dtype: 'f32' | 'u32' = 'f32'): T {
    const t = this.be.scratch(shape, label, dtype);
    this.owned.add(t);
    return t;
  }

  /**
   * Moves a tensor this tape allocated to `to`, which releases it instead; false when this tape
   * does not own it (a weight, a parameter, an input from outside the segment).
   */
  handOver(t: T, to: Tape<T>): boolean {
    if (!this.owned.delete(t)) return false;
    to.owned.add(t);
    return true;
  }

  /**
   * Keeps a tensor of this tape until the step's tape is released (a figure to read after the
   * forward, such as NAT's α, made inside a checkpointed segment). No-op on the step's tape.
   */
  keep(t: T): T {
    if (this.parent) this.handOver(t, this.root);
    return t;
  }

  /** Returns one tensor this tape owns to the pool now (its last reader has been recorded). */
  free(t: T): void {
    if (this.owned.delete(t)) this.be.release(t);
  }

  /** A new activation Var; it needs a gradient if any input does. */
  output(shape: readonly number[], label: string, inputs: readonly Var<T>[]): Var<T> {
    return new Var(
      this.alloc(shape, label),
      inputs.some((v) => v.requiresGrad),
    );
  }

  /**
   * The gradient buffer to write for `v`, and whether to add to it. Parameters always add (their
   * kernels `+=`); an activation's first writer writes.
   */
  grad(v: Var<T>): { grad: T; accumulate: boolean } {
    if (v.param) return { grad: v.param.grad, accumulate: true };
    if (v.grad) return { grad: v.grad, accumulate: true };
    v.grad = this.alloc(v.t.shape, `d(${v.t.label})`);
    return { grad: v.grad, accumulate: false };
  }

  /** Records a backward closure for outputs produced by a forward that already ran. */
  record(label: string, outputs: readonly Var<T>[], backward: () => void): void {
    if (this.done) throw new EngineError('BAD_ARGUMENT', 'this tape was already released');
    if (outputs.some((o) => o.requiresGrad)) this.nodes.push({ label, outputs, backward });
  }

  /**
   * Runs every recorded backward in reverse. The loss op seeds its input's gradient itself (the
   * fused cross-entropy writes dlogits in its forward), so there is no seed argument.
   */
  backward(): void {
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i]!;
      if (node.outputs.some((o) => o.grad !== null || o.param !== null)) node.backward();
    }
  }

  /** Number of elements of a Var (helper for op implementations). */
  static size(v: Var<BackendTensor>): number {
    return numel(v.t.shape);
  }

  /** Returns every activation and activation gradient to the pool. */
  release(): void {
    for (const t of this.owned) this.be.release(t);
    this.owned.clear();
    this.nodes = [];
    this.done = true;
  }
}
