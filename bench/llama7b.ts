/**
 * Decode at LLaMA-7b's shapes (dim 4096, hidden 11008, 32 heads, vocab 32000) with quantized
 * weights, and what it means against the memory: every decode step reads every matrix once (for
 * all m rows together), so tokens/s at m = 1 is bounded by bandwidth / weight bytes. The model
 * has random quants in the GPU layout (bench/matmul.ts `randomWeight`; the values do not change
 * the time); `layers` is 32 for the real model's figure, fewer where memory or time is short.
 * A device-to-device copy gives the bandwidth this adapter reaches through WebGPU, beside the
 * card's nominal limit (`--bandwidth-gbs`).
 */
import type { GpuBackend } from '../src/engine/backend/gpu.ts';
import type { Gpu } from '../src/engine/gpu/gpu.ts';
import type { Tensor } from '../src/engine/gpu/tensor.ts';
import { LLAMA_7B, type LlamaConfig } from '../src/engine/model/config.ts';
import {
  LINEAR_SITES,
  siteShape,
  weightLabel,
  type LlamaLayer,
  type LlamaModel,
} from '../src/engine/model/llama.ts';
import type { WeightDType } from '../src/engine/quant-gpu.ts';
import { randomWeight } from './matmul.ts';

export function llama7bConfig(layers: number): LlamaConfig {
  return { ...LLAMA_7B, nLayers: layers };
}

/**
 * A LLaMA-7b-shaped model with random `dtype` matrices and classifier, norms 1, and the embedding
 * in q4_0 (as loadLlamaMlc stores a q4f16_1 one: repacked, the same bytes per value).
 */
export function randomQuantLlama(
  be: GpuBackend,
  config: LlamaConfig,
  dtype: WeightDType,
): LlamaModel<Tensor> {
  const gpu = be.gpu;
  const tensors: Tensor[] = [];
  const keep = (t: Tensor): Tensor => (tensors.push(t), t);
  const ones = (label: string) =>
    keep(gpu.fromData([config.dim], new Float32Array(config.dim).fill(1), label));
  const { dim: C, vocabSize: V } = config;
  try {
    const tokenEmbedding = keep(
      randomWeight(gpu, dtype === 'q8_0' ? dtype : 'q4_0', V, C, weightLabel('tokenEmbedding', null)),
    );
    const layers: LlamaLayer<Tensor>[] = [];
    for (let l = 0; l < config.nLayers; l++) {
      const layer = {
        rmsAtt: ones(weightLabel('rmsAtt', l)),
        rmsFfn: ones(weightLabel('rmsFfn', l)),
      } as LlamaLayer<Tensor>;
      for (const site of LINEAR_SITES) {
        const [N, K] = siteShape(config, site);
        layer[site] = keep(randomWeight(gpu, dtype, N, K, weightLabel(site, l)));
      }
      layers.push(layer);
    }
    const rmsFinal = ones(weightLabel('rmsFinal', null));
    const wcls = keep(randomWeight(gpu, dtype, V, C, weightLabel('wcls', null)));
    return { be, config, tokenEmbedding, layers, rmsFinal, wcls, tensors };
  } catch (e) {
    for (const t of tensors) gpu.destroyBuffer(t.buffer);
    throw e;
  }
}

/** Bytes a decode step reads from weights: every matrix, the classifier and the norms (the embedding only m rows, left out). */
export function weightBytesPerStep(model: LlamaModel<Tensor>): number {
  let bytes = model.wcls.byteLength + model.rmsFinal.byteLength;
  for (const layer of model.layers) {
    bytes += layer.rmsAtt.byteLength + layer.rmsFfn.byteLength;
    for (const site of LINEAR_SITES) bytes += layer[site].byteLength;
  }
  return bytes;
}

/** GB/s of a device-to-device buffer copy, counting bytes read and written. */
export async function copyGbs(gpu: Gpu, bytes: number, quick: boolean): Promise<number> {
  const a = gpu.tensor([bytes / 4], 'bench.copy.src');
  const b = gpu.tensor([bytes / 4], 'bench.copy.dst');
  try {
    gpu.copy(a, b, bytes);
    await gpu.sync();
    const reps = quick ? 2 : 20;
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) gpu.copy(a, b, bytes);
    await gpu.sync();
    const sec = (performance.now() - t0) / 1000;
    return (2 * bytes * reps) / sec / 1e9;
  } finally {
    gpu.destroyBuffer(a.buffer);
    gpu.destroyBuffer(b.buffer);
  }
}
