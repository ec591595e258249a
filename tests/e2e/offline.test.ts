// Offline: load the app once, let the service worker precache it, then stop the server and take
// the browser offline: a reload still opens the app, Solve loads the built-in student with its
// built-in adapters and ranker and samples on WebGPU (answers, votes), and Explore opens the
// bundled GSM8K solutions.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launch, openPage, screenshot, startApp } from './harness.ts';

describe('app: offline (PWA)', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  let serverUp = false;
  beforeAll(async () => {
    app = await startApp();
    serverUp = true;
    browser = await launch();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    if (serverUp) await app?.close();
  });

  it('after one visit, with the server gone and the network off, Solve samples and Explore opens GSM8K', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, app.url);
    await page.getByTestId('offline-ready').waitFor({ timeout: 120_000 });
    const cached = await page.evaluate(async () => {
      const keys = await (await caches.open('d2g-precache-v1')).keys();
      return keys.map((k) => new URL(k.url).pathname);
    });
    for (const f of [
      '/index.html',
      '/models/arith-student.safetensors',
      '/models/arith-student.tokenizer.json',
      '/models/adapters/index.json',
      '/models/adapters/rank/head.safetensors',
      '/models/stories260K.bin',
      '/models/tok512.bin',
      '/data/gsm8k/example_model_solutions.jsonl',
      '/data/math/math500.jsonl',
    ])
      expect(cached).toContain(f);
    expect(cached.some((p) => /^\/assets\/inference\.worker-.*\.js$/.test(p))).toBe(true);
    expect(cached.some((p) => /^\/assets\/data\.worker-.*\.js$/.test(p))).toBe(true);

    await app.close();
    serverUp = false;
    await ctx.setOffline(true);
    await page.reload();
    expect(await page.evaluate(() => navigator.onLine)).toBe(false);
    await page.getByTestId('view-solve').waitFor({ timeout: 60_000 });
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 120_000 });
    expect(await page.getByTestId('ranker').inputValue()).toBe('builtin-rank');
    await page.getByTestId('question').waitFor({ timeout: 60_000 });
    await page.getByTestId('m').fill('2');
    await page.getByTestId('max-new').fill('40');
    await page.getByTestId('sample').click();
    await page
      .waitForSelector('[data-testid="status"][data-phase="sampling"]', { timeout: 10_000 })
      .catch(() => {});
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 180_000 });
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(2);
    for (const t of await cards.getByTestId('sample-text').allInnerTexts())
      expect(t.trim().length).toBeGreaterThan(5);
    for (const a of await cards.getByTestId('sample-answer').allInnerTexts())
      expect(a.trim().length).toBeGreaterThan(0);
    expect(await cards.getByTestId('sample-score').count()).toBe(2);
    await page.getByTestId('vote-asc').waitFor();
    expect(await page.getByTestId('final-answer').getAttribute('data-done')).toBe('true');
    await screenshot(page, 'offline-solve');

    await page.keyboard.press('2');
    await page.getByTestId('dataset-gsm8k').click();
    await page.waitForSelector('[data-testid="stat-pos"]:text-is("2,001")', { timeout: 60_000 });
    await screenshot(page, 'offline-explore');
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
