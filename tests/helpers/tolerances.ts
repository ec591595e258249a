/**
 * Every tolerance in one place. GPU vs CPU reference (float32 both sides): |a − e| ≤ atol + rtol·|e|.
 * Finite differences (float64 reference, central differences, h = 1e-6): see FD.
 */
export interface Tol {
  atol: number;
  rtol: number;
}

export const TOL: Record<string, Tol> = {
  default: { atol: 1e-5, rtol: 1e-4 },
  rmsnorm_forward: { atol: 1e-5, rtol: 1e-4 },
  rmsnorm_backward: { atol: 1e-5, rtol: 1e-4 },
  // reductions over long rows (K up to 4096) reorder sums
  matmul: { atol: 1e-4, rtol: 1e-4 },
  attention: { atol: 1e-5, rtol: 1e-4 },
  crossentropy: { atol: 1e-5, rtol: 1e-4 },
  adamw: { atol: 1e-6, rtol: 1e-5 },
};

export function tolFor(op: string): Tol {
  return TOL[op] ?? TOL[op.replace(/_(forward|backward.*)$/, '')] ?? TOL.default!;
}

/** Finite differences: analytic (reference, float64) vs central differences. */
export const FD = { h: 1e-6, atol: 1e-6, rtol: 1e-5 };
