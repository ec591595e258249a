/**
 * Node host: WebGPU through the `webgpu` npm package (Dawn). Where the machine has no GPU
 * driver, Dawn is pointed at SwiftShader's Vulkan ICD (it ships with Debian's chromium), so the
 * CLI, the tests and the benchmarks run anywhere. Never imported by browser code.
 */
import { existsSync } from 'node:fs';
import { EngineError } from '../errors.ts';

const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json',
];

let cached: GPU | undefined;

/** The `GPU` object for Node. Tries the system's Vulkan drivers first, then SwiftShader. */
export async function nodeGpu(): Promise<GPU> {
  if (cached) return cached;
  const mod = (await import('webgpu')) as unknown as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, mod.globals);
  let gpu = mod.create([]);
  if (!process.env.VK_ICD_FILENAMES && !process.env.VK_DRIVER_FILES) {
    const probe = await gpu.requestAdapter();
    if (!probe) {
      const icd = SWIFTSHADER_ICDS.find((p) => existsSync(p));
      if (!icd) {
        throw new EngineError(
          'NO_ADAPTER',
          "No WebGPU adapter in Node and no SwiftShader ICD found. Install a Vulkan driver, or Debian's `chromium` and `libvulkan1` (they bring SwiftShader), or set VK_ICD_FILENAMES.",
        );
      }
      // Dawn reads the variable when it enumerates adapters, so a fresh instance sees it.
      process.env.VK_ICD_FILENAMES = icd;
      gpu = mod.create([]);
    }
  }
  cached = gpu;
  return gpu;
}
