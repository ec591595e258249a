/**
 * Plain-TS reference of llama2.c's run.c: `forward(token, pos)` for one token with a float32 KV
 * cache, and `generate`. Written to be read side by side with run.c; the GPU engine is checked
 * against it. Sums accumulate in float64 and are stored in float32 arrays.
 *
 * @example
 *   const model = new RefLlama(config, weights);
 *   generateRef(model, tokenizer, '', 200, new Sampler(config.vocabSize, 0, 1, 1)); // "Once upon a time, ..."
 */
import { EngineError } from '../errors.ts';
import { headSize, kvDim, validateConfig, type LlamaConfig } from '../model/config.ts';
import { checkWeights, type LlamaWeightsF32 } from '../model/weights.ts';
import type { Llama2cTokenizer } from '../io/tokenizer.ts';

/** What generateRef needs of a sampler (infer/sampler.ts's Sampler fits). */
export interface TokenSampler {
  sample(logits: Float32Array): number;
}

function rmsnorm(
  o: Float32Array,
  x: Float32Array,
  w: Float32Array,
  wOff: number,
  size: number,
  eps: number,
): void {
  let ss = 0;
  for (let j = 0; j < size; j++) ss += x[j]! * x[j]!;
  const r = 1 / Math.sqrt(ss / size + eps);
  for (let j = 0; j < size; j++) o[j] = w[wOff + j]! * (r * x[j]!);
}

/** xout (d) = W (d, n) · x (n), W starting at wOff. */
function matmul(
  xout: Float32Array,
  x: Float32Array,
  w: Float32Array,
  wOff: number,
  n: number,
  d: number,
): void {
  for (let i = 0; i < d; i++) {
    let val = 0;
    const row = wOff + i * n;
    for (let j = 0; j < n; j++) val += w[row + j]! * x[j]!;
    xout[i] = val;
  }
}

function softmax(x: Float32Array, size: number): void {
  let max = x[0]!;
  for (let i = 1; i < size; i++) if (x[i]! > max) max = x[i]!;
  let sum = 0;
  for (let i = 0; i < size; i++) {
    x[i] = Math.exp(x[i]! - max);
    sum += x[i]!;
  }
  for (let i = 0; i < size; i++) x[i] = x[i]! / sum;
}

export class RefLlama {
  readonly config: LlamaConfig;
  readonly weights: LlamaWeightsF32;
  // activations at the current position (run.c's RunState)
  private readonly x: Float32Array; // (C) residual stream
  private readonly xb: Float32Array; // (C) inside a branch
  private readonly xb2: Float32Array; // (C)
  private readonly hb: Float32Array; // (H)
  private readonly hb2: Float32Array; // (H)
  private readonly q: Float32Array; // (C)
  private readonly att: Float32Array; // (NH, T)
  private readonly logits: Float32Array; // (V)
  private readonly keyCache: Float32Array; // (L, T, NKV·HS)
  private readonly valueCache: Float32Array; // (L, T, NKV·HS)

  constructor(config: LlamaConfig, weights: LlamaWeightsF32) {
    validateConfig(config);
    checkWeights(config, weights);
    this.config = config;
    this.weights = weights;
    const { dim: C, hiddenDim: H, nLayers: L, nHeads: NH, maxSeqLen: T, vocabSize: V } = config;
    this.x = new Float32Array(C);
    this.xb = new Float32Array(C);
    this.xb2 = new Float32Array(C);
    this.hb = new Float32Array(H);
    this.hb2 = new Float32Array(H);
    this.q = new Float32Array(C);
    this.att = new Float32Array(NH * T);
    this.logits = new Float32Array(V);
    this.keyCache = new Float32Array(L * T * kvDim(config));
    this.valueCache = new Float32Array(L * T * kvDim(config));
  }

  /**
   * Logits (V) for the next token after `token` at position `pos`; positions 0..pos-1 must have
   * been forwarded before (their k, v are in the cache). The returned array is reused by the next call.
   */
  forward(token: number, pos: number): Float32Array {
    const p = this.config;
    const w = this.weights;
    const { x, xb, xb2, hb, hb2, q, att } = this;
    const C = p.dim,
      H = p.hiddenDim,
      T = p.maxSeqLen,
      NH = p.nHeads;
    const HS = headSize(p),
      KV = kvDim(p),
      kvMul = p.nHeads / p.nKvHeads;
    if (!Number.isInteger(token) || token < 0 || token >= p.vocabSize)
      throw new EngineError(
        'BAD_ARGUMENT',
        `forward: token ${token} is outside the vocabulary (0..${p.vocabSize - 1}).`,
      );
    if (!Number.isInteger(pos) || pos < 0 || pos >= T)
      throw new EngineError('BAD_ARGUMENT', `forward: position ${pos} is outside the context (0..${T - 1}).`);

    x.set(w.tokenEmbedding.subarray(token * C, (token + 1) * C));

    for (let l = 0; l < p.nLayers; l++) {
      // attention rmsnorm
      rmsnorm(xb, x, w.rmsAtt, l * C, C, p.normEps);

      // q, and k, v straight into the cache at this position
      const loff = l * T * KV;
      const k = this.keyCache.subarray(loff + pos * KV, loff + (pos + 1) * KV);
      const v = this.valueCache.subarray(loff + pos * KV, loff + (pos + 1) * KV);
      matmul(q, xb, w.wq, l * C * C, C, C);
      matmul(k, xb, w.wk, l * KV * C, C, KV);
      matmul(v, xb, w.wv, l * KV * C, C, KV);

      // RoPE: rotate each adjacent pair (i, i+1) of every head by pos·θ^(-(i % HS)/HS)
      for (let i = 0; i < C; i += 2) {
        const headDim = i % HS;
        const freq = 1 / Math.pow(p.ropeTheta, headDim / HS);
        const val = pos * freq;
        const fcr = Math.cos(val);
        const fci = Math.sin(val);
        const rotn = i < KV ? 2 : 1; // q and k, or q only
        for (let r = 0; r < rotn; r++) {
          const vec = r === 0 ? q : k;
          const v0 = vec[i]!;
          const v1 = vec[i + 1]!;
          vec[i] = v0 * fcr - v1 * fci;
          vec[i + 1] = v0 * fci + v1 * fcr;
        }
      }

      // multi-head attention; query head h reads kv head h / kvMul
      for (let h = 0; h < NH; h++) {
        const qh = h * HS;
        const ah = h * T;
        const kvh = Math.floor(h / kvMul) * HS;
        for (let t = 0; t <= pos; t++) {
          const kt = loff + t * KV + kvh;
          let score = 0;
          for (let i = 0; i < HS; i++) score += q[qh + i]! * this.keyCache[kt + i]!;
          att[ah + t] = score / Math.sqrt(HS);
        }
        softmax(att.subarray(ah, ah + pos + 1), pos + 1);
        for (let i = 0; i < HS; i++) {
          let acc = 0;
          for (let t = 0; t <= pos; t++) acc += att[ah + t]! * this.valueCache[loff + t * KV + kvh + i]!;
          xb[qh + i] = acc;
        }
      }

      // output projection and residual
      matmul(xb2, xb, w.wo, l * C * C, C, C);
      for (let i = 0; i < C; i++) x[i] = x[i]! + xb2[i]!;

      // ffn rmsnorm, then w2(silu(w1·x) * w3·x)
      rmsnorm(xb, x, w.rmsFfn, l * C, C, p.normEps);
      matmul(hb, xb, w.w1, l * H * C, C, H);
      matmul(hb2, xb, w.w3, l * H * C, C, H);
      for (let i = 0; i < H; i++) {
        const a = hb[i]!;
        hb[i] = (a / (1 + Math.exp(-a))) * hb2[i]!;
      }
      matmul(xb, hb, w.w2, l * C * H, H, C);
      for (let i = 0; i < C; i++) x[i] = x[i]! + xb[i]!;
    }

    rmsnorm(x, x, w.rmsFinal, 0, C, p.normEps);
    matmul(this.logits, x, w.wcls, 0, C, p.vocabSize);
    return this.logits;
  }
}

/**
 * run.c's generate: encode the prompt with BOS, forward position by position (pos 0 = BOS), force
 * the prompt tokens, then sample; stop when the next token is BOS or after `steps` positions
 * (steps ≤ 0 or > maxSeqLen means maxSeqLen, as in run.c's main). Returns the text run.c prints,
 * prompt included, without its final "\n", and the tokens after BOS.
 *
 * Printing follows safe_printf: an empty piece or a one-byte piece that is an ASCII control
 * character (not printable, not whitespace) prints nothing. One deliberate difference: raw bytes
 * ≥ 0x80 are kept and joined into UTF-8 characters (run.c, in the C locale, drops them).
 */
export function generateRefTokens(
  model: RefLlama,
  tokenizer: Llama2cTokenizer,
  prompt: string,
  steps: number,
  sampler: TokenSampler,
): { text: string; tokens: number[] } {
  const T = model.config.maxSeqLen;
  if (steps <= 0 || steps > T) steps = T;
  const promptTokens = tokenizer.encode(prompt, true, false);
  const decoder = tokenizer.createStreamDecoder();
  const tokens: number[] = [];
  let text = '';
  let token = promptTokens[0]!;
  let pos = 0;
  while (pos < steps) {
    const logits = model.forward(token, pos);
    const next = pos < promptTokens.length - 1 ? promptTokens[pos + 1]! : sampler.sample(logits);
    pos++;
    if (next === tokenizer.bos) break;
    tokens.push(next);
    const bytes = tokenizer.decodeBytes(token, next);
    const unsafe = bytes.length === 1 && bytes[0]! < 0x80 && !isPrintOrSpace(bytes[0]!);
    if (!unsafe) text += decoder.push(token, next);
    token = next;
  }
  return { text: text + decoder.flush(), tokens };
}

/** generateRefTokens' text. */
export function generateRef(
  model: RefLlama,
  tokenizer: Llama2cTokenizer,
  prompt: string,
  steps: number,
  sampler: TokenSampler,
): string {
  return generateRefTokens(model, tokenizer, prompt, steps, sampler).text;
}

/** C's isprint || isspace in the C locale, for ASCII. */
function isPrintOrSpace(b: number): boolean {
  return (b >= 0x20 && b < 0x7f) || (b >= 0x09 && b <= 0x0d);
}
