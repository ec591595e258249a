/**
 * A GGUF LLaMA straight onto a backend, one tensor at a time, in the file's own types: nothing
 * close to the whole file is ever in the JS heap (a 7B Q4_0 file is 3.8 GB; the largest tensor
 * read at once is one matrix, ≤ 140 MB for 7B). docs/gguf.md, "Loading a 7B onto the GPU".
 *
 *   file type     matrices (wq … w2, output)         token embedding (and a tied classifier)
 *   Q4_0, Q8_0    as they are (be.weight q4_0/q8_0)   as it is (gathered from the blocks on the GPU)
 *   Q4_K, Q6_K    as they are (be.weight q4_k/q6_k)   requantized to q8_0 (q4_0 when q8_0 does not
 *                 or q8_0 with `kQuants: 'q8_0'`      fit one binding), chunk by chunk on the CPU
 *   F16, F32      f32, or q8_0/q4_0 (`floatMatrices`) f32 when it fits one binding, else q8_0, q4_0
 *   norms (F32/F16): f32
 *
 * GGUF's attn_q / attn_k rows are already in our RoPE order (docs/gguf.md), so nothing is permuted.
 * A matrix (or table) larger than one binding is split by rows across buffers by the backend
 * (`be.weight`, backend/gpu.ts `uploadWeightSplit`). Before anything is allocated every tensor is
 * checked against `be.maxTensorBytes`: a norm must fit whole, a matrix one row (LIMIT_EXCEEDED
 * naming the tensor). Progress is reported per chunk read; an AbortSignal stops the load between
 * chunks; on any failure (a short read, an abort, a GPU error) every tensor allocated so far is
 * destroyed before the error propagates.
 *
 * @example
 *   const src = fromBlob(file);
 *   const gguf = await readGgufHeader(src);
 *   const model = await loadLlamaGguf(new GpuBackend(gpu), gguf, src, {
 *     onProgress: (p) => bar.set(p.bytesDone / p.bytesTotal),
 *     signal: controller.signal,
 *   });
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { byteSize, type DType } from '../gpu/tensor.ts';
import type { LlamaConfig } from '../model/config.ts';
import { refuseOversize, weightLabel, type LlamaLayer, type LlamaModel } from '../model/llama.ts';
import type { WeightName } from '../model/weights.ts';
import type { WeightType, WeightTypes } from '../plan/types.ts';
import { BLOCK_BYTES, quantize, QK, type QuantDType } from '../quant.ts';
import type { ByteSource } from './bytesource.ts';
import { dequantizeGgml, readTensorChunks, type GgufFile, type GgufTensorInfo } from './gguf.ts';
import { llamaConfigFromGguf, llamaTensorsFromGguf } from './gguf-llama.ts';

/** Where a streaming load stands: bytes of tensor data read so far, of all, and the tensor being read. */
export interface LoadProgress {
  readonly bytesDone: number;
  readonly bytesTotal: number;
  /** The tensor's name in the file (e.g. 'blk.3.attn_q.weight', or 'model.embed_tokens.q_weight'). */
  readonly tensor: string;
}

/** What every streaming loader (GGUF, MLC) takes. */
export interface StreamLoadOptions {
  /** Called after each read (and once with bytesDone 0 before the first). */
  onProgress?: (p: LoadProgress) => void;
  /** Checked before every read: an aborted load frees what it allocated and throws signal.reason. */
  signal?: AbortSignal;
}

export interface GgufLoadOptions extends StreamLoadOptions {
  /** Bytes per read (default 16 MiB; whole rows: at least one row is read at a time). */
  chunkBytes?: number;
  /** F16 / F32 matrices: kept f32 (default) or quantized to q8_0 / q4_0 while loading. */
  floatMatrices?: 'f32' | 'q8_0' | 'q4_0';
  /**
   * Q4_K / Q6_K matrices: 'native' (default) uploads the file's blocks as they are (be.weight
   * 'q4_k' / 'q6_k'); 'q8_0' requantizes them chunk by chunk on the CPU (for a backend without
   * K-quant kernels; 1.0625 instead of 0.5625 / 0.82 bytes per weight).
   */
  kQuants?: 'native' | 'q8_0';
  /**
   * The token embedding when the file's table is not Q8_0 / Q4_0 (or does not fit one binding):
   * 'auto' (default) takes the first of f32 (F32/F16 files only), q8_0, q4_0 that fits
   * `be.maxTensorBytes`; 'q8_0' / 'q4_0' force that requantization.
   */
  embedding?: 'auto' | 'q8_0' | 'q4_0';
}

/** One tensor of the load: where it comes from and how it lands on the backend. */
export interface GgufLoadTensor {
  readonly info: GgufTensorInfo;
  readonly weight: WeightName;
  readonly layer: number | null;
  /** The backend label (weightLabel: 'tok_embeddings', 'layers.3.wq', …). */
  readonly label: string;
  /** (N, K) for matrices and the embedding, [C] for norms. */
  readonly shape: readonly number[];
  /** The backend dtype. */
  readonly dtype: DType;
  /** How the file's bytes become that dtype. */
  readonly how: 'blocks' | 'f32' | 'requantize';
  /** Bytes on the backend (the GPU layout's size). */
  readonly bytes: number;
}

const GGML_TO_DTYPE: Partial<Record<string, DType>> = {
  Q8_0: 'q8_0',
  Q4_0: 'q4_0',
  Q4_K: 'q4_k',
  Q6_K: 'q6_k',
};

/**
 * How each tensor of a GGUF LLaMA will be stored (see the table at the top), in file order, for a
 * backend binding at most `maxTensorBytes` per tensor. Throws what llamaTensorsFromGguf throws for
 * a file that is not a complete LLaMA; sizes are not checked here (loadLlamaGguf does).
 */
export function ggufLoadPlan(
  file: GgufFile,
  opts: GgufLoadOptions = {},
  maxTensorBytes = Infinity,
  config: LlamaConfig = llamaConfigFromGguf(file),
): GgufLoadTensor[] {
  const out: GgufLoadTensor[] = [];
  for (const t of llamaTensorsFromGguf(file, config)) {
    const { info, weight, layer } = t;
    const label = weightLabel(weight, layer);
    const type = info.typeName;
    if (info.dims.length === 1) {
      out.push({
        info,
        weight,
        layer,
        label,
        shape: [info.dims[0]!],
        dtype: 'f32',
        how: 'f32',
        bytes: 4 * info.nElements,
      });
      continue;
    }
    const shape = [info.dims[1]!, info.dims[0]!] as const; // ggml [K, N] → our (N, K)
    const plan = (dtype: DType, how: GgufLoadTensor['how']): GgufLoadTensor => ({
      info,
      weight,
      layer,
      label,
      shape,
      dtype,
      how,
      bytes: byteSize(shape, dtype),
    });
    const native = GGML_TO_DTYPE[type];
    const blocks32 = shape[1] % QK === 0;
    if (weight === 'tokenEmbedding') {
      // the first candidate that fits one binding; none fits: the last, which the backend splits by rows
      const want = opts.embedding ?? 'auto';
      const candidates: DType[] = !blocks32
        ? ['f32']
        : want !== 'auto'
          ? [want]
          : [
              ...(native === 'q8_0' || native === 'q4_0' ? [native] : []),
              ...(type === 'F32' || type === 'F16' ? ['f32' as const] : []),
              'q8_0',
              'q4_0',
            ];
      const dtype = candidates.find((d) => byteSize(shape, d) <= maxTensorBytes) ?? candidates.at(-1)!;
      out.push(plan(dtype, dtype === native ? 'blocks' : dtype === 'f32' ? 'f32' : 'requantize'));
      continue;
    }
    if (native === 'q8_0' || native === 'q4_0') out.push(plan(native, 'blocks'));
    else if (native !== undefined)
      out.push(opts.kQuants === 'q8_0' ? plan('q8_0', 'requantize') : plan(native, 'blocks'));
    else {
      const f = opts.floatMatrices ?? 'f32';
      out.push(f === 'f32' || !blocks32 ? plan('f32', 'f32') : plan(f, 'requantize'));
    }
  }
  return out;
}

/**
 * The memory planner's weight types (plan/types.ts) for a load plan: every tensor named with the
 * dtype it will have on the GPU (e.g. a Q4_K_M file's embedding as the q8_0 it becomes), so that
 * `planMemory` counts what loadLlamaGguf allocates.
 */
export function ggufPlanWeightTypes(plan: readonly GgufLoadTensor[]): WeightTypes {
  const tensors: Record<string, WeightType> = {};
  const count = new Map<WeightType, number>();
  for (const t of plan) {
    const type = t.dtype as WeightType; // GGUF loads give f32, q8_0, q4_0, q4_k, q6_k only
    tensors[t.label] = type;
    if (t.shape.length === 2 && t.weight !== 'tokenEmbedding') count.set(type, (count.get(type) ?? 0) + 1);
  }
  const matrices = [...count].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'f32';
  return { matrices, tensors };
}

/**
 * Loads a GGUF LLaMA onto `be` (see the top of this file). `file` is `readGgufHeader(src)`.
 * Throws, with nothing left allocated: LIMIT_EXCEEDED (a norm, or one row of a matrix, over the
 * binding limit, before any read), TRUNCATED_FILE (the source ends early), BAD_FILE / SHAPE_MISMATCH (from the header
 * checks), the backend's errors (e.g. an unknown dtype, OUT_OF_MEMORY), or `signal.reason`.
 */
export async function loadLlamaGguf<T extends BackendTensor>(
  be: Backend<T>,
  file: GgufFile,
  src: ByteSource,
  opts: GgufLoadOptions = {},
): Promise<LlamaModel<T>> {
  const config = llamaConfigFromGguf(file);
  const plan = ggufLoadPlan(file, opts, be.maxTensorBytes, config);
  refuseOversize(
    be.maxTensorBytes,
    plan.map((t) => [`${t.label} (${t.info.name}, ${t.dtype})`, t.bytes, rowBytes(t)]),
    fixFor(plan, be.maxTensorBytes, opts),
  );
  const chunkBytes = opts.chunkBytes ?? 16 << 20;
  const progress = new Progress(
    plan.reduce((a, t) => a + t.info.byteSize, 0),
    opts,
  );
  const tensors: T[] = [];
  try {
    progress.start(plan[0]?.info.name ?? '');
    const layers = Array.from({ length: config.nLayers }, () => ({}) as Partial<LlamaLayer<T>>);
    const global: Partial<Record<'tokenEmbedding' | 'rmsFinal' | 'wcls', T>> = {};
    for (const t of plan) {
      const { info } = t;
      // whole rows per chunk (a row is ≤ 44 KB for 7B), so that every chunk requantizes on its own
      const rowBytes = info.byteSize / (info.dims[1] ?? 1);
      const chunks = () =>
        progress.chunks(readTensorChunks(file, src, info, Math.max(chunkBytes, rowBytes)), info.name);
      let tensor: T;
      if (t.info.dims.length === 1) {
        tensor = be.fromData(t.shape, await readF32(info, chunks()), t.label);
      } else {
        const shape = t.shape as readonly [number, number];
        if (t.how === 'blocks') tensor = be.weight(t.dtype, shape, await readBytes(info, chunks()), t.label);
        else if (t.how === 'f32') tensor = be.weight('f32', shape, await readF32(info, chunks()), t.label);
        else {
          const q = t.dtype as QuantDType;
          tensor = be.weight(q, shape, await readRequantized(info, q, chunks()), t.label);
        }
      }
      tensors.push(tensor);
      if (t.layer === null) global[t.weight as keyof typeof global] = tensor;
      else layers[t.layer]![t.weight as keyof LlamaLayer<T>] = tensor;
    }
    progress.check();
    const tokenEmbedding = global.tokenEmbedding!;
    return {
      be,
      config,
      tokenEmbedding,
      layers: layers as LlamaLayer<T>[],
      rmsFinal: global.rmsFinal!,
      wcls: config.sharedClassifier ? tokenEmbedding : global.wcls!,
      tensors,
    };
  } catch (e) {
    for (const t of tensors) be.destroy(t);
    throw e;
  }
}

/** A matrix's bytes per row on the backend (it may be split between rows); undefined for a norm. */
function rowBytes(t: GgufLoadTensor): number | undefined {
  return t.shape.length === 2 ? byteSize([1, t.shape[1]!], t.dtype) : undefined;
}

/** The end of a LIMIT_EXCEEDED message: what would make the model fit. */
function fixFor(plan: readonly GgufLoadTensor[], max: number, opts: GgufLoadOptions): string {
  const over = plan.find((t) => (rowBytes(t) ?? t.bytes) > max);
  const generic = 'Pick a smaller model, or a browser and GPU with a larger storage-buffer binding limit.';
  if (!over) return generic;
  if (over.weight === 'tokenEmbedding')
    return opts.embedding !== undefined && opts.embedding !== 'auto'
      ? "Let the loader choose the embedding's type (embedding: 'auto')."
      : generic;
  if (over.dtype === 'f32')
    return "Load the F16/F32 matrices quantized (floatMatrices: 'q8_0' or 'q4_0'), or pick a quantized (Q4_0) file.";
  if (over.how === 'requantize' && opts.kQuants === 'q8_0')
    return "Keep the K-quant matrices as they are (kQuants: 'native').";
  return generic;
}

/** Progress over the whole load; abort checks before every read. */
class Progress {
  private done = 0;
  constructor(
    private readonly total: number,
    private readonly opts: StreamLoadOptions,
  ) {}
  check(): void {
    this.opts.signal?.throwIfAborted();
  }
  start(tensor: string): void {
    this.check();
    this.opts.onProgress?.({ bytesDone: 0, bytesTotal: this.total, tensor });
  }
  /** Report bytes read for `tensor`. */
  add(bytes: number, tensor: string): void {
    this.done += bytes;
    this.opts.onProgress?.({ bytesDone: this.done, bytesTotal: this.total, tensor });
  }
  /** The chunks of one tensor, with an abort check before each read and progress after it. */
  async *chunks<C extends { bytes: Uint8Array }>(it: AsyncGenerator<C>, tensor: string): AsyncGenerator<C> {
    for (;;) {
      this.check();
      const r = await it.next();
      if (r.done) return;
      this.add(r.value.bytes.byteLength, tensor);
      yield r.value;
    }
  }
}

type Chunks = AsyncGenerator<{ start: number; count: number; bytes: Uint8Array }>;

/** The tensor's bytes as stored, assembled from its chunks. */
async function readBytes(info: GgufTensorInfo, chunks: Chunks): Promise<Uint8Array> {
  const out = new Uint8Array(info.byteSize);
  let o = 0;
  for await (const c of chunks) {
    out.set(c.bytes, o);
    o += c.bytes.byteLength;
  }
  return out;
}

/** The tensor in f32, dequantized chunk by chunk. */
async function readF32(info: GgufTensorInfo, chunks: Chunks): Promise<Float32Array> {
  const out = new Float32Array(info.nElements);
  for await (const c of chunks) out.set(dequantizeGgml(info.type, c.bytes, c.count, info.name), c.start);
  return out;
}

/** The tensor as GGUF blocks of `to`, each chunk dequantized and quantized again on its own. */
async function readRequantized(info: GgufTensorInfo, to: QuantDType, chunks: Chunks): Promise<Uint8Array> {
  const out = new Uint8Array((info.nElements / QK) * BLOCK_BYTES[to]);
  for await (const c of chunks) {
    const v = dequantizeGgml(info.type, c.bytes, c.count, info.name);
    out.set(quantize(to, v), (c.start / QK) * BLOCK_BYTES[to]);
  }
  return out;
}
