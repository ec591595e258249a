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
  // whole model in float32 vs PyTorch float64: logits O(1), 2 layers, gradients O(0.1)
  model_fixture: { atol: 2e-5, rtol: 1e-4 },
  // stories260K logits (O(10)) after 5 layers, GPU f32 vs reference with f64 accumulation
  model_logits: { atol: 2e-4, rtol: 1e-4 },
  rmsnorm_forward: { atol: 1e-5, rtol: 1e-4 },
  rmsnorm_backward: { atol: 1e-5, rtol: 1e-4 },
  // reductions over long rows (K up to 4096) reorder sums
  matmul: { atol: 1e-4, rtol: 1e-4 },
  // quantized weights: the reference multiplies by the same dequantized values; only sum order differs
  matmul_q8_0: { atol: 1e-4, rtol: 1e-4 },
  matmul_q4_0: { atol: 1e-4, rtol: 1e-4 },
  // LoRA gradients of a 2-layer model, split weights vs unsplit: the input gradient sums the parts
  // in another order and the difference passes back through attention and the other layer.
  // Measured: SwiftShader within 1e-4; an H100 (tiled kernels) 2.4e-4 abs on a gradient of 0.145.
  split_lora_grad: { atol: 5e-4, rtol: 1e-3 },
  attention: { atol: 1e-5, rtol: 1e-4 },
  // rope: angles are f32 (run.c), and GPU pow vs the reference's powf moves an angle by up to ~2
  // ulps ≤ 2·pos·2^-23 rad; a rotated pair moves by |x|·√2 times that (|x| ≤ 1 in the tests).
  // positions < 256: ≤ 4.3e-5. Long contexts, positions ≤ 2048: ≤ 3.5e-4.
  rope: { atol: 5e-5, rtol: 1e-4 },
  rope_longpos: { atol: 5e-4, rtol: 1e-4 },
  // row softmaxes over V ≤ 32000: exp/log in f32 and a reordered Σexp; at ±300 the log-probs are
  // ~600 (rtol covers them). Measured on SwiftShader: worst needs atol < 4e-10 at rtol 1e-4.
  softmax: { atol: 1e-5, rtol: 1e-4 },
  log_softmax: { atol: 1e-5, rtol: 1e-4 },
  crossentropy: { atol: 1e-5, rtol: 1e-4 },
  kl: { atol: 1e-5, rtol: 1e-4 },
  soft_crossentropy: { atol: 1e-5, rtol: 1e-4 },
  // optimizer state over 5 steps (measured: needs atol 2.7e-7 at rtol 1e-5); Σg² in a fixed order
  adamw: { atol: 1e-6, rtol: 1e-5 },
  grad_norm_squared: { atol: 1e-6, rtol: 1e-5 },
  // element-wise and small ops: a few roundings per element (gelu's erfc fit is < 1.2e-7 relative,
  // exp within a few ULP); embedding and meanpool sum a handful of rows
  embedding: { atol: 1e-6, rtol: 1e-5 },
  swiglu: { atol: 1e-6, rtol: 1e-5 },
  residual: { atol: 1e-6, rtol: 1e-5 },
  gelu: { atol: 1e-6, rtol: 1e-5 },
  elu: { atol: 1e-6, rtol: 1e-5 },
  dropout: { atol: 1e-6, rtol: 1e-5 },
  meanpool: { atol: 1e-6, rtol: 1e-5 },
  // natmix: dots over U ≤ 130, dα over C ≤ 1000 in a reordered f32 sum (measured: ≤ 2.4e-7 abs)
  natmix: { atol: 1e-6, rtol: 1e-5 },
  // bias: the backward sums up to 1000 rows per column in f32 (the reference accumulates in f64);
  // measured: ≤ 2.4e-7 abs on O(1) sums, ≤ 5.4e-7 relative on sums of ~35
  bias: { atol: 1e-6, rtol: 1e-5 },
  // rankloss, sigmoid: a few roundings per element (f32 exp within a few ULP)
  rankloss: { atol: 1e-6, rtol: 1e-5 },
  sigmoid: { atol: 1e-6, rtol: 1e-5 },
  // unlikelihood: row softmaxes over V ≤ 32000 like crossentropy
  unlikelihood: { atol: 1e-5, rtol: 1e-4 },
  // nceweights: a masked mean over T tokens, tanh, one product per weight
  nceweights: { atol: 1e-6, rtol: 1e-5 },
};

export function tolFor(op: string): Tol {
  return TOL[op] ?? TOL[op.replace(/_(forward|backward.*)$/, '')] ?? TOL.default!;
}

/** Finite differences: analytic (reference, float64) vs central differences. */
export const FD = { h: 1e-6, atol: 1e-6, rtol: 1e-5 };
