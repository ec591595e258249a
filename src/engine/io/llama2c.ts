/**
 * llama2.c checkpoints ("legacy" version 0, what run.c reads): a header of 7 int32 — dim,
 * hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: classifier not shared),
 * seq_len — then float32 arrays in WEIGHT_NAMES order, the legacy freq_cis real and imag
 * (seq_len, head_size/2) each, then wcls when not shared. Little-endian.
 *
 * A shared-classifier file may stop right after rms_final (the freq_cis are never read);
 * an unshared one must carry them, since wcls comes after.
 *
 * @example
 *   const { config, weights } = parseLlama2c(await (await fetch('models/stories260K.bin')).arrayBuffer(), 'stories260K.bin');
 */
import { EngineError, formatBytes } from '../errors.ts';
import { headSize, validateConfig, type LlamaConfig } from '../model/config.ts';
import { checkWeights, WEIGHT_NAMES, weightSizes, type LlamaWeightsF32 } from '../model/weights.ts';

const HEADER_BYTES = 7 * 4;
const LLAMA2C_V1_MAGIC = 0x616b3432; // "ak42": llama2.c's export.py version 1/2 files
const GGUF_MAGIC = 0x46554747; // "GGUF"

/** Bytes of a llama2.c header (7 int32). */
export const LLAMA2C_HEADER_BYTES = HEADER_BYTES;

/**
 * The config a llama2.c header describes, checked against the file's size (the header alone is
 * enough: a big file is checked without reading it). `freqCis`: the file carries the legacy
 * freq_cis arrays (a shared-classifier file may stop before them).
 */
export function llama2cLayout(
  head: Uint8Array,
  size: number,
  name = 'model',
): { config: LlamaConfig; freqCis: boolean } {
  const h = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
  const rawVocab = h.getInt32(20, true);
  const config: LlamaConfig = {
    dim: h.getInt32(0, true),
    hiddenDim: h.getInt32(4, true),
    nLayers: h.getInt32(8, true),
    nHeads: h.getInt32(12, true),
    nKvHeads: h.getInt32(16, true),
    vocabSize: Math.abs(rawVocab),
    maxSeqLen: h.getInt32(24, true),
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: rawVocab > 0,
  };
  validateConfig(config, 'BAD_FILE', `${name} (not a llama2.c checkpoint?)`);

  const sizes = weightSizes(config);
  const freqFloats = config.maxSeqLen * headSize(config); // real + imag, (T, HS/2) each
  let bodyFloats = 0;
  for (const n of WEIGHT_NAMES) if (n !== 'wcls') bodyFloats += sizes[n];
  const bodyBytes = HEADER_BYTES + 4 * bodyFloats;
  const withFreqBytes = bodyBytes + 4 * freqFloats;
  const fullBytes = config.sharedClassifier ? withFreqBytes : withFreqBytes + 4 * sizes.wcls;
  const minBytes = config.sharedClassifier ? bodyBytes : fullBytes;
  if (size < minBytes) {
    throw new EngineError(
      'TRUNCATED_FILE',
      `${name}: the header describes a model of ${minBytes.toLocaleString('en-US')} bytes (${formatBytes(minBytes)}) but the file has ${size.toLocaleString('en-US')}: the file is incomplete — download it again.`,
    );
  }
  if (size !== fullBytes && !(config.sharedClassifier && size === bodyBytes)) {
    throw new EngineError(
      'BAD_FILE',
      `${name}: the header describes a model of ${fullBytes.toLocaleString('en-US')} bytes but the file has ${size.toLocaleString('en-US')}: this is not a llama2.c (version 0) checkpoint, or the header is corrupt.`,
    );
  }
  return { config, freqCis: size !== bodyBytes };
}

/** Reads a llama2.c checkpoint. The weights are views into buf (no copy); keep buf alive and unmodified. */
export function parseLlama2c(
  buf: ArrayBuffer,
  name = 'model',
): { config: LlamaConfig; weights: LlamaWeightsF32 } {
  const magic = buf.byteLength >= 4 ? new DataView(buf).getUint32(0, true) : 0;
  if (magic === GGUF_MAGIC) {
    throw new EngineError('BAD_MAGIC', `${name} is a GGUF file, not a llama2.c checkpoint: load it as GGUF.`);
  }
  if (magic === LLAMA2C_V1_MAGIC) {
    throw new EngineError(
      'BAD_MAGIC',
      `${name} is a llama2.c version 1/2 export; only the legacy (version 0) format run.c reads is supported: re-export it with export.py --version 0.`,
    );
  }
  if (isSafetensorsStart(buf)) {
    throw new EngineError(
      'BAD_MAGIC',
      `${name} is a safetensors file, not a llama2.c checkpoint: load it as safetensors.`,
    );
  }
  if (buf.byteLength < HEADER_BYTES) {
    throw new EngineError(
      'TRUNCATED_FILE',
      `${name} is ${buf.byteLength} bytes, shorter than the ${HEADER_BYTES}-byte llama2.c header: the file is incomplete — download it again.`,
    );
  }
  const { config, freqCis } = llama2cLayout(new Uint8Array(buf, 0, HEADER_BYTES), buf.byteLength, name);
  const sizes = weightSizes(config);
  const freqFloats = freqCis ? config.maxSeqLen * headSize(config) : 0;

  let offset = HEADER_BYTES;
  const take = (n: number): Float32Array => {
    const a = new Float32Array(buf, offset, n);
    offset += 4 * n;
    return a;
  };
  const tokenEmbedding = take(sizes.tokenEmbedding);
  const rmsAtt = take(sizes.rmsAtt);
  const wq = take(sizes.wq);
  const wk = take(sizes.wk);
  const wv = take(sizes.wv);
  const wo = take(sizes.wo);
  const rmsFfn = take(sizes.rmsFfn);
  const w1 = take(sizes.w1);
  const w2 = take(sizes.w2);
  const w3 = take(sizes.w3);
  const rmsFinal = take(sizes.rmsFinal);
  offset += 4 * freqFloats; // legacy freq_cis: run.c recomputes RoPE, so do we
  const wcls = config.sharedClassifier ? tokenEmbedding : take(sizes.wcls);
  const weights: LlamaWeightsF32 = {
    tokenEmbedding,
    rmsAtt,
    wq,
    wk,
    wv,
    wo,
    rmsFfn,
    w1,
    w2,
    w3,
    rmsFinal,
    wcls,
  };
  return { config, weights };
}

/**
 * Writes a llama2.c (version 0) checkpoint that run.c and parseLlama2c read, freq_cis included
 * (filled as llama2.c's export does: cos and sin of pos·θ^(-2i/HS)). ropeTheta and normEps are not
 * stored (the format fixes them at 10000 and 1e-5).
 */
export function writeLlama2c(config: LlamaConfig, weights: LlamaWeightsF32): ArrayBuffer {
  validateConfig(config);
  checkWeights(config, weights);
  const sizes = weightSizes(config);
  const HS = headSize(config);
  const T = config.maxSeqLen;
  let floats = T * HS;
  for (const n of WEIGHT_NAMES) if (n !== 'wcls' || !config.sharedClassifier) floats += sizes[n];
  const buf = new ArrayBuffer(HEADER_BYTES + 4 * floats);
  const h = new DataView(buf, 0, HEADER_BYTES);
  const header = [
    config.dim,
    config.hiddenDim,
    config.nLayers,
    config.nHeads,
    config.nKvHeads,
    config.sharedClassifier ? config.vocabSize : -config.vocabSize,
    config.maxSeqLen,
  ];
  header.forEach((v, i) => h.setInt32(4 * i, v, true));
  const out = new Float32Array(buf, HEADER_BYTES);
  let o = 0;
  for (const n of WEIGHT_NAMES) {
    if (n === 'wcls') break;
    out.set(weights[n], o);
    o += sizes[n];
  }
  const half = HS / 2;
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = t * Math.pow(config.ropeTheta, -(2 * i) / HS);
      out[o + t * half + i] = Math.cos(angle);
      out[o + T * half + t * half + i] = Math.sin(angle);
    }
  }
  o += T * HS;
  if (!config.sharedClassifier) out.set(weights.wcls, o);
  return buf;
}

/** A safetensors file starts with a u64 header length and a '{'. */
function isSafetensorsStart(buf: ArrayBuffer): boolean {
  if (buf.byteLength < 9) return false;
  const v = new DataView(buf);
  const n = v.getUint32(0, true) + v.getUint32(4, true) * 2 ** 32;
  return v.getUint8(8) === 0x7b && n > 1 && n <= buf.byteLength - 8;
}
