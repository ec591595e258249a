/**
 * Bind groups, made once per (pipeline, uniform slot, buffers) and reused. `createBindGroup` is
 * most of a dispatch's CPU cost (measured in Node's Dawn: ~12 µs of ~17 µs per dispatch), and a
 * decode step or a training step repeats the same dispatches over the same buffers with the same
 * uniform slots (Gpu numbers the slots from 0 at every submit), so after the first step every bind
 * group comes from here.
 *
 * A group names its buffers: `forget(buffer)` (Gpu.destroyBuffer) drops every group that uses a
 * buffer before it is destroyed. A buffer destroyed some other way is never bound again by the
 * engine, so its groups are only unreachable entries, and the cache is cleared whenever it holds
 * `max` of them.
 */
export class BindGroupCache {
  private groups = new Map<string, { group: GPUBindGroup; buffers: GPUBuffer[] }>();
  private ids = new WeakMap<object, number>();
  private byBuffer = new Map<GPUBuffer, Set<string>>();
  private next = 1;
  hits = 0;
  misses = 0;

  /**
   * `enabled` false: every call makes a new group and keeps none. Gpu turns the cache on for
   * hardware adapters only: on SwiftShader, where the kernels run on the same CPU as the encoding,
   * reused groups did not make a decode step faster (measured: 1.5 ms less encoding per
   * stories260K step, the same or slower steps).
   */
  constructor(
    public enabled = true,
    private readonly max = 8192,
  ) {}

  private id(o: object): number {
    let i = this.ids.get(o);
    if (i === undefined) {
      i = this.next++;
      this.ids.set(o, i);
    }
    return i;
  }

  /**
   * The bind group of `pipeline` with `uniform` (the arena's [offset, size], or null) at binding 0
   * and `buffers` (whole) at the next bindings.
   */
  get(
    device: GPUDevice,
    pipeline: GPUComputePipeline,
    label: string,
    arena: GPUBuffer,
    uniform: readonly [number, number] | null,
    buffers: readonly GPUBuffer[],
  ): GPUBindGroup {
    if (!this.enabled) return this.make(device, pipeline, label, arena, uniform, buffers);
    let key = `${this.id(pipeline)}|${uniform ? `${uniform[0]}:${uniform[1]}` : '-'}`;
    for (const b of buffers) key += `|${this.id(b)}`;
    const hit = this.groups.get(key);
    if (hit) {
      this.hits++;
      return hit.group;
    }
    this.misses++;
    if (this.groups.size >= this.max) this.clear();
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (uniform)
      entries.push({ binding: binding++, resource: { buffer: arena, offset: uniform[0], size: uniform[1] } });
    for (const buffer of buffers) entries.push({ binding: binding++, resource: { buffer } });
    const group = device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
    this.groups.set(key, { group, buffers: [...buffers] });
    for (const b of buffers) {
      let keys = this.byBuffer.get(b);
      if (!keys) this.byBuffer.set(b, (keys = new Set()));
      keys.add(key);
    }
    return group;
  }

  private make(
    device: GPUDevice,
    pipeline: GPUComputePipeline,
    label: string,
    arena: GPUBuffer,
    uniform: readonly [number, number] | null,
    buffers: readonly GPUBuffer[],
  ): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (uniform)
      entries.push({ binding: binding++, resource: { buffer: arena, offset: uniform[0], size: uniform[1] } });
    for (const buffer of buffers) entries.push({ binding: binding++, resource: { buffer } });
    return device.createBindGroup({ label, layout: pipeline.getBindGroupLayout(0), entries });
  }

  /** Drops the groups that bind `buffer` (before it is destroyed). */
  forget(buffer: GPUBuffer): void {
    const keys = this.byBuffer.get(buffer);
    if (!keys) return;
    this.byBuffer.delete(buffer);
    for (const k of keys) {
      const g = this.groups.get(k);
      if (!g) continue;
      this.groups.delete(k);
      for (const b of g.buffers) if (b !== buffer) this.byBuffer.get(b)?.delete(k);
    }
  }

  clear(): void {
    this.groups.clear();
    this.byBuffer.clear();
  }

  get size(): number {
    return this.groups.size;
  }
}
