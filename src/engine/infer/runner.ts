/**
 * Batched inference: one forward over R rows, each row a token of some sequence slot at some
 * position. Prefill (many rows of one slot) and decode (one row per slot) are the same call: each
 * row's K/V go into its slot's cache, and each row attends to positions 0..pos of its slot.
 * Buffers are allocated once for `maxRows`; a longer batch runs in chunks.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { EngineError, formatBytes } from '../errors.ts';
import { kvBytesPerValue, type KvType } from '../kvcache.ts';
import { headSize, kvDim } from '../model/config.ts';
import type { ActType } from '../ops/act.ts';
import type { LinearSite, LlamaModel } from '../model/llama.ts';
import { loraInference, type InferenceAdapter } from './adapters.ts';
import type { LoraAdapter } from '../model/lora.ts';

export interface Row {
  slot: number;
  pos: number;
  token: number;
}

export interface RunnerOptions {
  /** Sequence slots in the KV cache (m). */
  slots: number;
  /** Positions per slot (context length). */
  maxT: number;
  /** Rows per forward chunk (≥ slots; prefill uses up to this many at a time). */
  maxRows?: number;
  /**
   * KV cache element type (kvcache.ts). 'f32' (default): llama2.c's exact arithmetic. 'f16': half
   * the memory on every device (f16 pairs packed in u32 words, no shader-f16 needed); each k and v
   * value rounded to f16 once, when written (head sizes are even: RoPE rotates pairs).
   */
  kv?: KvType;
  /**
   * Activation element type. 'f32' (default). 'f16' (needs a GPU with `shader-f16`): the matmuls'
   * inputs and outputs, q/k/v, attention output and the FFN's gate, up and product are stored as
   * f16, each rounded once when written; every kernel computes and accumulates in f32, and the
   * residual stream, the norms' statistics and the logits stay f32. The KV cache defaults to f16
   * with it. An adapter (LoRA, NAT, linear mix) runs in f32 at its sites: the site's input is
   * widened into an f32 buffer and its output rounded back (ops `castInto`).
   */
  act?: ActType;
}

export class LlamaRunner<T extends BackendTensor> {
  readonly slots: number;
  readonly maxT: number;
  readonly maxRows: number;
  readonly kv: KvType;
  readonly act: ActType;
  /** Bytes of the KV cache tensors (k and v, every layer), as allocated. */
  readonly cacheBytes: number;
  private readonly be: Backend<T>;
  /**
   * Per layer, the KV cache in parts of `slotsPerPart` slots (part p holds slots p·slotsPerPart …):
   * one part unless a layer's cache is larger than one binding (`maxTensorBytes`).
   */
  private kcache: T[][] = [];
  private vcache: T[][] = [];
  /** Slots per part of the KV cache (all of them when it is not split). */
  readonly slotsPerPart: number;
  private buf: Record<string, T> = {};
  /** One slot of one layer's K or V cache, for `copySlot` (made on first use). */
  private staging: T | null = null;
  private owned: T[] = [];
  private adapter: InferenceAdapter<T> | null = null;
  /** The adapter made here from a LoRA (destroyed with it); caller-made ones are the caller's. */
  private ownAdapter = false;

  constructor(
    readonly model: LlamaModel<T>,
    opts: RunnerOptions,
  ) {
    const c = model.config;
    this.be = model.be;
    this.slots = opts.slots;
    this.maxT = Math.min(opts.maxT, c.maxSeqLen);
    this.maxRows = Math.max(opts.maxRows ?? 64, opts.slots);
    this.act = opts.act ?? 'f32';
    if (this.act === 'f16' && !this.be.f16)
      throw new EngineError(
        'FEATURE_MISSING',
        'f16 activations need the WebGPU feature shader-f16, which this GPU (or browser) does not offer: run with f32 activations (an f16 KV cache needs no feature and halves the larger part of the memory).',
      );
    this.kv = opts.kv ?? this.act;
    const KV = kvDim(c),
      C = c.dim,
      H = c.hiddenDim,
      V = c.vocabSize,
      R = this.maxRows;
    const cacheBytes = 2 * c.nLayers * this.slots * this.maxT * KV * kvBytesPerValue(this.kv);
    // A layer's cache larger than one binding is split by slots: each part is its own tensor, and
    // the cache kernels take the part's first slot (rows of other slots are another part's).
    const slotBytes = this.maxT * KV * kvBytesPerValue(this.kv);
    if (slotBytes > this.be.maxTensorBytes)
      throw new EngineError(
        'LIMIT_EXCEEDED',
        `One sequence's ${this.kv} KV cache of a layer (${this.maxT} positions) needs ${formatBytes(slotBytes)}, but this GPU binds at most ${formatBytes(this.be.maxTensorBytes)} per buffer and a cache is split only between sequences: use a shorter context${this.kv === 'f32' ? ', or an f16 KV cache (half the size)' : ''}.`,
      );
    this.slotsPerPart = Math.max(1, Math.min(this.slots, Math.floor(this.be.maxTensorBytes / slotBytes)));
    // f16: u32 words of two values, (slots, maxT, KV / 2)
    const shapeOf = (n: number): [number[], 'f32' | 'u32'] =>
      this.kv === 'f16' ? [[n, this.maxT, KV / 2], 'u32'] : [[n, this.maxT, KV], 'f32'];
    let allocated = 0;
    try {
      for (let l = 0; l < c.nLayers; l++) {
        const ks: T[] = [],
          vs: T[] = [];
        for (let s0 = 0; s0 < this.slots; s0 += this.slotsPerPart) {
          const [shape, dtype] = shapeOf(Math.min(this.slotsPerPart, this.slots - s0));
          const part = s0 === 0 && this.slotsPerPart >= this.slots ? '' : `.slots${s0}`;
          ks.push(this.alloc(shape, `kcache.${l}${part}`, dtype));
          vs.push(this.alloc(shape, `vcache.${l}${part}`, dtype));
          allocated += 2 * 4 * shape.reduce((a, b) => a * b, 1);
        }
        this.kcache.push(ks);
        this.vcache.push(vs);
      }
      const A = this.act;
      const shapes: Record<string, [number[], 'f32' | 'f16' | 'u32']> = {
        x: [[R, C], 'f32'],
        h: [[R, C], A],
        q: [[R, C], A],
        k: [[R, KV], A],
        v: [[R, KV], A],
        att: [[R, C], A],
        o: [[R, C], A],
        g: [[R, H], A],
        u: [[R, H], A],
        s: [[R, H], A],
        rstd: [[R], 'f32'],
        sel: [[R, C], 'f32'],
        logits: [[R, V], 'f32'],
        tokens: [[R], 'u32'],
        positions: [[R], 'u32'],
        rowInfo: [[2 * R], 'u32'],
        outIdx: [[R], 'u32'],
      };
      for (const [name, [shape, dtype]] of Object.entries(shapes))
        this.buf[name] = this.alloc(shape, `run.${name}`, dtype);
    } catch (e) {
      this.destroy();
      if (e instanceof EngineError && e.code === 'LIMIT_EXCEEDED') {
        throw new EngineError(
          'LIMIT_EXCEEDED',
          `${e.message} (the ${this.kv} KV cache for ${this.slots} sequences × ${this.maxT} positions needs ${formatBytes(cacheBytes)}: ask for fewer samples or a shorter context${this.kv === 'f32' ? ', or use an f16 KV cache (half the size)' : ''}.)`,
        );
      }
      throw e;
    }
    this.cacheBytes = allocated;
  }

  private alloc(shape: number[], label: string, dtype: 'f32' | 'f16' | 'u32' = 'f32'): T {
    const t = this.be.empty(shape, label, dtype);
    this.owned.push(t);
    return t;
  }

  /**
   * Uses `adapter` in subsequent forwards: a LoRA, or any inference adapter (NAT, linear mix,
   * from infer/adapters.ts — the caller keeps ownership of those); null for the base model.
   */
  setAdapter(adapter: LoraAdapter<T> | InferenceAdapter<T> | null): void {
    if (this.ownAdapter) this.adapter?.destroy();
    this.ownAdapter = false;
    this.adapter = null;
    if (!adapter) return;
    if (this.act === 'f16' && !this.buf.adapterIn) {
      // f32 staging for the adapters' sites (f16 activations): an input and an output row each
      const W = Math.max(this.model.config.dim, this.model.config.hiddenDim);
      this.buf.adapterIn = this.alloc([this.maxRows, W], 'run.adapterIn');
      this.buf.adapterOut = this.alloc([this.maxRows, W], 'run.adapterOut');
    }
    if ('apply' in adapter) {
      this.adapter = adapter;
      return;
    }
    this.adapter = loraInference(this.be, adapter, this.maxRows);
    this.ownAdapter = true;
  }

  private linear(l: number, site: LinearSite, out: T, inp: T, rows: number, K: number, N: number): void {
    const W = this.model.layers[l]![site];
    if (!this.adapter) this.be.ops.matmulForward(out, inp, W, rows, K, N, false);
    else if (this.act === 'f32') this.adapter.apply(l, site, out, inp, W, rows, K, N);
    else {
      const { adapterIn, adapterOut } = this.buf;
      this.be.ops.castInto(adapterIn!, inp, rows * K);
      this.adapter.apply(l, site, adapterOut!, adapterIn!, W, rows, K, N);
      this.be.ops.castInto(out, adapterOut!, rows * N);
    }
  }

  /**
   * Runs `rows` through the model; returns the logits (outputs.length, V) of the rows whose
   * indices are in `outputs`. Rows of one slot must come in position order.
   */
  async forward(rows: readonly Row[], outputs: readonly number[]): Promise<Float32Array> {
    const V = this.model.config.vocabSize;
    const result = new Float32Array(outputs.length * V);
    for (let start = 0; start < rows.length; start += this.maxRows) {
      const chunk = rows.slice(start, start + this.maxRows);
      const local: number[] = [];
      const where: number[] = [];
      outputs.forEach((o, i) => {
        if (o >= start && o < start + chunk.length) {
          local.push(o - start);
          where.push(i);
        }
      });
      const logits = this.encodeChunk(chunk, local);
      if (local.length > 0) {
        const all = await this.be.read(logits);
        where.forEach((dst, j) => result.set(all.subarray(j * V, (j + 1) * V), dst * V));
      } else {
        this.be.flush();
      }
    }
    return result;
  }

  /** Records one chunk's forward; returns the logits tensor holding `outputs.length` rows. */
  private encodeChunk(rows: readonly Row[], outputs: readonly number[]): T {
    const c = this.model.config;
    const { ops } = this.be;
    const b = this.buf as Record<string, T>;
    const R = rows.length,
      C = c.dim,
      H = c.hiddenDim,
      KV = kvDim(c),
      HS = headSize(c),
      V = c.vocabSize;
    for (const r of rows) {
      if (r.slot < 0 || r.slot >= this.slots || r.pos < 0 || r.pos >= this.maxT) {
        throw new EngineError(
          'BAD_ARGUMENT',
          `row (slot ${r.slot}, pos ${r.pos}) is outside the KV cache (${this.slots} slots × ${this.maxT} positions).`,
        );
      }
      if (!(r.token >= 0 && r.token < V))
        throw new EngineError('BAD_ARGUMENT', `token ${r.token} is outside the vocabulary (${V}).`);
    }
    this.be.write(
      b.tokens!,
      Uint32Array.from(rows, (r) => r.token),
    );
    this.be.write(
      b.positions!,
      Uint32Array.from(rows, (r) => r.pos),
    );
    this.be.write(b.rowInfo!, Uint32Array.from(rows.flatMap((r) => [r.slot, r.pos])));
    ops.embeddingForward(b.x!, b.tokens!, this.model.tokenEmbedding, R, C);
    for (let l = 0; l < c.nLayers; l++) {
      const layer = this.model.layers[l]!;
      ops.rmsnormForward(b.h!, b.rstd!, b.x!, layer.rmsAtt, R, C, c.normEps);
      this.linear(l, 'wq', b.q!, b.h!, R, C, C);
      this.linear(l, 'wk', b.k!, b.h!, R, C, KV);
      this.linear(l, 'wv', b.v!, b.h!, R, C, KV);
      ops.ropeForwardInplace(b.q!, b.positions!, R, c.nHeads, HS, c.ropeTheta);
      ops.ropeForwardInplace(b.k!, b.positions!, R, c.nKvHeads, HS, c.ropeTheta);
      // (one part unless the cache is split: each part writes and attends for its own slots' rows)
      this.kcache[l]!.forEach((kc, p) => {
        const vc = this.vcache[l]![p]!;
        const slot0 = p * this.slotsPerPart;
        ops.kvCacheWrite(kc, vc, b.k!, b.v!, b.rowInfo!, R, c.nKvHeads, HS, this.maxT, slot0);
        ops.attentionDecode(b.att!, b.q!, kc, vc, b.rowInfo!, R, c.nHeads, c.nKvHeads, HS, this.maxT, slot0);
      });
      this.linear(l, 'wo', b.o!, b.att!, R, C, C);
      ops.addInplace(b.x!, b.o!, R * C);
      ops.rmsnormForward(b.h!, b.rstd!, b.x!, layer.rmsFfn, R, C, c.normEps);
      this.linear(l, 'w1', b.g!, b.h!, R, C, H);
      this.linear(l, 'w3', b.u!, b.h!, R, C, H);
      ops.swigluForward(b.s!, b.g!, b.u!, R * H);
      this.linear(l, 'w2', b.o!, b.s!, R, H, C);
      ops.addInplace(b.x!, b.o!, R * C);
    }
    if (outputs.length === 0) return b.logits!;
    // Only the rows whose next token we need go through the final norm and the classifier.
    this.be.write(b.outIdx!, Uint32Array.from(outputs));
    ops.embeddingForward(b.sel!, b.outIdx!, b.x!, outputs.length, C);
    ops.rmsnormForward(b.h!, b.rstd!, b.sel!, this.model.rmsFinal, outputs.length, C, c.normEps);
    ops.matmulForward(b.logits!, b.h!, this.model.wcls, outputs.length, C, V, false);
    return b.logits!;
  }

  /**
   * Copies positions [0, positions) of slot `from`'s K/V cache into each slot of `to`, in every
   * layer (and across the cache's parts when it is split): those slots then hold what a prefill of
   * the same tokens would have written, and decode from position `positions` on. Recorded in order
   * with the forwards around it. (WebGPU copies no buffer into itself, so the slot goes through a
   * one-slot staging tensor: out once, then into each target.)
   */
  copySlot(from: number, to: readonly number[], positions: number): void {
    for (const s of [from, ...to])
      if (!(Number.isInteger(s) && s >= 0 && s < this.slots))
        throw new EngineError('BAD_ARGUMENT', `slot ${s} is outside the KV cache (${this.slots} slots).`);
    if (!(Number.isInteger(positions) && positions >= 0 && positions <= this.maxT))
      throw new EngineError(
        'BAD_ARGUMENT',
        `cannot copy ${positions} positions of a slot: the KV cache holds ${this.maxT} per slot.`,
      );
    const targets = to.filter((s) => s !== from);
    if (targets.length === 0 || positions === 0) return;
    const words = (kvDim(this.model.config) * kvBytesPerValue(this.kv)) / 4; // per position
    this.staging ??= this.alloc([this.maxT * words], 'kvcache.staging', this.kv === 'f16' ? 'u32' : 'f32');
    const n = positions * words;
    const part = (s: number) => Math.floor(s / this.slotsPerPart);
    const offset = (s: number) => (s - part(s) * this.slotsPerPart) * this.maxT * words;
    for (const cache of [this.kcache, this.vcache])
      for (const parts of cache) {
        this.be.copy(parts[part(from)]!, this.staging, n, offset(from), 0);
        for (const s of targets) this.be.copy(this.staging, parts[part(s)]!, n, 0, offset(s));
      }
  }

  destroy(): void {
    if (this.ownAdapter) this.adapter?.destroy();
    this.adapter = null;
    for (const t of this.owned) this.be.destroy(t);
    this.owned = [];
    this.staging = null;
    this.kcache = [];
    this.vcache = [];
  }
}
