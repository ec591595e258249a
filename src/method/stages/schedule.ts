/**
 * Learning-rate schedule of the authors' code: linear warm-up from 0, then linear decay to 0 at
 * the last step (the usual `linear schedule with warmup`).
 */
export function linearWarmupDecay(step: number, steps: number, warmup: number): number {
  if (step < warmup) return (step + 1) / warmup;
  return Math.max(0, (steps - step) / Math.max(1, steps - warmup));
}
