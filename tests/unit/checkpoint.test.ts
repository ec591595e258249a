import { describe, expect, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import {
  readLlamaSafetensors,
  readLoraSafetensors,
  writeLlamaSafetensors,
  writeLoraSafetensors,
} from '../../src/engine/io/checkpoint.ts';
import { writeSafetensors } from '../../src/engine/io/safetensors.ts';
import { createLora, loadLora, saveLora } from '../../src/engine/model/lora.ts';
import { stories260K } from '../helpers/stories.ts';

const { config, weights } = stories260K();
const ab = (u: Uint8Array) => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;

describe('our model and adapter files (safetensors)', () => {
  it('a model round-trips exactly', () => {
    const back = readLlamaSafetensors(ab(writeLlamaSafetensors(config, weights)));
    expect(back.config).toEqual(config);
    expect(back.weights.wq).toEqual(weights.wq);
    expect(back.weights.wcls).toBe(back.weights.tokenEmbedding);
  });

  it('an adapter round-trips and loads; an adapter for another model is refused', async () => {
    const be = new CpuBackend();
    const lora = createLora(be, config, { rank: 4, alpha: 8, dropout: 0, targets: ['q', 'v', 'down'] }, 3);
    const state = await saveLora(be, config, lora);
    const back = readLoraSafetensors(ab(writeLoraSafetensors(state)));
    expect(back.config).toEqual(state.config);
    expect(back.tensors['layers.2.down.A']!.data).toEqual(state.tensors['layers.2.down.A']!.data);
    expect(() => loadLora(be, config, back)).not.toThrow();
    const other = { ...config, dim: 128, hiddenDim: 344 };
    expect(() => loadLora(be, other, back)).toThrow(
      expect.objectContaining({ code: 'SHAPE_MISMATCH', message: expect.stringMatching(/another model/) }),
    );
  });

  it('safetensors files that are not ours are refused with a clear error', () => {
    const foreign = writeSafetensors({ w: { dtype: 'F32', shape: [1], data: new Float32Array(1) } });
    expect(() => readLlamaSafetensors(ab(foreign), 'x.safetensors')).toThrow(EngineError);
    expect(() => readLoraSafetensors(ab(foreign), 'x.safetensors')).toThrow(/not a dust2gold adapter/);
    const truncated = writeLoraSafetensors({
      config: { rank: 1, alpha: 1, dropout: 0, targets: ['q'] },
      model: { dim: 1, hiddenDim: 1, nLayers: 1, kvDim: 1 },
      tensors: { a: { shape: [4], data: new Float32Array(4) } },
    });
    expect(() => readLoraSafetensors(ab(truncated.subarray(0, truncated.length - 3)))).toThrow(
      expect.objectContaining({ code: 'TRUNCATED_FILE' }),
    );
  });
});
