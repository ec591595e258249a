// Solve in a real browser (WebGPU on SwiftShader): the built-in arithmetic student with the built-in
// adapters and ranker, m = 4 set through the UI, streams into 4 cards; each card gets its extracted
// answer (or "no answer"), the SC and ASC bars and a final answer appear; without a ranker the view
// says ASC votes like SC; the stories demo has its own route. The built-in adapters are development
// copies: nothing here asserts accuracy, only structure. Screenshots: test-results/solve-*.png.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  horizontalOverflow,
  launch,
  openPage,
  screenshot,
  startApp,
  solvePhase,
  sampleInSolve,
} from './harness.ts';

describe('app: Solve', () => {
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

  it('m = 4: four cards stream, each with an answer; SC and ASC bars; a final answer', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    // the defaults: a world problem with its gold, a built-in student and the ranker
    await page.getByTestId('question').waitFor({ timeout: 60_000 });
    expect((await page.getByTestId('gold').innerText()).trim()).toMatch(/^Gold answer: -?\d+$/);
    expect(await page.getByTestId('student').inputValue()).toMatch(/^builtin-/);
    expect(await page.getByTestId('ranker').inputValue()).toBe('builtin-rank');
    expect(await page.getByTestId('status').innerText()).toContain('arith-student');

    await page.getByTestId('m').fill('4');
    await page.getByTestId('max-new').fill('90');
    await page.getByTestId('sample').click();
    // streaming: cards show text before the run ends
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-testid="sample-card"]')].some(
          (c) => (c.querySelector('[data-testid="sample-text"]')?.textContent ?? '').length > 0,
        ),
      undefined,
      { timeout: 120_000 },
    );
    await page.waitForSelector(solvePhase('ready'), { timeout: 240_000 });

    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(4);
    for (let i = 0; i < 4; i++) {
      const card = cards.nth(i);
      expect(await card.getAttribute('data-done')).toBe('true');
      expect((await card.getByTestId('sample-text').innerText()).trim().length).toBeGreaterThan(0);
      const answer = (await card.getByTestId('sample-answer').innerText()).trim();
      expect(answer === 'no answer' || /^-?\d+$/.test(answer), answer).toBe(true);
      expect(await card.getByTestId('sample-score').innerText()).toMatch(/^s = 0\.\d\d$|^s = 1\.00$/);
    }
    await page.getByTestId('vote-sc').waitFor();
    await page.getByTestId('vote-asc').waitFor();
    const answered = await cards.getByTestId('sample-answer').allInnerTexts();
    const distinct = new Set(answered.map((a) => a.trim()).filter((a) => a !== 'no answer'));
    expect(await page.getByTestId('vote-sc').getByTestId('vote-row').count()).toBe(distinct.size);
    expect(await page.getByTestId('vote-asc').getByTestId('vote-row').count()).toBe(distinct.size);
    const final = page.getByTestId('final-answer');
    expect(await final.getAttribute('data-done')).toBe('true');
    const finalText = await final.innerText();
    expect(finalText).toContain('Final answer (ASC)');
    expect(finalText).not.toContain('…');
    if (distinct.size > 0) expect(distinct).toContain(await final.getAttribute('data-answer'));
    expect(await page.getByTestId('note-early').innerText()).toMatch(/Early stopping/);
    expect(await page.getByTestId('tps').innerText()).toMatch(/\d+(\.\d+)? tokens\/s/);
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'solve-m4');

    // talk mode at a projector's size
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.locator('main').focus();
    await page.keyboard.press('t');
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'solve-talk-1280x720');
    await page.setViewportSize({ width: 2560, height: 1440 });
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'solve-talk-2560x1440');
    await page.keyboard.press('t');
    expect(errors).toEqual([]);
    await ctx.close();
  }, 420_000);

  it('no ranker: ASC votes like SC, and the view says so; the stories demo has its own route', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    await page.getByTestId('ranker').selectOption('none');
    await page.waitForSelector('[data-testid="status"][data-ranker="none"][data-phase="ready"]');
    await page.getByTestId('student').selectOption('base');
    await page.waitForSelector('[data-testid="status"][data-student="base"][data-phase="ready"]');
    await sampleInSolve(page, 2, 40);
    expect(await page.getByTestId('sample-card').count()).toBe(2);
    expect(await page.getByTestId('sample-score').count()).toBe(0);
    expect(await page.getByTestId('note-no-ranker').innerText()).toContain('vote like SC');
    expect(await page.getByTestId('note-flip').count()).toBe(0);
    await screenshot(page, 'solve-no-ranker');

    await page.getByTestId('stories-link').click();
    await page.getByTestId('view-stories').waitFor();
    expect(page.url()).toContain('#/stories');
    await page.waitForSelector(solvePhase('ready'), { timeout: 60_000 });
    await page.keyboard.press('1');
    await page.getByTestId('view-solve').waitFor();
    // Solve kept its run while away
    expect(await page.getByTestId('sample-card').count()).toBe(2);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 300_000);
});
