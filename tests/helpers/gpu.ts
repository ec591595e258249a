/**
 * The test GPU: a real WebGPU adapter through Dawn (SwiftShader where there is no GPU). No
 * adapter is a failure, never a skip.
 */
import { Gpu } from '../../src/engine/gpu/gpu.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';

let shared: Promise<Gpu> | undefined;

export function testGpu(): Promise<Gpu> {
  shared ??= (async () => Gpu.create(await nodeGpu()))();
  return shared;
}
