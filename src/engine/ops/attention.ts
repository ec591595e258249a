/**
 * attention: GPU encode functions (training: shaders/attention.wgsl; inference against a KV cache:
 * shaders/attention_decode.wgsl). Same argument order as ref/attention.ts, with `gpu` first.
 */
import code from '../../../shaders/attention.wgsl?raw';
import decodeCode from '../../../shaders/attention_decode.wgsl?raw';
import { EngineError } from '../errors.ts';
import { f32, type Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';

const WG = 64;
const HSMAX = 256;
const fwd = { op: 'attention', code, entry: 'attention_forward', constants: { WG } } as const;
const bwdQ = { op: 'attention', code, entry: 'attention_backward_query', constants: { WG } } as const;
const bwdKV = { op: 'attention', code, entry: 'attention_backward_kv', constants: { WG } } as const;
const cacheWrite = { op: 'attention', code: decodeCode, entry: 'kv_cache_write', constants: { WG } } as const;
const decode = {
  op: 'attention',
  code: decodeCode,
  entry: 'attention_decode',
  constants: { WG, HSMAX },
} as const;
const decodeSerial = {
  op: 'attention',
  code: decodeCode,
  entry: 'attention_decode_serial',
  constants: { WG: 16, HSMAX },
} as const;

/**
 * 'parallel': a workgroup per (row, head), threads over positions (GPUs). 'serial': a thread per
 * (row, head), no barriers — on a CPU implementation (SwiftShader) each barrier is a fiber switch,
 * and the serial kernel is ~10× faster there. 'serial4': the serial kernel for HS = 4, 8, 12 or 16
 * with q, k, v and the output in vec4 registers (2–3× faster than 'serial' on SwiftShader).
 */
export type DecodeVariant = 'parallel' | 'serial' | 'serial4';
export function decodeVariant(gpu: Gpu, HS = 0): DecodeVariant {
  if (!gpu.info.software) return 'parallel';
  return serial4Fits(HS) ? 'serial4' : 'serial';
}
/** Head sizes the 'serial4' kernel takes. */
export function serial4Fits(HS: number): boolean {
  return HS > 0 && HS % 4 === 0 && HS <= 16;
}

function checkHeads(NH: number, NKV: number): void {
  if (NKV < 1 || NH % NKV !== 0) {
    throw new EngineError('BAD_ARGUMENT', `attention: ${NH} query heads do not split into ${NKV} kv groups.`);
  }
}

/**
 * Causal GQA self-attention. out (B,T,NH,HS); att (B,NH,T,T) gets the softmax probabilities
 * (zeros above the diagonal) for the backward; q (B,T,NH,HS); k, v (B,T,NKV,HS).
 * @example attentionForward(gpu, out, att, q, k, v, B, T, 8, 2, 64);
 */
export function attentionForward(
  gpu: Gpu,
  out: Tensor,
  att: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  B: number,
  T: number,
  NH: number,
  NKV: number,
  HS: number,
): void {
  checkHeads(NH, NKV);
  gpu.dispatch(fwd, [T, B * NH], [out, att, q, k, v], [B, T, NH, NKV, HS, f32(1 / Math.sqrt(HS)), 0]);
}

/**
 * dq (B,T,NH,HS), dk, dv (B,T,NKV,HS) = or += (accumulate). datt (B,NH,T,T) is caller-provided
 * scratch. dk and dv sum over each group's query heads in a fixed order (deterministic).
 */
export function attentionBackward(
  gpu: Gpu,
  dq: Tensor,
  dk: Tensor,
  dv: Tensor,
  datt: Tensor,
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  att: Tensor,
  B: number,
  T: number,
  NH: number,
  NKV: number,
  HS: number,
  accumulate: boolean,
): void {
  checkHeads(NH, NKV);
  const params = [B, T, NH, NKV, HS, f32(1 / Math.sqrt(HS)), accumulate ? 1 : 0];
  gpu.dispatch(bwdQ, [T, B * NH], [dq, datt, dout, k, v, att], params);
  gpu.dispatch(bwdKV, [T, B * NKV], [dk, dv, datt, dout, q, att], params);
}

/**
 * Writes k, v rows (R, NKV*HS) into kcache, vcache (S, maxT, NKV, HS) at (seq_r, pos_r).
 * rowInfo: u32 (2R) = [seq0, pos0, seq1, pos1, ...]. Positions must be < maxT (the caller
 * checks; the kernel skips rows beyond the cache rather than write into the next slot).
 */
export function kvCacheWrite(
  gpu: Gpu,
  kcache: Tensor,
  vcache: Tensor,
  k: Tensor,
  v: Tensor,
  rowInfo: Tensor,
  R: number,
  NKV: number,
  HS: number,
  maxT: number,
): void {
  const n = Math.ceil((R * NKV * HS) / WG);
  const x = Math.min(n, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  const grid: [number, number] = [x, x === 0 ? 0 : Math.ceil(n / x)];
  gpu.dispatch(cacheWrite, grid, [kcache, vcache, k, v, rowInfo], [R, 0, NKV, HS, maxT, f32(0)]);
}

/**
 * out (R, NH*HS): each query row q (R, NH*HS) attends to positions 0..pos_r of its slot seq_r in
 * kcache, vcache (S, maxT, NKV, HS). Call kvCacheWrite for the same rows first: then a prompt of
 * length P is P rows at positions 0..P-1 (prefill), and decode is one row per sequence.
 * @example kvCacheWrite(gpu, kc, vc, k, v, info, R, NKV, HS, maxT);
 *          attentionDecode(gpu, out, q, kc, vc, info, R, NH, NKV, HS, maxT);
 */
export function attentionDecode(
  gpu: Gpu,
  out: Tensor,
  q: Tensor,
  kcache: Tensor,
  vcache: Tensor,
  rowInfo: Tensor,
  R: number,
  NH: number,
  NKV: number,
  HS: number,
  maxT: number,
  variant: DecodeVariant = decodeVariant(gpu, HS),
): void {
  checkHeads(NH, NKV);
  if (variant === 'serial4' && !serial4Fits(HS))
    throw new EngineError(
      'BAD_ARGUMENT',
      `attentionDecode: the serial4 kernel takes HS = 4, 8, 12 or 16, not ${HS}.`,
    );
  if (HS > HSMAX) throw new EngineError('BAD_ARGUMENT', `attentionDecode: head size ${HS} exceeds ${HSMAX}.`);
  const params = [R, NH, NKV, HS, maxT, f32(1 / Math.sqrt(HS))];
  if (variant === 'serial4') {
    const spec = { ...decodeSerial, entry: 'attention_decode_serial4', constants: { WG: 16, HS4: HS / 4 } };
    gpu.dispatch(spec, [Math.ceil((R * NH) / 16)], [out, q, kcache, vcache, rowInfo], params);
  } else if (variant === 'serial') {
    gpu.dispatch(decodeSerial, [Math.ceil((R * NH) / 16)], [out, q, kcache, vcache, rowInfo], params);
  } else {
    gpu.dispatch(decode, [NH, R], [out, q, kcache, vcache, rowInfo], params);
  }
}
