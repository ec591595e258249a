/** Batches of a stage: seeded epoch shuffles and question pairs. */
import { uniformStream } from '../../engine/model/lora.ts';
import { EngineError } from '../../engine/errors.ts';
import type { StageData, TrainItem } from './types.ts';

/** Seeded epoch shuffles: every item once per epoch, in a new order each epoch. */
export class BatchDrawer<E> {
  private order: number[] = [];
  private i = 0;
  private readonly rnd: () => number;
  constructor(
    private readonly items: readonly E[],
    seed: number,
  ) {
    if (items.length === 0)
      throw new EngineError('BAD_ARGUMENT', 'there is nothing to train on: the data set is empty');
    this.rnd = uniformStream(seed);
  }
  next(n: number): E[] {
    const out: E[] = [];
    while (out.length < n) {
      if (this.i >= this.order.length) {
        this.order = this.items.map((_, k) => k);
        for (let k = this.order.length - 1; k > 0; k--) {
          const r = Math.floor(((this.rnd() + 1) / 2) * (k + 1)) % (k + 1);
          [this.order[k], this.order[r]] = [this.order[r]!, this.order[k]!];
        }
        this.i = 0;
      }
      out.push(this.items[this.order[this.i++]!]!);
    }
    return out;
  }
}

/** (positive, negative) pairs of the same question, one per question that has both. */
export function questionPairs(data: StageData): { pos: TrainItem[]; neg: TrainItem[] }[] {
  const byQ = new Map<string, { pos: TrainItem[]; neg: TrainItem[] }>();
  const at = (q: string) => byQ.get(q) ?? byQ.set(q, { pos: [], neg: [] }).get(q)!;
  for (const it of data.pos) at(it.question).pos.push(it);
  for (const it of data.neg) at(it.question).neg.push(it);
  return [...byQ.values()].filter((g) => g.pos.length > 0 && g.neg.length > 0);
}
