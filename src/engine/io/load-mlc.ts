/**
 * A web-llm / MLC LLaMA (q4f16_1 or q4f32_1 shards) straight onto a backend, one matrix at a time:
 * never the whole model in the JS heap (the largest read for 7B is the 32000-row embedding,
 * 72 MB, or one 11008-row half of gate_up_proj, 25 MB). docs/mlc.md, "Loading a 7B onto the GPU".
 *
 *   layer matrices and lm_head  q4f16_1 builds: MLC's nibbles and f16 scales as they are
 *                               (be.weight 'q4f16_1'); q4f32_1 builds (bf16 scales): repacked to
 *                               q4_0 (mlcQ4ToQ4_0, exact for scales in f16's range); rows of a
 *                               length not a multiple of 32 (padded groups): f32
 *   token embedding             repacked to q4_0 (exact, the same 0.5625 bytes per value), gathered
 *                               from the blocks on the GPU; a tied classifier is the same tensor
 *   norms                       f32
 *
 * The fused qkv_proj / gate_up_proj are read as one row block per site (readMlcSite), q and k rows
 * reordered to our RoPE layout. A matrix larger than one binding is split by rows across buffers by
 * the backend (`be.weight`, backend/gpu.ts `uploadWeightSplit`; q4f16_1 parts take their rows'
 * words and their rows' scales). Before anything is allocated every tensor is checked against
 * `be.maxTensorBytes` (a norm must fit whole, a matrix one row); progress is reported after each
 * read; an AbortSignal stops the load between reads; on any failure every tensor allocated so far
 * is destroyed before the error propagates.
 *
 * @example
 *   const mlc = await openMlc(folder);
 *   const model = await loadLlamaMlc(new GpuBackend(gpu), mlc, { onProgress, signal });
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import { byteSize, type DType } from '../gpu/tensor.ts';
import {
  LINEAR_SITES,
  refuseOversize,
  siteShape,
  weightLabel,
  type LinearSite,
  type LlamaLayer,
  type LlamaModel,
} from '../model/llama.ts';
import { mlcQ4Bytes } from '../quant-gpu.ts';
import { QK } from '../quant.ts';
import type { LoadProgress, StreamLoadOptions } from './load-gguf.ts';
import {
  dequantizeMlcQ4,
  mlcGroupsPerRow,
  mlcQ4ToQ4_0,
  mlcSiteSource,
  mlcWordsPerRow,
  readMlcQ4,
  readMlcSite,
  readMlcVector,
  storedElementBytes,
  type MlcModel,
  type MlcQ4,
} from './mlc.ts';

export interface MlcLoadOptions extends StreamLoadOptions {
  /**
   * Layer matrices and lm_head: 'q4f16_1' (MLC's layout as it is; the default for q4f16_1 builds)
   * or 'q4_0' (exact repack; the default for q4f32_1 builds, whose bf16 scales are no f16 values).
   */
  matrices?: 'q4f16_1' | 'q4_0';
}

/** One read of the load: a matrix (a site's row block, the embedding, lm_head) or a norm. */
export interface MlcLoadStep {
  weight: 'tokenEmbedding' | 'rmsFinal' | 'wcls' | 'rmsAtt' | 'rmsFfn' | LinearSite;
  layer: number | null;
  /** The MLC tensor (a q4 matrix's base name, or a vector's name), for progress. */
  tensor: string;
  shape: readonly number[];
  dtype: DType;
  /** Stored bytes this step reads (for progress). */
  bytes: number;
}

/**
 * The steps of a load, in the order MLC lays the tensors out, with each tensor's backend dtype
 * (what the memory planner counts before a load: method/api/mlc-student.ts).
 */
export function mlcLoadPlan(model: MlcModel, opts: MlcLoadOptions = {}): MlcLoadStep[] {
  const c = model.config;
  const matrices = opts.matrices ?? (model.quantization === 'q4f16_1' ? 'q4f16_1' : 'q4_0');
  const recordBytes = (name: string) => model.tensors.get(name)!.record.nbytes;
  const q4Bytes = (base: string, rows: number, cols: number) => {
    const s = model.tensors.get(`${base}.q_scale`)!.record;
    const eb = storedElementBytes(s.dtype, s.format);
    return rows * (4 * mlcWordsPerRow(cols) + eb * mlcGroupsPerRow(cols));
  };
  const q4Dtype = (cols: number, d: DType): DType => (cols % QK === 0 ? d : 'f32');
  const C = c.dim;
  const steps: MlcLoadStep[] = [
    {
      weight: 'tokenEmbedding',
      layer: null,
      tensor: 'model.embed_tokens',
      shape: [c.vocabSize, C],
      dtype: q4Dtype(C, 'q4_0'),
      bytes: q4Bytes('model.embed_tokens', c.vocabSize, C),
    },
  ];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}`;
    const vec = (weight: 'rmsAtt' | 'rmsFfn', name: string): MlcLoadStep => ({
      weight,
      layer: l,
      tensor: name,
      shape: [C],
      dtype: 'f32',
      bytes: recordBytes(name),
    });
    steps.push(vec('rmsAtt', `${p}.input_layernorm.weight`));
    for (const site of LINEAR_SITES) {
      const src = mlcSiteSource(c, l, site);
      steps.push({
        weight: site,
        layer: l,
        tensor: src.base,
        shape: siteShape(c, site),
        dtype: q4Dtype(src.cols, matrices),
        bytes: q4Bytes(src.base, src.rows, src.cols),
      });
    }
    steps.push(vec('rmsFfn', `${p}.post_attention_layernorm.weight`));
  }
  steps.push({
    weight: 'rmsFinal',
    layer: null,
    tensor: 'model.norm.weight',
    shape: [C],
    dtype: 'f32',
    bytes: recordBytes('model.norm.weight'),
  });
  if (!c.sharedClassifier)
    steps.push({
      weight: 'wcls',
      layer: null,
      tensor: 'lm_head',
      shape: [c.vocabSize, C],
      dtype: q4Dtype(C, matrices),
      bytes: q4Bytes('lm_head', c.vocabSize, C),
    });
  return steps;
}

/** A q4 matrix in the step's dtype, as `be.weight` takes it. */
function weightData(m: MlcQ4, dtype: DType, label: string): Float32Array | Uint8Array {
  if (dtype === 'f32') return dequantizeMlcQ4(m);
  if (dtype === 'q4f16_1') return mlcQ4Bytes(m, label);
  return mlcQ4ToQ4_0(m).blocks; // q4f32_1 scales outside f16's range are rounded to f16
}

/**
 * Loads an opened MLC model (`openMlc`) onto `be` (see the top of this file). Throws, with nothing
 * left allocated: LIMIT_EXCEEDED (a norm, or one row of a matrix, over the binding limit, before
 * any read), TRUNCATED_FILE (a shard ends early), the
 * backend's errors, or `signal.reason`.
 */
export async function loadLlamaMlc<T extends BackendTensor>(
  be: Backend<T>,
  model: MlcModel,
  opts: MlcLoadOptions = {},
): Promise<LlamaModel<T>> {
  const c = model.config;
  const steps = mlcLoadPlan(model, opts);
  refuseOversize(
    be.maxTensorBytes,
    steps.map((s) => [
      `${weightLabel(s.weight, s.layer)} (${s.tensor}, ${s.dtype})`,
      byteSize(s.shape, s.dtype),
      s.shape.length === 2 ? byteSize([1, s.shape[1]!], s.dtype) : undefined,
    ]),
    'Pick a smaller model, or a browser and GPU with a larger storage-buffer binding limit.',
  );
  const total = steps.reduce((a, s) => a + s.bytes, 0);
  let done = 0;
  const report = (p: LoadProgress) => opts.onProgress?.(p);
  const tensors: T[] = [];
  try {
    opts.signal?.throwIfAborted();
    report({ bytesDone: 0, bytesTotal: total, tensor: steps[0]!.tensor });
    const layers = Array.from({ length: c.nLayers }, () => ({}) as Partial<LlamaLayer<T>>);
    const global: Partial<Record<'tokenEmbedding' | 'rmsFinal' | 'wcls', T>> = {};
    for (const s of steps) {
      opts.signal?.throwIfAborted();
      const label = weightLabel(s.weight, s.layer);
      let t: T;
      if (s.shape.length === 1) {
        t = be.fromData(s.shape, await readMlcVector(model, s.tensor), label);
      } else {
        const m =
          s.layer === null
            ? await readMlcQ4(model, s.tensor)
            : await readMlcSite(model, s.layer, s.weight as LinearSite);
        t = be.weight(s.dtype, s.shape as [number, number], weightData(m, s.dtype, label), label);
      }
      tensors.push(t);
      if (s.layer === null) global[s.weight as keyof typeof global] = t;
      else layers[s.layer]![s.weight as keyof LlamaLayer<T>] = t;
      done += s.bytes;
      report({ bytesDone: done, bytesTotal: total, tensor: s.tensor });
    }
    opts.signal?.throwIfAborted();
    const tokenEmbedding = global.tokenEmbedding!;
    return {
      be,
      config: c,
      tokenEmbedding,
      layers: layers as LlamaLayer<T>[],
      rmsFinal: global.rmsFinal!,
      wcls: c.sharedClassifier ? tokenEmbedding : global.wcls!,
      tensors,
    };
  } catch (e) {
    for (const t of tensors) be.destroy(t);
    throw e;
  }
}
