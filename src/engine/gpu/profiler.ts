/**
 * Per-kernel GPU time from timestamp queries: while a Profiler is attached, every dispatch runs
 * in its own compute pass with begin/end timestamps; `collect()` resolves them and adds each
 * kernel's time to its label. For benchmarks and kernel work, never on in normal runs (one pass
 * per dispatch costs a little). Needs the 'timestamp-query' feature.
 *
 * @example
 *   const prof = Profiler.attach(gpu);
 *   await runner.forward(rows, outputs);
 *   await prof.collect();
 *   console.table(prof.table());
 */
import { EngineError } from '../errors.ts';
import type { Gpu } from './gpu.ts';

const CAPACITY = 2048; // dispatches between collects

export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolve: GPUBuffer;
  private labels: string[] = [];
  readonly totals = new Map<string, { ns: number; count: number }>();

  private constructor(private readonly gpu: Gpu) {
    const d = gpu.device;
    this.querySet = d.createQuerySet({ label: 'profiler', type: 'timestamp', count: 2 * CAPACITY });
    this.resolve = d.createBuffer({
      label: 'profiler.resolve',
      size: 16 * CAPACITY,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  static attach(gpu: Gpu): Profiler {
    if (!gpu.device.features.has('timestamp-query')) {
      throw new EngineError(
        'FEATURE_MISSING',
        "This GPU has no 'timestamp-query': per-kernel timing is unavailable.",
      );
    }
    const p = new Profiler(gpu);
    gpu.profiler = p;
    return p;
  }

  /** The timestamp writes for the next dispatch (called by Gpu.dispatch), or null when full. */
  next(label: string): GPUComputePassTimestampWrites | null {
    const i = this.labels.length;
    if (i >= CAPACITY) return null;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Reads the timestamps recorded so far and adds them to `totals`. */
  async collect(): Promise<void> {
    const n = this.labels.length;
    if (n === 0) return;
    const enc = this.gpu.commandEncoder();
    enc.resolveQuerySet(this.querySet, 0, 2 * n, this.resolve, 0);
    const bytes = await this.gpu.readBytes(this.resolve, 0, 16 * n);
    const t = new BigInt64Array(bytes);
    for (let i = 0; i < n; i++) {
      const label = this.labels[i]!;
      const e = this.totals.get(label) ?? { ns: 0, count: 0 };
      e.ns += Number(t[2 * i + 1]! - t[2 * i]!);
      e.count++;
      this.totals.set(label, e);
    }
    this.labels = [];
  }

  /** Rows sorted by total time: label, calls, total ms, mean µs. */
  table(): { kernel: string; calls: number; totalMs: number; meanUs: number }[] {
    return [...this.totals.entries()]
      .map(([kernel, { ns, count }]) => ({
        kernel,
        calls: count,
        totalMs: ns / 1e6,
        meanUs: ns / 1e3 / count,
      }))
      .sort((a, b) => b.totalMs - a.totalMs);
  }

  reset(): void {
    this.totals.clear();
  }

  detach(): void {
    if (this.gpu.profiler === this) this.gpu.profiler = null;
    this.querySet.destroy();
    this.resolve.destroy();
  }
}
