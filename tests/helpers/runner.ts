// The logits of every position of one sequence through the KV-cache runner (what Solve runs).
import type { BackendTensor } from '../../src/engine/backend/types.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import type { LlamaModel } from '../../src/engine/model/llama.ts';

export async function logitsOf<T extends BackendTensor>(
  model: LlamaModel<T>,
  tokens: number[],
): Promise<Float32Array> {
  const runner = new LlamaRunner(model, { slots: 1, maxT: tokens.length });
  try {
    const rows = tokens.map((token, pos) => ({ slot: 0, pos, token }));
    return await runner.forward(
      rows,
      rows.map((_, i) => i),
    );
  } finally {
    runner.destroy();
  }
}
