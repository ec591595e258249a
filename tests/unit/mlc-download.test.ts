// downloadMlcModel / cachedMlcFolder (src/app/lib/mlc-download.ts): an MLC folder written by our
// writer (tools/mlc-write.ts), served over HTTP from a local server laid out like Hugging Face
// (/mlc-ai/<id>/resolve/main/<file>), into a Cache Storage kept in memory (the browser's is
// exercised by the e2e tests); then opened from the cache as web-llm would find it.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { memoryFolder, openMlc, parseMlcManifest, WEBLLM_CACHES } from '../../src/engine/io/mlc.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { AppError } from '../../src/app/lib/errors.ts';
import {
  cachedMlcFolder,
  downloadMlcModel,
  type CacheLike,
  type CacheStorageLike,
  type MlcDownloadProgress,
} from '../../src/app/lib/mlc-download.ts';
import { randomLlamaWeights, writeMlc } from '../../tools/mlc-write.ts';

const CONFIG: LlamaConfig = {
  dim: 64,
  hiddenDim: 160,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: 80,
  maxSeqLen: 32,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};
const ID = 'tiny-q4f16_1-MLC';
const TOKENIZER = new TextEncoder().encode('{"model": {"type": "BPE"}}');

/** The writer's folder, with a tokenizer.json the config lists (as web-llm's builds do). */
function mlcFiles(): Map<string, Uint8Array> {
  const files = writeMlc(CONFIG, randomLlamaWeights(CONFIG, 3), { maxShardBytes: 24 << 10 });
  const cfg = JSON.parse(new TextDecoder().decode(files.get('mlc-chat-config.json')!)) as Record<
    string,
    unknown
  >;
  cfg.tokenizer_files = ['tokenizer.json'];
  files.set('mlc-chat-config.json', new TextEncoder().encode(JSON.stringify(cfg)));
  files.set('tokenizer.json', TOKENIZER);
  return files;
}

/** Cache Storage in memory: what the browser's does for put/match (whole responses by URL). */
class MemoryCaches implements CacheStorageLike {
  readonly stores = new Map<string, Map<string, Uint8Array>>();
  async open(name: string): Promise<CacheLike> {
    let m = this.stores.get(name);
    if (!m) this.stores.set(name, (m = new Map()));
    const store = m;
    return {
      async match(url) {
        const b = store.get(url);
        return b ? new Response(b.slice()) : undefined;
      },
      async put(url, res) {
        store.set(url, new Uint8Array(await res.arrayBuffer()));
      },
    };
  }
  count(): number {
    return [...this.stores.values()].reduce((a, m) => a + m.size, 0);
  }
}

describe('downloadMlcModel into web-llm’s cache, then cachedMlcFolder', () => {
  const files = mlcFiles();
  const manifest = parseMlcManifest(files.get('tensor-cache.json')!);
  const shardBytes = manifest.records.reduce((a, s) => a + s.nbytes, 0);
  const smallBytes = ['mlc-chat-config.json', 'tensor-cache.json', 'tokenizer.json'].reduce(
    (a, f) => a + files.get(f)!.length,
    0,
  );
  let server: Server;
  let url = '';
  const served: string[] = [];
  /** Per file: bytes to send instead of the whole file (a cut connection), once. */
  const cut = new Map<string, number>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const m = new RegExp(`^/mlc-ai/${ID}/resolve/main/(.+)$`).exec(req.url ?? '');
      const body = m ? files.get(m[1]!) : undefined;
      if (!m || !body) {
        res.writeHead(404).end('not found');
        return;
      }
      served.push(m[1]!);
      const n = cut.get(m[1]!);
      if (n !== undefined) {
        cut.delete(m[1]!);
        res.writeHead(200, { 'Content-Length': body.length });
        res.write(Buffer.from(body.subarray(0, n)));
        res.destroy(); // the connection drops mid-file
        return;
      }
      res.writeHead(200, { 'Content-Length': body.length }).end(Buffer.from(body));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mlc-ai/${ID}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it('fetches every file once, with progress; web-llm’s keys; the cache opens as the same model', async () => {
    expect(manifest.records.length).toBeGreaterThanOrEqual(3); // several shards
    const caches = new MemoryCaches();
    served.length = 0;
    const progress: MlcDownloadProgress[] = [];
    const r = await downloadMlcModel(url, { caches, estimate: null, onProgress: (p) => progress.push(p) });
    const base = `${url}/resolve/main/`;
    expect(r).toEqual({
      base,
      files: 3 + manifest.records.length,
      fetched: 3 + manifest.records.length,
      bytesFetched: smallBytes + shardBytes,
      bytesTotal: smallBytes + shardBytes,
    });
    expect(served.sort()).toEqual([...files.keys()].sort());
    // where web-llm looks: the config in webllm/config, the rest in webllm/model, by full URL
    expect([...caches.stores.get(WEBLLM_CACHES.config)!.keys()]).toEqual([`${base}mlc-chat-config.json`]);
    expect([...caches.stores.get(WEBLLM_CACHES.model)!.keys()].sort()).toEqual(
      [...files.keys()]
        .filter((f) => f !== 'mlc-chat-config.json')
        .map((f) => base + f)
        .sort(),
    );
    for (const [f, b] of files) {
      const cache = f === 'mlc-chat-config.json' ? WEBLLM_CACHES.config : WEBLLM_CACHES.model;
      expect(caches.stores.get(cache)!.get(base + f), f).toEqual(b);
    }
    // progress: never backwards, never past the total, ends at the total
    for (let i = 1; i < progress.length; i++)
      expect(progress[i]!.bytesDone).toBeGreaterThanOrEqual(progress[i - 1]!.bytesDone);
    for (const p of progress) expect(p.bytesDone).toBeLessThanOrEqual(p.bytesTotal);
    expect(progress.at(-1)).toEqual({ bytesDone: r.bytesTotal, bytesTotal: r.bytesTotal, file: null });
    expect(progress.some((p) => p.file === manifest.records[1]!.dataPath)).toBe(true);

    // the cache as a folder: the same model as the files themselves
    const fromCache = await openMlc(cachedMlcFolder(url, caches));
    const fromFiles = await openMlc(memoryFolder(ID, files));
    expect(fromCache.config).toEqual(fromFiles.config);
    expect(fromCache.quantization).toBe('q4f16_1');
    expect([...fromCache.tensors.keys()]).toEqual([...fromFiles.tensors.keys()]);
    expect(
      await cachedMlcFolder(url, caches)
        .open('tokenizer.json')
        .then((s) => s?.size),
    ).toBe(TOKENIZER.length);
    expect(await cachedMlcFolder(url, caches).open('tokenizer.model')).toBeNull();

    // everything cached: a second call fetches nothing
    served.length = 0;
    const again = await downloadMlcModel(url, { caches, estimate: null });
    expect(again).toMatchObject({ fetched: 0, bytesFetched: 0, bytesTotal: r.bytesTotal });
    expect(served).toEqual([]);
  });

  it('Cancel, and a connection cut mid-shard: nothing half-kept; the next call fetches only what is missing', async () => {
    const caches = new MemoryCaches();
    served.length = 0;
    const ctl = new AbortController();
    const second = manifest.records[1]!.dataPath;
    const cancelled = downloadMlcModel(url, {
      caches,
      estimate: null,
      signal: ctl.signal,
      onProgress: (p) => {
        if (p.file === second) ctl.abort(new DOMException('cancelled', 'AbortError'));
      },
    });
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    const kept = caches.count();
    expect(kept).toBe(4); // config, manifest, tokenizer, the first shard
    expect(caches.stores.get(WEBLLM_CACHES.model)!.has(`${url}/resolve/main/${second}`)).toBe(false);

    // the connection drops after 1000 bytes of the second shard: a clear error, the shard not kept
    cut.set(second, 1000);
    served.length = 0;
    const dropped = await downloadMlcModel(url, { caches, estimate: null }).catch((e: unknown) => e);
    expect(served).toEqual([second]); // the first shard and the small files came from the cache
    expect(dropped).toBeInstanceOf(Error);
    const e = dropped as AppError | EngineError;
    expect(['DOWNLOAD', 'TRUNCATED_FILE']).toContain(e.code);
    expect(e.message).toMatch(new RegExp(`${second.replace('.', '\\.')}`));
    expect(caches.count()).toBe(kept);

    // then it goes on from there
    served.length = 0;
    const r = await downloadMlcModel(url, { caches, estimate: null });
    expect(served).toEqual(manifest.records.slice(1).map((s) => s.dataPath));
    expect(r.fetched).toBe(manifest.records.length - 1);
    expect(r.bytesFetched).toBe(shardBytes - manifest.records[0]!.nbytes);
    const m = await openMlc(cachedMlcFolder(url, caches));
    expect(m.manifest.records.length).toBe(manifest.records.length);
  });

  it('quota checked before any shard: QUOTA_FULL with the figures, nothing of the shards fetched', async () => {
    const caches = new MemoryCaches();
    served.length = 0;
    const err = await downloadMlcModel(url, {
      caches,
      estimate: async () => ({ quota: 10_000, usage: 4_000 }),
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('QUOTA_FULL');
    expect((err as AppError).message).toMatch(/needs .* more of browser storage, but only 5\.9 KiB is free/);
    expect(served.filter((f) => f.endsWith('.bin'))).toEqual([]);
    // with room, the same call succeeds
    const ok = await downloadMlcModel(url, { caches, estimate: async () => ({ quota: 1e9, usage: 0 }) });
    expect(ok.bytesTotal).toBe(smallBytes + shardBytes);
  });

  it('not an MLC model: a missing folder, a config of another architecture', async () => {
    const missing = await downloadMlcModel(url.replace(ID, 'no-such-model'), {
      caches: new MemoryCaches(),
      estimate: null,
    }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(AppError);
    expect((missing as AppError).message).toMatch(
      /answered 404 .*mlc-chat-config\.json.*check the model URL/,
    );
    const rel = await downloadMlcModel('mlc-ai/x', { caches: new MemoryCaches() }).catch((e: unknown) => e);
    expect(rel).toBeInstanceOf(EngineError);
    expect((rel as EngineError).message).toMatch(/not an absolute URL/);

    const cfg = JSON.parse(new TextDecoder().decode(files.get('mlc-chat-config.json')!)) as Record<
      string,
      unknown
    >;
    const saved = files.get('mlc-chat-config.json')!;
    files.set(
      'mlc-chat-config.json',
      new TextEncoder().encode(JSON.stringify({ ...cfg, model_type: 'qwen2' })),
    );
    try {
      const other = await downloadMlcModel(url, { caches: new MemoryCaches(), estimate: null }).catch(
        (e: unknown) => e,
      );
      expect(other).toBeInstanceOf(EngineError);
      expect((other as EngineError).code).toBe('BAD_FILE');
    } finally {
      files.set('mlc-chat-config.json', saved);
    }
  });
});
