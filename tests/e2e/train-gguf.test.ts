// Train with a GGUF LLaMA as the student (headless Chromium, WebGPU on SwiftShader): stories260K
// written as a GGUF file by our writer (llama2.c's tok512 vocabulary as its SentencePiece
// tokenizer) is loaded in Models; Train follows it: the student card names it, the world's data is
// tokenized with its tokenizer, and the plan of one LoRA step shows (recompute on: a big student).
// A 1 MiB budget is refused with the planner's message and Start is disabled; a budget that only a
// smaller micro-batch fits offers it, and one click applies it. Then KD runs 3 steps in the trainer
// worker (the GGUF file passed to it as a File) with the loss plotted; the set is saved for
// stories260K, and Solve offers it with that student (2 cards sampled) and not with the built-in one.
// A reload mid-run: the run names its file, the page says it cannot reopen it and offers a picker;
// another file is refused, the same one lets the run go on from its checkpoint to the end.
// Screenshots: test-results/train-gguf-plan.png, train-gguf-refused.png, train-gguf-done.png,
// solve-gguf-trained.png.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stories260KGguf } from '../helpers/stories-gguf.ts';
import {
  idbRecords,
  launch,
  openPage,
  sampleInSolve,
  screenshot,
  solvePhase,
  startApp,
  until,
} from './harness.ts';

const GGUF = stories260KGguf('F32');
const view = '[data-testid="view-train"]';
const plan = (verdict: string) => `[data-testid="train-plan"][data-verdict="${verdict}"]`;
/**
 * A budget that 16 sequences of the world's examples do not fit and one does (recompute on, rank 8
 * on all seven targets): 16 × 40 tokens need 16.5 MiB, 1 × 160 tokens 6.7 MiB (planTraining).
 */
const BATCH_BUDGET_MIB = 12;

interface AdapterRec {
  id: string;
  name: string;
  stage: string;
  source: string;
  model: string;
  files: string[];
}
interface RunRec {
  stage: string;
  status: string;
  model?: { name: string; kind: string; file?: { name: string; size: number } };
  config: { recompute?: boolean };
}

describe('app: Train with a GGUF student', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'd2g-train-gguf-'));
    writeFileSync(join(dir, 'stories260K.gguf'), GGUF);
    app = await startApp();
    browser = await launch();
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A new page on Models with stories260K.gguf read, planned and loaded: the student in use. */
  async function ggufInUse(): Promise<{ ctx: BrowserContext; page: Page; errors: string[] }> {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/models`);
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 120_000 });
    await page.getByTestId('gguf-file').setInputFiles(join(dir, 'stories260K.gguf'));
    await page.waitForSelector('[data-testid="plan"][data-verdict="ok"]', { timeout: 60_000 });
    await page.getByTestId('gguf-load').click();
    await page.waitForSelector('[data-testid="gguf-ok"]:has-text("is the model in use now")', {
      timeout: 120_000,
    });
    return { ctx, page, errors };
  }

  it('plan shown, 1 MiB refused, a suggestion applied, KD 3 steps, the set for stories260K in Solve', async () => {
    // Models: the GGUF file is read, planned and loaded; it is the student in use
    const { ctx, page, errors } = await ggufInUse();

    // Train follows it: the student, the data as its tokenizer reads it, the plan of one step
    await page.getByTestId('nav-train').click();
    await page.getByTestId('train-counts').waitFor({ timeout: 120_000 });
    await page.waitForSelector(plan('ok'), { timeout: 120_000 });
    expect(await page.getByTestId('train-student').innerText()).toMatch(
      /^Student: stories260K\.gguf \(GGUF, 260,032 parameters, 5 layers, dim 64, SentencePiece tokenizer of 512 tokens, context 512\)/,
    );
    expect(await page.getByTestId('train-student').getAttribute('data-name')).toBe('stories260K');
    expect(await page.getByTestId('train-recompute').isChecked()).toBe(true); // a big student
    const pos = Number((await page.getByTestId('train-pos').innerText()).replace(/,/g, ''));
    expect(await page.getByTestId('train-kept-pos').innerText()).toBe(pos.toLocaleString('en-US'));
    expect(await page.getByTestId('train-tokens').innerText()).toMatch(/at most 513 tokens per example/);
    const longest = Number(await page.getByTestId('train-longest').innerText());
    expect(longest).toBeGreaterThan(20);
    expect(await page.getByTestId('train-plan').innerText()).toMatch(
      new RegExp(
        `One LoRA step: 16 × ${longest - 1} tokens, rank 8 on q, k, v, o, gate, up, down, recompute on`,
      ),
    );
    expect(await page.getByTestId('train-plan-weights').innerText()).toMatch(/Weights\s+1015\.8 KiB/);
    expect(await page.getByTestId('train-plan-budget').innerText()).toMatch(/4\.0 GiB \(assumed/);
    await screenshot(page, 'train-gguf-plan');

    // a 1 MiB budget (Models' field, shared): refused with the planner's words, Start disabled
    const budget = page.getByTestId('train-budget');
    await budget.fill(String(1 / 1024));
    await budget.blur();
    await page.waitForSelector(plan('refused'), { timeout: 60_000 });
    const refused = page.getByTestId('train-plan-refused');
    expect(await refused.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    expect(await refused.innerText()).toMatch(
      /^Refused: more than the memory budget[\s\S]*A LoRA training step on 16 × \d+ tokens with recompute needs [\d.]+ MiB[\s\S]*budget is 1\.0 MiB/,
    );
    expect(await page.getByTestId('train-start').isDisabled()).toBe(true);
    await screenshot(page, 'train-gguf-refused');

    // a budget that only a smaller micro-batch fits: the suggestion is one click away
    await budget.fill(String(BATCH_BUDGET_MIB / 1024));
    await budget.blur();
    await until('the refusal for this budget', async () =>
      (await page.getByTestId('train-plan-budget').innerText()).includes(
        `${BATCH_BUDGET_MIB.toFixed(1)} MiB`,
      ),
    );
    await page.waitForSelector(plan('refused'), { timeout: 60_000 });
    const batch = page.locator('[data-testid="train-plan-suggestion"][data-kind="batch"]');
    expect(await batch.innerText()).toMatch(/a batch of at most \d+ sequences? of \d+ tokens/);
    await batch.getByTestId('train-plan-apply').click();
    await page.waitForSelector(plan('ok'), { timeout: 60_000 });
    expect(Number(await page.getByTestId('train-micro').inputValue())).toBeLessThan(16);
    // back to no budget (4 GiB assumed) for the run
    await budget.fill('');
    await budget.blur();
    await until('the plan without a budget', async () =>
      (await page.getByTestId('train-plan-budget').innerText()).includes('assumed'),
    );

    // KD, 3 steps in the trainer worker on the GGUF student
    await page.getByTestId('train-stage').selectOption('kd');
    await page.getByTestId('train-steps').fill('3');
    await page.getByTestId('train-batch').fill('4');
    await page.getByTestId('train-micro').fill('');
    await page.getByTestId('train-ckpt').fill('1');
    await page.waitForSelector(plan('ok'), { timeout: 60_000 });
    await page.getByTestId('train-start').click();
    await page.waitForSelector(`${view}[data-phase="done"]`, { timeout: 300_000 });
    expect(await page.getByTestId('train-step').innerText()).toBe('3 / 3');
    expect(await page.getByTestId('chart-loss').getAttribute('data-points')).toBe('3');
    expect(await page.getByTestId('train-notice').innerText()).toMatch(
      /for stories260K: Solve offers it while stories260K is the model in use/,
    );
    const [set, ...more] = (await idbRecords(page, 'adapters')) as AdapterRec[];
    expect(more).toEqual([]);
    expect(set).toMatchObject({ stage: 'kd', source: 'trained', model: 'stories260K' });
    expect(set!.files).toEqual(['lora.safetensors', 'result.json']);
    const [run] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(run).toMatchObject({
      stage: 'kd',
      status: 'done',
      model: {
        name: 'stories260K',
        kind: 'gguf-file',
        file: { name: 'stories260K.gguf', size: GGUF.length },
      },
      config: { recompute: true },
    });
    expect(await page.getByTestId('train-saved-item').getAttribute('data-model')).toBe('stories260K');
    await screenshot(page, 'train-gguf-done');

    // Solve with the GGUF student offers the set, and samples 2 cards with it
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('status').innerText()).toContain('stories260K');
    const option = page.getByTestId('student').locator(`option[value="${set!.id}"]`);
    expect(await option.count()).toBe(1);
    expect(await option.isDisabled()).toBe(false);
    await page.getByTestId('student').selectOption(set!.id);
    await page.waitForSelector(`[data-testid="status"][data-student="${set!.name}"][data-phase="ready"]`, {
      timeout: 120_000,
    });
    await sampleInSolve(page, 2, 24);
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(2);
    for (let i = 0; i < 2; i++) {
      expect(await cards.nth(i).getAttribute('data-done')).toBe('true');
      expect((await cards.nth(i).getByTestId('sample-text').innerText()).trim().length).toBeGreaterThan(0);
    }
    await screenshot(page, 'solve-gguf-trained');

    // with the built-in student, the set is not offered (made for another model)
    await page.getByTestId('nav-models').click();
    await page.getByTestId('model-reset').click();
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 60_000 });
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector('[data-testid="status"][data-phase="ready"]:has-text("arith-student")', {
      timeout: 120_000,
    });
    expect(
      await page.getByTestId('student').locator(`option[value="${set!.id}"]:not([disabled])`).count(),
    ).toBe(0);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('a reload mid-run: the page cannot reopen the file, says so, and goes on once the same file is picked', async () => {
    const { ctx, page, errors } = await ggufInUse();
    await page.getByTestId('nav-train').click();
    await page.waitForSelector(plan('ok'), { timeout: 120_000 });
    await page.getByTestId('train-stage').selectOption('kd');
    await page.getByTestId('train-steps').fill('8');
    await page.getByTestId('train-batch').fill('2');
    await page.getByTestId('train-ckpt').fill('2');
    await page.getByTestId('train-start').click();
    await until('a stored checkpoint', async () => ((await idbRecords(page, 'checkpoints')) as unknown[])[0]);

    await page.reload();
    const notice = page.getByTestId('train-notice');
    await notice.waitFor({ timeout: 60_000 });
    expect(await notice.innerText()).toMatch(
      /^This KD run trains stories260K\.gguf, a file from your disk: after a reload the page cannot open it by itself\. Pick the same file again to go on from step \d+\.$/,
    );
    await page.waitForSelector(`${view}[data-phase="paused"]`);
    const [paused] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(paused).toMatchObject({ status: 'paused', model: { kind: 'gguf-file' } });
    expect(await page.getByTestId('train-resume').count()).toBe(0);
    // another file is refused, with what was expected
    writeFileSync(join(dir, 'other.gguf'), GGUF.subarray(0, 1024));
    await page.getByTestId('train-refile').setInputFiles(join(dir, 'other.gguf'));
    await page.getByTestId('train-error').waitFor();
    expect(await page.getByTestId('train-error').innerText()).toMatch(
      /not the file the run trained on[\s\S]*stories260K\.gguf \([\d,]+ bytes\); you picked other\.gguf \(1,024 bytes\)/,
    );
    // the same file: the run goes on from its checkpoint and finishes
    await page.getByTestId('train-refile').setInputFiles(join(dir, 'stories260K.gguf'));
    await page.waitForSelector(`${view}[data-phase="done"]`, { timeout: 300_000 });
    const step = page.getByTestId('train-step');
    expect(await step.innerText()).toBe('8 / 8');
    expect(Number(await step.getAttribute('data-resumed-from'))).toBeGreaterThanOrEqual(2);
    expect(await page.getByTestId('chart-loss').getAttribute('data-points')).toBe('8');
    const [set] = (await idbRecords(page, 'adapters')) as AdapterRec[];
    expect(set).toMatchObject({ stage: 'kd', model: 'stories260K' });
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);
});
