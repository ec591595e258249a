/**
 * The GPU backend: each op records its WGSL kernel(s) on the `Gpu`'s encoder.
 *
 * Weights larger than one binding (`maxTensorBytes` = min(maxBufferSize,
 * maxStorageBufferBindingSize)) are split by rows here (`uploadWeightSplit`): parts of as many whole
 * rows as fit one binding (the last one shorter), each a complete (rows, K) weight in its own
 * buffer, listed in `Tensor.parts`. Why a tensor with parts rather than a new tensor type or a
 * wrapper op: the model, LoRA, the trainer and the runner pass weights to `ops.matmulForward`,
 * `ops.matmulBackwardInput` and `ops.embeddingForward` and never look inside them, so only those
 * ops (ops/matmul.ts, ops/embedding.ts) and this backend's read / destroy learn about parts; a
 * split tensor's `buffer` throws, so a kernel that would bind it whole fails loudly instead of
 * reading one part.
 *
 * Each part is cut from the data as the files store it, at row boundaries: f32 rows; GGUF blocks
 * (q8_0, q4_0, q4_k, q6_k: a row is K / block whole blocks, rows back to back); MLC q4f16_1, which
 * is NOT row-major by blocks (all rows' nibble words, then all rows' f16 scales): a part takes its
 * rows' words and its rows' scales. Each part is then packed into its own GPU layout (quant.ts,
 * quant-gpu.ts: quants then scales per buffer), so the kernels see an ordinary (rows, K) weight.
 * f32 data for a quantized dtype is quantized whole first: the parts hold exactly the unsplit bytes.
 */
import { EngineError, formatBytes } from '../errors.ts';
import type { Gpu } from '../gpu/gpu.ts';
import { unpackKvF16 } from '../kvcache.ts';
import { f32ToF16 } from '../quant.ts';
import { byteSize, numel, type DType, type Tensor, type TensorPart } from '../gpu/tensor.ts';
import * as GpuOps from '../ops/index.ts';
import {
  checkWeightBytes,
  fileBytes,
  isWeightDType,
  quantizeWeight,
  uploadWeightAny,
  type WeightDType,
} from '../quant-gpu.ts';
import type { Backend, Ops } from './types.ts';

/** The largest tensor `gpu` binds in one piece: min(maxBufferSize, maxStorageBufferBindingSize). */
export function bindingLimit(gpu: Gpu): number {
  const l = gpu.limits;
  return Math.min(l.maxBufferSize ?? Infinity, l.maxStorageBufferBindingSize ?? Infinity);
}

/**
 * Rows per part when a (rows, K) weight of `dtype` is split for `maxBytes` per buffer: the most
 * whole rows whose GPU layout (`byteSize`) fits; `rows` when the whole weight fits; 0 when not even
 * one row does (the weight cannot be split).
 */
export function rowsPerPart(dtype: DType, rows: number, K: number, maxBytes: number): number {
  const whole = byteSize([rows, K], dtype);
  if (whole <= maxBytes) return rows;
  let r = Math.min(rows, Math.floor((maxBytes * rows) / whole));
  while (r > 0 && byteSize([r, K], dtype) > maxBytes) r--;
  while (r < rows && byteSize([r + 1, K], dtype) <= maxBytes) r++;
  return r;
}

/** A weight split by rows: its parts hold the data; binding it whole is an error (see the header). */
class SplitWeight implements Tensor {
  readonly shape: readonly number[];
  readonly byteLength: number;
  constructor(
    shape: readonly [number, number],
    readonly dtype: DType,
    readonly label: string,
    readonly parts: readonly TensorPart[],
  ) {
    this.shape = [...shape];
    this.byteLength = parts.reduce((a, p) => a + p.tensor.byteLength, 0);
  }
  get buffer(): GPUBuffer {
    throw new EngineError(
      'BAD_ARGUMENT',
      `"${this.label}" is split across ${this.parts.length} buffers (it is larger than one binding); only the matmuls, the embedding gather, read and destroy take a split weight.`,
    );
  }
}

/** Rows [r0, r1) of a (rows, K) weight's data as the files store it (see the header). */
function rowsOf(
  dtype: WeightDType,
  data: Float32Array | Uint8Array,
  rows: number,
  K: number,
  r0: number,
  r1: number,
): Float32Array | Uint8Array {
  if (data instanceof Float32Array) return data.subarray(r0 * K, r1 * K);
  if (dtype === 'f32') throw new Error('unreachable: f32 weights are checked to be a Float32Array');
  if (dtype === 'q4f16_1') {
    const q = K / 2, // nibble-word bytes per row
      s = K / 16; // f16 scale bytes per row (K / 32 groups)
    const out = new Uint8Array((r1 - r0) * (q + s));
    out.set(data.subarray(r0 * q, r1 * q));
    out.set(data.subarray(rows * q + r0 * s, rows * q + r1 * s), (r1 - r0) * q);
    return out;
  }
  const b = fileBytes(dtype, 1, K); // whole blocks per row, rows back to back
  return data.subarray(r0 * b, r1 * b);
}

/**
 * A (rows, K) frozen weight on the GPU (data as `uploadWeightAny` takes it), in one buffer when
 * its GPU layout fits `maxBytes`, else split by rows into parts of `rowsPerPart` rows (the last
 * shorter; see the header). Throws LIMIT_EXCEEDED when one row alone is over `maxBytes`,
 * SHAPE_MISMATCH for data of the wrong size; frees any part made before a failure.
 */
export function uploadWeightSplit(
  gpu: Gpu,
  dtype: WeightDType,
  data: Float32Array | Uint8Array,
  rows: number,
  K: number,
  label: string,
  maxBytes = bindingLimit(gpu),
): Tensor {
  const per = rowsPerPart(dtype, rows, K, maxBytes);
  if (per >= rows) return uploadWeightAny(gpu, dtype, data, rows, K, label);
  if (per === 0) {
    throw new EngineError(
      'LIMIT_EXCEEDED',
      `Weight "${label}" [${rows}, ${K}] ${dtype}: one row needs ${formatBytes(byteSize([1, K], dtype))} but this GPU binds at most ${formatBytes(maxBytes)} per buffer, and a weight is split across buffers only between rows. Pick a smaller model, or a browser and GPU with a larger storage-buffer binding limit.`,
    );
  }
  let src = data;
  if (dtype === 'f32') {
    if (!(data instanceof Float32Array) || data.length !== rows * K) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `weight "${label}": f32 weights take a Float32Array of ${rows * K} values for [${rows}, ${K}].`,
      );
    }
  } else if (data instanceof Float32Array) {
    src = quantizeWeight(dtype, data, rows, K, label);
  } else {
    checkWeightBytes(dtype, data, rows, K, label);
  }
  const parts: TensorPart[] = [];
  try {
    for (let r0 = 0; r0 < rows; r0 += per) {
      const r1 = Math.min(rows, r0 + per);
      const part = rowsOf(dtype, src, rows, K, r0, r1);
      parts.push({
        row0: r0,
        rows: r1 - r0,
        tensor: uploadWeightAny(gpu, dtype, part, r1 - r0, K, `${label}[${r0}:${r1}]`),
      });
    }
  } catch (e) {
    for (const p of parts) gpu.destroyBuffer(p.tensor.buffer);
    throw e;
  }
  return new SplitWeight([rows, K], dtype, label, parts);
}

/** Bytes to read back for a tensor's values: f16 ones rounded up to whole words. */
function wordBytes(t: Tensor): number {
  return t.dtype === 'f16' ? Math.ceil(numel(t.shape) / 2) * 4 : numel(t.shape) * 4;
}

/**
 * f32 values as f16 bits, two per u32 word, low half first: round to nearest even with subnormals
 * kept (kvcache.ts `packKvF16` flushes them, the KV cache's own rule).
 */
function packF16(values: Float32Array): Uint32Array {
  const h = new Uint16Array(2 * Math.ceil(values.length / 2));
  for (let i = 0; i < values.length; i++) h[i] = f32ToF16(values[i]!);
  return new Uint32Array(h.buffer);
}

/** The first `n` f16 values of `bytes` (words of f16 pairs), exactly, as f32. */
function unpackF16(bytes: ArrayBuffer, n: number): Float32Array {
  return unpackKvF16(new Uint32Array(bytes)).subarray(0, n);
}

/** The buffers holding a tensor's data, in order: its parts' when split. */
function pieces(t: Tensor): readonly Tensor[] {
  return t.parts ? t.parts.map((p) => p.tensor) : [t];
}

export class GpuBackend implements Backend<Tensor> {
  readonly kind = 'gpu';
  readonly ops: Ops<Tensor>;
  /** The binding limit; a weight over it is split by rows (`weight`), other tensors must fit. */
  get maxTensorBytes(): number {
    return bindingLimit(this.gpu);
  }
  /** The device has `shader-f16`: tensors of dtype f16 and the kernels that take them (ops/act.ts). */
  get f16(): boolean {
    return this.gpu.info.f16;
  }
  constructor(readonly gpu: Gpu) {
    const ops: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(GpuOps)) {
      if (typeof fn === 'function')
        ops[name] = (...args: unknown[]) => (fn as (...a: unknown[]) => unknown)(gpu, ...args);
    }
    this.ops = ops as Ops<Tensor>;
  }
  scratch(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    return this.gpu.scratch(shape, label, dtype);
  }
  zeros(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    const t = this.gpu.scratch(shape, label, dtype);
    this.gpu.zero(t);
    return t;
  }
  release(t: Tensor): void {
    this.gpu.release(t);
  }
  empty(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    return this.gpu.tensor(shape, label, dtype);
  }
  fromData(shape: readonly number[], data: Float32Array | Uint32Array | Int32Array, label: string): Tensor {
    return this.gpu.fromData(shape, data, label);
  }
  weight(
    dtype: DType,
    shape: readonly [number, number],
    data: Float32Array | Uint8Array,
    label: string,
  ): Tensor {
    if (!isWeightDType(dtype)) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `weight "${label}": ${dtype} is not a weight type; use f32, q8_0, q4_0, q4f16_1, q4_k or q6_k.`,
      );
    }
    // f32 values (quantized here for quantized dtypes) or the file's bytes (quant-gpu.ts header);
    // split by rows when larger than one binding (uploadWeightSplit)
    return uploadWeightSplit(this.gpu, dtype, data, shape[0], shape[1], label, this.maxTensorBytes);
  }
  write(t: Tensor, data: Float32Array | Uint32Array | Int32Array): void {
    // an f16 tensor takes f32 values, each rounded to the nearest f16 (ties to even)
    this.gpu.upload(t, t.dtype === 'f16' && data instanceof Float32Array ? packF16(data) : data);
  }
  zero(t: Tensor): void {
    this.gpu.zero(t);
  }
  copy(src: Tensor, dst: Tensor, elements: number, srcOffset = 0, dstOffset = 0): void {
    this.gpu.copy(src, dst, elements * 4, srcOffset * 4, dstOffset * 4);
  }
  async read(t: Tensor): Promise<Float32Array> {
    if (t.parts) return (await this.readMany([t]))[0]!;
    if (t.dtype === 'f16') return unpackF16(await this.gpu.readBytes(t, 0, wordBytes(t)), numel(t.shape));
    return new Float32Array(await this.gpu.readBytes(t, 0, numel(t.shape) * 4));
  }
  /** Several tensors in one round trip; a split (f32) weight comes back whole, its parts joined. */
  async readMany(ts: readonly Tensor[]): Promise<Float32Array[]> {
    const bufs = await this.gpu.readRanges(
      ts.flatMap((t) =>
        pieces(t).map((p) => ({ buffer: p.buffer, byteOffset: 0, byteLength: wordBytes(p) })),
      ),
    );
    let i = 0;
    return ts.map((t) => {
      if (t.dtype === 'f16') return unpackF16(bufs[i++]!, numel(t.shape));
      if (!t.parts) return new Float32Array(bufs[i++]!);
      const out = new Float32Array(numel(t.shape));
      let o = 0;
      for (let k = 0; k < t.parts.length; k++) {
        const v = new Float32Array(bufs[i++]!);
        out.set(v, o);
        o += v.length;
      }
      return out;
    });
  }
  async readU32(t: Tensor): Promise<Uint32Array> {
    return new Uint32Array(await this.gpu.readBytes(t, 0, numel(t.shape) * 4));
  }
  flush(): void {
    this.gpu.flush();
  }
  sync(): Promise<void> {
    return this.gpu.sync();
  }
  destroy(t: Tensor): void {
    for (const p of pieces(t)) this.gpu.destroyBuffer(p.buffer);
  }
}
