/**
 * Node host: WebGPU through the `webgpu` npm package (Dawn). Where the machine has no GPU
 * driver, Dawn is pointed at SwiftShader's Vulkan ICD (it ships with Debian's chromium), so the
 * CLI, the tests and the benchmarks run anywhere. Never imported by browser code.
 *
 * Robustness: browsers make every shader buffer access bounds-checked (Dawn's robustness
 * transform: an out-of-range index is clamped), a security measure for untrusted pages. Node runs
 * only this project's own kernels, so by default it turns the transform off (Dawn's
 * `disable_robustness` toggle): the same results bit for bit (every kernel stays in range; the
 * GPU tests check each against the CPU reference), and on SwiftShader, where every access is a CPU
 * instruction, a training step is about 1.4× faster. `robustness: true` (the benchmarks, so that
 * their figures are the browser's) or the environment variable `D2G_ROBUSTNESS=1` keep it.
 */
import { existsSync } from 'node:fs';
import { EngineError } from '../errors.ts';

const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json',
];

/**
 * Dawn toggles turned on in Node. `vulkan_enable_f16_on_nvidia`: Dawn's Vulkan backend withholds
 * `shader-f16` from NVIDIA GPUs unless this is on (Chrome likewise, unless started with
 * `--enable-dawn-features=vulkan_enable_f16_on_nvidia`); the engine uses f16 only where asked
 * (LlamaRunner's `act`, ops/act.ts), and its f16 kernels are tested on such a GPU
 * (tests/gpu/act-f16.test.ts). Elsewhere the toggle does nothing.
 */
const DAWN_FEATURES = ['vulkan_enable_f16_on_nvidia'];

const cached = new Map<boolean, GPU>();

export interface NodeGpuOptions {
  /** Keep Dawn's bounds checks on every shader access, as browsers do (default: off, see above). */
  robustness?: boolean;
}

/** The `GPU` object for Node. Tries the system's Vulkan drivers first, then SwiftShader. */
export async function nodeGpu(opts: NodeGpuOptions = {}): Promise<GPU> {
  const robustness = opts.robustness ?? process.env.D2G_ROBUSTNESS === '1';
  const hit = cached.get(robustness);
  if (hit) return hit;
  const mod = (await import('webgpu')) as unknown as {
    create: (flags: string[]) => GPU;
    globals: Record<string, unknown>;
  };
  Object.assign(globalThis, mod.globals);
  const flags = [
    `enable-dawn-features=${[...(robustness ? [] : ['disable_robustness']), ...DAWN_FEATURES].join(',')}`,
  ];
  let gpu = mod.create(flags);
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
      gpu = mod.create(flags);
    }
  }
  cached.set(robustness, gpu);
  return gpu;
}
