// Compare with a GGUF student (headless Chromium, WebGPU on SwiftShader): the test writes
// stories260K as a GGUF file (our writer, llama2.c's tok512 vocabulary as its SentencePiece
// tokenizer) and loads it in Models. Compare then shows its card before loading anything: the plan
// for its own worker (batch 16 × Solve's context) and that Solve's worker holds a copy already;
// "Free Solve's copy and load it here" loads it into the evaluator worker. GSM8K is offered (the
// tokenizer reads $ % \), the base model answers 8 GSM8K problems (8 new tokens), the accuracy table names the
// model, and the Venn diagram says which sets are missing (none was made for this model). Leaving
// Compare gives its copy up: Solve loads the model again and samples with it. No console errors.
// Screenshot: test-results/compare-gguf.png.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stories260KGguf } from '../helpers/stories-gguf.ts';
import { launch, openPage, sampleInSolve, screenshot, solvePhase, startApp } from './harness.ts';

const GGUF = stories260KGguf('F32');
const status = (phase: string) => `[data-testid="compare-status"][data-phase="${phase}"]`;

describe('app: Compare with a GGUF student', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'd2g-compare-gguf-'));
    writeFileSync(join(dir, 'stories260K.gguf'), GGUF);
    app = await startApp();
    browser = await launch();
  }, 300_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('card first, Solve’s copy freed and loaded here, base on 8 GSM8K problems, Venn says what is missing', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/models`);
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 120_000 });

    // Models: the GGUF file, planned (4 samples × 512 positions) and loaded into Solve's worker
    await page.getByTestId('gguf-file').setInputFiles(join(dir, 'stories260K.gguf'));
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 60_000 });
    await page.getByTestId('gguf-samples').fill('4');
    await page.getByTestId('gguf-samples').press('Enter');
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 60_000 });
    await page.getByTestId('gguf-load').click();
    await page.waitForSelector('[data-testid="gguf-ok"]:has-text("is the model in use now")', {
      timeout: 120_000,
    });

    // Compare: nothing is loaded before the user says how; the plan is for batch 16 × Solve's context
    await page.getByTestId('nav-compare').click();
    await page.waitForSelector(status('model'), { timeout: 120_000 });
    const why = await page.getByTestId('compare-model-why').innerText();
    expect(why).toMatch(/needs its own copy of the weights: 260,032 parameters/);
    expect(why).toMatch(/with a batch of 16 sequences × 512 positions/);
    expect(why).toMatch(/Solve's worker holds a copy already/);
    expect(await page.getByTestId('compare-batch').inputValue()).toBe('16');
    expect(await page.getByTestId('compare-context').inputValue()).toBe('512');
    expect(
      await page.locator('[data-testid="compare-model"] [data-testid="plan"]').getAttribute('data-verdict'),
    ).toBe('ok');
    expect(await page.getByTestId('compare-two-copies').innerText()).toMatch(/they fit\.$/);
    await page.getByTestId('compare-model').screenshot({ path: 'test-results/compare-gguf-card.png' });
    await page.getByTestId('compare-load-moved').click();
    await page.waitForSelector(status('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('compare-status').innerText()).toContain('Student model: stories260K.');
    expect(await page.getByTestId('compare-model-note').innerText()).toMatch(
      /^Solve's copy of stories260K\.gguf was freed\./,
    );
    expect(await page.getByTestId('compare-model').count()).toBe(0);

    // only the base model: the built-in sets were made for arith-student; no Venn, and it says why
    const missing = await page.getByTestId('venn-missing').innerText();
    expect(missing).toMatch(
      /no adapter set made for stories260K can be the D_pos model \(a KD set\) or the D_neg model \(a NEG set\) or NAT \(a NAT set\)\./,
    );
    expect(missing).toMatch(/adapter sets were made for another model and are not offered/);
    expect(missing).toMatch(/\(here the base model alone\)\.$/);
    expect(await page.getByTestId('heat-missing').count()).toBe(1);

    // GSM8K is offered (byte fallback reads $ % \); 8 problems, 8 new tokens
    const gsm = page.getByTestId('compare-set').locator('option[value="gsm8k"]');
    expect(await gsm.isDisabled()).toBe(false);
    await page.getByTestId('compare-set').selectOption('gsm8k');
    await page.waitForSelector('[data-testid="compare-set-note"]:has-text("GSM8K test questions")', {
      timeout: 60_000,
    });
    expect(await page.getByTestId('compare-set-note').innerText()).toMatch(
      /^The first 64 of \d{4} GSM8K test questions/,
    );
    await page.getByLabel('Problems', { exact: true }).selectOption('8');
    await page.getByLabel('New tokens', { exact: true }).fill('8');
    expect(await page.getByTestId('compare-run').innerText()).toBe('Evaluate 1 student × 8 problems');
    await page.getByTestId('compare-run').click();
    await page.waitForSelector(status('done'), { timeout: 300_000 });

    const rows = page.getByTestId('accuracy-row');
    expect(await rows.count()).toBe(1);
    const row = rows.first();
    expect(await row.getAttribute('data-id')).toBe('base');
    expect(await row.getAttribute('data-n')).toBe('8');
    expect(await row.locator('th').innerText()).toMatch(/^Base model: stories260K \(no adapters\)/);
    const correct = Number(await row.getAttribute('data-correct'));
    expect(correct).toBeGreaterThanOrEqual(0);
    expect(correct).toBeLessThanOrEqual(8);
    expect(await page.getByTestId('accuracy-table').locator('..').innerText()).toContain(
      'the number after its last “The answer is” (else its last number) equals the gold',
    );
    expect(await page.getByTestId('venn').count()).toBe(0);
    expect(await page.getByTestId('compare-error').count()).toBe(0);
    await screenshot(page, 'compare-gguf');

    // leaving Compare gives its copy up; Solve loads the model again and samples with it
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('status').innerText()).toContain('stories260K');
    await sampleInSolve(page, 2, 8);
    expect(await page.locator('[data-testid="sample-card"][data-done="true"]').count()).toBe(2);
    expect(await page.getByTestId('solve-notice').count()).toBe(0);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);
});
