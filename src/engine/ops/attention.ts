/**
 * attention: GPU encode functions (training: shaders/attention.wgsl; inference against a KV cache:
 * shaders/attention_decode.wgsl). Same argument order as ref/attention.ts, with `gpu` first.
 */
import code from '../../../shaders/attention.wgsl?raw';
import decodeCode from '../../../shaders/attention_decode.wgsl?raw';
import { EngineError } from '../errors.ts';
import { f32, type Gpu } from '../gpu/gpu.ts';
import { kvTypeOf } from '../kvcache.ts';
import type { KernelSpec } from '../gpu/pipelines.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { actOf, needF16, typed, type ActType } from './act.ts';

const WG = 64;
const HSMAX = 256;
const fwd = { op: 'attention', code, entry: 'attention_forward', constants: { WG } } as const;
const bwdQ = { op: 'attention', code, entry: 'attention_backward_query', constants: { WG } } as const;
const bwdKV = { op: 'attention', code, entry: 'attention_backward_kv', constants: { WG } } as const;
const cacheWrite = { op: 'attention', code: decodeCode, entry: 'kv_cache_write', constants: { WG } } as const;
const cacheWriteF16 = { ...cacheWrite, entry: 'kv_cache_write_f16' } as const;
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

/**
 * Training kernels. 'parallel': a workgroup per (b, h, query row), threads over positions with
 * barrier reductions (GPUs). 'serial': a thread per (b, h, query row), the row's softmax computed
 * serially, no barrier (software GPUs, where a barrier is a fiber switch); the key/value gradient
 * a thread per element instead of a workgroup per key row (each workgroup is a scheduled task on a
 * CPU). 'serial4': the serial kernels for HS = 4, 8, 12 or 16 with the row's vectors in vec4
 * registers (a thread per key row for dk, dv).
 */
export type AttentionVariant = DecodeVariant;
export function attentionVariant(gpu: Gpu, HS = 0): AttentionVariant {
  return decodeVariant(gpu, HS);
}
const SERIAL_WG = 16;

function checkVariant(fn: string, variant: AttentionVariant, HS: number): void {
  if (variant === 'serial4' && !serial4Fits(HS))
    throw new EngineError('BAD_ARGUMENT', `${fn}: the serial4 kernel takes HS = 4, 8, 12 or 16, not ${HS}.`);
}

/** A serial kernel's spec and grid: `threads` threads, SERIAL_WG per workgroup, as a 2D grid. */
function serial(
  gpu: Gpu,
  entry: string,
  variant: AttentionVariant,
  HS: number,
  threads: number,
): [KernelSpec, [number, number]] {
  const spec: KernelSpec =
    variant === 'serial4'
      ? { op: 'attention', code, entry: `${entry}_serial4`, constants: { WG: SERIAL_WG, HS4: HS / 4 } }
      : { op: 'attention', code, entry: `${entry}_serial`, constants: { WG: SERIAL_WG } };
  const groups = Math.ceil(threads / SERIAL_WG);
  const x = Math.min(groups, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  return [spec, [x, x === 0 ? 0 : Math.ceil(groups / x)]];
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
  variant: AttentionVariant = attentionVariant(gpu, HS),
): void {
  checkHeads(NH, NKV);
  checkVariant('attentionForward', variant, HS);
  const params = [B, T, NH, NKV, HS, f32(1 / Math.sqrt(HS)), 0];
  if (variant === 'parallel') gpu.dispatch(fwd, [T, B * NH], [out, att, q, k, v], params);
  else {
    const [spec, grid] = serial(gpu, 'attention_forward', variant, HS, B * NH * T);
    gpu.dispatch(spec, grid, [out, att, q, k, v], params);
  }
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
  variant: AttentionVariant = attentionVariant(gpu, HS),
): void {
  checkHeads(NH, NKV);
  checkVariant('attentionBackward', variant, HS);
  const params = [B, T, NH, NKV, HS, f32(1 / Math.sqrt(HS)), accumulate ? 1 : 0];
  if (variant === 'parallel') {
    gpu.dispatch(bwdQ, [T, B * NH], [dq, datt, dout, k, v, att], params);
    gpu.dispatch(bwdKV, [T, B * NKV], [dk, dv, datt, dout, q, att], params);
  } else {
    const [spec, grid] = serial(gpu, 'attention_backward_query', variant, HS, B * NH * T);
    gpu.dispatch(spec, grid, [dq, datt, dout, k, v, att], params);
    const kvThreads = B * NKV * T * (variant === 'serial4' ? 1 : HS); // serial: a thread per element
    const [kvSpec, kvGrid] = serial(gpu, 'attention_backward_kv', variant, HS, kvThreads);
    gpu.dispatch(kvSpec, kvGrid, [dk, dv, datt, dout, q, att], params);
  }
}

/**
 * Writes k, v rows (R, NKV*HS) into kcache, vcache (S, maxT, NKV, HS) at (seq_r, pos_r).
 * rowInfo: u32 (2R) = [seq0, pos0, seq1, pos1, ...]. Positions must be < maxT (the caller
 * checks; the kernel skips rows beyond the cache rather than write into the next slot).
 * An f16 cache is u32 tensors of (S, maxT, NKV*HS/2) words (kvcache.ts): each pair of values is
 * rounded to f16 (`kvF16Bits`, bit for bit) and packed in one word.
 * slot0: the cache tensors hold slots slot0 … slot0 + S − 1 (one part of a cache split across
 * bindings by slots); rows of other slots are skipped.
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
  slot0 = 0,
): void {
  const f16 = kvTypeOf('kvCacheWrite', kcache.dtype, vcache.dtype, HS) === 'f16';
  const types = { ACT_T: sameAct('kvCacheWrite', gpu, k, v) };
  const n = Math.ceil((R * NKV * HS) / (f16 ? 2 : 1) / WG);
  const x = Math.min(n, gpu.limits.maxComputeWorkgroupsPerDimension ?? 65535);
  const grid: [number, number] = [x, x === 0 ? 0 : Math.ceil(n / x)];
  gpu.dispatch(
    typed(f16 ? cacheWriteF16 : cacheWrite, types),
    grid,
    [kcache, vcache, k, v, rowInfo],
    [R, 0, NKV, HS, maxT, f32(0), slot0],
  );
}

/** The one activation type of two tensors (f32, or f16 with shader-f16; ops/act.ts). */
function sameAct(fn: string, gpu: Gpu, a: Tensor, b: Tensor): ActType {
  const t = actOf(a, fn);
  if (actOf(b, fn) !== t)
    throw new EngineError(
      'BAD_ARGUMENT',
      `${fn}: "${a.label}" is ${a.dtype} but "${b.label}" is ${b.dtype}; give both one type.`,
    );
  needF16(gpu.info.f16, [t], fn);
  return t;
}

/**
 * out (R, NH*HS): each query row q (R, NH*HS) attends to positions 0..pos_r of its slot seq_r in
 * kcache, vcache (S, maxT, NKV, HS). Call kvCacheWrite for the same rows first: then a prompt of
 * length P is P rows at positions 0..P-1 (prefill), and decode is one row per sequence.
 * The caches' dtype picks the kernels: f32 values, or u32 words of f16 pairs (read with
 * unpack2x16float; scores, softmax and sums stay f32). slot0: as kvCacheWrite's; the output rows
 * of other slots are left as they were.
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
  slot0 = 0,
  variant: DecodeVariant = decodeVariant(gpu, HS),
): void {
  checkHeads(NH, NKV);
  if (variant === 'serial4' && !serial4Fits(HS))
    throw new EngineError(
      'BAD_ARGUMENT',
      `attentionDecode: the serial4 kernel takes HS = 4, 8, 12 or 16, not ${HS}.`,
    );
  if (HS > HSMAX) throw new EngineError('BAD_ARGUMENT', `attentionDecode: head size ${HS} exceeds ${HSMAX}.`);
  const sfx = kvTypeOf('attentionDecode', kcache.dtype, vcache.dtype, HS) === 'f16' ? '_f16' : '';
  const types = { ACT_T: sameAct('attentionDecode', gpu, q, out) };
  const params = [R, NH, NKV, HS, maxT, f32(1 / Math.sqrt(HS)), slot0];
  const bindings = [out, q, kcache, vcache, rowInfo];
  if (variant === 'serial4') {
    const spec = {
      ...decodeSerial,
      entry: `attention_decode_serial4${sfx}`,
      constants: { WG: 16, HS4: HS / 4 },
    };
    gpu.dispatch(typed(spec, types), [Math.ceil((R * NH) / 16)], bindings, params);
  } else if (variant === 'serial') {
    gpu.dispatch(
      typed({ ...decodeSerial, entry: `attention_decode_serial${sfx}` }, types),
      [Math.ceil((R * NH) / 16)],
      bindings,
      params,
    );
  } else {
    gpu.dispatch(typed({ ...decode, entry: `attention_decode${sfx}` }, types), [NH, R], bindings, params);
  }
}
