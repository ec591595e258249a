// web-llm's MLC build of a LLaMA as the student, in the app (headless Chromium, WebGPU on
// SwiftShader, the browser's real Cache Storage): the test serves a small MLC folder written by our
// writer (q4f16_1 shards, the fixture's SentencePiece tokenizer.json) at a URL laid out like Hugging
// Face's (…/resolve/main/<file>). In Models' "MLC / web-llm" card: Inspect before any download says
// to download first; a Download cancelled while its third shard comes in keeps the shards that
// arrived whole (two, unless the machine is slow to click); Download again fetches only the rest, its progress runs to 100% and every file is in
// web-llm's caches ("webllm/config", "webllm/model", by full URL); after a reload the card finds the
// model cached and a third Download fetches nothing; Inspect shows the facts and the plan; a budget too small is
// refused with a suggestion and nothing is loaded; Use as student loads it with progress; Solve
// samples 4 rationales from it. No console errors.
// Screenshots: test-results/models-mlc-plan.png (the refusal), models-mlc-loaded.png, solve-mlc.png,
// and the card alone: models-mlc-card-plan.png, models-mlc-card-loaded.png.
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMlcManifest } from '../../src/engine/io/mlc.ts';
import { mlcStudentFiles } from '../helpers/mlc-student.ts';
import { launch, openPage, sampleInSolve, screenshot, solvePhase, startApp, until } from './harness.ts';

const FILES = mlcStudentFiles();
const SHARDS = parseMlcManifest(FILES.get('tensor-cache.json')!).records.map((r) => r.dataPath);
const ID = 'tiny-llama-q4f16_1-MLC';

/** Records every text the download's progress line shows (the download is quick: polling could miss it). */
async function recordProgress(page: Page, testid: string): Promise<void> {
  await page.evaluate((testid) => {
    const seen: string[] = [];
    (window as unknown as { __progress: string[] }).__progress = seen;
    new MutationObserver(() => {
      const t = document.querySelector(`[data-testid="${testid}"]`)?.textContent;
      if (t && seen.at(-1) !== t) seen.push(t);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  }, testid);
}
const progressSeen = (page: Page) =>
  page.evaluate(() => (window as unknown as { __progress: string[] }).__progress);

/** The request URLs in one of the page's Cache Storage caches (read with the Cache API itself). */
const cacheKeys = (page: Page, name: string) =>
  page.evaluate(async (name) => {
    if (!(await caches.has(name))) return [];
    return (await (await caches.open(name)).keys()).map((r) => r.url).sort();
  }, name);

describe('app: web-llm’s MLC build as the student', () => {
  let app: Awaited<ReturnType<typeof startApp>>;
  let browser: Browser;
  beforeAll(async () => {
    app = await startApp();
    browser = await launch();
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  it('Download (100%, into web-llm’s cache), reload: cached, Inspect + refusal, Use as student, Solve m = 4', async () => {
    // service workers blocked: the page's and the worker's fetches must reach the route below
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    const served: string[] = [];
    let slow = true; // shards arrive slowly during the first download, so that Cancel lands mid-way
    await ctx.route('**/e2e-mlc/**', async (route) => {
      const m = new RegExp(`/e2e-mlc/${ID}/resolve/main/([^?]+)$`).exec(route.request().url());
      const body = m ? FILES.get(m[1]!) : undefined;
      if (!m || !body) return route.fulfill({ status: 404, body: 'not found' });
      served.push(m[1]!);
      if (slow && m[1]!.startsWith('params_shard_')) await new Promise((r) => setTimeout(r, 1000));
      return route.fulfill({
        status: 200,
        headers: { 'Content-Type': 'application/octet-stream' },
        body: Buffer.from(body),
      });
    });
    const modelUrl = `${app.url}e2e-mlc/${ID}`;
    const base = `${modelUrl}/resolve/main/`;
    const { page, errors } = await openPage(ctx, `${app.url}#/models`);
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 120_000 });
    const card = page.getByTestId('model-mlc');

    const pickUrl = async () => {
      await page.getByTestId('mlc-url').fill(modelUrl);
      await page.getByTestId('mlc-url').press('Enter');
    };

    // 1. the model: not in the cache yet; Inspect says to download it first
    await pickUrl();
    await page.waitForSelector('[data-testid="mlc-status"]', { timeout: 30_000 });
    expect(await page.getByTestId('mlc-status').innerText()).toBe("Not in this browser's cache yet.");
    expect(await page.getByTestId('mlc-preset').inputValue()).toBe(''); // not one of web-llm's list
    await page.getByTestId('mlc-inspect').click();
    await page.waitForSelector('[data-testid="mlc-error"]', { timeout: 60_000 });
    expect(await page.getByTestId('mlc-error').getAttribute('data-code')).toBe('BAD_ARGUMENT');
    expect(await page.getByTestId('mlc-error').innerText()).toMatch(
      new RegExp(`${ID} is not in this browser's cache yet: download it first`),
    );
    expect(served).toEqual([]); // reading never fetches

    // 2. Download, cancelled while a shard comes in: the files that arrived whole stay in the cache
    await page.getByTestId('mlc-download').click();
    await page.waitForSelector(`[data-testid="mlc-download-text"]:has-text("· ${SHARDS[2]}")`, {
      timeout: 60_000,
    });
    await page.getByTestId('mlc-download-cancel').click();
    await page.waitForSelector('[data-testid="mlc-download-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('mlc-download-ok').innerText()).toBe(
      'Download cancelled: the files that arrived whole are kept; Download goes on from the next one.',
    );
    expect(await page.getByTestId('mlc-download-error').count()).toBe(0);
    await page.waitForSelector('[data-testid="mlc-status"][data-complete="false"]', { timeout: 30_000 });
    const kept = (await cacheKeys(page, 'webllm/model')).map((u) => u.slice(base.length));
    const keptShards = SHARDS.filter((f) => kept.includes(f));
    // shards 0 and 1 at least (the third was coming in), never all of them
    expect(keptShards.slice(0, 2)).toEqual(SHARDS.slice(0, 2));
    expect(keptShards).toEqual(SHARDS.slice(0, keptShards.length)); // in order: nothing half-kept
    expect(keptShards.length).toBeLessThan(SHARDS.length);
    expect(await page.getByTestId('mlc-status').innerText()).toMatch(
      new RegExp(
        `^Partly in this browser's cache: ${keptShards.length} of ${SHARDS.length} shards \\([\\d.]+ KiB of [\\d.]+ KiB\\)\\. Download goes on from the first file missing\\.$`,
      ),
    );

    // 3. Download again: only what is missing, progress to 100%, every file in web-llm's caches
    slow = false;
    served.length = 0;
    await recordProgress(page, 'mlc-download-text');
    await page.getByTestId('mlc-download').click();
    await page.waitForSelector('[data-testid="mlc-download-ok"]:has-text("Downloaded")', {
      timeout: 120_000,
    });
    expect(await page.getByTestId('mlc-download-error').count()).toBe(0);
    const files = FILES.size;
    const missing = SHARDS.slice(keptShards.length);
    expect(served.sort()).toEqual([...missing].sort()); // nothing kept is fetched again
    expect(await page.getByTestId('mlc-download-ok').innerText()).toMatch(
      new RegExp(
        `^Downloaded ${missing.length} files \\([\\d.]+ KiB\\); ${files - missing.length} were in the cache already: all ${files} files \\([\\d.]+ KiB\\) are in this browser's cache, where web-llm finds them too\\.$`,
      ),
    );
    const shown = await progressSeen(page);
    expect(shown.some((t) => / · params_shard_\d+\.bin$/.test(t))).toBe(true);
    expect(shown.at(-1)).toMatch(/^([\d.]+ KiB) of \1 \(100%\)$/);
    expect(await page.getByTestId('mlc-download-text').innerText()).toMatch(/\(100%\)$/);
    expect(await cacheKeys(page, 'webllm/config')).toEqual([`${base}mlc-chat-config.json`]);
    expect(await cacheKeys(page, 'webllm/model')).toEqual(
      ['tensor-cache.json', 'tokenizer.json', ...SHARDS].map((f) => base + f).sort(),
    );
    await page.waitForSelector('[data-testid="mlc-status"][data-complete="true"]', { timeout: 30_000 });

    // 4. a reload: the files are still in Cache Storage; a second Download fetches nothing
    await page.reload();
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 120_000 });
    expect(await cacheKeys(page, 'webllm/model')).toHaveLength(2 + SHARDS.length);
    await pickUrl();
    await page.waitForSelector('[data-testid="mlc-status"][data-complete="true"]', { timeout: 30_000 });
    expect(await page.getByTestId('mlc-status').innerText()).toMatch(
      new RegExp(
        `^In this browser's cache: all ${SHARDS.length} shards \\([\\d.]+ KiB\\), configuration and tokenizer\\.$`,
      ),
    );
    served.length = 0;
    await page.getByTestId('mlc-download').click();
    await page.waitForSelector('[data-testid="mlc-download-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('mlc-download-ok').innerText()).toMatch(
      new RegExp(
        `^All ${files} files \\([\\d.]+ KiB\\) were in this browser's cache already: nothing was downloaded\\.$`,
      ),
    );
    expect(served).toEqual([]);

    // 5. Inspect: the facts and the plan (32 samples × 512 positions by default)
    await page.getByTestId('mlc-inspect').click();
    await page.waitForSelector('[data-testid="model-mlc"] [data-testid="plan"][data-verdict="ok"]', {
      timeout: 60_000,
    });
    expect(await page.getByTestId('mlc-error').count()).toBe(0);
    expect(await page.getByTestId('mlc-build').innerText()).toMatch(
      new RegExp(`^llama, q4f16_1 \\(${SHARDS.length} shards, [\\d.]+ KiB\\)$`),
    );
    expect(await page.getByTestId('mlc-shape').innerText()).toBe(
      '2 layers, dim 64, hidden 172, 4 heads (2 key/value)',
    );
    expect(await page.getByTestId('mlc-vocab').innerText()).toBe(
      '500 tokens (tokenizer.json, SentencePiece, byte fallback), context 512',
    );
    const types = await page.getByTestId('mlc-types').innerText();
    expect(types).toMatch(/qkv_proj: q\s+2 × q4f16_1\s+q4f16_1 \(as stored\) · 4\.5 KiB/);
    expect(types).toMatch(/down_proj\s+2 × q4f16_1\s+f32 \(dequantized\) · 86\.0 KiB/);
    expect(types).toMatch(/embed_tokens\s+1 × q4f16_1\s+q4_0 \(repacked\)/);
    expect(await page.getByTestId('mlc-samples').inputValue()).toBe('32');
    expect(await page.getByTestId('mlc-context').inputValue()).toBe('512');
    expect(await card.getByTestId('plan-kv').innerText()).toMatch(/KV cache\s+4\.0 MiB/); // 2·2·32·512·32·2 B

    // 6. a budget of 1 MiB: refused with the planner's suggestion; nothing is loaded
    await page.getByTestId('mlc-budget').fill('0.0009765625');
    await page.getByTestId('mlc-budget').press('Enter');
    await page.waitForSelector('[data-testid="model-mlc"] [data-testid="plan"][data-verdict="refused"]', {
      timeout: 60_000,
    });
    const refused = card.getByTestId('plan-refused');
    expect(await refused.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    expect(await refused.innerText()).toMatch(
      /^Refused: more than the memory budget[\s\S]*32 sequences × 512 positions needs [\d.]+ MiB[\s\S]*budget is 1\.0 MiB[\s\S]*To fit: at most \d sequences? at 512 positions/,
    );
    expect(await card.getByTestId('plan-suggestion').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('mlc-load').isDisabled()).toBe(true);
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');
    await screenshot(page, 'models-mlc-plan');
    await card.screenshot({ path: 'test-results/models-mlc-card-plan.png' });
    await card.getByTestId('plan-apply').first().click();
    await page.waitForSelector('[data-testid="model-mlc"] [data-testid="plan"][data-verdict="ok"]', {
      timeout: 60_000,
    });
    expect(Number(await page.getByTestId('mlc-samples').inputValue())).toBeLessThan(32);
    // the budget back to none (4 GiB assumed) and 4 samples
    await page.getByTestId('mlc-budget').fill('');
    await page.getByTestId('mlc-budget').press('Enter');
    await page.getByTestId('mlc-samples').fill('4');
    await page.getByTestId('mlc-samples').press('Enter');
    await until(
      'the plan for 4 samples',
      async () =>
        (await card.locator('[data-testid="plan"][data-verdict="ok"]').count()) === 1 &&
        /^4 samples × 512 positions/.test(await card.getByTestId('plan').locator('.head').innerText()),
    );
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');

    // 7. Use as student: the load's progress, then the card says what is in use
    await recordProgress(page, 'mlc-progress-text');
    await page.getByTestId('mlc-load').click();
    await page.waitForSelector('[data-testid="mlc-ok"]:has-text("is the model in use now")', {
      timeout: 120_000,
    });
    expect(await page.getByTestId('mlc-error').count()).toBe(0);
    const loading = await progressSeen(page);
    expect(loading[0]).toMatch(/^0 B of [\d.]+ KiB/);
    expect(await page.getByTestId('mlc-ok').innerText()).toMatch(
      new RegExp(
        `^${ID} is the model in use now \\([\\d,]+ parameters, up to 4 samples of 512 positions\\): Solve uses it\\.$`,
      ),
    );
    expect(await page.getByTestId('model-name').innerText()).toBe(ID);
    expect(await page.getByTestId('mlc-in-use').innerText()).toMatch(
      /web-llm's q4f16_1 build loaded for up to 4 samples of 512 positions[\s\S]*made for another model \(arith-student\)/,
    );
    expect(await page.getByTestId('mlc-load').innerText()).toBe('Load it again with these settings');
    await screenshot(page, 'models-mlc-loaded');
    await card.screenshot({ path: 'test-results/models-mlc-card-loaded.png' });

    // 8. Solve with it: 4 rationales, each card with text
    await page.getByTestId('nav-solve').click();
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('status').innerText()).toContain(ID);
    expect(await page.getByTestId('student').locator('option:not([disabled])').allInnerTexts()).toEqual([
      'base model (no adapters)',
    ]);
    expect(await page.getByTestId('m').inputValue()).toBe('4'); // Solve keeps to the plan's samples
    expect(await page.getByTestId('unreadable').count()).toBe(0);
    await sampleInSolve(page, 4, 24);
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(4);
    for (let i = 0; i < 4; i++) {
      expect(await cards.nth(i).getAttribute('data-done')).toBe('true');
      expect((await cards.nth(i).getByTestId('sample-text').innerText()).trim().length).toBeGreaterThan(0);
    }
    expect(await page.getByTestId('solve-notice').count()).toBe(0);
    await screenshot(page, 'solve-mlc');
    expect(served).toEqual([]); // Solve read the weights from the cache, through the worker
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);
});
