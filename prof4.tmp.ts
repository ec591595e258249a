import { Gpu } from './src/engine/gpu/gpu.ts';
import { nodeGpu } from './src/engine/gpu/node.ts';
import * as mm from './src/engine/ops/matmul.ts';
const gpu = await Gpu.create(await nodeGpu());
const time = async (name: string, f: () => void, n = 50) => {
  f(); await gpu.sync();
  const t = performance.now();
  for (let i = 0; i < n; i++) f();
  await gpu.sync();
  console.log(name.padEnd(40), ((performance.now() - t) / n).toFixed(3), 'ms');
};
const a = gpu.tensor([64, 512], 'a'), o = gpu.tensor([64, 512], 'o');
for (const [N, K] of [[64, 64], [172, 64], [64, 172], [512, 64]]) {
  const w = gpu.tensor([N, K], 'w');
  for (const B of [1, 16]) {
    for (const RPW of [4, 8, 16, 64]) await time(`N${N} K${K} B${B} gemv RPW${RPW}`, () => mm.matmulForwardGemv(gpu, o, a, w, B, K, N, false, { TPR: 1, RPW }));
    await time(`N${N} K${K} B${B} tiled`, () => mm.matmulForwardTiled(gpu, o, a, w, B, K, N, false));
  }
}
process.exit(0);
