/**
 * A small web-llm (MLC) LLaMA for the MLC student's tests: random weights written by our writer
 * (tools/mlc-write.ts, q4f16_1 by default) with the SentencePiece tokenizer of
 * tests/fixtures/spm (500 pieces, byte fallback; tokenizer.json and/or tokenizer.model, listed in
 * mlc-chat-config.json's tokenizer_files as web-llm's builds do), and a Cache Storage in memory
 * filled under web-llm's own keys (the browser's Cache API is the only thing stood in for).
 */
import { readFileSync } from 'node:fs';
import type { CacheLike, CacheStorageLike } from '../../src/app/lib/mlc-download.ts';
import {
  MLC_CHAT_CONFIG,
  WEBLLM_CACHES,
  webllmModelBase,
  type MlcQuantization,
} from '../../src/engine/io/mlc.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { randomLlamaWeights, writeMlc } from '../../tools/mlc-write.ts';

/** 2 layers, GQA (4 heads, 2 key/value), hidden 172 (down_proj rows padded: f32 on the GPU), the fixture's 500 tokens. */
export const MLC_STUDENT_CONFIG: LlamaConfig = {
  dim: 64,
  hiddenDim: 172,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 500,
  maxSeqLen: 512,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

export const SPM_TOKENIZER_JSON = new Uint8Array(readFileSync('tests/fixtures/spm/tokenizer.json'));
export const SPM_TOKENIZER_MODEL = new Uint8Array(readFileSync('tests/fixtures/spm/tokenizer.model'));

export interface MlcStudentFilesOptions {
  config?: LlamaConfig;
  quantization?: MlcQuantization;
  /** Which tokenizer files the folder has (default: tokenizer.json only). */
  tokenizer?: 'json' | 'model' | 'both';
  seed?: number;
  /** Shard cap (default 16 KiB: several shards even for this small model). */
  maxShardBytes?: number;
  /** Edits mlc-chat-config.json (e.g. another quantization or model_type). */
  chat?: (cfg: Record<string, unknown>) => void;
}

/** The folder's files: name → bytes. */
export function mlcStudentFiles(opts: MlcStudentFilesOptions = {}): Map<string, Uint8Array> {
  const config = opts.config ?? MLC_STUDENT_CONFIG;
  const files = writeMlc(config, randomLlamaWeights(config, opts.seed ?? 5), {
    quantization: opts.quantization ?? 'q4f16_1',
    maxShardBytes: opts.maxShardBytes ?? 16 << 10,
  });
  const tok = opts.tokenizer ?? 'json';
  const listed: string[] = [];
  if (tok !== 'model') {
    files.set('tokenizer.json', SPM_TOKENIZER_JSON);
    listed.push('tokenizer.json');
  }
  if (tok !== 'json') {
    files.set('tokenizer.model', SPM_TOKENIZER_MODEL);
    listed.push('tokenizer.model');
  }
  const cfg = JSON.parse(new TextDecoder().decode(files.get(MLC_CHAT_CONFIG)!)) as Record<string, unknown>;
  cfg.tokenizer_files = listed;
  opts.chat?.(cfg);
  files.set(MLC_CHAT_CONFIG, new TextEncoder().encode(JSON.stringify(cfg, null, 2)));
  return files;
}

/** Cache Storage in memory: what the browser's does for put / match (whole responses by URL). */
export class MemoryCaches implements CacheStorageLike {
  readonly stores = new Map<string, Map<string, Uint8Array>>();
  open(name: string): Promise<CacheLike> {
    let m = this.stores.get(name);
    if (!m) this.stores.set(name, (m = new Map()));
    const store = m;
    return Promise.resolve({
      match(url: string) {
        const b = store.get(url);
        return Promise.resolve(b ? new Response(b.slice()) : undefined);
      },
      async put(url: string, res: Response) {
        store.set(url, new Uint8Array(await res.arrayBuffer()));
      },
    });
  }
  /** Removes a file of the model at `base` (a download cut short, a cleared entry). */
  delete(base: string, file: string): void {
    for (const m of this.stores.values()) m.delete(new URL(file, base).href);
  }
}

/**
 * Puts a model's files where web-llm keeps them for `modelUrl` (mlc-chat-config.json in
 * "webllm/config", the rest in "webllm/model", each under base + its name); returns the base.
 */
export function putMlcFiles(
  caches: MemoryCaches,
  modelUrl: string,
  files: ReadonlyMap<string, Uint8Array>,
): string {
  const base = webllmModelBase(modelUrl);
  for (const [name, bytes] of files) {
    const cache = name === MLC_CHAT_CONFIG ? WEBLLM_CACHES.config : WEBLLM_CACHES.model;
    let m = caches.stores.get(cache);
    if (!m) caches.stores.set(cache, (m = new Map()));
    m.set(new URL(name, base).href, bytes);
  }
  return base;
}
