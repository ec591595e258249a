// The LoRA site on the GPU vs the CPU references (float32), dropout on: output and every gradient.
import { describe, it } from 'vitest';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { GpuBackend } from '../../src/engine/backend/gpu.ts';
import { checkOp } from '../helpers/checkop.ts';
import { testGpu } from '../helpers/gpu.ts';
import { loraCase } from '../helpers/lora-case.ts';

describe('LoRA site GPU vs reference', () => {
  it('y, dx, dA, dB with dropout 0.25', async () => {
    const gpu = await testGpu();
    const cpu = loraCase(new CpuBackend()).run().out;
    const be = new GpuBackend(gpu);
    await gpu.checked(async () => {
      const { out, release } = loraCase(be).run();
      for (const k of ['y', 'dx', 'dA', 'dB'] as const)
        checkOp(`lora.${k}`, await be.read(out[k]), cpu[k].data);
      release();
    });
  });
});
