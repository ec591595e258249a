/**
 * A buffer pool for activations and gradients: sizes rounded up to a bucket, buffers handed back
 * after a step and reused by the next, so a training loop allocates nothing after its first step.
 * Reuse is safe without waiting: later commands are queued after earlier ones.
 */
export class BufferPool {
  private free = new Map<string, GPUBuffer[]>();
  private live = new Set<GPUBuffer>();
  bytesLive = 0;
  bytesFree = 0;

  constructor(
    private readonly create: (size: number, usage: number, label: string) => GPUBuffer,
    private readonly destroyBuffer: (b: GPUBuffer) => void,
  ) {}

  /** Buckets: 256-byte steps up to 64 KiB, then quarter powers of two (≤ 19% waste). */
  static bucket(size: number): number {
    const s = Math.max(256, Math.ceil(size / 256) * 256);
    if (s <= 65536) return s;
    const p = 2 ** Math.floor(Math.log2(s));
    const q = p / 4;
    return Math.ceil(s / q) * q;
  }

  acquire(size: number, usage: number, label: string): GPUBuffer {
    const b = BufferPool.bucket(size);
    const key = `${b}:${usage}`;
    const list = this.free.get(key);
    let buf = list?.pop();
    if (buf) {
      this.bytesFree -= buf.size;
      buf.label = label;
    } else {
      buf = this.create(b, usage, label);
    }
    this.live.add(buf);
    this.bytesLive += buf.size;
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) return; // idempotent
    this.bytesLive -= buf.size;
    this.bytesFree += buf.size;
    const key = `${buf.size}:${buf.usage}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
  }

  /** Frees every idle buffer (e.g. after a large prefill). */
  trim(): void {
    for (const list of this.free.values()) for (const b of list) this.destroyBuffer(b);
    this.free.clear();
    this.bytesFree = 0;
  }

  destroy(): void {
    this.trim();
    for (const b of this.live) this.destroyBuffer(b);
    this.live.clear();
    this.bytesLive = 0;
  }
}
