// Explore in a real browser: the built-in datasets (world generated in the browser, GSM8K model
// solutions, MATH-500 with KaTeX), D_pos / D_neg counts, the right/wrong pair with its first
// divergence marked, keyboard navigation, hash routing across reloads, and an import that lands
// in IndexedDB (read back with the raw IndexedDB API) and survives a reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { generateProblems, teacherSamples } from '../../src/method/world/index.ts';
import { idbRecords, launch, openPage, screenshot, startApp } from './harness.ts';

const ready = '[data-testid="view-explore"][data-phase="ready"]';

// The world dataset as the app generates it (500 questions, seed 1, 4 samples), from the world's
// own generator: the oracle for the counts and for where the first wrong chain goes wrong.
const problems = generateProblems(500, 1);
const samples = teacherSamples(problems, 4, 1);
const flat = samples.flat();
const fmt = (n: number) => n.toLocaleString('en-US');
const firstPair = samples.findIndex((s) => s.some((x) => x.correct) && s.some((x) => !x.correct));
const firstWrong = samples[firstPair]!.find((x) => !x.correct)!;
/** The chain lists the start, then one entry per problem step: the first error's step is entry step + 1. */
const divergeAt = firstWrong.errors[0]!.step + 1;

/** Index of the marked step among the list items of one side. */
async function markedIndex(page: Page, side: 'right' | 'wrong'): Promise<number> {
  return page
    .getByTestId(`steps-${side}`)
    .evaluate(
      (ol, side) => [...ol.children].findIndex((li) => li.getAttribute('data-testid') === `diverge-${side}`),
      side,
    );
}

async function waitStat(page: Page, id: string, text: string): Promise<void> {
  await page.waitForSelector(`${ready} [data-testid="stat-${id}"]:text-is("${text}")`, { timeout: 60_000 });
}

describe('app: Explore', () => {
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

  it('world: D_pos / D_neg as the world counts them, the first question with a pair, divergence at the first error; j / k', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await waitStat(page, 'pos', fmt(flat.filter((x) => x.correct).length));
    await waitStat(page, 'neg', fmt(flat.filter((x) => !x.correct).length));
    await waitStat(page, 'questions', '500');
    // the view opens at the first question that has a right and a wrong rationale
    await expect(page.getByTestId('question').locator('h3').innerText()).resolves.toMatch(
      new RegExp(`^Question ${firstPair + 1} `),
    );
    expect(await page.getByTestId('question').locator('.question').innerText()).toBe(
      problems[firstPair]!.question,
    );
    expect(await markedIndex(page, 'right')).toBe(divergeAt);
    expect(await markedIndex(page, 'wrong')).toBe(divergeAt);
    expect(await page.getByTestId('diverge-right').innerText()).toMatch(/first difference$/i);
    expect(page.url()).toMatch(new RegExp(`#/explore/world/${firstPair}$`));
    await screenshot(page, 'explore-world');

    await page.keyboard.press('j');
    await expect(page.getByTestId('question').locator('h3').innerText()).resolves.toMatch(
      new RegExp(`^Question ${firstPair + 2} `),
    );
    expect(page.url()).toMatch(new RegExp(`#/explore/world/${firstPair + 1}$`));
    await page.keyboard.press('k');
    await expect(page.getByTestId('question').locator('h3').innerText()).resolves.toMatch(
      new RegExp(`^Question ${firstPair + 1} `),
    );

    // filter: only the questions with a right and a wrong rationale, as many as the statistics say
    const both = samples.filter((s) => s.some((x) => x.correct) && s.some((x) => !x.correct)).length;
    await page.getByRole('button', { name: 'Right and wrong' }).click();
    expect(await page.getByTestId('question-count').innerText()).toBe(`${both} of 500 questions`);
    expect(await page.getByTestId('stat-both').innerText()).toBe(`${both} questions`);
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('GSM8K model solutions: 2,001 / 3,275, a real pair diverging at the second computation; reload keeps it; MATH-500 in KaTeX', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await page.waitForSelector(ready, { timeout: 60_000 });
    await page.getByTestId('dataset-gsm8k').click();
    await waitStat(page, 'pos', '2,001');
    await waitStat(page, 'neg', '3,275');
    await waitStat(page, 'rationales', '5,276');
    await page.getByTestId('question-item').nth(1).click();
    // the robe: both compute 1 bolt of white fiber, then the wrong one turns bolts into meters
    expect(await page.getByTestId('diverge-right').innerText()).toContain('So it takes 2+1=<<2+1=3>>3 bolts');
    expect(await page.getByTestId('diverge-wrong').innerText()).toContain('100/2 = <<100/2=50.0>>50 meters');
    expect(page.url()).toMatch(/#\/explore\/gsm8k\/1$/);
    await screenshot(page, 'explore-gsm8k');

    await page.reload();
    await waitStat(page, 'pos', '2,001');
    await expect(page.getByTestId('question').locator('h3').innerText()).resolves.toMatch(/^Question 2/);
    // to another view and back: the hash names the dataset and question again
    await page.keyboard.press('3');
    await page.getByTestId('view-train').waitFor();
    await page.keyboard.press('2');
    await waitStat(page, 'pos', '2,001');
    expect(page.url()).toMatch(/#\/explore\/gsm8k\/1$/);

    await page.getByTestId('dataset-math500').click();
    await waitStat(page, 'questions', '500');
    await expect(page.getByTestId('pair-missing').innerText()).resolves.toMatch(/no rationales/);
    const q = page.getByTestId('question');
    expect(await q.locator('.question .katex').count()).toBeGreaterThan(0);
    expect(await q.getByTestId('gold').locator('.katex').count()).toBe(1);
    expect(await q.getByTestId('solution').locator('.katex').count()).toBeGreaterThan(3);
    expect(await q.getByTestId('solution').locator('.katex-error').count()).toBe(0);
    await screenshot(page, 'explore-math500');
    expect(errors).toEqual([]);
    await ctx.close();
  });

  it('imports our JSON lines from a file into IndexedDB (one record + its parts), keeps it across a reload, deletes it', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await page.waitForSelector(ready, { timeout: 60_000 });
    const lines = [
      {
        question: 'Ann has 3 figs. She buys 4. How many figs does Ann have now?',
        gold: '7',
        rationales: [{ text: '3 + 4 = 7. The answer is 7.' }, { text: '3 - 4 = 1. The answer is 1.' }],
      },
      {
        question: 'Tom has 5 buns. He eats 2. How many buns does Tom have now?',
        gold: 3,
        rationales: [{ text: '5 - 2 = 3. The answer is 3.' }],
      },
    ];
    const text = `${lines.map((l) => JSON.stringify(l)).join('\n')}\nthis line is not JSON\n`;
    await page.getByText('Import a dataset').click();
    await page.getByTestId('import-file').setInputFiles({
      name: 'mine.jsonl',
      mimeType: 'application/json',
      buffer: Buffer.from(text),
    });
    await page.waitForSelector('[data-testid="import-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('import-ok').innerText()).toBe(
      'Imported "mine.jsonl": 2 questions, 3 rationales; 1 lines skipped (see below).',
    );
    await waitStat(page, 'pos', '2');
    await waitStat(page, 'neg', '1');
    await waitStat(page, 'skipped', '1');
    const recs = (await idbRecords(page, 'datasets')) as { name: string; kind: string; questions: number }[];
    expect(recs.map((r) => [r.name, r.kind, r.questions])).toEqual([['mine.jsonl', 'arith', 2]]);
    expect(await idbRecords(page, 'datasetParts')).toHaveLength(1);
    expect(await page.getByTestId('diverge-right').innerText()).toMatch(/^3 \+ 4 = 7\./);
    expect(await page.getByTestId('diverge-wrong').innerText()).toMatch(/^3 - 4 = 1\./);
    await screenshot(page, 'explore-import');

    await page.reload();
    await page.waitForSelector(ready, { timeout: 60_000 });
    await waitStat(page, 'questions', '2'); // the hash names the saved dataset
    await expect(page.getByTestId('dataset-saved').getAttribute('aria-pressed')).resolves.toBe('true');
    await page.getByRole('button', { name: 'Delete mine.jsonl' }).click();
    await waitStat(page, 'questions', '500'); // back to the world
    expect(await idbRecords(page, 'datasets')).toEqual([]);
    expect(await idbRecords(page, 'datasetParts')).toEqual([]);

    // from a URL: OpenAI's GSM8K solutions, format and answer kind detected
    await page.getByText('Import a dataset').click();
    await page
      .getByPlaceholder('https://…/teacher.jsonl')
      .fill(`${app.url}data/gsm8k/example_model_solutions.jsonl`);
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.waitForSelector('[data-testid="import-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('import-ok').innerText()).toMatch(/: 1,319 questions, 5,276 rationales\.$/);
    await waitStat(page, 'pos', '2,001');
    const saved = (await idbRecords(page, 'datasets')) as {
      kind: string;
      format: string;
      questions: number;
    }[];
    expect(saved.map((r) => [r.kind, r.format, r.questions])).toEqual([['gsm8k', 'gsm8k-solutions', 1319]]);
    expect(await idbRecords(page, 'datasetParts')).toHaveLength(6); // 250 problems per part
    expect(errors).toEqual([]);
    await ctx.close();
  });
});
