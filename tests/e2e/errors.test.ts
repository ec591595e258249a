// Errors the user understands, shown in the UI with what to do, and nothing half-written left in
// IndexedDB: a file in the wrong format, a full storage quota (Chromium's quota override through
// the DevTools protocol, so the browser's own IndexedDB refuses the write), and a browser without
// WebGPU.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { idbRecords, launch, openPage, screenshot, startApp, withoutWebGpu } from './harness.ts';

const ready = '[data-testid="view-explore"][data-phase="ready"]';

/** About `bytes` of our JSON lines (questions with one rationale each). */
function bigDataset(bytes: number): Buffer {
  const filler = 'x'.repeat(900);
  const lines: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const l = JSON.stringify({
      question: `Question ${i}: ${filler}`,
      gold: String(i),
      rationales: [{ text: `${i} + 0 = ${i}. The answer is ${i}.` }],
    });
    lines.push(l);
    size += l.length + 1;
  }
  return Buffer.from(lines.join('\n'));
}

describe('app: errors', () => {
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

  it('a file in the wrong format: a message with what to do, nothing stored', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await page.waitForSelector(ready, { timeout: 60_000 });
    await page.getByText('Import a dataset').click();
    await page.getByTestId('import-file').setInputFiles({
      name: 'scores.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from('id,question,answer\n1,What is 2+2?,4\n'),
    });
    const notice = page.getByTestId('import-error');
    await notice.waitFor({ timeout: 60_000 });
    expect(await notice.getAttribute('data-code')).toBe('BAD_FILE');
    const text = await notice.innerText();
    expect(text).toContain('This file is not in a format we can read');
    expect(text).toContain('"scores.csv" is not a dataset we can read: no line is a JSON record.');
    expect(text).toContain('Export JSON lines, one record per line');
    expect(await idbRecords(page, 'datasets')).toEqual([]);
    expect(await idbRecords(page, 'datasetParts')).toEqual([]);
    await screenshot(page, 'error-wrong-format');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('storage full: the import is refused whole with what to do; after freeing space it works', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await page.waitForSelector(ready, { timeout: 60_000 });
    const cdp = await ctx.newCDPSession(page);
    const origin = new URL(app.url).origin;
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: (usage ?? 0) + 200_000 });

    await page.getByText('Import a dataset').click();
    await page.getByTestId('import-file').setInputFiles({
      name: 'big.jsonl',
      mimeType: 'application/json',
      buffer: bigDataset(2_000_000),
    });
    const notice = page.getByTestId('import-error');
    await notice.waitFor({ timeout: 60_000 });
    expect(await notice.getAttribute('data-code')).toBe('QUOTA_FULL');
    const text = await notice.innerText();
    expect(text).toContain('Browser storage is full');
    expect(text).toContain('nothing of it was kept');
    expect(text).toContain('Delete saved datasets you no longer need');
    // all or nothing: not the dataset's record, not one of its parts
    expect(await idbRecords(page, 'datasets')).toEqual([]);
    expect(await idbRecords(page, 'datasetParts')).toEqual([]);
    await screenshot(page, 'error-quota');

    await cdp.send('Storage.overrideQuotaForOrigin', { origin }); // back to the real quota
    await page.getByTestId('import-file').setInputFiles({
      name: 'big.jsonl',
      mimeType: 'application/json',
      buffer: bigDataset(2_000_000),
    });
    await page.getByTestId('import-ok').waitFor({ timeout: 60_000 });
    expect(await idbRecords(page, 'datasets')).toHaveLength(1);
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('no WebGPU: Solve names the browsers and the flag; the rest of the app works without a GPU', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    await withoutWebGpu(ctx);
    const { page, errors } = await openPage(ctx, app.url);
    expect(await page.evaluate(() => 'gpu' in navigator)).toBe(false);
    await page.waitForSelector('[data-testid="status"][data-phase="error"]', { timeout: 60_000 });
    const notice = page.getByTestId('error');
    expect(await notice.getAttribute('data-code')).toBe('NO_WEBGPU');
    const text = await notice.innerText();
    expect(text).toContain('This browser has no WebGPU');
    expect(text).toMatch(/Chrome or Edge \(version 113 or later\).*Firefox 141\+.*enable-unsafe-webgpu/s);
    await screenshot(page, 'error-no-webgpu');
    await page.keyboard.press('2');
    await page.waitForSelector(ready, { timeout: 60_000 });
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('no GPU adapter: Solve says what to check, on Linux which flags', async () => {
    const plain = await launch({ webgpu: 'no-adapter' });
    try {
      const ctx = await plain.newContext({ viewport: { width: 1280, height: 800 } });
      const { page, errors } = await openPage(ctx, app.url);
      await page.waitForSelector('[data-testid="status"][data-phase="error"]', { timeout: 60_000 });
      const notice = page.getByTestId('error');
      expect(await notice.getAttribute('data-code')).toBe('NO_ADAPTER');
      const text = await notice.innerText();
      expect(text).toContain('No usable GPU');
      expect(text).toMatch(/hardware acceleration.*On Linux.*enable-unsafe-webgpu.*enable-vulkan/s);
      await screenshot(page, 'error-no-adapter');
      expect(errors).toEqual([]);
      await ctx.close();
    } finally {
      await plain.close();
    }
  });
});
