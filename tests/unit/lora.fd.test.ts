// The LoRA site (base matmul + dropout + A + scale + B) through the tape, in float64 on the CPU
// references: every gradient against central finite differences.
import { describe, it } from 'vitest';
import { CpuBackend, type CpuTensor } from '../../src/engine/backend/cpu.ts';
import { checkGrad, dotLoss } from '../helpers/fd.ts';
import { loraCase } from '../helpers/lora-case.ts';

describe('LoRA site vs finite differences (float64 references through the tape)', () => {
  it('dx, dA, dB', () => {
    const be = new CpuBackend('f64');
    const c = loraCase(be);
    const { out } = c.run();
    const grads = {
      dx: Float64Array.from(out.dx.data),
      dA: Float64Array.from(out.dA.data),
      dB: Float64Array.from(out.dB.data),
    };
    // run() also does the backward, which leaves y as the forward made it
    const loss = () => dotLoss(c.run().out.y.data, c.g);
    for (const [name, t, g] of [
      ['x', c.x, grads.dx],
      ['A', c.A.value, grads.dA],
      ['B', c.B.value, grads.dB],
    ] as const) {
      checkGrad(`lora.${name}`, loss, (t as CpuTensor).data as Float64Array, g);
    }
  });
});
