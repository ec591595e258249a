/**
 * The engine's handle on one GPUDevice: buffers and tensors (labelled, limit-checked, pooled),
 * recording of kernel dispatches into one command encoder, uniforms from a per-flush arena,
 * readback only when asked, and `device.lost` turned into a state and a typed error.
 *
 * @example
 *   const gpu = await Gpu.create(navigator.gpu);
 *   const x = gpu.tensor([4, 64], 'x');
 *   rmsnormForward(gpu, out, rstd, x, w, 4, 64, 1e-5); // records a dispatch
 *   const y = await gpu.read(out);                    // submits, then maps
 */
import { EngineError, formatBytes } from '../errors.ts';
import { requestDevice, type DeviceRequest, type GpuInfo } from './device.ts';
import type { GemvConfig } from '../ops/matmul.ts';
import { BindGroupCache } from './bindgroups.ts';
import { getPipeline, type KernelSpec } from './pipelines.ts';
import { BufferPool } from './pool.ts';
import type { Profiler } from './profiler.ts';
import { byteSize, numel, type DType, type Tensor } from './tensor.ts';

export type GpuState = 'ready' | 'lost' | 'destroyed';

/** A uniform field: plain numbers are u32; wrap floats with `f32()` and signed ints with `i32()`. */
export type Param = number | { f32: number } | { i32: number };
export const f32 = (v: number): Param => ({ f32: v });
export const i32 = (v: number): Param => ({ i32: v });

export type Binding = Tensor | GPUBuffer;

const STORAGE = 0x80 | 0x08 | 0x04; // STORAGE | COPY_DST | COPY_SRC (GPUBufferUsage without the global)
const SLOT = 256; // uniform slot stride: minUniformBufferOffsetAlignment is ≤ 256 everywhere
const ARENA_SLOTS = 2048;

/** See `Gpu.watchErrors`. */
export interface GpuErrorWatch {
  /** Throws what the GPU reported since the last check; watches on unless `again` is false. */
  check(again?: boolean): Promise<void>;
  close(): Promise<void>;
}

export class Gpu {
  readonly device: GPUDevice;
  readonly info: GpuInfo;
  state: GpuState = 'ready';
  lostMessage = '';
  readonly pool: BufferPool;
  private encoder: GPUCommandEncoder | null = null;
  private pass: GPUComputePassEncoder | null = null;
  private arena: GPUBuffer;
  private params = new ArrayBuffer(SLOT * ARENA_SLOTS);
  private paramsU32 = new Uint32Array(this.params);
  private paramsI32 = new Int32Array(this.params);
  private paramsF32 = new Float32Array(this.params);
  /** Free MAP_READ buffers for readback. */
  private staging: GPUBuffer[] = [];
  private slots = 0;
  private lostListeners = new Set<(message: string) => void>();
  /** Dispatches recorded since creation (for benchmarks and tests). */
  dispatches = 0;
  /**
   * Kernel shapes measured for this device, replacing the defaults: `gemv` maps a decode-kernel
   * class (ops/matmul.ts `gemvKey`) to its shape. Set by benchmarks (`npm run bench -- --tune`).
   */
  tuning: { gemv?: Record<string, GemvConfig> } = {};
  /** Bind groups made once and reused (bindgroups.ts; on hardware adapters). */
  readonly bindGroups: BindGroupCache;
  /** When set, every dispatch gets its own timed pass (see profiler.ts). */
  profiler: Profiler | null = null;
  /**
   * The first GPU error that no error scope caught (WebGPU only logs those): thrown, as a typed
   * error, by the next readback or sync instead of letting a result computed by an invalid command
   * buffer come back as if it were right.
   */
  private uncaught: GPUError | null = null;
  /** Every buffer this context created and has not destroyed (tests check nothing leaks). */
  private live = new Set<GPUBuffer>();

  private constructor(device: GPUDevice, info: GpuInfo) {
    this.device = device;
    this.info = info;
    this.bindGroups = new BindGroupCache(!info.software);
    this.pool = new BufferPool(
      (size, usage, label) => this.createBuffer(size, usage, label),
      (b) => this.destroyBuffer(b),
    );
    this.arena = device.createBuffer({
      label: 'uniform-arena',
      size: SLOT * ARENA_SLOTS,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.addEventListener('uncapturederror', (ev) => {
      this.uncaught ??= (ev as GPUUncapturedErrorEvent).error;
    });
    void device.lost.then((info) => {
      if (this.state === 'destroyed') return;
      this.state = 'lost';
      this.lostMessage = info.message || String(info.reason);
      for (const cb of this.lostListeners) cb(this.lostMessage);
    });
  }

  static async create(gpu: GPU | undefined, req: DeviceRequest = {}): Promise<Gpu> {
    const { device, info } = await requestDevice(gpu, req);
    return new Gpu(device, info);
  }

  /** Wraps an existing device (e.g. one shared with web-llm). */
  static fromDevice(device: GPUDevice, info: GpuInfo): Gpu {
    return new Gpu(device, info);
  }

  onLost(cb: (message: string) => void): () => void {
    this.lostListeners.add(cb);
    return () => this.lostListeners.delete(cb);
  }

  /** Throws the typed error for a lost or destroyed device. */
  assertReady(): void {
    if (this.state === 'lost') {
      throw new EngineError(
        'DEVICE_LOST',
        `The GPU device was lost (${this.lostMessage || 'no reason given'}). Reload the model; training resumes from its last checkpoint.`,
      );
    }
    if (this.state === 'destroyed') throw new EngineError('DISPOSED', 'This GPU context was closed.');
  }

  get limits(): Record<string, number> {
    return this.info.limits;
  }

  /** Checks a size against the device's limits before allocating, with a message that says what to change. */
  checkSize(bytes: number, label: string): void {
    const maxBuf = this.limits.maxBufferSize ?? Infinity;
    const maxBind = this.limits.maxStorageBufferBindingSize ?? Infinity;
    const max = Math.min(maxBuf, maxBind);
    if (bytes > max) {
      throw new EngineError(
        'LIMIT_EXCEEDED',
        `Tensor "${label}" needs ${formatBytes(bytes)} but this GPU allows at most ${formatBytes(max)} per buffer. Use a smaller model, fewer samples or a shorter context.`,
      );
    }
  }

  createBuffer(size: number, usage: number, label: string): GPUBuffer {
    this.assertReady();
    this.checkSize(size, label);
    try {
      const b = this.device.createBuffer({ label, size: Math.max(4, Math.ceil(size / 4) * 4), usage });
      this.live.add(b);
      return b;
    } catch (cause) {
      throw new EngineError(
        'OUT_OF_MEMORY',
        `Could not allocate ${formatBytes(size)} for "${label}": ${String(cause)}`,
        { cause },
      );
    }
  }

  /** Destroys a buffer made by `createBuffer` (idempotent). */
  destroyBuffer(b: GPUBuffer): void {
    if (!this.live.delete(b)) return;
    this.bindGroups.forget(b);
    // Recorded work may still name this buffer: submit it first (destroy waits for the queue).
    if (this.encoder) this.flush();
    b.destroy();
  }

  /** Buffers alive and their bytes (the uniform arena and readback staging are not counted). */
  get liveBuffers(): { count: number; bytes: number } {
    let bytes = 0;
    for (const b of this.live) bytes += b.size;
    return { count: this.live.size, bytes };
  }

  /** A dedicated (not pooled) storage tensor, zero-filled by WebGPU. For weights and long-lived state. */
  tensor(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    const byteLength = byteSize(shape, dtype);
    const buffer = this.createBuffer(byteLength, STORAGE, label);
    return { buffer, shape: [...shape], dtype, label, byteLength };
  }

  /** A pooled storage tensor (contents undefined until written; call `zero` if you need zeros). */
  scratch(shape: readonly number[], label: string, dtype: DType = 'f32'): Tensor {
    const byteLength = byteSize(shape, dtype);
    const buffer = this.pool.acquire(byteLength, STORAGE, label);
    return { buffer, shape: [...shape], dtype, label, byteLength };
  }

  release(t: Tensor): void {
    this.pool.release(t.buffer);
  }

  /**
   * Writes data into a tensor. Work recorded before is submitted first, so the write lands after
   * it in queue order (writeBuffer would otherwise overtake unsubmitted dispatches).
   */
  upload(t: Tensor, data: ArrayBufferView, byteOffset = 0): void {
    this.assertReady();
    if (this.encoder) this.flush();
    if (data.byteLength + byteOffset > t.buffer.size) {
      throw new EngineError('BAD_ARGUMENT', `upload of ${data.byteLength} bytes overflows "${t.label}"`);
    }
    if (data.byteLength % 4 !== 0 || byteOffset % 4 !== 0) {
      throw new EngineError('BAD_ARGUMENT', `upload to "${t.label}" must be a multiple of 4 bytes`);
    }
    this.device.queue.writeBuffer(
      t.buffer,
      byteOffset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Creates a dedicated tensor holding `data`. */
  fromData(shape: readonly number[], data: Float32Array | Uint32Array | Int32Array, label: string): Tensor {
    const dtype: DType = data instanceof Float32Array ? 'f32' : data instanceof Int32Array ? 'i32' : 'u32';
    if (data.length !== numel(shape)) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `"${label}": ${data.length} values for shape [${shape.join(', ')}]`,
      );
    }
    const t = this.tensor(shape, label, dtype);
    this.upload(t, data);
    return t;
  }

  private ensurePass(): GPUComputePassEncoder {
    this.assertReady();
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'engine' });
    if (!this.pass) this.pass = this.encoder.beginComputePass();
    return this.pass;
  }

  /** The current command encoder (recorded dispatches end their pass first). */
  commandEncoder(): GPUCommandEncoder {
    return this.ensureEncoder();
  }

  private ensureEncoder(): GPUCommandEncoder {
    this.assertReady();
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (!this.encoder) this.encoder = this.device.createCommandEncoder({ label: 'engine' });
    return this.encoder;
  }

  /**
   * Records one dispatch. `bindings` fill @binding(1..n) of @group(0) in order; the uniform struct
   * built from `params` is @binding(0) (omit params when the kernel has no uniforms: then bindings
   * start at 0).
   */
  dispatch(
    kernel: KernelSpec,
    workgroups: readonly [number, number?, number?],
    bindings: readonly Binding[],
    params?: readonly Param[],
  ): void {
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension ?? 65535;
    const [x, y = 1, z = 1] = workgroups;
    if (x > maxWg || y > maxWg || z > maxWg) {
      throw new EngineError(
        'LIMIT_EXCEEDED',
        `${kernel.op}.${kernel.entry}: ${x}×${y}×${z} workgroups exceed this GPU's ${maxWg} per dimension.`,
      );
    }
    if (x === 0 || y === 0 || z === 0) return;
    if (params && this.slots >= ARENA_SLOTS) this.flush();
    const timing = this.profiler?.next(`${kernel.op}.${kernel.entry}`) ?? null;
    const pass = timing
      ? this.ensureEncoder().beginComputePass({ timestampWrites: timing })
      : this.ensurePass();
    const pipeline = getPipeline(this.device, kernel);
    let uniform: [number, number] | null = null;
    if (params) {
      const slot = this.slots++;
      const base = (slot * SLOT) / 4;
      params.forEach((p, i) => {
        if (typeof p === 'number') this.paramsU32[base + i] = p;
        else if ('f32' in p) this.paramsF32[base + i] = p.f32;
        else this.paramsI32[base + i] = p.i32;
      });
      uniform = [slot * SLOT, Math.max(16, Math.ceil((params.length * 4) / 16) * 16)];
    }
    const buffers = bindings.map((b) => ('buffer' in b ? b.buffer : b));
    const label = `${kernel.op}.${kernel.entry}`;
    const bindGroup = this.bindGroups.get(this.device, pipeline, label, this.arena, uniform, buffers);
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    pass.dispatchWorkgroups(x, y, z);
    if (timing) pass.end();
    this.dispatches++;
  }

  /** Fills a tensor (or a byte range of it) with zeros, in order with the recorded dispatches. */
  zero(t: Binding, byteOffset = 0, byteLength?: number): void {
    const buffer = 'buffer' in t ? t.buffer : t;
    const len = byteLength ?? ('byteLength' in t ? t.byteLength : buffer.size) - byteOffset;
    this.ensureEncoder().clearBuffer(buffer, byteOffset, Math.ceil(len / 4) * 4);
  }

  copy(src: Binding, dst: Binding, bytes: number, srcOffset = 0, dstOffset = 0): void {
    const s = 'buffer' in src ? src.buffer : src;
    const d = 'buffer' in dst ? dst.buffer : dst;
    this.ensureEncoder().copyBufferToBuffer(s, srcOffset, d, dstOffset, bytes);
  }

  /** Submits everything recorded so far. */
  flush(): void {
    if (!this.encoder) return;
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
    if (this.slots > 0) {
      this.device.queue.writeBuffer(this.arena, 0, this.params, 0, this.slots * SLOT);
      this.slots = 0;
    }
    const cb = this.encoder.finish();
    this.encoder = null;
    this.device.queue.submit([cb]);
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.assertReady();
    this.throwUncaught();
  }

  /** Throws (once) the GPU error that no scope caught since the last check. */
  private throwUncaught(): void {
    const e = this.uncaught;
    if (!e) return;
    this.uncaught = null;
    if (e.constructor.name === 'GPUOutOfMemoryError')
      throw new EngineError('OUT_OF_MEMORY', `The GPU ran out of memory: ${e.message}`);
    throw new EngineError(
      'VALIDATION',
      `The GPU refused work it was given, so the last results cannot be trusted: ${e.message}`,
    );
  }

  /** Reads bytes back (a boundary: loss, sampled tokens, a picture for the UI). */
  async readBytes(t: Binding, byteOffset = 0, byteLength?: number): Promise<ArrayBuffer> {
    const buffer = 'buffer' in t ? t.buffer : t;
    const len = byteLength ?? ('byteLength' in t ? t.byteLength : buffer.size) - byteOffset;
    return (await this.readRanges([{ buffer, byteOffset, byteLength: len }]))[0]!;
  }

  /**
   * Reads several ranges back with one copy pass, one submit and one map (a step's small metrics:
   * per-layer α, β, pair accuracy), instead of one round trip each.
   */
  async readRanges(
    ranges: readonly { buffer: GPUBuffer; byteOffset: number; byteLength: number }[],
  ): Promise<ArrayBuffer[]> {
    const offsets: number[] = [];
    let size = 0;
    for (const r of ranges) {
      offsets.push(size);
      size += Math.ceil(r.byteLength / 4) * 4;
    }
    if (size === 0) return ranges.map(() => new ArrayBuffer(0));
    // Staging buffers are reused (a decode loop reads logits every step): take a free one that is
    // large enough, or make one; it goes back to the list once unmapped.
    const i = this.staging.findIndex((b) => b.size >= size);
    const staging =
      i >= 0
        ? this.staging.splice(i, 1)[0]!
        : this.device.createBuffer({
            label: 'readback',
            size: BufferPool.bucket(size),
            usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
          });
    const enc = this.ensureEncoder();
    ranges.forEach((r, i) =>
      enc.copyBufferToBuffer(r.buffer, r.byteOffset, staging, offsets[i]!, Math.ceil(r.byteLength / 4) * 4),
    );
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ, 0, size);
    } catch (cause) {
      staging.destroy();
      this.assertReady();
      throw cause;
    }
    const mapped = staging.getMappedRange(0, size);
    const out = ranges.map((r, i) => mapped.slice(offsets[i]!, offsets[i]! + r.byteLength));
    staging.unmap();
    if (this.staging.length < 8) this.staging.push(staging);
    else staging.destroy();
    this.throwUncaught();
    return out;
  }

  async read(t: Tensor): Promise<Float32Array> {
    return new Float32Array(await this.readBytes(t));
  }

  async readU32(t: Tensor): Promise<Uint32Array> {
    return new Uint32Array(await this.readBytes(t));
  }

  /**
   * Runs `fn` inside validation and out-of-memory error scopes; a WebGPU error becomes a typed
   * EngineError (tests wrap every kernel in this so no validation error goes unseen).
   */
  async checked<T>(fn: () => T | Promise<T>): Promise<T> {
    const watch = this.watchErrors();
    let result: T | undefined;
    try {
      result = await fn();
    } catch (e) {
      // A WebGPU error explains a JS failure better than the failure itself (e.g. a failed map).
      await watch.check(false);
      throw e;
    }
    await watch.check(false);
    return result as T;
  }

  /**
   * Watches for what the GPU reports (out of memory, validation) across many submissions, e.g. a
   * training run: a browser reports a failed allocation as a GPU error, not a throw. `check()`
   * throws what was reported since the last check as a typed EngineError and watches on;
   * `close()` stops without throwing. Scopes nest: `checked` inside a watch is fine.
   */
  watchErrors(): GpuErrorWatch {
    const device = this.device;
    let open = true;
    const push = () => {
      device.pushErrorScope('out-of-memory');
      device.pushErrorScope('validation');
      open = true;
    };
    push();
    return {
      check: async (again = true) => {
        if (!open) return;
        open = false;
        this.flush();
        const validation = await device.popErrorScope();
        const oom = await device.popErrorScope();
        if (oom) throw new EngineError('OUT_OF_MEMORY', `The GPU ran out of memory: ${oom.message}`);
        if (validation) throw new EngineError('VALIDATION', `WebGPU validation error: ${validation.message}`);
        if (again) push();
      },
      close: async () => {
        if (!open) return;
        open = false;
        try {
          await device.popErrorScope();
          await device.popErrorScope();
        } catch {
          // a lost device has no scopes left to pop
        }
      },
    };
  }

  /**
   * Whether the device is lost, giving `device.lost` up to `graceMs` to settle: a device lost
   * mid-work fails the work in flight (a readback's map) before `device.lost` resolves, so a
   * failure that is not the engine's own asks this before it is reported.
   */
  async isLost(graceMs = 1000): Promise<boolean> {
    if (this.state === 'ready')
      await Promise.race([this.device.lost, new Promise((r) => setTimeout(r, graceMs))]);
    return this.state === 'lost';
  }

  destroy(): void {
    if (this.state === 'destroyed') return;
    this.state = 'destroyed';
    this.pass = null;
    this.encoder = null;
    this.pool.destroy();
    for (const b of this.staging) b.destroy();
    this.staging = [];
    this.arena.destroy();
    this.device.destroy();
  }
}
