/**
 * Standalone matmul benchmark: `node --import tsx --import ./tools/raw-hooks.mjs bench/matmul-run.ts [--quick]`.
 * Prints a table, then the results as JSON.
 */
import { Gpu } from '../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../src/engine/gpu/node.ts';
import { benchMatmul } from './matmul.ts';

const quick = process.argv.includes('--quick');
const gpu = await Gpu.create(await nodeGpu({ robustness: true }));
console.log(
  `adapter: ${gpu.info.description || gpu.info.device || gpu.info.vendor}${gpu.info.software ? ' (software)' : ''}`,
);
const t0 = performance.now();
const results = await benchMatmul(gpu, { quick });
console.table(results.map((r) => ({ name: r.name, value: Number(r.value.toFixed(3)), unit: r.unit })));
console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
console.log(JSON.stringify(results));
gpu.destroy();
