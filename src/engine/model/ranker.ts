/**
 * The ranker's head (METHOD.md §3) on the mean-pooled final hidden state h (C):
 *   h1 = ELU(W1 h + b1) + h,  h2 = ELU(W2 h1 + b2) + h1,  z = w · h2 + b,  s = σ(z)
 * Weights start as PyTorch's nn.Linear does (Kaiming-uniform; biases U(±1/√fan_in)).
 * Names: w1, b1, w2, b2, w, b.
 */
import type { Backend, BackendTensor } from '../backend/types.ts';
import type { Param } from '../autograd/tape.ts';
import { EngineError } from '../errors.ts';
import { uniformStream } from './lora.ts';
import { destroyParams, kaimingUniform, loadParams, saveParams, type TensorState } from './params.ts';

export interface RankerHead<T extends BackendTensor> {
  readonly dim: number;
  readonly w1: Param<T>;
  readonly b1: Param<T>;
  readonly w2: Param<T>;
  readonly b2: Param<T>;
  readonly w: Param<T>;
  readonly b: Param<T>;
  readonly params: Param<T>[];
}

export interface RankerHeadState {
  dim: number;
  tensors: TensorState;
}

function spec(C: number): [string, number[]][] {
  return [
    ['w1', [C, C]],
    ['b1', [C]],
    ['w2', [C, C]],
    ['b2', [C]],
    ['w', [1, C]],
    ['b', [1]],
  ];
}

export function createRankerHead<T extends BackendTensor>(
  be: Backend<T>,
  dim: number,
  seed: number,
): RankerHead<T> {
  const rnd = uniformStream(seed);
  const tensors: TensorState = {};
  for (const [name, shape] of spec(dim)) {
    const rows = shape.length === 2 ? shape[0]! : 1;
    const fanIn = dim;
    const data = kaimingUniform(rnd, rows, fanIn).subarray(
      0,
      shape.reduce((a, b) => a * b, 1),
    );
    tensors[name] = { shape, data: new Float32Array(data) };
  }
  return loadRankerHead(be, { dim, tensors });
}

export function loadRankerHead<T extends BackendTensor>(
  be: Backend<T>,
  state: RankerHeadState,
): RankerHead<T> {
  if (!(state.dim >= 1)) throw new EngineError('BAD_ARGUMENT', 'a ranker head needs a width ≥ 1');
  const p = loadParams<T>(be, state.tensors, spec(state.dim), 'ranker head');
  const g = (n: string) => p.get(n)!;
  return {
    dim: state.dim,
    w1: g('w1'),
    b1: g('b1'),
    w2: g('w2'),
    b2: g('b2'),
    w: g('w'),
    b: g('b'),
    params: [...p.values()],
  };
}

export async function saveRankerHead<T extends BackendTensor>(
  be: Backend<T>,
  h: RankerHead<T>,
): Promise<RankerHeadState> {
  return { dim: h.dim, tensors: await saveParams(be, h.params) };
}

export function destroyRankerHead<T extends BackendTensor>(be: Backend<T>, h: RankerHead<T>): void {
  destroyParams(be, h.params);
}
