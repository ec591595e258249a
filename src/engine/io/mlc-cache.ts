// Where web-llm keeps a model it downloaded (Cache Storage keys), so we can read the same files
// instead of downloading 4 GB twice (docs/mlc.md).
import { EngineError } from '../errors.ts';
import { MLC_CHAT_CONFIG, MLC_MANIFESTS } from './mlc-quant.ts';

/** web-llm's Cache Storage names (createArtifactCache scopes in @mlc-ai/web-llm 0.2.86). */
export const WEBLLM_CACHES = { model: 'webllm/model', config: 'webllm/config', wasm: 'webllm/wasm' } as const;

export interface MlcCacheKey {
  /** The Cache Storage name (caches.open(cache)); with cacheBackend "indexeddb", the database name. */
  cache: string;
  /** The request URL the response is stored under. */
  url: string;
}

export interface MlcCacheKeys {
  /** The model URL as web-llm resolves files against it (cleanModelUrl). */
  base: string;
  config: MlcCacheKey;
  /** tensor-cache.json (what web-llm 0.2.86 fetches), then ndarray-cache.json (older web-llm). */
  manifests: MlcCacheKey[];
  /** tokenizer.json and tokenizer.model, whichever the model has. */
  tokenizer: MlcCacheKey[];
  /** One per shard of the manifest passed in (none without one). */
  shards: MlcCacheKey[];
}

/**
 * web-llm's cleanModelUrl: a trailing "/" added, then "resolve/main/" unless the URL already has a
 * "/resolve/<rev>/" part (Hugging Face's file URLs); relative URLs are refused as web-llm does.
 */
export function webllmModelBase(modelUrl: string): string {
  let u = modelUrl.endsWith('/') ? modelUrl : `${modelUrl}/`;
  if (!/.+\/resolve\/.+\//.test(u)) u += 'resolve/main/';
  try {
    return new URL(u).href;
  } catch {
    throw new EngineError(
      'BAD_ARGUMENT',
      `"${modelUrl}" is not an absolute URL; web-llm keys its cache by the full model URL (e.g. https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC).`,
    );
  }
}

/**
 * The cache entries web-llm (with its default cacheBackend "cache") stores for a model record's
 * `model` URL: what we would read to reuse its download instead of fetching again.
 */
export function mlcCacheKeys(
  modelUrl: string,
  manifest?: { records: readonly { dataPath: string }[] },
): MlcCacheKeys {
  const base = webllmModelBase(modelUrl);
  const at = (cache: string, file: string): MlcCacheKey => ({ cache, url: new URL(file, base).href });
  return {
    base,
    config: at(WEBLLM_CACHES.config, MLC_CHAT_CONFIG),
    manifests: MLC_MANIFESTS.map((m) => at(WEBLLM_CACHES.model, m)),
    tokenizer: ['tokenizer.json', 'tokenizer.model'].map((f) => at(WEBLLM_CACHES.model, f)),
    shards: (manifest?.records ?? []).map((s) => at(WEBLLM_CACHES.model, s.dataPath)),
  };
}
