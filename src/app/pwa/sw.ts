/**
 * The service worker: precaches the built app, the built-in models and the bundled data, then serves
 * them cache-first, so after one visit the app works with the network off. The build (the `precache`
 * plugin in vite.config.ts) compiles this file to /sw.js and defines `__D2G_PRECACHE__`: every file
 * of the build with a content hash. Entries are cached under `url?__rev=hash`, so an update fetches
 * only changed files and a half-finished install never mixes versions: the old worker keeps serving
 * its own entries until the new one has all of its own.
 */
declare const __D2G_PRECACHE__: readonly { url: string; rev: string }[];
/** The worker's global scope, typed (the project's lib has DOM too, where `self` is a Window). */
const sw = self as unknown as ServiceWorkerGlobalScope;

const CACHE = 'd2g-precache-v1';
const scope = sw.registration.scope;
const keyOf = (e: { url: string; rev: string }) => `${new URL(e.url, scope).href}?__rev=${e.rev}`;
/** URL without query → cache key of this version. */
const entries = new Map(__D2G_PRECACHE__.map((e) => [new URL(e.url, scope).href, keyOf(e)]));
const indexKey = entries.get(new URL('index.html', scope).href);

sw.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const have = new Set((await cache.keys()).map((r) => r.url));
      for (const [url, key] of entries) {
        if (have.has(key)) continue;
        const res = await fetch(url, { cache: 'reload' });
        if (!res.ok) throw new Error(`precache: ${url} answered HTTP ${res.status}`);
        await cache.put(key, res);
      }
      await sw.skipWaiting();
    })(),
  );
});

sw.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      const keep = new Set(entries.values());
      for (const req of await cache.keys()) if (!keep.has(req.url)) await cache.delete(req);
      await sw.clients.claim();
    })(),
  );
});

sw.addEventListener('fetch', (event) => {
  const req = event.request;
  if (req.method !== 'GET') return;
  const url = new URL(req.url);
  url.search = '';
  url.hash = '';
  // a navigation to a path of the app that is not a file of it (`/`, `/?x`) gets the app's page
  const key =
    entries.get(url.href) ?? (req.mode === 'navigate' && url.href.startsWith(scope) ? indexKey : undefined);
  if (key === undefined) return;
  event.respondWith(
    (async () => {
      const hit = await caches.match(key, { cacheName: CACHE });
      return hit ?? fetch(req);
    })(),
  );
});
