// Talk mode: large type and high contrast, dark and light, driven by the keyboard alone, with no
// horizontal overflow in any view from 1280×720 to 2560×1440; a screenshot of every view in each
// (test-results/talk-*.png), and no console error anywhere.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { horizontalOverflow, launch, openPage, screenshot, startApp } from './harness.ts';

const VIEWS = [
  { key: '1', id: 'solve' },
  { key: '2', id: 'explore' },
  { key: '3', id: 'train' },
  { key: '4', id: 'compare' },
  { key: '5', id: 'models' },
] as const;

async function settled(page: Page, id: string): Promise<void> {
  await page.getByTestId(`view-${id}`).waitFor({ timeout: 60_000 });
  if (id === 'solve')
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 60_000 });
  if (id === 'explore')
    await page.waitForSelector(
      '[data-testid="view-explore"][data-phase="ready"] [data-testid="diverge-right"]',
      {
        timeout: 60_000,
      },
    );
}

const rootFontPx = (page: Page) =>
  page.evaluate(() => parseFloat(getComputedStyle(document.documentElement).fontSize));

describe('app: talk mode', () => {
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

  for (const [w, h] of [
    [1280, 720],
    [2560, 1440],
  ] as const) {
    it(`${w}×${h}: every view, dark and light, keyboard only, no overflow`, async () => {
      const ctx = await browser.newContext({ viewport: { width: w, height: h }, colorScheme: 'light' });
      const { page, errors } = await openPage(ctx, app.url);
      await settled(page, 'solve');
      const normal = await rootFontPx(page);
      await page.keyboard.press('t');
      expect(await page.evaluate(() => document.documentElement.hasAttribute('data-talk'))).toBe(true);
      const talk = await rootFontPx(page);
      expect(talk).toBeGreaterThanOrEqual(1.25 * normal); // large type
      for (const theme of ['dark', 'light'] as const) {
        await page.keyboard.press('d');
        expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(theme);
        // high contrast: pure black and white
        const [bg, fg] = await page.evaluate(() => [
          getComputedStyle(document.body).backgroundColor,
          getComputedStyle(document.body).color,
        ]);
        expect([bg, fg]).toEqual(
          theme === 'dark' ? ['rgb(0, 0, 0)', 'rgb(255, 255, 255)'] : ['rgb(255, 255, 255)', 'rgb(0, 0, 0)'],
        );
        for (const v of VIEWS) {
          await page.keyboard.press(v.key);
          await settled(page, v.id);
          expect(page.url()).toContain(`#/${v.id}`);
          expect(await horizontalOverflow(page), `${v.id} at ${w}×${h}, ${theme}`).toBe(0);
          await screenshot(page, `talk-${w}x${h}-${theme}-${v.id}`);
        }
      }
      // Tab reaches the nav and Enter follows it (from the content, past Solve's ~15 controls, round
      // to the top of the page); settings survive a reload
      await page.keyboard.press('1');
      let found = false;
      for (let i = 0; i < 40 && !found; i++) {
        await page.keyboard.press('Tab');
        found = await page.evaluate(
          () => document.activeElement?.getAttribute('data-testid') === 'nav-compare',
        );
      }
      expect(found).toBe(true);
      await page.keyboard.press('Enter');
      await settled(page, 'compare');
      await page.reload();
      await settled(page, 'compare');
      expect(
        await page.evaluate(() => [
          document.documentElement.hasAttribute('data-talk'),
          document.documentElement.dataset.theme,
        ]),
      ).toEqual([true, 'light']);
      // '?' opens the key list, Escape closes it
      await page.keyboard.press('?');
      await page.getByTestId('help').waitFor();
      await page.keyboard.press('Escape');
      expect(await page.getByTestId('help').count()).toBe(0);
      expect(errors).toEqual([]);
      await ctx.close();
    });
  }

  it('normal mode, light and dark, at 1280×720: a screenshot of every view', async () => {
    for (const scheme of ['light', 'dark'] as const) {
      const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 }, colorScheme: scheme });
      const { page, errors } = await openPage(ctx, app.url);
      expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe(scheme); // follows the system
      for (const v of VIEWS) {
        await page.keyboard.press(v.key);
        await settled(page, v.id);
        if (v.id === 'solve') {
          // four short samples, so the picture shows what Solve does
          await page.getByTestId('m').fill('4');
          await page.getByTestId('max-new').fill('60');
          await page.getByTestId('sample').click();
          await page.waitForSelector('[data-testid="sample-card"]', { timeout: 10_000 });
          await page.waitForSelector('[data-testid="status"][data-phase="ready"]', { timeout: 240_000 });
          await page.locator('main').focus(); // single-key shortcuts again
        }
        expect(await horizontalOverflow(page)).toBe(0);
        await screenshot(page, `view-${scheme}-${v.id}`);
      }
      expect(errors).toEqual([]);
      await ctx.close();
    }
  }, 480_000);
});
