/**
 * e2e harness: builds the app, serves it with `vite preview`, and drives Debian's Chromium (or
 * $CHROME_PATH) headless with WebGPU on SwiftShader through playwright-core. Console errors are
 * collected per page; screenshots go to test-results/.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { build, preview, type PreviewServer } from 'vite';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const ARTIFACTS = 'test-results';

/** D2G_E2E_OUT: a build folder of one's own, so two e2e runs at once do not overwrite each other. */
export function e2eOutDir(): string {
  return process.env.D2G_E2E_OUT ?? 'dist';
}

/** A production build of the app into `outDir`. */
export async function buildApp(outDir: string): Promise<void> {
  // Vite decides "production" by NODE_ENV, which Vitest sets to "test": build what ships.
  const env = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    await build({ logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  } finally {
    process.env.NODE_ENV = env;
  }
}

/** Serves the app (built once per run by global-setup.ts, or here when that did not run). */
export async function startApp(): Promise<{ url: string; close: () => Promise<void> }> {
  const outDir = e2eOutDir();
  if (process.env.D2G_E2E_BUILT !== outDir) await buildApp(outDir);
  const server: PreviewServer = await preview({
    build: { outDir },
    preview: { port: 0, host: '127.0.0.1' },
    logLevel: 'warn',
  });
  const url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('vite preview did not report a URL');
  return { url, close: () => server.close() };
}

export function chromePath(): string {
  const p = process.env.CHROME_PATH ?? '/usr/bin/chromium';
  if (!existsSync(p)) {
    throw new Error(
      `No Chromium at ${p}: run the tests with \`npm test\` (it installs Debian's chromium) or set CHROME_PATH.`,
    );
  }
  return p;
}

/**
 * Chromium with WebGPU on SwiftShader; `{ webgpu: 'no-adapter' }`: the WebGPU API is there but no
 * adapter is (no Vulkan, no GPU: as with a blocklisted driver). For a browser without the API at
 * all, see `withoutWebGpu`.
 */
export async function launch(opts: { webgpu?: 'swiftshader' | 'no-adapter' } = {}): Promise<Browser> {
  const gpu =
    opts.webgpu === 'no-adapter'
      ? ['--disable-features=Vulkan', '--disable-gpu']
      : ['--enable-unsafe-webgpu', '--use-webgpu-adapter=swiftshader', '--enable-features=Vulkan'];
  return chromium.launch({
    executablePath: chromePath(),
    headless: true,
    args: [
      '--no-sandbox',
      ...gpu,
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Makes a context behave like a browser without WebGPU (Firefox before 141, Safari before 26):
 * `navigator.gpu` is removed in the page and, by rewriting the worker scripts on their way in,
 * in every worker. Current Chromium ships the API and no flag removes it. Needs a context with
 * service workers blocked (their fetches are not routed).
 */
export async function withoutWebGpu(ctx: BrowserContext): Promise<void> {
  await ctx.addInitScript(() => {
    delete (Navigator.prototype as { gpu?: unknown }).gpu;
  });
  await ctx.route(/\.worker-[\w-]+\.js$/, async (route) => {
    const res = await route.fetch();
    const body = `delete WorkerNavigator.prototype.gpu;\n${await res.text()}`;
    await route.fulfill({ response: res, body });
  });
}

/** A page that records console errors and uncaught exceptions. */
export async function openPage(ctx: BrowserContext, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await ctx.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  await page.goto(url);
  return { page, errors };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = `${ARTIFACTS}/${name}.png`;
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Fails on a page wider than its viewport (the talk-mode layouts must never scroll sideways). */
export async function horizontalOverflow(page: Page): Promise<number> {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** Every record of an object store, read with the raw IndexedDB API (not the app's code). */
export async function idbRecords(page: Page, store: string): Promise<unknown[]> {
  return page.evaluate(async (store) => {
    // opening a database that does not exist would create it empty, at version 1, without stores
    if (!(await indexedDB.databases()).some((d) => d.name === 'dust2gold')) return [];
    return new Promise<unknown[]>((resolve, reject) => {
      const open = indexedDB.open('dust2gold');
      open.onerror = () => reject(new Error(String(open.error)));
      open.onsuccess = () => {
        const db = open.result;
        if (!db.objectStoreNames.contains(store)) {
          db.close();
          resolve([]);
          return;
        }
        const req = db.transaction(store, 'readonly').objectStore(store).getAll();
        req.onsuccess = () => {
          db.close();
          resolve(req.result as unknown[]);
        };
        req.onerror = () => reject(new Error(String(req.error)));
      };
    });
  }, store);
}

/**
 * Puts plain JavaScript in front of one worker's script on its way in, so a test can wrap the
 * browser's own APIs inside that worker (WebGPU, to provoke a lost device or an out-of-memory
 * error) with no hook in the app. `prelude(n)` gets the count of fetches of that script so far,
 * this one included (every new worker fetches it again), and returns the code to prepend, or ''.
 * Needs a context with service workers blocked (their fetches are not routed). Returns a function
 * that tells how many times the script was fetched.
 */
export async function preludeWorker(
  ctx: BrowserContext,
  worker: 'inference' | 'trainer' | 'evaluator' | 'data',
  prelude: (fetch: number) => string,
): Promise<() => number> {
  let fetches = 0;
  await ctx.route(new RegExp(`/${worker}\\.worker-[\\w-]+\\.js$`), async (route) => {
    const res = await route.fetch();
    const code = prelude(++fetches);
    const body = await res.text();
    await route.fulfill({ response: res, body: code ? `${code}\n${body}` : body });
  });
  return () => fetches;
}

/**
 * The source of a call of `fn` with `arg` (JSON), for `preludeWorker`: `fn` must use nothing from
 * outside its own body.
 */
export function callSource<A>(fn: (arg: A) => void, arg: A): string {
  return `(${fn.toString()})(${JSON.stringify(arg)});`;
}

/** Polls `f` every 250 ms until it gives something truthy (returned), or fails after `ms`. */
export async function until<T>(
  what: string,
  f: () => Promise<T | null | undefined | false>,
  ms = 300_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Solve's status line in a phase (idle, loading, ready, sampling, error). */
export const solvePhase = (p: string) => `[data-testid="status"][data-phase="${p}"]`;

/** In Solve: sets m and the token limit through the UI, samples, and waits for the run to end. */
export async function sampleInSolve(page: Page, m: number, maxNew: number, timeout = 300_000): Promise<void> {
  await page.getByTestId('m').fill(String(m));
  await page.getByTestId('max-new').fill(String(maxNew));
  await page.getByTestId('sample').click();
  await page.waitForSelector(solvePhase('sampling'), { timeout: 10_000 }).catch(() => {});
  await page.waitForSelector(solvePhase('ready'), { timeout });
}
