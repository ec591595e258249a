/**
 * Device acquisition for every host (browser tab, web worker, Node through Dawn). The host passes
 * its `GPU` object (navigator.gpu, or the one from `./node.ts`); nothing here asks where it runs.
 */
import { EngineError } from '../errors.ts';

export interface GpuInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True when the adapter is a CPU implementation (SwiftShader, lavapipe). */
  software: boolean;
  features: string[];
  limits: Record<string, number>;
  f16: boolean;
  subgroups: boolean;
}

export interface DeviceRequest {
  powerPreference?: GPUPowerPreference;
  /** Fail unless the adapter offers these features (e.g. 'shader-f16'). */
  requiredFeatures?: GPUFeatureName[];
  /** Turn on when present; never required. */
  optionalFeatures?: GPUFeatureName[];
  /**
   * Ask for less than the adapter offers (e.g. to rehearse a smaller GPU in tests): each value is
   * capped at the adapter's own limit.
   */
  limits?: Partial<Record<(typeof LIMIT_NAMES)[number], number>>;
}

const LIMIT_NAMES = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxUniformBufferBindingSize',
  'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY',
  'maxComputeWorkgroupSizeZ',
  'maxComputeWorkgroupsPerDimension',
  'minStorageBufferOffsetAlignment',
  'minUniformBufferOffsetAlignment',
] as const;

export async function requestDevice(
  gpu: GPU | undefined,
  req: DeviceRequest = {},
): Promise<{ adapter: GPUAdapter; device: GPUDevice; info: GpuInfo }> {
  if (!gpu) {
    throw new EngineError(
      'NO_WEBGPU',
      'This browser has no WebGPU. Use a current Chrome or Edge (version 113 or later), or Firefox 141+ / Safari 26+; on Linux Chrome may need chrome://flags/#enable-unsafe-webgpu.',
    );
  }
  const adapter = await gpu.requestAdapter(
    req.powerPreference ? { powerPreference: req.powerPreference } : undefined,
  );
  if (!adapter) {
    throw new EngineError(
      'NO_ADAPTER',
      'WebGPU is present but found no usable GPU adapter. Update the graphics driver, or enable hardware acceleration in the browser settings.',
    );
  }
  const missing = (req.requiredFeatures ?? []).filter((f) => !adapter.features.has(f));
  if (missing.length > 0) {
    throw new EngineError(
      'FEATURE_MISSING',
      `This GPU lacks the WebGPU feature(s) ${missing.join(', ')}. Choose the f32 path (smaller model or no f16) or use another GPU.`,
    );
  }
  const features = new Set<GPUFeatureName>(req.requiredFeatures ?? []);
  for (const f of req.optionalFeatures ?? ['shader-f16', 'subgroups', 'timestamp-query']) {
    if (adapter.features.has(f)) features.add(f);
  }
  // Ask for the adapter's real limits: the defaults (128 MiB bindings, 8 storage buffers) are too
  // small for a 7B model's tensors.
  const requiredLimits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = (adapter.limits as unknown as Record<string, number>)[name];
    const cap = req.limits?.[name];
    if (typeof v === 'number' && !name.startsWith('min'))
      requiredLimits[name] = cap !== undefined ? Math.min(v, cap) : v;
  }
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredFeatures: [...features], requiredLimits });
  } catch (cause) {
    throw new EngineError('NO_ADAPTER', `The GPU refused to open a device: ${String(cause)}`, { cause });
  }
  const ai = adapter.info;
  const limits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) {
    const v = (device.limits as unknown as Record<string, number>)[name] ?? 0;
    // WebGPU raises requested maxima to its defaults; the engine enforces the caller's caps itself.
    const cap = req.limits?.[name];
    limits[name] = cap !== undefined && !name.startsWith('min') ? Math.min(v, cap) : v;
  }
  const description = ai?.description ?? '';
  const info: GpuInfo = {
    vendor: ai?.vendor ?? '',
    architecture: ai?.architecture ?? '',
    device: ai?.device ?? '',
    description,
    software:
      /swiftshader|lavapipe|llvmpipe|software/i.test(
        `${ai?.vendor} ${ai?.architecture} ${ai?.device} ${description}`,
      ) || (ai as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true,
    features: [...device.features].map(String).sort(),
    limits,
    f16: device.features.has('shader-f16'),
    subgroups: device.features.has('subgroups'),
  };
  return { adapter, device, info };
}
