/**
 * A LLaMA model's weights on a backend: per-layer tensors, matrices frozen in f32 or block-quantized
 * (dequantized inside the matmul kernels), norms in f32. `loadLlama` uploads f32 weights from the
 * JS heap (small models; matrices optionally quantized to q8_0 / q4_0 on the way, embedding f32).
 * Big models stream from their files one tensor at a time, in the file's own types, with a
 * quantized embedding table: io/load-gguf.ts (`loadLlamaGguf`) and io/load-mlc.ts (`loadLlamaMlc`).
 *
 * @example
 *   const { config, weights } = parseLlama2c(await file.arrayBuffer());
 *   const model = loadLlama(new GpuBackend(gpu), config, weights, { matrices: 'q8_0' });
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { EngineError, formatBytes } from '../errors.ts';
import { byteSize, type DType } from '../gpu/tensor.ts';
import { quantize, type QuantDType } from '../quant.ts';
import { kvDim, validateConfig, type LlamaConfig } from './config.ts';
import { checkWeights, type LlamaWeightsF32, type WeightName } from './weights.ts';

/** Linear sites of a layer: llama2.c names, with the HF/PEFT names used for LoRA targets. */
export const LINEAR_SITES = ['wq', 'wk', 'wv', 'wo', 'w1', 'w2', 'w3'] as const;
export type LinearSite = (typeof LINEAR_SITES)[number];
export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'down' | 'up';
export const SITE_OF_TARGET: Record<LoraTarget, LinearSite> = {
  q: 'wq',
  k: 'wk',
  v: 'wv',
  o: 'wo',
  gate: 'w1',
  down: 'w2',
  up: 'w3',
};

export interface LlamaLayer<T> {
  rmsAtt: T; // (C)
  wq: T; // (C, C)
  wk: T; // (KV, C)
  wv: T; // (KV, C)
  wo: T; // (C, C)
  rmsFfn: T; // (C)
  w1: T; // (H, C)  gate
  w2: T; // (C, H)  down
  w3: T; // (H, C)  up
}

export interface LlamaModel<T extends BackendTensor> {
  readonly be: Backend<T>;
  readonly config: LlamaConfig;
  readonly tokenEmbedding: T; // (V, C)
  readonly layers: LlamaLayer<T>[];
  readonly rmsFinal: T; // (C)
  readonly wcls: T; // (V, C)
  /** Every tensor this model allocated, for destroy(). */
  readonly tensors: T[];
}

export interface LoadOptions {
  /**
   * Storage of the large matrices (and the classifier when unshared): f32 (default), q8_0 or q4_0.
   * Other types (K-quants, q4f16_1) come only from files: loadLlamaGguf, loadLlamaMlc.
   */
  matrices?: DType;
}

/** (out, in) shape of a layer matrix. */
export function siteShape(c: LlamaConfig, site: LinearSite): [number, number] {
  const C = c.dim,
    H = c.hiddenDim,
    KV = kvDim(c);
  switch (site) {
    case 'wq':
    case 'wo':
      return [C, C];
    case 'wk':
    case 'wv':
      return [KV, C];
    case 'w1':
    case 'w3':
      return [H, C];
    case 'w2':
      return [C, H];
  }
}

/**
 * Uploads f32 weights, quantizing matrices on the way when asked. A matrix whose input width is
 * not a multiple of 32 stays f32 (q8_0/q4_0 blocks are 32 wide). On failure everything already
 * allocated is freed before the error propagates.
 */
export function loadLlama<T extends BackendTensor>(
  be: Backend<T>,
  config: LlamaConfig,
  w: LlamaWeightsF32,
  opts: LoadOptions = {},
): LlamaModel<T> {
  validateConfig(config);
  checkWeights(config, w);
  const dtype = opts.matrices ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'q8_0' && dtype !== 'q4_0') {
    throw new EngineError(
      'BAD_ARGUMENT',
      `loadLlama stores f32 weights as f32, q8_0 or q4_0, not ${dtype}: load ${dtype} weights from their file (loadLlamaGguf, loadLlamaMlc).`,
    );
  }
  preflight(be, config, dtype);
  const tensors: T[] = [];
  const vec = (data: Float32Array, label: string): T => {
    const t = be.fromData([data.length], data, label);
    tensors.push(t);
    return t;
  };
  const mat = (data: Float32Array, shape: [number, number], label: string, q: boolean): T => {
    const d: DType = q && dtype !== 'f32' && shape[1] % 32 === 0 ? dtype : 'f32';
    const t =
      d === 'f32'
        ? be.weight('f32', shape, data, label)
        : be.weight(d, shape, quantize(d as QuantDType, data), label);
    tensors.push(t);
    return t;
  };
  try {
    const { dim: C, nLayers: L, vocabSize: V } = config;
    const tokenEmbedding = mat(w.tokenEmbedding, [V, C], weightLabel('tokenEmbedding', null), false);
    const layers: LlamaLayer<T>[] = [];
    for (let l = 0; l < L; l++) {
      const layer = {
        rmsAtt: vec(w.rmsAtt.subarray(l * C, (l + 1) * C), weightLabel('rmsAtt', l)),
      } as LlamaLayer<T>;
      for (const site of LINEAR_SITES) {
        const shape = siteShape(config, site);
        const n = shape[0] * shape[1];
        layer[site] = mat(w[site].subarray(l * n, (l + 1) * n), shape, weightLabel(site, l), true);
      }
      layer.rmsFfn = vec(w.rmsFfn.subarray(l * C, (l + 1) * C), weightLabel('rmsFfn', l));
      layers.push(layer);
    }
    const rmsFinal = vec(w.rmsFinal, weightLabel('rmsFinal', null));
    const wcls = config.sharedClassifier
      ? tokenEmbedding
      : mat(w.wcls, [V, C], weightLabel('wcls', null), true);
    return { be, config, tokenEmbedding, layers, rmsFinal, wcls, tensors };
  } catch (e) {
    for (const t of tensors) be.destroy(t);
    throw e;
  }
}

/**
 * Refuses, before allocating anything, a model with a weight that cannot be stored: the backend
 * splits a weight larger than one binding by rows (backend/gpu.ts), so only a row over the limit is.
 */
function preflight<T extends BackendTensor>(be: Backend<T>, c: LlamaConfig, dtype: DType): void {
  const big: [string, number, number][] = [['tok_embeddings', c.vocabSize * c.dim * 4, c.dim * 4]];
  const add = (name: string, n: number, k: number) => {
    const d = dtype !== 'f32' && k % 32 === 0 ? dtype : 'f32';
    big.push([name, byteSize([n, k], d), byteSize([1, k], d)]);
  };
  for (const site of LINEAR_SITES) add(site, ...siteShape(c, site));
  if (!c.sharedClassifier) add('output', c.vocabSize, c.dim);
  refuseOversize(be.maxTensorBytes, big, 'Choose a smaller model or a quantized one (q4_0).');
}

/**
 * Throws LIMIT_EXCEEDED for the first tensor over `maxTensorBytes` (a backend's binding limit),
 * before anything is allocated; `fix` ends the message (what the student can do). An entry
 * [name, bytes] must fit whole (a norm vector); [name, bytes, rowBytes] is a weight matrix, which
 * the GPU backend splits by rows across buffers (backend/gpu.ts `uploadWeightSplit`): refused only
 * when one row (`rowBytes`, its GPU layout) is over the limit.
 */
export function refuseOversize(
  maxTensorBytes: number,
  tensors: readonly (readonly [name: string, bytes: number, rowBytes?: number | undefined])[],
  fix: string,
): void {
  for (const [name, bytes, rowBytes] of tensors) {
    if (rowBytes !== undefined) {
      if (rowBytes > maxTensorBytes) {
        throw new EngineError(
          'LIMIT_EXCEEDED',
          `One row of the model's ${name} tensor needs ${formatBytes(rowBytes)} (all of it ${formatBytes(bytes)}) but this GPU binds at most ${formatBytes(maxTensorBytes)} per buffer, and a tensor is split across buffers only between rows. ${fix}`,
        );
      }
    } else if (bytes > maxTensorBytes) {
      throw new EngineError(
        'LIMIT_EXCEEDED',
        `The model's ${name} tensor needs ${formatBytes(bytes)} but this GPU binds at most ${formatBytes(maxTensorBytes)} per buffer. ${fix}`,
      );
    }
  }
}

/** The label loaders give a weight tensor on the backend (as in the planner's tensor names). */
export function weightLabel(weight: WeightName, layer: number | null): string {
  switch (weight) {
    case 'tokenEmbedding':
      return 'tok_embeddings';
    case 'rmsFinal':
      return 'norm';
    case 'wcls':
      return 'output';
    case 'rmsAtt':
      return `layers.${layer ?? 0}.attention_norm`;
    case 'rmsFfn':
      return `layers.${layer ?? 0}.ffn_norm`;
    default:
      return `layers.${layer ?? 0}.${weight}`;
  }
}

export function destroyLlama<T extends BackendTensor>(m: LlamaModel<T>): void {
  for (const t of m.tensors) m.be.destroy(t);
  m.tensors.length = 0;
}
