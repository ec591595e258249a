/**
 * One model, two backends. The model, the autograd tape and the sampler are written once against
 * `Backend<T>`; `GpuBackend` runs the WGSL kernels, `CpuBackend` runs the plain-TS references
 * (the law the kernels are tested against, and `--backend cpu` in the CLI). Every op has the
 * reference's signature with arrays replaced by the backend's tensor type.
 */
import type { DType } from '../gpu/tensor.ts';
import type * as RefOps from '../ref/index.ts';

export interface BackendTensor {
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly label: string;
}

type LiftArg<A, T> = [A] extends [ArrayLike<number>]
  ? T
  : [A] extends [ArrayLike<number> | null]
    ? T | null
    : A;
type LiftArgs<A extends readonly unknown[], T> = { [K in keyof A]: LiftArg<A[K], T> };
type Lift<F, T> = F extends (...args: infer A) => infer R ? (...args: LiftArgs<A, T>) => R : never;

/** Every reference op, lifted to the backend's tensor type. */
export type Ops<T> = { [K in keyof typeof RefOps]: Lift<(typeof RefOps)[K], T> };

export interface Backend<T extends BackendTensor> {
  readonly kind: 'gpu' | 'cpu';
  readonly ops: Ops<T>;
  /** Largest tensor this backend can hold in one piece (the device's binding limit; ∞ on the CPU). */
  readonly maxTensorBytes: number;
  /** f16 activations are possible (a GPU with `shader-f16`; never on the CPU). */
  readonly f16: boolean;
  /** Scratch tensor (pooled on the GPU); contents undefined. */
  scratch(shape: readonly number[], label: string, dtype?: DType): T;
  /** Zero-filled scratch tensor. */
  zeros(shape: readonly number[], label: string, dtype?: DType): T;
  /** Returns a scratch tensor to the pool (idempotent). */
  release(t: T): void;
  /**
   * Dedicated zero-filled tensor, made on the device (a WebGPU buffer starts zeroed): no host array
   * of its size is ever built, which matters for a 7B's KV cache (128 MiB per layer and side).
   */
  empty(shape: readonly number[], label: string, dtype?: DType): T;
  /** Dedicated tensor holding data (weights, state). */
  fromData(shape: readonly number[], data: Float32Array | Uint32Array | Int32Array, label: string): T;
  /**
   * A frozen weight (N,K) in `dtype`: f32 data (quantized on the way for a quantized dtype), or the
   * file's bytes: GGUF blocks for q8_0 / q4_0 / q4_k / q6_k, MLC's q-words then f16 scales for
   * q4f16_1 (quant-gpu.ts). The CPU backend dequantizes (the reference computes with the exact
   * values the GPU dequantizes to).
   */
  weight(dtype: DType, shape: readonly [number, number], data: Float32Array | Uint8Array, label: string): T;
  write(t: T, data: Float32Array | Uint32Array | Int32Array): void;
  zero(t: T): void;
  /** Copies `elements` 4-byte words from `src` (from word `srcOffset`) into `dst` (from word `dstOffset`). */
  copy(src: T, dst: T, elements: number, srcOffset?: number, dstOffset?: number): void;
  read(t: T): Promise<Float32Array>;
  /** Several tensors in one round trip (one map on the GPU). */
  readMany(ts: readonly T[]): Promise<Float32Array[]>;
  readU32(t: T): Promise<Uint32Array>;
  /** Submits recorded work (no-op on the CPU). */
  flush(): void;
  sync(): Promise<void>;
  /** Frees a dedicated tensor. */
  destroy(t: T): void;
}
