/**
 * matmul: GPU encode functions. Same argument order as ref/matmul.ts, with `gpu` first.
 * out (B,N) = inp (B,K) · Wᵀ with W (N,K) f32, q8_0 or q4_0, or as the files store it: q4f16_1 (MLC /
 * web-llm), q4_k, q6_k (GGUF K-quants); frozen, dequantized in-kernel (shaders/matmul_quant.wgsl,
 * layouts in quant.ts and quant-gpu.ts).
 * Small B (decode) runs the memory-bound kernels of shaders/matmul_gemv.wgsl; larger B and both
 * backwards run the kernels of shaders/matmul.wgsl: workgroup-tiled on GPUs, register-blocked
 * without workgroup memory on software GPUs (`matmulVariant`).
 *
 * A weight larger than one binding arrives split by rows (`Tensor.parts`, made by backend/gpu.ts
 * `uploadWeightSplit`): the forward runs the same kernel on each part into a scratch (B, n1 − n0)
 * and copies its columns into `out` (shaders/split_cols.wgsl, `accumulate` applied in that copy:
 * the same f32 operations as unsplit, so the same bits); the input gradient gathers dout's columns
 * of each part and accumulates the parts' products into dinp (a sum over N in another order:
 * within the matmul tolerance of the unsplit result). The kernels themselves are unchanged.
 */
import f16Wgsl from '../../../shaders/f16.wgsl?raw';
import matmulWgsl from '../../../shaders/matmul.wgsl?raw';
import gemvWgsl from '../../../shaders/matmul_gemv.wgsl?raw';
import quantWgsl from '../../../shaders/matmul_quant.wgsl?raw';
import splitWgsl from '../../../shaders/split_cols.wgsl?raw';
import { EngineError } from '../errors.ts';
import type { Gpu } from '../gpu/gpu.ts';
import type { KernelSpec } from '../gpu/pipelines.ts';
import { numel, type DType, type Tensor, type TensorPart } from '../gpu/tensor.ts';
import { actOf, needF16, typed, type ActType } from './act.ts';
import { grid } from './residual.ts';

/** Forward takes the decode kernel up to this many rows (the whole batch sits in registers). */
export const GEMV_MAX_B = 16;
const code = `${f16Wgsl}\n${matmulWgsl}\n${quantWgsl}`;
const gemvCode = `${f16Wgsl}\n${gemvWgsl}\n${quantWgsl}`;
/** The kernels' DTYPE: 0 f32; 8, 4 the q8_0 / q4_0 kernels; 1–3 units of matmul_quant.wgsl. */
const DTYPE_ID: Partial<Record<DType, number>> = { f32: 0, q8_0: 8, q4_0: 4, q4f16_1: 1, q4_k: 2, q6_k: 3 };
/** Values per block: K must be a multiple. */
const BLOCK: Partial<Record<DType, number>> = { q8_0: 32, q4_0: 32, q4f16_1: 32, q4_k: 256, q6_k: 256 };
/** DTYPE ids of the weights the unit kernels (`…_u`) read. */
const isUnit = (id: number): boolean => id >= 1 && id <= 3;
const TILES = { TX: 16, TY: 16, TK: 16 }; // 64×64 outputs per workgroup, 4×4 per thread

/** Decode-kernel shape: TPR threads per weight row (splitting K) × RPW rows per workgroup. */
export interface GemvConfig {
  TPR: number;
  RPW: number;
  /** Batch rows per workgroup (4, 8, 12 or 16; default 16: each weight read once per 16 rows). */
  BT?: number;
  /**
   * Weight rows per thread (1–4; K % 32 == 0): the `_r` kernel, which loads each input once for
   * RT rows. Unset: the one-row kernels.
   */
  RT?: number;
  /**
   * f32 weights: each thread owns 4 weight rows × 4 batch rows (RPW threads per workgroup, TPR
   * ignored, no workgroup memory). Software GPUs' shape; quantized weights take the row kernel.
   */
  blocked?: boolean;
}

/**
 * GPUs: 16 threads split each row's K (coalesced loads), then one barrier. SwiftShader runs a
 * workgroup's SIMD groups as fibers that switch at every barrier: there a thread owns a whole row
 * and no barrier is compiled in, 2–3× faster at B = 1 than the GPU shape.
 */
export function gemvConfig(gpu: Gpu, dtype: DType = 'f32', B = 1): GemvConfig {
  if (gpu.info.software) return { TPR: 1, RPW: 8, blocked: true };
  const key = gemvKey(dtype, B);
  return gpu.tuning.gemv?.[key] ?? HARDWARE_GEMV[key] ?? { TPR: 16, RPW: 4 };
}

/**
 * Hardware defaults other than 16 × 4, from `npm run bench -- --tune` on an NVIDIA H100 (Vulkan
 * through Dawn, 2026-11-26; every shape's time in docs/bench/nvidia-h100-2026-11-26-tune.json):
 * quantized weights at B = 2–16 take 4 weight rows per thread and 8 batch rows per workgroup: 390
 * µs for LLaMA-7b's two shapes at B = 16 against 1,480 µs for the one-row kernel (16 × 4, BT 16),
 * and 7B-shaped decode at m = 16 went from 100 to 271 tokens/s. At B = 1 the one-row kernel stays:
 * the sweep, timing the two shapes alone, had the `_r` kernel ahead (149 against 209 µs for q4_0),
 * but in a whole 7B decode step it was not (`npm run bench -- --only gemvb1`, H100, 2026-11-27:
 * 0.80–1.02× with f32 activations, 0.61–0.86× with f16).
 */
const HARDWARE_GEMV: Partial<Record<string, GemvConfig>> = {
  q_bn: { TPR: 32, RPW: 2, RT: 4, BT: 8 },
  u_bn: { TPR: 32, RPW: 2, RT: 4, BT: 8 },
};

/**
 * The decode-kernel classes a tuning table (`Gpu.tuning.gemv`, set by `npm run bench -- --tune`)
 * is keyed by: f32, q (q8_0, q4_0) or u (q4f16_1, q4_k, q6_k) weights, at B = 1 or B > 1.
 */
export function gemvKey(dtype: DType, B: number): string {
  const kind = dtype === 'f32' ? 'f32' : dtype === 'q8_0' || dtype === 'q4_0' ? 'q' : 'u';
  return `${kind}_b${B === 1 ? 1 : 'n'}`;
}

/**
 * The any-B kernels (forward past the decode sizes, both backwards). 'tiled': a workgroup stages
 * 64×64 tiles through workgroup memory, two barriers per 16 of the reduction (GPUs). 'blocked': a
 * thread computes a 4×4 tile straight from global memory, no workgroup memory, no barrier —
 * SwiftShader runs a workgroup's SIMD groups as fibers that switch at every barrier.
 */
export type MatmulVariant = 'tiled' | 'blocked';
export function matmulVariant(gpu: Gpu): MatmulVariant {
  return gpu.info.software ? 'blocked' : 'tiled';
}
const RB_WG = 64; // threads per workgroup of the blocked kernels

/**
 * The kernels' IN_T (binding 2: inp, or dout in the backwards) and OUT_T (binding 1: out, dinp or
 * dweight): f32, or f16 on devices with shader-f16 (ops/act.ts).
 */
function io(gpu: Gpu, out: Tensor, inp: Tensor, fn: string): { IN_T: ActType; OUT_T: ActType } {
  const t = { IN_T: actOf(inp, fn), OUT_T: actOf(out, fn) };
  needF16(gpu.info.f16, [t.IN_T, t.OUT_T], fn);
  return t;
}

function dtypeId(weight: Tensor, N: number, K: number, fn: string): number {
  const id = DTYPE_ID[weight.dtype];
  if (id === undefined) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${fn}: weight "${weight.label}" has dtype ${weight.dtype}; use f32, q8_0, q4_0, q4f16_1, q4_k or q6_k.`,
    );
  }
  const block = BLOCK[weight.dtype] ?? 1;
  if (numel(weight.shape) !== N * K || K % block !== 0) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${fn}: weight "${weight.label}" [${weight.shape.join(', ')}] ${weight.dtype} is not (N=${N}, K=${K})` +
        (block > 1 ? ` with K a multiple of ${block}` : '') +
        '.',
    );
  }
  return id;
}

function tiled(entry: string, DTYPE: number, rows: number, cols: number): [KernelSpec, [number, number]] {
  return [
    { op: 'matmul', code, entry, constants: { ...TILES, DTYPE } },
    [Math.ceil(cols / (4 * TILES.TX)), Math.ceil(rows / (4 * TILES.TY))],
  ];
}

/**
 * The blocked kernel `entry` for C (rows × cols): f32 with every row length a multiple of 4 (`vec4`)
 * takes the vec4 entry, other f32 shapes the scalar one (`…1`), q8_0 / q4_0 the `…_q` one, q4f16_1,
 * q4_k and q6_k the `…_u` one.
 */
function blocked(
  gpu: Gpu,
  entry: string,
  DTYPE: number,
  vec4: boolean,
  rows: number,
  cols: number,
): [KernelSpec, [number, number]] {
  const name = isUnit(DTYPE) ? `${entry}_u` : DTYPE !== 0 ? `${entry}_q` : vec4 ? entry : `${entry}1`;
  const constants = DTYPE !== 0 ? { WG: RB_WG, DTYPE } : { WG: RB_WG };
  const tiles = Math.ceil(rows / 4) * Math.ceil(cols / 4);
  return [{ op: 'matmul', code, entry: name, constants }, grid2d(gpu, Math.ceil(tiles / RB_WG))];
}

/** out (B,N) = or += (accumulate) inp (B,K) · weightᵀ; weight (N,K) of any weight dtype (above). */
export function matmulForward(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  weight: Tensor,
  B: number,
  K: number,
  N: number,
  accumulate = false,
  variant: MatmulVariant = matmulVariant(gpu),
): void {
  if (weight.parts) {
    forwardParts(gpu, out, weight, weight.parts, B, K, N, accumulate, (o, w, n) =>
      matmulForward(gpu, o, inp, w, B, K, n, false, variant),
    );
    return;
  }
  if (B <= GEMV_MAX_B && K % 4 === 0) matmulForwardGemv(gpu, out, inp, weight, B, K, N, accumulate);
  else matmulForwardTiled(gpu, out, inp, weight, B, K, N, accumulate, variant);
}

/**
 * The decode kernel: each weight row is read once for all B rows (any B; meant for B ≤ 16).
 * Needs K % 4 == 0. `cfg` defaults to the device's best; tests and benchmarks set it.
 */
export function matmulForwardGemv(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  weight: Tensor,
  B: number,
  K: number,
  N: number,
  accumulate = false,
  cfg: GemvConfig = gemvConfig(gpu, weight.dtype, B),
): void {
  if (weight.parts) {
    forwardParts(gpu, out, weight, weight.parts, B, K, N, accumulate, (o, w, n) =>
      matmulForwardGemv(gpu, o, inp, w, B, K, n, false, cfg),
    );
    return;
  }
  const DTYPE = dtypeId(weight, N, K, 'matmulForward');
  if (K % 4 !== 0)
    throw new EngineError('SHAPE_MISMATCH', `matmulForwardGemv: K=${K} is not a multiple of 4.`);
  const types = io(gpu, out, inp, 'matmulForward');
  if (B === 0 || N === 0) return;
  if (cfg.blocked && DTYPE === 0) {
    const BB = B >= 8 ? 8 : 4; // batch rows per thread: 8 once there are enough rows to fill them
    const RPW = BB === 8 ? Math.max(1, Math.floor(cfg.RPW / 2)) : cfg.RPW; // as many threads in all
    const groups = Math.ceil(N / (4 * RPW));
    const [wx, wy] = grid2d(gpu, groups);
    const spec: KernelSpec = {
      op: 'matmul',
      code: gemvCode,
      entry: BB === 8 ? 'matmul_forward_gemv_rb8' : 'matmul_forward_gemv_rb',
      constants: { RPW },
    };
    gpu.dispatch(
      typed(spec, types),
      [wx, wy, Math.ceil(B / BB)],
      [out, inp, weight],
      [B, K, N, accumulate ? 1 : 0],
    );
    return;
  }
  const { TPR, RPW } = cfg.blocked ? { TPR: 1, RPW: 64 } : cfg;
  const BT = B === 1 ? 1 : Math.min(cfg.BT ?? GEMV_MAX_B, 4 * Math.ceil(B / 4));
  // partial sums through workgroup memory: 64 bytes per (thread, weight row of the thread)
  const wgBytes = cfg.blocked ? 0 : TPR * RPW * (cfg.RT ?? 1) * 64;
  if (wgBytes > (gpu.limits.maxComputeWorkgroupStorageSize ?? 16384)) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `matmulForwardGemv: TPR ${TPR} × RPW ${RPW} × RT ${cfg.RT ?? 1} needs ${wgBytes} bytes of workgroup memory; this device allows ${gpu.limits.maxComputeWorkgroupStorageSize}.`,
    );
  }
  if (cfg.RT && !cfg.blocked && K % 32 === 0) {
    const RT = cfg.RT;
    const [rx, ry] = grid2d(gpu, Math.ceil(N / (RPW * RT)));
    const spec: KernelSpec = {
      op: 'matmul',
      code: gemvCode,
      entry: 'matmul_forward_gemv_r',
      constants: { TPR, RPW, BT, RT, DTYPE },
    };
    gpu.dispatch(
      typed(spec, types),
      [rx, ry, Math.ceil(B / BT)],
      [out, inp, weight, weight], // f32 weights too: the kernel reads them through the u32 view
      [B, K, N, accumulate ? 1 : 0],
    );
    return;
  }
  const [wx, wy] = grid2d(gpu, Math.ceil(N / RPW));
  const entry = isUnit(DTYPE) ? 'matmul_forward_gemv_u' : 'matmul_forward_gemv_q';
  const spec: KernelSpec =
    DTYPE === 0
      ? { op: 'matmul', code: gemvCode, entry: 'matmul_forward_gemv', constants: { TPR, RPW, BT } }
      : { op: 'matmul', code: gemvCode, entry, constants: { TPR, RPW, BT, DTYPE } };
  const bindings = DTYPE === 0 ? [out, inp, weight] : [out, inp, weight, weight]; // quants and scales views
  gpu.dispatch(typed(spec, types), [wx, wy, Math.ceil(B / BT)], bindings, [B, K, N, accumulate ? 1 : 0]);
}

/** `groups` workgroups as an x × y grid (x up to the device's per-dimension limit). */
function grid2d(gpu: Gpu, groups: number): [number, number] {
  const wx = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  return [wx, Math.ceil(groups / Math.max(wx, 1))];
}

/** The any-B kernel (any K for f32): workgroup-tiled by default, or `variant` 'blocked'. */
export function matmulForwardTiled(
  gpu: Gpu,
  out: Tensor,
  inp: Tensor,
  weight: Tensor,
  B: number,
  K: number,
  N: number,
  accumulate = false,
  variant: MatmulVariant = 'tiled',
): void {
  if (weight.parts) {
    forwardParts(gpu, out, weight, weight.parts, B, K, N, accumulate, (o, w, n) =>
      matmulForwardTiled(gpu, o, inp, w, B, K, n, false, variant),
    );
    return;
  }
  const DTYPE = dtypeId(weight, N, K, 'matmulForward');
  const [spec, grid] =
    variant === 'blocked'
      ? blocked(gpu, 'matmul_forward_rb', DTYPE, K % 4 === 0, B, N)
      : tiled('matmul_forward', DTYPE, B, N);
  const types = io(gpu, out, inp, 'matmulForward');
  gpu.dispatch(typed(spec, types), grid, [out, inp, weight], [B, K, N, accumulate ? 1 : 0]);
}

/** dinp (B,K) = or += (accumulate) dout (B,N) · weight; weight (N,K) of any weight dtype. */
export function matmulBackwardInput(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  weight: Tensor,
  B: number,
  K: number,
  N: number,
  accumulate: boolean,
  variant: MatmulVariant = matmulVariant(gpu),
): void {
  if (weight.parts) {
    backwardInputParts(gpu, dinp, dout, weight, weight.parts, B, K, N, accumulate, variant);
    return;
  }
  const DTYPE = dtypeId(weight, N, K, 'matmulBackwardInput');
  const [spec, grid] =
    variant === 'blocked'
      ? blocked(gpu, 'matmul_backward_rb', DTYPE, K % 4 === 0 && N % 4 === 0, B, K)
      : tiled('matmul_backward', DTYPE, B, K);
  const types = io(gpu, dinp, dout, 'matmulBackwardInput');
  gpu.dispatch(typed(spec, types), grid, [dinp, dout, weight], [B, K, N, accumulate ? 1 : 0]);
}

/** dweight (N,K) += doutᵀ (N,B) · inp (B,K); f32 only (trainable matrices, e.g. LoRA). */
export function matmulBackwardWeight(
  gpu: Gpu,
  dweight: Tensor,
  dout: Tensor,
  inp: Tensor,
  B: number,
  K: number,
  N: number,
  variant: MatmulVariant = matmulVariant(gpu),
): void {
  if (dweight.parts) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `matmulBackwardWeight: "${dweight.label}" is split across ${dweight.parts.length} buffers; only frozen weights are split, a trained one must fit one binding.`,
    );
  }
  if (dtypeId(dweight, N, K, 'matmulBackwardWeight') !== 0) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `matmulBackwardWeight: "${dweight.label}" must be f32 (quantized weights are frozen).`,
    );
  }
  const [spec, grid] =
    variant === 'blocked'
      ? blocked(gpu, 'matmul_backward_weight_rb', 0, K % 4 === 0 && N % 4 === 0, N, K)
      : tiled('matmul_backward_weight', 0, N, K);
  const types = io(gpu, dweight, dout, 'matmulBackwardWeight');
  gpu.dispatch(typed(spec, types), grid, [dweight, dout, inp], [B, K, N, 0]);
}

// ---------------------------------------------------------------------------------------------
// Weights split across buffers by rows (Tensor.parts)

const SPLIT_WG = 256;
const scatterSpec: KernelSpec = {
  op: 'matmul',
  code: splitWgsl,
  entry: 'cols_scatter',
  constants: { WG: SPLIT_WG },
};
const gatherSpec: KernelSpec = {
  op: 'matmul',
  code: splitWgsl,
  entry: 'cols_gather',
  constants: { WG: SPLIT_WG },
};

/** Throws SHAPE_MISMATCH unless `parts` are whole (rows, K) tensors covering rows [0, N) in order. */
function checkParts(weight: Tensor, parts: readonly TensorPart[], N: number, K: number, fn: string): void {
  dtypeId(weight, N, K, fn);
  let row = 0;
  for (const p of parts) {
    if (
      p.row0 !== row ||
      p.rows <= 0 ||
      p.tensor.dtype !== weight.dtype ||
      numel(p.tensor.shape) !== p.rows * K
    ) {
      throw new EngineError(
        'SHAPE_MISMATCH',
        `${fn}: part "${p.tensor.label}" of the split weight "${weight.label}" is not rows [${row}, …) of a (${N}, ${K}) ${weight.dtype} matrix.`,
      );
    }
    row += p.rows;
  }
  if (row !== N) {
    throw new EngineError(
      'SHAPE_MISMATCH',
      `${fn}: the parts of the split weight "${weight.label}" hold ${row} rows, not N = ${N}.`,
    );
  }
}

/**
 * out (B,N) = or += the parts' products: `run(o, part, n)` writes one part's (B, n) product into
 * the scratch `o`, whose columns are then stored (or added) into out.
 */
function forwardParts(
  gpu: Gpu,
  out: Tensor,
  weight: Tensor,
  parts: readonly TensorPart[],
  B: number,
  K: number,
  N: number,
  accumulate: boolean,
  run: (o: Tensor, w: Tensor, n: number) => void,
): void {
  checkParts(weight, parts, N, K, 'matmulForward');
  if (B === 0) return;
  for (const p of parts) {
    const o = gpu.scratch([B, p.rows], `${p.tensor.label}.out`);
    run(o, p.tensor, p.rows);
    gpu.dispatch(
      typed(scatterSpec, { DST_T: actOf(out, 'matmulForward'), SRC_T: 'f32' }),
      grid(gpu, B * p.rows, SPLIT_WG),
      [out, o],
      [B, p.rows, N, p.row0, accumulate ? 1 : 0],
    );
    gpu.release(o); // later work is queued after this copy: the pool may hand it out again at once
  }
}

/** dinp (B,K) = or += Σ over parts of dout's columns of the part (B, n) · part (n, K). */
function backwardInputParts(
  gpu: Gpu,
  dinp: Tensor,
  dout: Tensor,
  weight: Tensor,
  parts: readonly TensorPart[],
  B: number,
  K: number,
  N: number,
  accumulate: boolean,
  variant: MatmulVariant,
): void {
  checkParts(weight, parts, N, K, 'matmulBackwardInput');
  if (B === 0) return;
  let add = accumulate;
  for (const p of parts) {
    const d = gpu.scratch([B, p.rows], `${p.tensor.label}.dout`);
    gpu.dispatch(
      typed(gatherSpec, { DST_T: 'f32', SRC_T: actOf(dout, 'matmulBackwardInput') }),
      grid(gpu, B * p.rows, SPLIT_WG),
      [d, dout],
      [B, p.rows, N, p.row0, 0],
    );
    matmulBackwardInput(gpu, dinp, d, p.tensor, B, K, p.rows, add, variant);
    gpu.release(d);
    add = true;
  }
}

/**
 * out (n) = inp (n) converted: f32 ↔ f16 (each f16 store rounds once, to nearest), or a plain copy
 * between two tensors of one type. The runner's f16 activations meet the adapters' f32 here.
 */
export function castInto(gpu: Gpu, out: Tensor, inp: Tensor, n: number): void {
  const types = { DST_T: actOf(out, 'castInto'), SRC_T: actOf(inp, 'castInto') };
  needF16(gpu.info.f16, [types.DST_T, types.SRC_T], 'castInto');
  if (n === 0) return;
  gpu.dispatch(typed(scatterSpec, types), grid(gpu, n, SPLIT_WG), [out, inp], [1, n, n, 0, 0]);
}
