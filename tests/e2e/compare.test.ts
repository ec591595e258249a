// Compare in a real browser: the evaluator worker evaluates the built-in students on 8 held-out
// problems (SwiftShader WebGPU); the Venn diagram, Table 1 and the accuracy table add up, and the
// NCE token-KL heat map shows one shaded span per rationale token with its KL; the shipped full
// `d2g repro` run's figures are shown as stored.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import type { ReproResult } from '../../src/method/experiments/result.ts';
import { launch, openPage, screenshot, startApp } from './harness.ts';

describe('app: Compare', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  beforeAll(async () => {
    app = await startApp();
    browser = await launch();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('evaluates 8 problems with the built-in sets: Venn, accuracy table and KL heat map', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/compare`);
    await page.waitForSelector('[data-testid="compare-status"][data-phase="ready"]', { timeout: 180_000 });
    // the heat map needs no evaluation: it appears for the first held-out problem with a right rationale
    await page.waitForSelector('[data-testid="kl-heatmap"]', { timeout: 120_000 });
    await page.getByLabel('Problems', { exact: true }).selectOption('8');
    await page.getByLabel('New tokens', { exact: true }).fill('64');
    await page.getByTestId('compare-run').click();
    await page.waitForSelector('[data-testid="compare-status"][data-phase="running"]', { timeout: 30_000 });
    await page.waitForSelector('[data-testid="compare-status"][data-phase="done"]', { timeout: 540_000 });

    // accuracy table: base + the four built-in students, 8 problems each
    const rows = page.getByTestId('accuracy-row');
    expect(await rows.count()).toBe(5);
    const ids = await rows.evaluateAll((rs) => rs.map((r) => r.getAttribute('data-id')));
    expect(ids).toEqual(['base', 'builtin-kd', 'builtin-neg', 'builtin-nat', 'builtin-nce']);
    for (const r of await rows.evaluateAll((rs) =>
      rs.map((r) => [Number(r.getAttribute('data-correct')), Number(r.getAttribute('data-n'))]),
    )) {
      expect(r[1]).toBe(8);
      expect(r[0]).toBeGreaterThanOrEqual(0);
      expect(r[0]).toBeLessThanOrEqual(8);
    }
    const correctOf = async (id: string) =>
      Number(
        await page.locator(`[data-testid="accuracy-row"][data-id="${id}"]`).getAttribute('data-correct'),
      );

    // Table 1 adds up, and agrees with the accuracy table
    const venn = page.getByTestId('venn');
    await venn.waitFor();
    const k = async (key: string) => Number(await venn.locator(`td[data-k="${key}"]`).innerText());
    const [pos, neg, both, union, nat] = [
      await k('pos'),
      await k('neg'),
      await k('both'),
      await k('union'),
      await k('nat'),
    ];
    expect(union).toBe(pos + neg - both);
    expect(pos).toBe(await correctOf('builtin-kd'));
    expect(neg).toBe(await correctOf('builtin-neg'));
    expect(nat).toBe(await correctOf('builtin-nat'));
    const regions = await venn.locator('table').first().locator('td').allInnerTexts();
    expect(regions.length).toBe(8);
    expect(regions.map(Number).reduce((a, b) => a + b, 0)).toBe(8);
    const iou = Number(await venn.locator('td[data-k="iou"]').innerText());
    expect(iou).toBeCloseTo(union ? both / union : 0, 3);

    // the heat map: one span per token, each with a finite KL ≥ 0; β = tanh(mean)
    const heat = page.getByTestId('kl-heatmap');
    const kls = await heat
      .getByTestId('kl-token')
      .evaluateAll((ts) => ts.map((t) => Number(t.getAttribute('data-kl'))));
    expect(kls.length).toBeGreaterThan(10);
    for (const v of kls) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThanOrEqual(0);
    }
    const beta = Number(await heat.getAttribute('data-beta'));
    expect(beta).toBeCloseTo(Math.tanh(kls.reduce((a, b) => a + b, 0) / kls.length), 5);
    expect(await heat.innerText()).toContain('Dark = where the negative model would have gone another way');

    // the shipped full run (index.json names public/models/adapters/repro.json): its figures as stored
    const index = JSON.parse(readFileSync('public/models/adapters/index.json', 'utf8')) as { repro?: string };
    expect(index.repro).toBe('models/adapters/repro.json');
    const full = JSON.parse(readFileSync(`public/${index.repro}`, 'utf8')) as ReproResult;
    const shipped = page.getByTestId('compare-repro');
    await shipped.waitFor();
    const text = await shipped.innerText();
    expect(text).toContain(`on ${full.n} held-out problems`);
    expect(text).toContain(full.table1.iou.toFixed(3));
    const t2 = shipped.locator('table').nth(1).locator('tbody tr');
    expect(await t2.locator('th').allInnerTexts()).toEqual(Object.keys(full.table2));
    expect(await shipped.locator('table').nth(2).locator('tbody tr').count()).toBe(full.voting.length);
    if (full.ranker) expect(text).toContain(`over ${full.ranker.pairs} held-out`);
    if (full.pending.length) expect(text).toContain(`Not run yet: ${full.pending.join(', ')}.`);
    else expect(await page.getByTestId('repro-pending').count()).toBe(0);

    await screenshot(page, 'compare-results');
    await heat.screenshot({ path: 'test-results/compare-heatmap.png' });
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);
});
