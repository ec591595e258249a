/**
 * Named parameter sets as plain data (for IndexedDB, files and resume): the integration unit of
 * NAT and the ranker head use these; LoRA has its own layout (lora.ts) with the same conventions.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';

export type TensorState = Record<string, { shape: number[]; data: Float32Array }>;

/** A parameter with a zeroed gradient buffer beside it. */
export function makeParam<T extends BackendTensor>(
  be: Backend<T>,
  name: string,
  shape: readonly number[],
  data: Float32Array,
): Param<T> {
  return {
    name,
    value: be.fromData(shape, data, name),
    grad: be.fromData(shape, new Float32Array(data.length), `d(${name})`),
  };
}

/**
 * Uploads the tensors `spec` names (name → shape) from `state`, each checked for presence and size.
 * `what` names the set in messages ("NAT unit", "ranker head"). Frees what it made on failure.
 */
export function loadParams<T extends BackendTensor>(
  be: Backend<T>,
  state: TensorState,
  spec: readonly (readonly [string, readonly number[]])[],
  what: string,
): Map<string, Param<T>> {
  const out = new Map<string, Param<T>>();
  try {
    for (const [name, shape] of spec) {
      const t = state[name];
      const n = shape.reduce((a, b) => a * b, 1);
      if (!t || t.data.length !== n) {
        throw new EngineError(
          'SHAPE_MISMATCH',
          `${what} tensor ${name} is missing or has the wrong size (want ${shape.join('×')}): it was made for another model or configuration.`,
        );
      }
      out.set(name, makeParam(be, name, shape, t.data));
    }
  } catch (e) {
    destroyParams(be, [...out.values()]);
    throw e;
  }
  return out;
}

export async function saveParams<T extends BackendTensor>(
  be: Backend<T>,
  params: readonly Param<T>[],
): Promise<TensorState> {
  const s: TensorState = {};
  for (const p of params) s[p.name] = { shape: [...p.value.shape], data: await be.read(p.value) };
  return s;
}

export function destroyParams<T extends BackendTensor>(be: Backend<T>, params: readonly Param<T>[]): void {
  for (const p of params) {
    be.destroy(p.value);
    be.destroy(p.grad);
  }
}

/** PyTorch nn.Linear's default init (Kaiming-uniform, a = √5): U(−1/√fanIn, 1/√fanIn). */
export function kaimingUniform(rnd: () => number, rows: number, fanIn: number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return new Float32Array(rows * fanIn).map(() => rnd() * bound);
}
