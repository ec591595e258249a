// A GGUF LLaMA in the app (headless Chromium, WebGPU on SwiftShader): the test writes stories260K
// as a GGUF file (our writer, llama2.c's tok512 vocabulary as its SentencePiece tokenizer) to a
// temp folder. In Models: a URL load (served by the test, one Range request at a time, slowly) is
// cancelled mid-way and the built-in student stays in use; a truncated file gives the reader's
// TRUNCATED_FILE and the built-in student stays in use; the good file is picked: its header facts
// and the planner's figures appear, a budget too small is refused with a suggestion that one
// click applies, the load's progress bar runs to the end and the card says what is in use. In
// Solve: the built-in adapters are not offered (made for another model), a GSM8K question is
// readable and 4 rationales stream into 4 cards. Then one click goes back to the built-in student.
// Screenshot: test-results/models-gguf-plan.png (the plan), models-gguf-loaded.png, solve-gguf.png.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stories260KGguf } from '../helpers/stories-gguf.ts';
import { launch, openPage, sampleInSolve, screenshot, solvePhase, startApp, until } from './harness.ts';

const GGUF = stories260KGguf('F32');

/** Records every text the load's progress line shows (the load is quick: polling could miss it). */
async function recordProgress(page: Page): Promise<void> {
  await page.evaluate(() => {
    const seen: string[] = [];
    (window as unknown as { __progress: string[] }).__progress = seen;
    new MutationObserver(() => {
      const t = document.querySelector('[data-testid="gguf-progress-text"]')?.textContent;
      if (t && seen.at(-1) !== t) seen.push(t);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });
}
const progressSeen = (page: Page) =>
  page.evaluate(() => (window as unknown as { __progress: string[] }).__progress);

describe('app: a GGUF LLaMA as the student', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'd2g-gguf-'));
    writeFileSync(join(dir, 'stories260K.gguf'), GGUF);
    writeFileSync(join(dir, 'cut.gguf'), GGUF.subarray(0, GGUF.length - 4096));
    app = await startApp();
    browser = await launch();
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('URL + Cancel, truncated file, plan + suggestion, load with progress, Solve m = 4, back to built-in', async () => {
    // service workers blocked: the worker's fetches of the GGUF URL must reach the route below
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    let ranges = 0;
    await ctx.route('**/e2e-slow/stories260K.gguf', async (route) => {
      const m = /^bytes=(\d+)-(\d+)$/.exec(route.request().headers()['range'] ?? '');
      if (!m) return route.fulfill({ status: 200, body: Buffer.from(GGUF) });
      ranges++;
      if (ranges > 3) await new Promise((r) => setTimeout(r, 400)); // tensors arrive slowly
      const a = Number(m[1]);
      const b = Math.min(Number(m[2]), GGUF.length - 1);
      return route.fulfill({
        status: 206,
        headers: {
          'Content-Range': `bytes ${a}-${b}/${GGUF.length}`,
          'Content-Type': 'application/octet-stream',
        },
        body: Buffer.from(GGUF.subarray(a, b + 1)),
      });
    });
    const { page, errors } = await openPage(ctx, `${app.url}#/models`);
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 120_000 });

    // 1. by URL, cancelled while its tensors come in: nothing changes
    await page.getByTestId('gguf-url').fill(`${app.url}e2e-slow/stories260K.gguf`);
    await page.getByTestId('model-gguf').getByRole('button', { name: 'Read' }).click();
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 120_000 });
    await page.getByTestId('gguf-load').click();
    await page.waitForSelector('[data-testid="gguf-progress-text"]:has-text(" · blk.")', { timeout: 60_000 });
    await page.getByTestId('gguf-cancel').click();
    await page.waitForSelector('[data-testid="gguf-ok"]:has-text("Cancelled")', { timeout: 60_000 });
    expect(await page.getByTestId('gguf-ok').innerText()).toBe(
      'Cancelled: nothing of stories260K.gguf stays on the GPU; the model in use is still arith-student (built-in).',
    );
    expect(await page.getByTestId('gguf-error').count()).toBe(0);
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');
    expect(ranges).toBeLessThan(30); // stopped well before its 47 tensors

    // 2. a truncated file: the reader's typed error, the built-in student stays
    await page.getByTestId('gguf-file').setInputFiles(join(dir, 'cut.gguf'));
    await page.waitForSelector('[data-testid="gguf-error"]', { timeout: 60_000 });
    expect(await page.getByTestId('gguf-error').getAttribute('data-code')).toBe('TRUNCATED_FILE');
    expect(await page.getByTestId('gguf-error').innerText()).toMatch(
      /This file is incomplete[\s\S]*cut\.gguf/,
    );
    expect(await page.getByTestId('gguf-facts').count()).toBe(0);
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');

    // 3. the file: header facts and the planner's figures (32 samples × 512 positions by default)
    await page.getByTestId('gguf-file').setInputFiles(join(dir, 'stories260K.gguf'));
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('gguf-error').count()).toBe(0);
    expect(await page.getByTestId('gguf-arch').innerText()).toBe('llama — stories260K (GGUF v3)');
    expect(await page.getByTestId('gguf-shape').innerText()).toBe(
      '5 layers, dim 64, hidden 172, 8 heads (4 key/value)',
    );
    expect(await page.getByTestId('gguf-vocab').innerText()).toBe(
      '512 tokens (SentencePiece, byte fallback), context 512',
    );
    expect(await page.getByTestId('gguf-types').innerText()).toMatch(/attn_q\s+5 × F32\s+f32 · 80\.0 KiB/);
    expect(await page.getByTestId('gguf-samples').inputValue()).toBe('32');
    expect(await page.getByTestId('gguf-context').inputValue()).toBe('512');
    expect(await page.getByTestId('plan-kv').innerText()).toMatch(/KV cache\s+10\.0 MiB/); // f16: 2·5·32·512·32·2 B
    // SwiftShader has no shader-f16: the plan is for f32 activations (f16 where a GPU has it)
    expect(await page.getByTestId('plan').locator('.head').innerText()).toMatch(
      /^32 samples × 512 positions, f16 KV cache, f32 activations; this GPU binds at most/,
    );
    expect(await page.getByTestId('plan-budget').innerText()).toMatch(/4\.0 GiB \(assumed/);

    // a budget of 3 MiB: refused, with the planner's suggestion one click away
    await page.getByTestId('gguf-budget').fill('0.0029296875');
    await page.getByTestId('gguf-budget').press('Enter');
    await page.waitForSelector('[data-testid="plan"][data-verdict="refused"]', { timeout: 60_000 });
    expect(await page.getByTestId('plan-refused').getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    expect(await page.getByTestId('plan-refused').innerText()).toMatch(
      /needs 11\.5 MiB[\s\S]*budget is 3\.0 MiB[\s\S]*at most 4 sequences at 512 positions/,
    );
    expect(await page.getByTestId('plan-refused').innerText()).toMatch(
      /^Refused: more than the memory budget/,
    );
    expect(await page.getByTestId('gguf-load').isDisabled()).toBe(true);
    await screenshot(page, 'models-gguf-plan');
    await page.getByTestId('model-gguf').screenshot({ path: 'test-results/models-gguf-card-plan.png' });
    await page.getByTestId('plan-apply').first().click();
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('gguf-samples').inputValue()).toBe('4');

    // 4. load: the progress bar runs to the end, the card says what is in use
    await recordProgress(page);
    await page.getByTestId('gguf-load').click();
    await page.waitForSelector('[data-testid="gguf-ok"]:has-text("is the model in use now")', {
      timeout: 120_000,
    });
    const shown = await progressSeen(page);
    expect(shown[0]).toMatch(/^0 B of 1015\.8 KiB/); // the tensors: 1,040,128 B
    expect(shown.some((t) => / · blk\.\d\.\w+\.weight$/.test(t))).toBe(true);
    expect(await page.getByTestId('gguf-ok').innerText()).toBe(
      'stories260K.gguf is the model in use now (260,032 parameters, up to 4 samples of 512 positions): Solve uses it.',
    );
    expect(await page.getByTestId('model-name').innerText()).toBe('stories260K.gguf');
    expect(await page.getByTestId('model-params').innerText()).toBe('260,032');
    expect(await page.getByTestId('gguf-in-use').innerText()).toMatch(
      /loaded for up to 4 samples of 512 positions[\s\S]*made for another model \(arith-student\)/,
    );
    await screenshot(page, 'models-gguf-loaded');
    await page.getByTestId('model-gguf').screenshot({ path: 'test-results/models-gguf-card-loaded.png' });

    // 5. Solve with it: no built-in adapters offered, a GSM8K question, 4 rationales
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('status').innerText()).toContain('stories260K');
    // (sets for another model may be listed disabled, with why: never offered)
    expect(await page.getByTestId('student').locator('option:not([disabled])').allInnerTexts()).toEqual([
      'base model (no adapters)',
    ]);
    expect(await page.getByTestId('ranker').locator('option:not([disabled])').count()).toBe(1);
    expect(await page.getByTestId('student').inputValue()).toBe('base');
    expect(await page.getByTestId('m').inputValue()).toBe('4'); // Solve keeps to the plan's samples
    await page.getByTestId('problem-source').selectOption('gsm8k');
    await until('the GSM8K question', async () =>
      (await page.getByTestId('question').innerText()).includes('Janet'),
    );
    expect(await page.getByTestId('unreadable').count()).toBe(0);
    await sampleInSolve(page, 4, 24);
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(await cards.nth(i).getAttribute('data-done')).toBe('true');
      expect((await cards.nth(i).getByTestId('sample-text').innerText()).trim().length).toBeGreaterThan(0);
    }
    expect(await page.getByTestId('solve-notice').count()).toBe(0);
    await screenshot(page, 'solve-gguf');

    // 6. one click back to the built-in student, and Solve follows
    await page.getByTestId('nav-models').click();
    await page.getByTestId('model-reset').click();
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 60_000 });
    expect(await page.getByTestId('gguf-in-use').count()).toBe(0);
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]:has-text("arith-student")', {
      timeout: 120_000,
    });
    expect(await page.getByTestId('student').locator('option').count()).toBeGreaterThan(1);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);
});
