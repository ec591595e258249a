/** Compute pipelines, compiled once per device and kernel variant (WeakMap: dies with the device). */
export interface KernelSpec {
  /** Op id, e.g. 'rmsnorm'; the GPU label is `${op}.${entry}`. */
  readonly op: string;
  readonly code: string;
  readonly entry: string;
  /** WGSL `override` constants (workgroup and tile sizes). */
  readonly constants?: Readonly<Record<string, number>>;
}

const caches = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

export function getPipeline(device: GPUDevice, spec: KernelSpec): GPUComputePipeline {
  let cache = caches.get(device);
  if (!cache) {
    cache = new Map();
    caches.set(device, cache);
  }
  const key = `${spec.op}.${spec.entry}${spec.constants ? JSON.stringify(spec.constants) : ''}`;
  let p = cache.get(key);
  if (!p) {
    const label = `${spec.op}.${spec.entry}`;
    const module = device.createShaderModule({ label, code: spec.code });
    p = device.createComputePipeline({
      label,
      layout: 'auto',
      compute: {
        module,
        entryPoint: spec.entry,
        ...(spec.constants ? { constants: { ...spec.constants } } : {}),
      },
    });
    cache.set(key, p);
  }
  return p;
}
