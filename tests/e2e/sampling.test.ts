// The stories page (#/stories, linked from Solve) in a real browser: stories260K in the inference
// worker on WebGPU (SwiftShader), four samples streaming side by side, and llama2.c's exact greedy text.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launch, openPage, screenshot, startApp } from './harness.ts';

const expected = JSON.parse(readFileSync('tests/fixtures/stories260K-expected.json', 'utf8')) as {
  greedy_200: string;
};

describe('app: stories page (#/stories)', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  beforeAll(async () => {
    app = await startApp();
    browser = await launch();
  }, 180_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('streams 4 non-empty samples with live tokens/s and no console errors', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/stories`);
    await page.getByTestId('view-stories').waitFor();
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 60_000 });
    await page.getByLabel('Steps', { exact: true }).fill('60');
    await page.getByTestId('sample').click();
    await page
      .waitForSelector('[data-testid="status"][data-phase="sampling"]', { timeout: 10_000 })
      .catch(() => {});
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 120_000 });
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(4);
    const texts = await cards.locator('.text').allInnerTexts();
    for (const t of texts) expect(t.trim().length).toBeGreaterThan(20);
    expect(new Set(texts).size).toBeGreaterThan(1); // four different samples at temperature 0.8
    expect(await page.getByTestId('tps').innerText()).toMatch(/\d+(\.\d+)? tokens\/s/);
    await screenshot(page, 'sampling-4');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it("greedy from BOS alone, 200 steps: llama2.c's expected text, token for token", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/stories`);
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 60_000 });
    await page.getByTestId('prompt').fill('');
    await page.getByLabel('Samples', { exact: true }).fill('1');
    await page.getByLabel('Temperature', { exact: true }).fill('0');
    await page.getByLabel('Steps', { exact: true }).fill('200');
    await page.getByTestId('sample').click();
    await page
      .waitForSelector('[data-testid="status"][data-phase="sampling"]', { timeout: 10_000 })
      .catch(() => {});
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 120_000 });
    const text = await page.getByTestId('sample-card').locator('.text').textContent();
    expect(text).toBe(expected.greedy_200);
    await screenshot(page, 'greedy-200');
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
