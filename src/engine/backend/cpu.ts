/** The CPU backend: the plain-TS references, run on Float32Arrays. Slow, readable, the law. */
import { EngineError } from '../errors.ts';
import { numel, type DType } from '../gpu/tensor.ts';
import { dequantizeWeight, isWeightDType } from '../quant-gpu.ts';
import * as RefOps from '../ref/index.ts';
import type { Backend, BackendTensor, Ops } from './types.ts';

export interface CpuTensor extends BackendTensor {
  readonly data: Float32Array | Float64Array | Uint32Array;
}

function make(shape: readonly number[], label: string, dtype: DType, f64 = false): CpuTensor {
  const n = numel(shape);
  const data =
    dtype === 'u32' || dtype === 'i32' ? new Uint32Array(n) : f64 ? new Float64Array(n) : new Float32Array(n);
  return { shape: [...shape], label, dtype: dtype === 'u32' || dtype === 'i32' ? dtype : 'f32', data };
}

function unwrap(a: unknown): unknown {
  return a !== null && typeof a === 'object' && 'data' in a && 'shape' in a ? (a as CpuTensor).data : a;
}

/**
 * @param precision 'f32' (default) computes like the GPU; 'f64' runs the same references in double
 * precision, for finite-difference checks of composite ops and of whole models.
 */
export class CpuBackend implements Backend<CpuTensor> {
  readonly kind = 'cpu';
  readonly f16: boolean = false;
  private readonly f64: boolean;
  readonly ops: Ops<CpuTensor>;
  readonly maxTensorBytes = Infinity;
  constructor(precision: 'f32' | 'f64' = 'f32') {
    this.f64 = precision === 'f64';
    const ops: Record<string, unknown> = {};
    for (const [name, fn] of Object.entries(RefOps)) {
      if (typeof fn === 'function') {
        ops[name] = (...args: unknown[]) => (fn as (...a: unknown[]) => unknown)(...args.map(unwrap));
      }
    }
    this.ops = ops as Ops<CpuTensor>;
  }
  scratch(shape: readonly number[], label: string, dtype: DType = 'f32'): CpuTensor {
    return make(shape, label, dtype, this.f64);
  }
  zeros(shape: readonly number[], label: string, dtype: DType = 'f32'): CpuTensor {
    return make(shape, label, dtype, this.f64);
  }
  empty(shape: readonly number[], label: string, dtype: DType = 'f32'): CpuTensor {
    return make(shape, label, dtype, this.f64);
  }
  release(): void {}
  fromData(
    shape: readonly number[],
    data: Float32Array | Uint32Array | Int32Array,
    label: string,
  ): CpuTensor {
    if (data.length !== numel(shape)) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `"${label}": ${data.length} values for shape [${shape.join(', ')}]`,
      );
    }
    const t = make(shape, label, data instanceof Float32Array ? 'f32' : 'u32', this.f64);
    t.data.set(
      data instanceof Int32Array ? new Uint32Array(data.buffer, data.byteOffset, data.length) : data,
    );
    return t;
  }
  weight(
    dtype: DType,
    shape: readonly [number, number],
    data: Float32Array | Uint8Array,
    label: string,
  ): CpuTensor {
    if (data instanceof Float32Array) return this.fromData(shape, data, label);
    if (!isWeightDType(dtype) || dtype === 'f32') {
      throw new EngineError(
        'BAD_ARGUMENT',
        `weight "${label}": file bytes need a quantized weight type (q8_0, q4_0, q4f16_1, q4_k or q6_k), not ${dtype}; f32 weights take a Float32Array.`,
      );
    }
    // the exact values the GPU kernels dequantize to (quant-gpu.ts header: what `data` holds)
    return this.fromData(shape, dequantizeWeight(dtype, data, shape[0], shape[1], label), label);
  }
  /** Writes like the GPU: values into float tensors (integer arrays are float32 bit patterns). */
  write(t: CpuTensor, data: Float32Array | Uint32Array | Int32Array): void {
    if (t.data instanceof Uint32Array) {
      t.data.set(
        data instanceof Uint32Array ? data : new Uint32Array(data.buffer, data.byteOffset, data.length),
      );
    } else {
      t.data.set(
        data instanceof Float32Array ? data : new Float32Array(data.buffer, data.byteOffset, data.length),
      );
    }
  }
  zero(t: CpuTensor): void {
    t.data.fill(0);
  }
  copy(src: CpuTensor, dst: CpuTensor, elements: number, srcOffset = 0, dstOffset = 0): void {
    dst.data.set(src.data.subarray(srcOffset, srcOffset + elements), dstOffset);
  }
  async read(t: CpuTensor): Promise<Float32Array> {
    if (t.data instanceof Uint32Array) return new Float32Array(t.data.slice().buffer);
    return Float32Array.from(t.data);
  }
  async readMany(ts: readonly CpuTensor[]): Promise<Float32Array[]> {
    return Promise.all(ts.map((t) => this.read(t)));
  }
  async readU32(t: CpuTensor): Promise<Uint32Array> {
    if (t.data instanceof Uint32Array) return t.data.slice();
    return new Uint32Array(Float32Array.from(t.data).buffer);
  }
  flush(): void {}
  async sync(): Promise<void> {}
  destroy(): void {}
}
