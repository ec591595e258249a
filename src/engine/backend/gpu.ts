/** The GPU backend: each op records its WGSL kernel(s) on the `Gpu`'s encoder. */
import type { Gpu } from '../gpu/gpu.ts';
import { numel, type DType, type Tensor } from '../gpu/tensor.ts';
import * as GpuOps from '../ops/index.ts';
import { EngineError } from '../errors.ts';
import { isWeightDType, uploadWeightAny } from '../quant-gpu.ts';
import type { Backend, Ops } from './types.ts';

export class GpuBackend implements Backend<Tensor> {
  readonly kind = 'gpu';
  readonly ops: Ops<Tensor>;
  get maxTensorBytes(): number {
    const l = this.gpu.limits;
    return Math.min(l.maxBufferSize ?? Infinity, l.maxStorageBufferBindingSize ?? Infinity);
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
    // f32 values (quantized here for quantized dtypes) or the file's bytes (quant-gpu.ts header)
    return uploadWeightAny(this.gpu, dtype, data, shape[0], shape[1], label);
  }
  write(t: Tensor, data: Float32Array | Uint32Array | Int32Array): void {
    this.gpu.upload(t, data);
  }
  zero(t: Tensor): void {
    this.gpu.zero(t);
  }
  copy(src: Tensor, dst: Tensor, elements: number): void {
    this.gpu.copy(src, dst, elements * 4);
  }
  async read(t: Tensor): Promise<Float32Array> {
    return new Float32Array(await this.gpu.readBytes(t, 0, numel(t.shape) * 4));
  }
  async readMany(ts: readonly Tensor[]): Promise<Float32Array[]> {
    const bufs = await this.gpu.readRanges(
      ts.map((t) => ({ buffer: t.buffer, byteOffset: 0, byteLength: numel(t.shape) * 4 })),
    );
    return bufs.map((b) => new Float32Array(b));
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
    this.gpu.destroyBuffer(t.buffer);
  }
}
