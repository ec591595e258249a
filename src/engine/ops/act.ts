/**
 * Activation element types of the inference kernels: f32, or f16 where the device has
 * `shader-f16`. The shaders that take f16 activations name their activation bindings' element type
 * by an alias (`IN_T`, `OUT_T`, `ACT_T`, … — each file's header says which) and convert at every
 * load and store: loads widen to f32 and all arithmetic and accumulation stays f32, each store
 * rounds once to the binding's type. The f32 build of the same file is the path every device runs
 * (and SwiftShader tests); the f16 build differs only in the aliases and `enable f16;`.
 */
import { EngineError } from '../errors.ts';
import type { KernelSpec } from '../gpu/pipelines.ts';
import type { Tensor } from '../gpu/tensor.ts';

export type ActType = 'f32' | 'f16';

/** The activation type of a tensor bound where f32 or f16 activations are taken. */
export function actOf(t: Tensor, fn: string): ActType {
  if (t.dtype === 'f32' || t.dtype === 'f16') return t.dtype;
  throw new EngineError(
    'BAD_ARGUMENT',
    `${fn}: "${t.label}" is ${t.dtype}; this input takes f32 or f16 values.`,
  );
}

/** The WGSL put in front of a shader: `enable f16;` when any alias is f16, then the aliases. */
export function aliasPrefix(aliases: Readonly<Record<string, ActType>>): string {
  const names = Object.keys(aliases).sort();
  const f16 = names.some((n) => aliases[n] === 'f16');
  return `${f16 ? 'enable f16;\n' : ''}${names.map((n) => `alias ${n} = ${aliases[n]};`).join('\n')}\n`;
}

const made = new Map<string, KernelSpec>();

/**
 * `base` built with these aliases (its `code` is the shader without them). Pipelines are cached by
 * op, entry and constants (gpu/pipelines.ts), so an f16 build gets its own op name; the f32 build
 * keeps the plain one. Memoized: a decode step asks for the same few specs every time.
 */
export function typed(base: KernelSpec, aliases: Readonly<Record<string, ActType>>): KernelSpec {
  let sig = '';
  for (const n in aliases) sig += `${n}=${aliases[n]};`;
  const key = `${base.op}\u0000${base.entry}\u0000${JSON.stringify(base.constants ?? {})}\u0000${sig}`;
  let spec = made.get(key);
  if (!spec) {
    const tag = Object.keys(aliases)
      .sort()
      .filter((n) => aliases[n] === 'f16')
      .join(',');
    spec = {
      ...base,
      op: tag ? `${base.op}[f16:${tag}]` : base.op,
      code: `${aliasPrefix(aliases)}${base.code}`,
    };
    made.set(key, spec);
  }
  return spec;
}

/** Throws unless the device can take f16 tensors (a kernel given one without `shader-f16`). */
export function needF16(f16: boolean, types: readonly ActType[], fn: string): void {
  if (!f16 && types.includes('f16'))
    throw new EngineError(
      'FEATURE_MISSING',
      `${fn}: f16 activations need the WebGPU feature shader-f16, which this GPU does not offer; use f32 activations.`,
    );
}
