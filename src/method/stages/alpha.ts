/** NAT's α per layer as step metrics. */
import type { BackendTensor } from '../../engine/backend/types.ts';
import type { LlamaModel } from '../../engine/model/llama.ts';
import type { NatAlphas } from '../../engine/train/nat.ts';
import type { Example, Objective } from '../../engine/train/trainer.ts';

/**
 * Wraps NAT's objective: after each micro-batch's forward (before the tape is released) it adds
 * Σα and the row count per layer to the metrics (`alpha_sum_<l>`, `alpha_n_<l>`: numbers add up
 * over micro-batches), so the step can report the mean α per layer.
 */
export function withAlphaSums<T extends BackendTensor>(
  model: LlamaModel<T>,
  inner: Objective<T, Example>,
  alphas: NatAlphas<T>[],
): Objective<T, Example> {
  return {
    prepare: (e) => inner.prepare(e),
    async run(tape, chunk, ctx) {
      alphas.length = 0;
      const r = await inner.run(tape, chunk, ctx);
      const metrics = { ...r.metrics };
      const values = await model.be.readMany(alphas.map((a) => a.alpha));
      for (const [i, a] of alphas.entries()) {
        const v = values[i]!;
        const ks = `alpha_sum_${a.layer}`,
          kn = `alpha_n_${a.layer}`;
        metrics[ks] = ((metrics[ks] as number | undefined) ?? 0) + v.reduce((x, y) => x + y, 0);
        metrics[kn] = ((metrics[kn] as number | undefined) ?? 0) + v.length;
      }
      alphas.length = 0;
      return { loss: r.loss, metrics };
    },
  };
}

/** Replaces the α sums by `alpha`: the mean α per layer (absent when the stage has no NAT unit). */
export function meanAlphas(
  m: Record<string, number | number[]>,
  nLayers: number,
): Record<string, number | number[]> {
  if (!('alpha_n_0' in m)) return { ...m };
  const out: Record<string, number | number[]> = {};
  for (const [k, v] of Object.entries(m)) if (!k.startsWith('alpha_')) out[k] = v;
  out['alpha'] = Array.from({ length: nLayers }, (_, l) => {
    const n = m[`alpha_n_${l}`] as number | undefined;
    return n ? (m[`alpha_sum_${l}`] as number) / n : 0;
  });
  return out;
}
