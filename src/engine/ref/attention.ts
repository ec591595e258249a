/**
 * attention CPU reference (the law for shaders/attention.wgsl and shaders/attention_decode.wgsl):
 * causal grouped-query attention. Query head h reads kv head h / (NH / NKV); scale = 1/sqrt(HS).
 * Training: q, out (B,T,NH,HS); k, v (B,T,NKV,HS); att (B,NH,T,T) softmax probabilities.
 * Inference: a KV cache (S, maxT, NKV, HS) per layer and rowInfo = [seq0, pos0, seq1, pos1, ...].
 * The cache's array type is its element type (kvcache.ts): a Float32Array (or Float64Array) holds
 * the values; a Uint32Array holds f16 pairs, (S, maxT, NKV·HS/2) words, written through
 * `kvF16Bits` and read back exactly, the arithmetic in f32 (f64) as with an f32 cache.
 */
import { f16Table, kvF16Bits, kvTypeOf } from '../kvcache.ts';
import type { FloatArray } from './types.ts';

export function attentionForward(
  out: FloatArray,
  att: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  B: number,
  T: number,
  NH: number,
  NKV: number,
  HS: number,
): void {
  const scale = 1 / Math.sqrt(HS);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const kvh = Math.floor(h / (NH / NKV));
        const qo = ((b * T + t) * NH + h) * HS;
        const ao = ((b * NH + h) * T + t) * T;
        // scores and max (for a stable softmax)
        let max = -Infinity;
        for (let t2 = 0; t2 <= t; t2++) {
          const ko = ((b * T + t2) * NKV + kvh) * HS;
          let s = 0;
          for (let d = 0; d < HS; d++) s += q[qo + d]! * k[ko + d]!;
          att[ao + t2] = s * scale;
          if (att[ao + t2]! > max) max = att[ao + t2]!;
        }
        let sum = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          att[ao + t2] = Math.exp(att[ao + t2]! - max);
          sum += att[ao + t2]!;
        }
        for (let t2 = 0; t2 < T; t2++) att[ao + t2] = t2 <= t ? att[ao + t2]! / sum : 0;
        for (let d = 0; d < HS; d++) {
          let acc = 0;
          for (let t2 = 0; t2 <= t; t2++) acc += att[ao + t2]! * v[((b * T + t2) * NKV + kvh) * HS + d]!;
          out[qo + d] = acc;
        }
      }
    }
  }
}

/** dq, dk, dv = or += (accumulate); datt (B,NH,T,T) is scratch (ends holding d(pre-softmax)). */
export function attentionBackward(
  dq: FloatArray,
  dk: FloatArray,
  dv: FloatArray,
  datt: FloatArray,
  dout: FloatArray,
  q: FloatArray,
  k: FloatArray,
  v: FloatArray,
  att: FloatArray,
  B: number,
  T: number,
  NH: number,
  NKV: number,
  HS: number,
  accumulate: boolean,
): void {
  const scale = 1 / Math.sqrt(HS);
  if (!accumulate) {
    dq.fill(0, 0, B * T * NH * HS);
    dk.fill(0, 0, B * T * NKV * HS);
    dv.fill(0, 0, B * T * NKV * HS);
  }
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < NH; h++) {
        const kvh = Math.floor(h / (NH / NKV));
        const qo = ((b * T + t) * NH + h) * HS;
        const ao = ((b * NH + h) * T + t) * T;
        // datt = dout · v, and the softmax backward needs Σ att · datt
        let dot = 0;
        for (let t2 = 0; t2 <= t; t2++) {
          const vo = ((b * T + t2) * NKV + kvh) * HS;
          let s = 0;
          for (let d = 0; d < HS; d++) s += dout[qo + d]! * v[vo + d]!;
          datt[ao + t2] = s;
          dot += att[ao + t2]! * s;
        }
        for (let t2 = 0; t2 <= t; t2++) {
          const o = ((b * T + t2) * NKV + kvh) * HS; // row t2 of k, v, dk, dv
          const a = att[ao + t2]!;
          const dpre = a * (datt[ao + t2]! - dot);
          datt[ao + t2] = dpre;
          for (let d = 0; d < HS; d++) {
            dq[qo + d] = dq[qo + d]! + scale * dpre * k[o + d]!;
            dk[o + d] = dk[o + d]! + scale * dpre * q[qo + d]!;
            dv[o + d] = dv[o + d]! + a * dout[qo + d]!;
          }
        }
      }
    }
  }
}

/** Row r's (slot within this cache, position), or null when its slot is another part's. */
function rowSlot(
  rowInfo: Uint32Array,
  r: number,
  maxT: number,
  slot0: number,
  slots: number,
): [number, number] | null {
  const seq = rowInfo[2 * r]! - slot0,
    pos = rowInfo[2 * r + 1]!;
  if (seq < 0 || seq >= slots) return null;
  if (pos >= maxT) throw new Error(`attention: row ${r} has position ${pos}, beyond the cache's ${maxT}`);
  return [seq, pos];
}

/** Slots a cache array holds (C values per position; an f16 cache packs two per word). */
const slotsOf = (cache: CacheArray, maxT: number, C: number) =>
  Math.floor(cache.length / (maxT * (cache instanceof Uint32Array ? C / 2 : C)));

type CacheArray = FloatArray | Uint32Array;

function cacheType(fn: string, kcache: CacheArray, vcache: CacheArray, HS: number) {
  const dt = (a: CacheArray) => (a instanceof Uint32Array ? 'u32' : 'f32');
  return kvTypeOf(fn, dt(kcache), dt(vcache), HS);
}

/**
 * Writes k, v rows (R, NKV*HS) into the caches (S, maxT, NKV, HS) at (seq_r, pos_r); into an f16
 * cache (Uint32Array) as `kvF16Bits` of each value, two per word, low half first. The caches hold
 * slots slot0 … slot0 + S − 1 (a part of a cache split by slots); rows of other slots are skipped.
 */
export function kvCacheWrite(
  kcache: CacheArray,
  vcache: CacheArray,
  k: FloatArray,
  v: FloatArray,
  rowInfo: Uint32Array,
  R: number,
  NKV: number,
  HS: number,
  maxT: number,
  slot0 = 0,
): void {
  const C = NKV * HS;
  const S = slotsOf(kcache, maxT, C);
  if (cacheType('kvCacheWrite', kcache, vcache, HS) === 'f16') {
    const C2 = C / 2;
    for (let r = 0; r < R; r++) {
      const at = rowSlot(rowInfo, r, maxT, slot0, S);
      if (!at) continue;
      const [seq, pos] = at;
      for (let i = 0; i < C2; i++) {
        const src = r * C + 2 * i;
        kcache[(seq * maxT + pos) * C2 + i] = (kvF16Bits(k[src]!) | (kvF16Bits(k[src + 1]!) << 16)) >>> 0;
        vcache[(seq * maxT + pos) * C2 + i] = (kvF16Bits(v[src]!) | (kvF16Bits(v[src + 1]!) << 16)) >>> 0;
      }
    }
    return;
  }
  for (let r = 0; r < R; r++) {
    const at = rowSlot(rowInfo, r, maxT, slot0, S);
    if (!at) continue;
    const [seq, pos] = at;
    for (let i = 0; i < C; i++) {
      kcache[(seq * maxT + pos) * C + i] = k[r * C + i]!;
      vcache[(seq * maxT + pos) * C + i] = v[r * C + i]!;
    }
  }
}

/** The values of positions 0..pos of slot seq of an f16 cache, (pos + 1, C). */
function unpackSlot(cache: Uint32Array, seq: number, pos: number, maxT: number, C: number): Float32Array {
  const t = f16Table();
  const C2 = C / 2;
  const out = new Float32Array((pos + 1) * C);
  const o = seq * maxT * C2;
  for (let i = 0; i < (pos + 1) * C2; i++) {
    const w = cache[o + i]!;
    out[2 * i] = t[w & 0xffff]!;
    out[2 * i + 1] = t[w >>> 16]!;
  }
  return out;
}

/** out (R, NH*HS): row r attends to positions 0..pos_r of cache slot seq_r (rows of slots outside this part are left alone). */
export function attentionDecode(
  out: FloatArray,
  q: FloatArray,
  kcache: CacheArray,
  vcache: CacheArray,
  rowInfo: Uint32Array,
  R: number,
  NH: number,
  NKV: number,
  HS: number,
  maxT: number,
  slot0 = 0,
): void {
  const f16 = cacheType('attentionDecode', kcache, vcache, HS) === 'f16';
  const C = NKV * HS;
  const S = slotsOf(kcache, maxT, C);
  const scale = 1 / Math.sqrt(HS);
  const scores = new Float64Array(maxT);
  for (let r = 0; r < R; r++) {
    const at = rowSlot(rowInfo, r, maxT, slot0, S);
    if (!at) continue;
    const [seq, pos] = at;
    // an f16 cache: this slot's values, unpacked (exactly) into a (pos + 1, C) array at slot 0
    const kc = f16 ? unpackSlot(kcache as Uint32Array, seq, pos, maxT, C) : kcache;
    const vc = f16 ? unpackSlot(vcache as Uint32Array, seq, pos, maxT, C) : vcache;
    const slotBase = f16 ? 0 : seq * maxT;
    for (let h = 0; h < NH; h++) {
      const kvh = Math.floor(h / (NH / NKV));
      const qo = (r * NH + h) * HS;
      const row = (t2: number) => ((slotBase + t2) * NKV + kvh) * HS;
      let max = -Infinity;
      for (let t2 = 0; t2 <= pos; t2++) {
        let s = 0;
        for (let d = 0; d < HS; d++) s += q[qo + d]! * kc[row(t2) + d]!;
        scores[t2] = s * scale;
        max = Math.max(max, scores[t2]!);
      }
      let sum = 0;
      for (let t2 = 0; t2 <= pos; t2++) {
        scores[t2] = Math.exp(scores[t2]! - max);
        sum += scores[t2]!;
      }
      for (let d = 0; d < HS; d++) {
        let acc = 0;
        for (let t2 = 0; t2 <= pos; t2++) acc += scores[t2]! * vc[row(t2) + d]!;
        out[qo + d] = acc / sum;
      }
    }
  }
}
