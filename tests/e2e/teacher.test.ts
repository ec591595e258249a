// The in-browser teacher in a real browser (Explore's teacher panel, the teacher worker, IndexedDB).
// No model can be downloaded here, so the one file that holds web-llm in the build,
// assets/webllm-<hash>.js, is served by a fake (fixtures/fake-webllm.ts) whose engine writes
// scripted rationales: the app itself runs unchanged. The oracle for the labels is the world's own
// teacher (its samples carry their `correct` flag) and the fake's choice rule.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { transformWithOxc } from 'vite';
import { callSeed } from '../../src/method/teacher/state.ts';
import { generateProblems, teacherSamples } from '../../src/method/world/index.ts';
import { scriptedText, type FakeModel, type FakeScript } from './fixtures/fake-webllm.ts';
import { horizontalOverflow, idbRecords, launch, openPage, screenshot, startApp, until } from './harness.ts';

const ready = '[data-testid="view-explore"][data-phase="ready"]';
const WEBLLM_CHUNK = /\/assets\/webllm-[\w-]+\.js$/;
const F32_MODEL = 'Qwen2.5-Math-1.5B-Instruct-q4f32_1-MLC';

const MODELS: FakeModel[] = [
  { model_id: 'Qwen2.5-Math-1.5B-Instruct-q4f16_1-MLC', vram_required_MB: 1629, low_resource_required: true },
  { model_id: F32_MODEL, vram_required_MB: 1888, low_resource_required: true },
  { model_id: 'Llama-2-7b-chat-hf-q4f16_1-MLC', vram_required_MB: 6749, low_resource_required: false },
  { model_id: 'Phi-3.5-mini-instruct-q4f32_1-MLC', vram_required_MB: 5483, low_resource_required: false },
  // an embedding model writes no text: the picker leaves it out
  {
    model_id: 'snowflake-arctic-embed-m-q0f32-MLC-b4',
    vram_required_MB: 539,
    low_resource_required: false,
    model_type: 1,
  },
];

const NO_ANSWER = 'Let me think about this one again later.';

/** A world dataset as the app generates it (n, seed; ids w<seed>-<i>), with the texts the fake draws from. */
function worldScript(n: number, seed: number, pad: (i: number) => string = () => '') {
  const problems = generateProblems(n, seed);
  const samples = teacherSamples(problems, 4, seed);
  const pools = problems.map((_, i) => [
    ...samples[i]!.map((s) => ({ text: pad(i) + s.text, correct: s.correct })),
    { text: NO_ANSWER, correct: false },
  ]);
  const texts: Record<string, string[]> = {};
  problems.forEach((p, i) => (texts[p.question] = pools[i]!.map((x) => x.text)));
  /** What the run must write for problem i: one call of n = k = 4, seed from the run's seed 0. */
  const expected = problems.map((_, i) => {
    const seedOf = callSeed(0, `w${seed}-${i}`, 0);
    const pool = pools[i]!;
    return Array.from({ length: 4 }, (_, j) => {
      const text = scriptedText(
        pool.map((x) => x.text),
        seedOf,
        j,
      );
      return { text, correct: pool.find((x) => x.text === text)!.correct };
    });
  });
  return { problems, texts, expected };
}

async function fakeModule(script: FakeScript): Promise<string> {
  const path = 'tests/e2e/fixtures/fake-webllm.ts';
  const { code } = await transformWithOxc(readFileSync(path, 'utf8'), path, { lang: 'ts' });
  return (
    `${code}\nconst fake = fakeWebLlm(${JSON.stringify(script)});\n` +
    'export const CreateMLCEngine = fake.CreateMLCEngine;\n' +
    'export const CreateWebWorkerMLCEngine = fake.CreateWebWorkerMLCEngine;\n' +
    'export const prebuiltAppConfig = fake.prebuiltAppConfig;\n'
  );
}

/** A context whose web-llm chunk is the fake (service workers blocked: their fetches are not routed). */
async function fakeContext(
  browser: Browser,
  script: FakeScript,
): Promise<{ ctx: BrowserContext; served: () => number }> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
  const body = await fakeModule(script);
  let served = 0;
  await ctx.route(WEBLLM_CHUNK, async (route) => {
    served++;
    await route.fulfill({ status: 200, contentType: 'text/javascript', body });
  });
  return { ctx, served: () => served };
}

async function openTeacher(page: Page): Promise<void> {
  await page.waitForSelector(ready, { timeout: 60_000 });
  await page.getByText('Write a dataset with a teacher model').click();
}

/**
 * Waits until the run in the panel has ended: the live section idle again, or the run's error
 * shown (then fails at once with the message, the status line and the page's console errors,
 * instead of waiting out the timeout for a section that a failed run does not show).
 */
async function runEnded(page: Page, errors: readonly string[], timeout: number): Promise<void> {
  const idle = '[data-testid="teacher-live"][data-phase="idle"]';
  try {
    await page.waitForSelector(`${idle}, [data-testid="teacher-error"]`, { timeout });
  } catch (e) {
    await screenshot(page, 'teacher-stuck');
    const status = await page
      .getByTestId('teacher-status')
      .innerText({ timeout: 1_000 })
      .catch(() => '(no status line)');
    throw new Error(`the teacher run did not end: status "${status}"; console: ${errors.join(' | ')}`, {
      cause: e,
    });
  }
  const error = page.getByTestId('teacher-error');
  if ((await error.count()) > 0)
    throw new Error(`the teacher run failed: ${await error.innerText()}; console: ${errors.join(' | ')}`);
  await page.waitForSelector(idle, { timeout: 1_000 });
}

interface RunRow {
  runId: string;
  done: number;
  partial: unknown;
  datasetId?: string;
  header: { config: { modelId: string; k: number; name: string }; problems: { id: string }[] };
}
interface RecordRow {
  runId: string;
  index: number;
  record: { id: string; rationales: { text: string; correct: boolean; answer: string | null }[] };
}

const base = (n: number, seed: number, over: Partial<FakeScript> = {}): FakeScript => ({
  models: MODELS,
  texts: worldScript(n, seed).texts,
  msPerChoice: 350,
  tokensPerChoice: 40,
  loadSteps: 6,
  msPerLoadStep: 250,
  failLoad: null,
  ...over,
});

describe('app: the in-browser teacher (web-llm faked at its chunk)', () => {
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

  it('6 world problems, k = 4: progress, Cancel, reload, Resume, finish; the dataset in Explore; IndexedDB as written', async () => {
    const world = worldScript(6, 1);
    const { ctx, served } = await fakeContext(browser, base(6, 1));
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await openTeacher(page);

    // the picker: web-llm's models less the embedding one; q4f16 builds marked where the GPU lacks shader-f16
    const select = page.getByTestId('teacher-model');
    await page.getByTestId('teacher-start').waitFor({ timeout: 60_000 });
    const options = await select.locator('option').evaluateAll((os) =>
      os.map((o) => ({
        value: (o as HTMLOptionElement).value,
        disabled: (o as HTMLOptionElement).disabled,
        text: o.textContent ?? '',
      })),
    );
    expect(options.map((o) => o.value).sort()).toEqual(
      MODELS.slice(0, 4)
        .map((m) => m.model_id)
        .sort(),
    );
    const f16 = await page.evaluate(
      async () => (await navigator.gpu.requestAdapter())?.features.has('shader-f16') ?? false,
    );
    for (const o of options) {
      const needsF16 = /q4f16/.test(o.value);
      expect(o.disabled).toBe(needsF16 && !f16);
      if (needsF16 && !f16) expect(o.text).toContain('needs shader-f16, which this GPU lacks');
    }
    // the suggested model is chosen first: the q4f16 build where it runs, else q4f32
    expect(await select.inputValue()).toBe(f16 ? MODELS[0]!.model_id : F32_MODEL);
    expect(options[0]!.text).toMatch(/^Qwen2\.5-Math-1\.5B-Instruct-q4f16_1-MLC · 1\.6 GB/);

    await select.selectOption(F32_MODEL);
    await page.getByTestId('teacher-source').selectOption('world');
    await page.getByTestId('teacher-count').fill('6');
    await page.getByTestId('teacher-seed').fill('1');
    await page.getByTestId('teacher-k').fill('4');
    // the default longest rationale follows the dataset's answer kind (arith: 128)
    expect(await page.getByTestId('teacher-max-tokens').inputValue()).toBe('128');
    const name = 'Fake teacher on 6 world problems';
    await page.getByTestId('teacher-name').fill(name);
    await page.getByTestId('teacher-start').click();

    // the model's load progress, in web-llm's words
    const load = page.getByTestId('teacher-load');
    await load.waitFor({ timeout: 60_000 });
    expect(await load.innerText()).toMatch(/Fetching param cache\[\d\/6\]: \d+MB fetched/);
    await page.waitForSelector('[data-testid="teacher-done"][data-done="2"]', { timeout: 120_000 });
    expect(await page.getByTestId('teacher-tps').innerText()).toMatch(/^\d[\d,]*$/);
    expect(await page.getByTestId('teacher-eta').innerText()).toMatch(/^≈ \d+ s$/);
    expect(await page.getByTestId('teacher-rationale').count()).toBeGreaterThanOrEqual(8);
    await screenshot(page, 'teacher-running');
    await page.getByTestId('teacher-cancel').click();
    await runEnded(page, errors, 60_000);
    const notice = await page.getByTestId('teacher-notice').innerText();
    expect(notice).toMatch(new RegExp(`^Cancelled "${name}": \\d of 6 problems are saved`));
    const doneAtCancel = Number(await page.getByTestId('teacher-done').getAttribute('data-done'));
    expect(doneAtCancel).toBeGreaterThanOrEqual(2);
    expect(doneAtCancel).toBeLessThan(6);

    // IndexedDB: the problems finished so far, each once, with the labels the script implies
    const runsAtCancel = (await idbRecords(page, 'teacherRuns')) as RunRow[];
    expect(runsAtCancel).toHaveLength(1);
    const runId = runsAtCancel[0]!.runId;
    expect(runsAtCancel[0]).toMatchObject({ done: doneAtCancel, partial: null });
    expect(runsAtCancel[0]!.header.config).toMatchObject({ modelId: F32_MODEL, k: 4, name });
    expect(runsAtCancel[0]!.header.problems.map((p) => p.id)).toEqual(
      world.problems.map((_, i) => `w1-${i}`),
    );
    const recsAtCancel = (await idbRecords(page, 'teacherRecords')) as RecordRow[];
    expect(recsAtCancel.map((r) => [r.runId, r.index])).toEqual(
      Array.from({ length: doneAtCancel }, (_, i) => [runId, i]),
    );
    expect(await idbRecords(page, 'datasets')).toEqual([]);

    // a reload: the run is listed with how far it got; Resume goes on from there
    await page.reload();
    await openTeacher(page);
    const row = page.locator(`[data-testid="teacher-run"][data-run-id="${runId}"]`);
    await row.waitFor({ timeout: 60_000 });
    expect(await row.getAttribute('data-done')).toBe(String(doneAtCancel));
    expect(await row.getByTestId('teacher-run-counts').innerText()).toMatch(
      new RegExp(`^${doneAtCancel} / 6 problems · \\d+ D_pos / \\d+ D_neg · not finished$`),
    );
    await screenshot(page, 'teacher-saved-run');
    await row.getByTestId('teacher-resume').click();
    await runEnded(page, errors, 180_000);
    await until('the finished notice', async () =>
      /^Finished/.test(
        (await page
          .getByTestId('teacher-notice')
          .innerText()
          .catch(() => '')) ?? '',
      ),
    );

    const flat = world.expected.flat();
    const pos = flat.filter((x) => x.correct).length;
    const neg = flat.length - pos;
    const noAnswer = flat.filter((x) => x.text === NO_ANSWER).length;
    expect(pos).toBeGreaterThan(0);
    expect(neg).toBeGreaterThan(0);
    expect(await page.getByTestId('teacher-notice').innerText()).toContain(
      `Finished "${name}": saved as a dataset of 6 questions, ${pos} D_pos / ${neg} D_neg rationales.`,
    );
    expect(await page.getByTestId('teacher-pos').innerText()).toBe(String(pos));
    expect(await page.getByTestId('teacher-neg').innerText()).toBe(String(neg));
    expect(await page.getByTestId('teacher-noanswer').innerText()).toBe(String(noAnswer));
    expect(await page.getByTestId('teacher-done').innerText()).toBe('6 / 6');
    // the last problem written is shown first, each rationale with our label
    const last = page.getByTestId('teacher-recent').locator(':scope > li').first();
    expect(await last.getAttribute('data-index')).toBe('5');
    expect(await last.locator('.which').innerText()).toBe('Problem 6');
    const shown = await last
      .getByTestId('teacher-rationale')
      .evaluateAll((ls) => ls.map((l) => l.getAttribute('data-correct') === 'true'));
    expect(shown).toEqual(world.expected[5]!.map((x) => x.correct));
    await screenshot(page, 'teacher-finished');

    // IndexedDB: every problem once, texts and labels exactly as scripted; the run notes its dataset
    const recs = ((await idbRecords(page, 'teacherRecords')) as RecordRow[]).filter((r) => r.runId === runId);
    expect(recs.map((r) => r.index)).toEqual([0, 1, 2, 3, 4, 5]);
    recs.forEach((r, i) => {
      expect(r.record.id).toBe(`w1-${i}`);
      expect(r.record.rationales.map((x) => ({ text: x.text, correct: x.correct }))).toEqual(
        world.expected[i],
      );
      for (const x of r.record.rationales)
        if (x.text === NO_ANSWER) expect(x.answer).toBeNull();
        else if (x.correct) expect(x.answer).toBe(String(world.problems[i]!.answer));
    });
    const runs = (await idbRecords(page, 'teacherRuns')) as RunRow[];
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({ runId, done: 6, partial: null });
    const datasets = (await idbRecords(page, 'datasets')) as {
      id: string;
      name: string;
      pos: number;
      neg: number;
      questions: number;
      kind: string;
    }[];
    expect(datasets).toHaveLength(1);
    expect(datasets[0]).toMatchObject({
      id: runs[0]!.datasetId,
      name,
      pos,
      neg,
      questions: 6,
      kind: 'arith',
    });

    // Explore lists it, and opens it with the same D_pos / D_neg (counted again by its own checker)
    await expect(page.getByTestId('dataset-saved').innerText()).resolves.toBe(name);
    await page.getByTestId('teacher-open').click();
    await page.waitForSelector(`${ready} [data-testid="stat-pos"]:text-is("${pos}")`, { timeout: 60_000 });
    await page.waitForSelector(`${ready} [data-testid="stat-neg"]:text-is("${neg}")`, { timeout: 60_000 });
    await page.waitForSelector(`${ready} [data-testid="stat-questions"]:text-is("6")`, { timeout: 60_000 });
    await screenshot(page, 'teacher-dataset-in-explore');

    // talk mode: the panel scales and nothing scrolls sideways
    await page.keyboard.press('t');
    expect(await horizontalOverflow(page)).toBe(0);
    await screenshot(page, 'teacher-talk');
    // the fake was served (to the one worker that imports web-llm)
    expect(served()).toBeGreaterThanOrEqual(1);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('storage full while writing: QUOTA_FULL, the problem is not half-written; with space back, Resume finishes', async () => {
    // problem 2's rationales are large (a 400 kB preamble each): their save cannot fit the quota
    const big = (i: number) => (i === 1 ? `${'Thinking. '.repeat(40_000)}\n` : '');
    const world = worldScript(3, 2, big);
    const { ctx } = await fakeContext(browser, {
      ...base(3, 2),
      texts: world.texts,
      msPerChoice: 50,
      loadSteps: 1,
    });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await openTeacher(page);
    await page.getByTestId('teacher-start').waitFor({ timeout: 60_000 });
    await page.getByTestId('teacher-model').selectOption(F32_MODEL);
    await page.getByTestId('teacher-count').fill('3');
    await page.getByTestId('teacher-seed').fill('2');
    await page.getByTestId('teacher-name').fill('Quota run');

    const cdp = await ctx.newCDPSession(page);
    const origin = new URL(app.url).origin;
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: (usage ?? 0) + 300_000 });
    await page.getByTestId('teacher-start').click();
    const notice = page.getByTestId('teacher-error');
    await notice.waitFor({ timeout: 120_000 });
    expect(await notice.getAttribute('data-code')).toBe('QUOTA_FULL');
    const text = await notice.innerText();
    expect(text).toContain('Browser storage is full');
    expect(text).toContain(`could not save the rationales of problem "w2-1"; nothing of it was kept`);
    expect(text).toContain('press Resume');
    // all or nothing: problem 1 saved, problem 2 neither as a record nor in the row's tallies
    const recs = (await idbRecords(page, 'teacherRecords')) as RecordRow[];
    expect(recs.map((r) => r.index)).toEqual([0]);
    const runs = (await idbRecords(page, 'teacherRuns')) as RunRow[];
    expect(runs).toMatchObject([{ done: 1, partial: null }]);
    await screenshot(page, 'teacher-quota');

    await cdp.send('Storage.overrideQuotaForOrigin', { origin }); // back to the real quota
    await page
      .locator(`[data-testid="teacher-run"][data-run-id="${runs[0]!.runId}"]`)
      .getByTestId('teacher-resume')
      .click();
    await until('the finished notice', async () =>
      /^Finished "Quota run"/.test(
        (await page
          .getByTestId('teacher-notice')
          .innerText()
          .catch(() => '')) ?? '',
      ),
    );
    const after = ((await idbRecords(page, 'teacherRecords')) as RecordRow[]).map((r) => [
      r.index,
      r.record.rationales.map((x) => x.correct),
    ]);
    expect(after).toEqual(world.expected.map((e, i) => [i, e.map((x) => x.correct)]));
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('a model whose download fails, and web-llm itself failing to load: messages a student can act on', async () => {
    // the model's files stop half-way (as a dropped connection): nothing of the run is saved
    const { ctx, served } = await fakeContext(browser, {
      ...base(2, 1),
      failLoad: 'network',
      loadSteps: 4,
      msPerLoadStep: 100,
    });
    const { page, errors } = await openPage(ctx, `${app.url}#/explore`);
    await openTeacher(page);
    await page.getByTestId('teacher-start').waitFor({ timeout: 60_000 });
    await page.getByTestId('teacher-model').selectOption(F32_MODEL);
    await page.getByTestId('teacher-count').fill('2');
    await page.getByTestId('teacher-start').click();
    const notice = page.getByTestId('teacher-error');
    await notice.waitFor({ timeout: 60_000 });
    expect(await notice.getAttribute('data-code')).toBe('DOWNLOAD');
    const text = await notice.innerText();
    expect(text).toContain('Could not download the file');
    expect(text).toContain(
      `The download of ${F32_MODEL} stopped (TypeError: Failed to fetch): check the connection and load it again`,
    );
    expect(await idbRecords(page, 'teacherRuns')).toEqual([]);
    expect(await idbRecords(page, 'teacherRecords')).toEqual([]);
    expect(served()).toBe(1);
    await screenshot(page, 'teacher-download-failed');
    expect(errors).toEqual([]);
    await ctx.close();

    // the web-llm chunk itself does not arrive: the panel says so instead of a model list
    const ctx2 = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      serviceWorkers: 'block',
    });
    await ctx2.route(WEBLLM_CHUNK, (route) => route.abort('internetdisconnected'));
    const second = await openPage(ctx2, `${app.url}#/explore`);
    await openTeacher(second.page);
    const missing = second.page.getByTestId('teacher-models-error');
    await missing.waitFor({ timeout: 60_000 });
    expect(await missing.getAttribute('data-code')).toBe('DOWNLOAD');
    expect(await missing.innerText()).toMatch(
      /Could not load web-llm, the library that runs the teacher models \(.+\)\. Check the connection, then reload the page and open the teacher again\./,
    );
    expect(await second.page.getByTestId('teacher-start').count()).toBe(0);
    await screenshot(second.page, 'teacher-webllm-missing');
    // the only console errors are the browser's own report of the failed request
    expect(
      second.errors.filter((e) => !/Failed to load resource|ERR_INTERNET_DISCONNECTED|webllm-/.test(e)),
    ).toEqual([]);
    await ctx2.close();
  }, 600_000);
});
