// A hostile dataset stays inert: <script>, <img onerror>, <iframe>, <svg onload>, javascript: links
// in HTML and in LaTeX (\href, \url, \htmlClass, \htmlStyle, \includegraphics, \htmlData), macro
// bombs and a page-sized \rule, in questions, golds, rationales, model names, ids and the file name.
// Expected: no dialog, no script run, no request for the injected images, no navigation, no
// console error; the text shows as text.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { horizontalOverflow, launch, openPage, screenshot, startApp } from './harness.ts';

const hostile = readFileSync(new URL('./fixtures/hostile-import.jsonl', import.meta.url));

describe('app: hostile dataset import', () => {
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

  it('renders inert: no dialog, no script, no injected request, no navigation, no console error', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const dialogs: string[] = [];
    const navigations: string[] = [];
    const requests: string[] = [];
    ctx.on('request', (r) => requests.push(r.url()));
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('framenavigated', (f) => {
      if (f === page.mainFrame()) navigations.push(f.url());
    });
    const appPage = new URL(app.url);
    await page.waitForSelector('[data-testid="view-explore"][data-phase="ready"]', { timeout: 60_000 });

    await page.getByText('Import a dataset').click();
    await page.getByTestId('import-file').setInputFiles({
      name: '<img src=x onerror=alert(1)>.jsonl',
      mimeType: 'application/json',
      buffer: hostile,
    });
    await page.waitForSelector('[data-testid="import-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('stat-questions').innerText()).toBe('3');
    // the file name is text, on the dataset button and in the notice
    expect(await page.getByTestId('dataset-saved').innerText()).toBe('<img src=x onerror=alert(1)>.jsonl');

    const items = page.getByTestId('question-item');
    expect(await items.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      await items.nth(i).click();
      const q = page.getByTestId('question');
      for (const summary of await q.locator('summary').all()) await summary.click();
      // click everything KaTeX drew in place of \href / \url: it must not be a link
      for (const el of await q.locator('.katex .mord, .katex-error, .katex .text').all()) {
        if (await el.isVisible()) await el.click({ force: true, timeout: 2_000 }).catch(() => {});
      }
      expect(await horizontalOverflow(page)).toBe(0);
      await screenshot(page, `hostile-${i + 1}`);
    }
    await page.getByTestId('question-item').first().click();
    const q1 = page.getByTestId('question');
    expect(await q1.locator('.question').innerText()).toContain(
      '<script>window.__pwned=1;alert(1)</script> What is',
    );

    const dom = await page.evaluate(() => ({
      pwned: (window as unknown as { __pwned?: unknown }).__pwned,
      scripts: document.body.querySelectorAll('script').length,
      injected: document.querySelectorAll('#app img, #app iframe, #app object, #app embed').length,
      handlers: [...document.querySelectorAll('#app *')].filter((el) =>
        [...el.attributes].some((a) => a.name.startsWith('on')),
      ).length,
      jsLinks: [...document.querySelectorAll('#app [href], #app [src]')].filter((el) =>
        /^\s*javascript:/i.test(el.getAttribute('href') ?? el.getAttribute('src') ?? ''),
      ).length,
      // \htmlStyle would have covered the page with a fixed red box
      fixed: [...document.querySelectorAll('#app *')].filter(
        (el) => getComputedStyle(el).position === 'fixed',
      ).length,
    }));
    expect(dom).toEqual({ pwned: undefined, scripts: 0, injected: 0, handlers: 0, jsLinks: 0, fixed: 0 });
    expect(dialogs).toEqual([]);
    expect(
      navigations.every((u) => new URL(u).origin === appPage.origin && new URL(u).pathname === '/'),
    ).toBe(true);
    expect(
      requests.filter((u) => /\/x(\.png)?$/.test(new URL(u).pathname) || u.startsWith('javascript:')),
    ).toEqual([]);
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
