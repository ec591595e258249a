/**
 * A web-llm (MLC) model in the browser's Cache Storage, where @mlc-ai/web-llm keeps it: one 4 GB
 * download serves the teacher (web-llm) and the student (our engine) alike.
 *
 * - `cachedMlcFolder(modelUrl, caches)`: the model as an MlcFolder (engine/io/mlc.ts reads it) over
 *   the entries web-llm stores (`mlcCacheKeys`: mlc-chat-config.json in "webllm/config", the
 *   manifest, tokenizer and shards in "webllm/model", each under its full Hugging Face URL).
 * - `downloadMlcModel(modelUrl, opts)`: fills those entries the way web-llm would, so that web-llm
 *   finds them too. Resumable: a file already in the cache at its full size is kept and not fetched
 *   again, so a download cut off (Cancel, a dropped connection, a closed tab) goes on from the first
 *   file it lacks; a file is put into the cache only once all its bytes arrived and their count is
 *   the manifest's (a shard) — nothing half-written. The quota is checked first
 *   (`navigator.storage.estimate()`): a model that cannot fit is refused before any byte is fetched.
 *
 * The Cache Storage and fetch are parameters (the browser's by default), so the logic is tested in
 * Node over an in-memory cache and a local HTTP server; the e2e test runs it on Chromium's own.
 *
 * - `mlcCacheStatus(modelUrl, caches)`: how much of the model the cache holds (the Models card says
 *   "in this browser's cache" or what is missing before anything is fetched).
 * - `WEBLLM_LLAMA_MODELS`: web-llm's prebuilt LLaMA builds that dust2gold reads (the card's list).
 *
 * @example
 *   const r = await downloadMlcModel('https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC', {
 *     onProgress: (p) => console.log(`${p.bytesDone} / ${p.bytesTotal} ${p.file}`),
 *   });
 *   const model = await openMlc(cachedMlcFolder(r.base));
 */
import { EngineError, formatBytes } from '../../engine/errors.ts';
import { fromBlob, type ByteSource } from '../../engine/io/bytesource.ts';
import {
  MLC_CHAT_CONFIG,
  mlcCacheKeys,
  webllmModelBase,
  parseMlcChatConfig,
  parseMlcManifest,
  type MlcCacheKey,
  type MlcFolder,
  type MlcManifest,
} from '../../engine/io/mlc.ts';
import { AppError } from './errors.ts';

/** What we use of a Cache (the browser's satisfies it). */
export interface CacheLike {
  match(request: string): Promise<Response | undefined>;
  put(request: string, response: Response): Promise<void>;
}
/** What we use of CacheStorage (the browser's `caches` satisfies it). */
export interface CacheStorageLike {
  open(name: string): Promise<CacheLike>;
}

export interface MlcDownloadProgress {
  /** Bytes of the model in the cache so far (kept from before and fetched now). */
  bytesDone: number;
  /** Bytes of every file the model needs (the shards' sizes from the manifest, the small files as they come). */
  bytesTotal: number;
  /** The file being fetched (its name in the folder), or null at the start and the end. */
  file: string | null;
}

export interface MlcDownloadOptions {
  caches?: CacheStorageLike;
  fetch?: typeof globalThis.fetch;
  /** The origin's storage estimate (default `navigator.storage.estimate`); absent: not checked. */
  estimate?: (() => Promise<{ quota?: number; usage?: number }>) | null;
  onProgress?: (p: MlcDownloadProgress) => void;
  signal?: AbortSignal;
}

export interface MlcDownloadResult {
  /** The model URL as web-llm keys its files (`cachedMlcFolder` takes it, or the original URL). */
  base: string;
  /** Files in the cache now (config, manifest, tokenizer files, shards). */
  files: number;
  /** Of those, fetched by this call. */
  fetched: number;
  /** Bytes fetched by this call. */
  bytesFetched: number;
  /** Bytes of the whole model (every file). */
  bytesTotal: number;
}

/** One of web-llm's prebuilt models, as its model list (prebuiltAppConfig) names it. */
export interface WebllmModel {
  /** web-llm's model_id. */
  id: string;
  /** Its `model` URL: the cache keys derive from it (mlcCacheKeys). */
  url: string;
  /** Parameters and the weights' bytes (q4f16_1: 0.5625 bytes per matrix value), for the list. */
  about: string;
}

/**
 * web-llm's prebuilt LLaMA builds in q4f16_1 that dust2gold reads: model_type "llama" with a
 * SentencePiece tokenizer (Llama 2 and TinyLlama; Llama 3's tokenizer is byte-level BPE and Llama
 * 3.1 / 3.2 scale RoPE, so those are refused). From @mlc-ai/web-llm 0.2.86's prebuiltAppConfig; the
 * "-1k" ids share these URLs (and so the cached files).
 */
export const WEBLLM_LLAMA_MODELS: readonly WebllmModel[] = [
  {
    id: 'TinyLlama-1.1B-Chat-v1.0-q4f16_1-MLC',
    url: 'https://huggingface.co/mlc-ai/TinyLlama-1.1B-Chat-v1.0-q4f16_1-MLC',
    about: '1.1B parameters, 0.6 GB',
  },
  {
    id: 'Llama-2-7b-chat-hf-q4f16_1-MLC',
    url: 'https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC',
    about: '6.7B parameters, 3.8 GB',
  },
  {
    id: 'Llama-2-13b-chat-hf-q4f16_1-MLC',
    url: 'https://huggingface.co/mlc-ai/Llama-2-13b-chat-hf-q4f16_1-MLC',
    about: '13B parameters, 7.3 GB',
  },
];

/**
 * A model's id from its URL (as typed, or the base web-llm keys files by): the last part before
 * "/resolve/…" — "https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC" →
 * "Llama-2-7b-chat-hf-q4f16_1-MLC". Throws BAD_ARGUMENT for a URL that is not absolute.
 */
export function mlcModelId(modelUrl: string): string {
  const base = webllmModelBase(modelUrl);
  const path = new URL(base).pathname.replace(/\/resolve\/[^/]+\/?$/, '').replace(/\/+$/, '');
  return decodeURIComponent(path.split('/').pop() ?? '') || base;
}

function defaultCaches(): CacheStorageLike {
  if (typeof caches === 'undefined')
    throw new AppError(
      'STORAGE',
      'This browser gives no Cache Storage here (a private window, or a page not served over HTTPS), so a web-llm model cannot be kept: open dust2gold in a normal window over HTTPS or localhost.',
    );
  return caches as unknown as CacheStorageLike;
}

function defaultEstimate(): (() => Promise<{ quota?: number; usage?: number }>) | null {
  const s = (globalThis.navigator as Navigator | undefined)?.storage;
  return s?.estimate ? () => s.estimate() : null;
}

const fileName = (key: MlcCacheKey, base: string): string => key.url.slice(base.length);

/** The bytes of a cache entry, or null (absent, or not the size it must have). */
async function cachedBytes(cache: CacheLike, url: string, size?: number): Promise<Blob | null> {
  const res = await cache.match(url);
  if (!res) return null;
  const blob = await res.blob();
  return size === undefined || blob.size === size ? blob : null;
}

/**
 * A model folder over web-llm's cache entries for `modelUrl` (a Hugging Face model URL as in
 * web-llm's model list). A file not in the cache is `null` (openMlc then names it).
 */
export function cachedMlcFolder(modelUrl: string, store: CacheStorageLike = defaultCaches()): MlcFolder {
  const keys = mlcCacheKeys(modelUrl);
  return {
    name: keys.base,
    async open(path: string): Promise<ByteSource | null> {
      const cacheName = path === MLC_CHAT_CONFIG ? keys.config.cache : keys.manifests[0]!.cache;
      const blob = await cachedBytes(await store.open(cacheName), new URL(path, keys.base).href);
      return blob ? fromBlob(blob, path) : null;
    },
  };
}

/** Fetches one file whole (the body streamed, bytes counted); nothing is stored here. */
async function fetchWhole(
  url: string,
  name: string,
  get: typeof globalThis.fetch,
  signal: AbortSignal | undefined,
  onBytes: (n: number) => void,
): Promise<Blob> {
  let res: Response;
  try {
    res = await get(url, signal ? { signal } : {});
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw new AppError(
      'DOWNLOAD',
      `Could not fetch ${name} from ${url} (${e instanceof Error ? e.message : String(e)}): check the connection, then try again — the files already downloaded are kept.`,
      { cause: e },
    );
  }
  if (!res.ok)
    throw new AppError(
      'DOWNLOAD',
      `${url} answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''} for ${name}: ${res.status === 404 ? 'the model has no such file — check the model URL' : 'try again later'}.`,
    );
  if (!res.body) {
    const b = await res.blob();
    onBytes(b.size);
    return b;
  }
  const parts: Uint8Array<ArrayBuffer>[] = [];
  const reader = res.body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value as Uint8Array<ArrayBuffer>);
      onBytes(value.byteLength);
    }
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw new AppError(
      'DOWNLOAD',
      `The download of ${name} stopped (${e instanceof Error ? e.message : String(e)}): try again — it goes on from this file.`,
      { cause: e },
    );
  }
  return new Blob(parts);
}

async function putWhole(cache: CacheLike, url: string, blob: Blob, name: string): Promise<void> {
  try {
    await cache.put(url, new Response(blob, { headers: { 'Content-Length': String(blob.size) } }));
  } catch (e) {
    const quota = e instanceof DOMException && e.name === 'QuotaExceededError';
    throw new AppError(
      quota ? 'QUOTA_FULL' : 'STORAGE',
      quota
        ? `The browser's storage is full: ${name} (${formatBytes(blob.size)}) could not be kept. Free space (delete other models or sites' data), then download again — the files already kept stay.`
        : `The browser refused to keep ${name} (${e instanceof Error ? e.message : String(e)}).`,
      { cause: e },
    );
  }
}

/**
 * Puts every file of the MLC model at `modelUrl` into web-llm's cache (see the top of this file).
 * Throws AppError DOWNLOAD / QUOTA_FULL / STORAGE, EngineError BAD_FILE (not a LLaMA MLC build, a
 * damaged manifest), TRUNCATED_FILE (a shard shorter than the manifest says), or `signal.reason`.
 */
export async function downloadMlcModel(
  modelUrl: string,
  opts: MlcDownloadOptions = {},
): Promise<MlcDownloadResult> {
  const store = opts.caches ?? defaultCaches();
  const get = opts.fetch ?? globalThis.fetch.bind(globalThis);
  const estimate = opts.estimate === undefined ? defaultEstimate() : opts.estimate;
  const signal = opts.signal;
  const keys0 = mlcCacheKeys(modelUrl);
  const base = keys0.base;
  let bytesDone = 0;
  let bytesTotal = 0;
  let fetched = 0;
  let bytesFetched = 0;
  const report = (file: string | null) => opts.onProgress?.({ bytesDone, bytesTotal, file });
  const open = (name: string) => store.open(name);

  /** A small file (config, manifest, tokenizer): from the cache, else fetched and kept. */
  const small = async (key: MlcCacheKey, required: boolean): Promise<Blob | null> => {
    signal?.throwIfAborted();
    const cache = await open(key.cache);
    const have = await cachedBytes(cache, key.url);
    const name = fileName(key, base);
    if (have) {
      bytesDone += have.size;
      bytesTotal += have.size;
      return have;
    }
    report(name);
    let blob: Blob;
    try {
      blob = await fetchWhole(key.url, name, get, signal, (n) => {
        bytesFetched += n;
      });
    } catch (e) {
      if (!required && e instanceof AppError && /answered 404/.test(e.message)) return null;
      throw e;
    }
    await putWhole(cache, key.url, blob, name);
    fetched++;
    bytesDone += blob.size;
    bytesTotal += blob.size;
    return blob;
  };

  report(null);
  const cfgBlob = (await small(keys0.config, true))!;
  const chat = parseMlcChatConfig(new Uint8Array(await cfgBlob.arrayBuffer()), MLC_CHAT_CONFIG);
  // the manifest: tensor-cache.json, else ndarray-cache.json (older builds)
  let manifest: MlcManifest | null = null;
  for (const key of keys0.manifests) {
    const b = await small(key, false);
    if (b) {
      manifest = parseMlcManifest(new Uint8Array(await b.arrayBuffer()), fileName(key, base));
      break;
    }
  }
  if (!manifest)
    throw new AppError(
      'DOWNLOAD',
      `${base} has neither tensor-cache.json nor ndarray-cache.json: it is not an MLC model folder. Use a model URL from web-llm's list (e.g. https://huggingface.co/mlc-ai/Llama-2-7b-chat-hf-q4f16_1-MLC).`,
    );
  const keys = mlcCacheKeys(modelUrl, manifest);
  // the tokenizer files the config names (web-llm fetches those), else whichever exists
  const listed = Array.isArray(chat.raw.tokenizer_files)
    ? (chat.raw.tokenizer_files as unknown[]).filter((f): f is string => typeof f === 'string')
    : [];
  const tokKeys = keys.tokenizer.filter((k) => listed.length === 0 || listed.includes(fileName(k, base)));
  let tokenizers = 0;
  for (const key of tokKeys) if (await small(key, false)) tokenizers++;
  if (tokenizers === 0)
    throw new AppError(
      'DOWNLOAD',
      `${base} has no tokenizer.json or tokenizer.model: the model cannot read or write text without one.`,
    );

  // the shards: which are kept already, and does the rest fit?
  const modelCache = await open(keys.shards[0]?.cache ?? keys.manifests[0]!.cache);
  const missing: { key: MlcCacheKey; size: number; name: string }[] = [];
  for (const [i, key] of keys.shards.entries()) {
    signal?.throwIfAborted();
    const size = manifest.records[i]!.nbytes;
    bytesTotal += size;
    if (await cachedBytes(modelCache, key.url, size)) bytesDone += size;
    else missing.push({ key, size, name: manifest.records[i]!.dataPath });
  }
  const need = missing.reduce((a, m) => a + m.size, 0);
  if (need > 0 && estimate) {
    const e = await estimate().catch(() => null);
    if (e && e.quota !== undefined) {
      const free = e.quota - (e.usage ?? 0);
      if (need > free)
        throw new AppError(
          'QUOTA_FULL',
          `The model needs ${formatBytes(need)} more of browser storage, but only ${formatBytes(Math.max(0, free))} is free for this site. Free space (delete other models, or other sites' data), then download again.`,
        );
    }
  }
  report(null);
  for (const m of missing) {
    signal?.throwIfAborted();
    report(m.name);
    let got = 0;
    const blob = await fetchWhole(m.key.url, m.name, get, signal, (n) => {
      got += n;
      bytesFetched += n;
      bytesDone += n;
      report(m.name);
    });
    if (blob.size !== m.size) {
      bytesDone -= got;
      throw new EngineError(
        'TRUNCATED_FILE',
        `${m.name} arrived with ${blob.size.toLocaleString('en-US')} bytes, but the manifest says ${m.size.toLocaleString('en-US')}: the download was cut or the file changed. Try again; it was not kept.`,
      );
    }
    await putWhole(modelCache, m.key.url, blob, m.name);
    fetched++;
  }
  report(null);
  return {
    base,
    files: 1 + 1 + tokenizers + keys.shards.length,
    fetched,
    bytesFetched,
    bytesTotal,
  };
}

/** How much of an MLC model the cache holds. */
export interface MlcCacheStatus {
  /** The model URL as web-llm keys its files. */
  base: string;
  /** mlc-chat-config.json is there. */
  config: boolean;
  /** The manifest is there (then `shards` and `bytesTotal` are known). */
  manifest: boolean;
  /** A tokenizer file (tokenizer.json or tokenizer.model) is there. */
  tokenizer: boolean;
  /** Shards the manifest lists, and of those, kept at their full size. */
  shards: number;
  shardsCached: number;
  /** Bytes of the shards kept, and of all shards (0 without a manifest). */
  bytesCached: number;
  bytesTotal: number;
  /** Every file a load needs is there. */
  complete: boolean;
}

/**
 * What the cache (web-llm's entries, `caches`: the browser's by default) holds of the model at
 * `modelUrl`, without fetching anything: whatever web-llm or `downloadMlcModel` put there.
 */
export async function mlcCacheStatus(
  modelUrl: string,
  store: CacheStorageLike = defaultCaches(),
): Promise<MlcCacheStatus> {
  const keys0 = mlcCacheKeys(modelUrl);
  const has = async (key: MlcCacheKey) => cachedBytes(await store.open(key.cache), key.url);
  const cfg = await has(keys0.config);
  let manifest: MlcManifest | null = null;
  for (const key of keys0.manifests) {
    const b = await has(key);
    if (!b) continue;
    try {
      manifest = parseMlcManifest(new Uint8Array(await b.arrayBuffer()), fileName(key, keys0.base));
    } catch {
      manifest = null; // a damaged manifest: Download fetches nothing again, Inspect says what is wrong
    }
    break;
  }
  let tokenizer = false;
  for (const key of keys0.tokenizer) if (!tokenizer && (await has(key))) tokenizer = true;
  const keys = mlcCacheKeys(modelUrl, manifest ?? undefined);
  let shardsCached = 0;
  let bytesCached = 0;
  let bytesTotal = 0;
  for (const [i, key] of keys.shards.entries()) {
    const size = manifest!.records[i]!.nbytes;
    bytesTotal += size;
    if (await cachedBytes(await store.open(key.cache), key.url, size)) {
      shardsCached++;
      bytesCached += size;
    }
  }
  const shards = keys.shards.length;
  return {
    base: keys0.base,
    config: cfg !== null,
    manifest: manifest !== null,
    tokenizer,
    shards,
    shardsCached,
    bytesCached,
    bytesTotal,
    complete: cfg !== null && manifest !== null && tokenizer && shardsCached === shards,
  };
}
