/** Test backends and model views shared by several test files. */
import { CpuBackend, type CpuTensor } from '../../src/engine/backend/cpu.ts';
import { byteSize, type DType } from '../../src/engine/gpu/tensor.ts';
import type { LlamaModel } from '../../src/engine/model/llama.ts';
import type { WeightName } from '../../src/engine/model/weights.ts';

/** A CPU backend that counts the bytes of the tensors it makes: the engine's own allocations. */
export class CountingCpu extends CpuBackend {
  /** Bytes of dedicated tensors (weights, state, the runner's buffers). */
  dedicated = 0;
  /** Bytes of scratch tensors (a training step's activations). */
  scratchBytes = 0;
  override scratch(shape: readonly number[], label: string, dtype: DType = 'f32'): CpuTensor {
    this.scratchBytes += byteSize(shape, dtype);
    return super.scratch(shape, label, dtype);
  }
  override empty(shape: readonly number[], label: string, dtype: DType = 'f32'): CpuTensor {
    this.dedicated += byteSize(shape, dtype);
    return super.empty(shape, label, dtype);
  }
  override fromData(
    shape: readonly number[],
    data: Float32Array | Uint32Array | Int32Array,
    label: string,
  ): CpuTensor {
    this.dedicated += data.byteLength;
    return super.fromData(shape, data, label);
  }
}

/** A CPU model's weights as one f32 array per weight name (layers concatenated, llama2.c order). */
export function cpuWeights(m: LlamaModel<CpuTensor>): Record<WeightName, Float32Array> {
  const cat = (ts: CpuTensor[]) => {
    const out = new Float32Array(ts.reduce((a, t) => a + t.data.length, 0));
    let o = 0;
    for (const t of ts) {
      out.set(t.data, o);
      o += t.data.length;
    }
    return out;
  };
  const per = (k: keyof (typeof m.layers)[number]) => cat(m.layers.map((l) => l[k]));
  return {
    tokenEmbedding: cat([m.tokenEmbedding]),
    rmsAtt: per('rmsAtt'),
    wq: per('wq'),
    wk: per('wk'),
    wv: per('wv'),
    wo: per('wo'),
    rmsFfn: per('rmsFfn'),
    w1: per('w1'),
    w2: per('w2'),
    w3: per('w3'),
    rmsFinal: cat([m.rmsFinal]),
    wcls: cat([m.wcls]),
  };
}
