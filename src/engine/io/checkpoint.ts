/**
 * Our own model and adapter files: safetensors with the configuration in `__metadata__`.
 *   model:   metadata {format: "dust2gold-llama", config: JSON}; tensors named as llama2.c's
 *            weights (tokenEmbedding, wq (L·out, in), ...), F32.
 *   adapter: metadata {format: "dust2gold-lora", config: JSON, model: JSON}; tensors
 *            `layers.{l}.{target}.A|B`, F32.
 * PEFT's layout (adapter_config.json + adapter_model.safetensors) is an import/export on top.
 */
import { EngineError } from '../errors.ts';
import { validateConfig, type LlamaConfig } from '../model/config.ts';
import type { LoraState } from '../model/lora.ts';
import { WEIGHT_NAMES, checkWeights, type LlamaWeightsF32 } from '../model/weights.ts';
import { readSafetensors, toFloat32, writeSafetensors } from './safetensors.ts';

function parseJson<T>(text: string | undefined, what: string, name: string): T {
  try {
    if (text === undefined) throw new Error('missing');
    return JSON.parse(text) as T;
  } catch {
    throw new EngineError(
      'BAD_FILE',
      `${name}: the ${what} in the file's metadata is missing or not JSON — this is not a dust2gold file.`,
    );
  }
}

export function writeLlamaSafetensors(config: LlamaConfig, w: LlamaWeightsF32): Uint8Array {
  const tensors: Parameters<typeof writeSafetensors>[0] = {};
  for (const name of WEIGHT_NAMES) {
    if (name === 'wcls' && config.sharedClassifier) continue;
    tensors[name] = { dtype: 'F32', shape: [w[name].length], data: w[name] };
  }
  return writeSafetensors(tensors, { format: 'dust2gold-llama', config: JSON.stringify(config) });
}

export function readLlamaSafetensors(
  buf: ArrayBuffer,
  name = 'model',
): { config: LlamaConfig; weights: LlamaWeightsF32 } {
  const { metadata, tensors } = readSafetensors(buf);
  if (metadata.format !== 'dust2gold-llama') {
    throw new EngineError(
      'BAD_MAGIC',
      `${name} is a safetensors file but not a dust2gold model (format "${metadata.format ?? 'none'}").`,
    );
  }
  const config = parseJson<LlamaConfig>(metadata.config, 'model configuration', name);
  validateConfig(config, 'BAD_FILE', name);
  const get = (n: string): Float32Array => {
    const t = tensors.get(n);
    if (!t) throw new EngineError('BAD_FILE', `${name}: tensor ${n} is missing.`);
    return toFloat32(t);
  };
  const w = {} as LlamaWeightsF32;
  for (const n of WEIGHT_NAMES) if (n !== 'wcls') w[n] = get(n);
  w.wcls = config.sharedClassifier ? w.tokenEmbedding : get('wcls');
  checkWeights(config, w);
  return { config, weights: w };
}

export function writeLoraSafetensors(s: LoraState): Uint8Array {
  const tensors: Parameters<typeof writeSafetensors>[0] = {};
  for (const [n, t] of Object.entries(s.tensors)) tensors[n] = { dtype: 'F32', shape: t.shape, data: t.data };
  return writeSafetensors(tensors, {
    format: 'dust2gold-lora',
    config: JSON.stringify(s.config),
    model: JSON.stringify(s.model),
  });
}

export function readLoraSafetensors(buf: ArrayBuffer, name = 'adapter'): LoraState {
  const { metadata, tensors } = readSafetensors(buf);
  if (metadata.format !== 'dust2gold-lora') {
    throw new EngineError(
      'BAD_MAGIC',
      `${name} is a safetensors file but not a dust2gold adapter (format "${metadata.format ?? 'none'}").`,
    );
  }
  const config = parseJson<LoraState['config']>(metadata.config, 'adapter configuration', name);
  const model = parseJson<LoraState['model']>(metadata.model, 'model shape', name);
  const out: LoraState['tensors'] = {};
  for (const [n, t] of tensors) out[n] = { shape: t.shape, data: toFloat32(t) };
  return { config, model, tensors: out };
}
