// Train in a real browser (WebGPU on SwiftShader): NAT on the built-in Neg set runs in the trainer
// worker with its loss plotted and checkpoints stored in IndexedDB; a reload resumes the run from
// its checkpoint (the step counter goes on from there, the curve keeps the earlier steps), and the
// finished run is saved as an adapter set (read back with the raw IndexedDB API). A full quota
// while storing a checkpoint pauses the run with the message and keeps nothing of that checkpoint;
// with space again, Resume goes on and the run finishes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { formatBytes } from '../../src/engine/errors.ts';
import {
  horizontalOverflow,
  idbRecords,
  launch,
  openPage,
  sampleInSolve,
  screenshot,
  solvePhase,
  startApp,
  until,
} from './harness.ts';

interface RunRec {
  id: string;
  stage: string;
  status: string;
  step: number;
  steps: number;
  losses: number[];
  adapterSetId?: string;
}
interface CkptRec {
  id: string;
  step: number;
}
interface AdapterRec {
  id: string;
  name: string;
  stage: string;
  source: string;
  model: string;
  files: string[];
  summary?: Record<string, unknown>;
}

const view = '[data-testid="view-train"]';

async function setUp(page: Page, stage: string, steps: number, batch: number, every: number): Promise<void> {
  await page.getByTestId('train-counts').waitFor({ timeout: 120_000 });
  await page.getByTestId('train-stage').selectOption(stage);
  await page.getByTestId('train-steps').fill(String(steps));
  await page.getByTestId('train-batch').fill(String(batch));
  await page.getByTestId('train-ckpt').fill(String(every));
}

async function stepOf(page: Page): Promise<{ step: number; resumedFrom: number; firstStep: number }> {
  const el = page.getByTestId('train-step');
  return {
    step: Number(await el.getAttribute('data-step')),
    resumedFrom: Number(await el.getAttribute('data-resumed-from')),
    firstStep: Number(await el.getAttribute('data-first-step')),
  };
}

describe('app: Train', () => {
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

  it('NAT on the built-in Neg set: live loss, checkpoints, reload resumes from the checkpoint, adapter saved', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/train`);
    await setUp(page, 'nat', 6, 4, 2);
    // the world's 500 questions, about a tenth held out by question
    const heldOut = Number(await page.getByTestId('train-heldout').innerText());
    const questions = Number((await page.getByTestId('train-questions').innerText()).replace(/,/g, ''));
    expect(heldOut + questions).toBe(500);
    expect(heldOut).toBeGreaterThan(20);
    expect(heldOut).toBeLessThan(90);
    expect(await page.getByTestId('train-input').inputValue()).toBe('builtin-neg');
    expect(await page.getByTestId('train-stage-info').innerText()).toMatch(/NAT stage 2/);

    await page.getByTestId('train-start').click();
    // a checkpoint stored and the loss plotted
    const first = await until('a stored checkpoint', async () => {
      const cs = (await idbRecords(page, 'checkpoints')) as CkptRec[];
      return cs[0];
    });
    expect(first.step % 2).toBe(0);
    await until('two points on the loss chart', async () =>
      Number(await page.getByTestId('chart-loss').getAttribute('data-points')) >= 2 ? true : null,
    );
    expect(await page.getByTestId('chart-loss').locator('canvas').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('chart-alpha').locator('canvas').count()).toBeGreaterThan(0);
    expect(await page.getByTestId('train-step').innerText()).toMatch(/^\d \/ 6$/);
    const runs = (await idbRecords(page, 'runs')) as RunRec[];
    expect(runs).toHaveLength(1);
    expect(runs[0]!.stage).toBe('nat');
    // the run's record and its checkpoint agree (one transaction)
    const [ckpt] = (await idbRecords(page, 'checkpoints')) as CkptRec[];
    const [run] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(run!.step).toBe(ckpt!.step);
    expect(run!.losses).toHaveLength(ckpt!.step);
    expect(run!.step).toBeLessThan(6);
    await screenshot(page, 'train-running');

    await page.reload();
    // the view finds the run and goes on from its checkpoint, not from step 0
    await until('the resumed run', async () => ((await stepOf(page)).firstStep > 0 ? true : null));
    const s = await stepOf(page);
    expect(s.resumedFrom).toBeGreaterThanOrEqual(first.step);
    expect(s.firstStep).toBe(s.resumedFrom + 1);
    expect(await page.getByTestId('train-resumed').innerText()).toContain(`step ${s.resumedFrom}`);
    expect(await page.getByTestId('train-notice').innerText()).toMatch(/reloaded during the NAT run/);
    await screenshot(page, 'train-resumed');

    await page.waitForSelector(`${view}[data-phase="done"]`, { timeout: 300_000 });
    expect(await page.getByTestId('train-step').innerText()).toBe('6 / 6');
    // the curve holds the steps from before the reload too
    expect(await page.getByTestId('chart-loss').getAttribute('data-points')).toBe('6');
    const item = page.getByTestId('train-saved-item');
    expect(await item.count()).toBe(1);
    expect(await item.getAttribute('data-stage')).toBe('nat');
    const sets = (await idbRecords(page, 'adapters')) as AdapterRec[];
    expect(sets).toHaveLength(1);
    expect(sets[0]).toMatchObject({ stage: 'nat', source: 'trained', model: 'arith-student' });
    expect(sets[0]!.files).toEqual(['lora.safetensors', 'nat.safetensors', 'neg.safetensors', 'result.json']);
    expect(sets[0]!.summary?.steps).toBe(6);
    const [done] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(done).toMatchObject({ status: 'done', step: 6, adapterSetId: sets[0]!.id });
    expect(done!.losses).toHaveLength(6);
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    await screenshot(page, 'train-done');
    // talk mode, dark: the charts are redrawn in the new palette and nothing scrolls sideways
    await page.keyboard.press('t');
    await page.keyboard.press('d');
    await page.waitForTimeout(300);
    expect(await horizontalOverflow(page)).toBe(0);
    expect(await page.getByTestId('chart-loss').locator('canvas').count()).toBe(1);
    await screenshot(page, 'train-done-talk-dark');
    await page.keyboard.press('t');
    await page.keyboard.press('d');

    // the trained set is a student in Solve, listed and sampled from like a built-in one
    const { id, name } = sets[0]!;
    await page.goto(`${app.url}#/solve`);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(await page.getByTestId('student').locator(`option[value="${id}"]`).count()).toBe(1);
    await page.getByTestId('student').selectOption(id);
    await page.waitForSelector(`[data-testid="status"][data-student="${name}"][data-phase="ready"]`, {
      timeout: 120_000,
    });
    await sampleInSolve(page, 2, 40);
    const cards = page.getByTestId('sample-card');
    expect(await cards.count()).toBe(2);
    for (let i = 0; i < 2; i++) {
      expect(await cards.nth(i).getAttribute('data-done')).toBe('true');
      expect((await cards.nth(i).getByTestId('sample-text').innerText()).trim().length).toBeGreaterThan(0);
    }
    expect(await page.getByTestId('final-answer').getAttribute('data-done')).toBe('true');
    expect(await page.getByTestId('status').getAttribute('data-student')).toBe(name);
    await screenshot(page, 'train-solve-trained');
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);

  it('NCE on the built-in NAT set: the β of every sequence in a histogram, each in [0, 1); Solve, opened before, lists the new set', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    // Solve first: its model and adapter list loaded before the set exists
    const { page, errors } = await openPage(ctx, `${app.url}#/solve`);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    await page.goto(`${app.url}#/train`); // the same page: no reload
    await setUp(page, 'nce', 2, 2, 2);
    expect(await page.getByTestId('train-input').inputValue()).toBe('builtin-nat');
    // the student's LoRA on q alone: the plan still counts the NAT set's frozen LoRAs and unit as
    // they are (rank 8 and d_u 64 on all seven sites of the 4-layer dim-64 student), read from the set
    const boxes = page.locator('[data-testid="train-setup"] fieldset.targets input[type="checkbox"]');
    for (let i = 1; i < (await boxes.count()); i++) await boxes.nth(i).uncheck();
    // per layer: a rank-8 LoRA on q 8·128 values, on all seven 8·1232; the unit 2576·64 on all seven
    const adapters = 4 * 4 * (8 * 128 + 2 * 8 * 1232 + 2576 * 64);
    await until('the plan with the NAT set as it is', async () =>
      (await page.getByTestId('train-plan-adapters').innerText()).includes(formatBytes(adapters))
        ? true
        : null,
    );
    await page.getByTestId('train-start').click();
    await page.waitForSelector(`${view}[data-phase="done"]`, { timeout: 300_000 });
    const hist = page.getByTestId('chart-beta');
    // one β per training sequence: 2 steps × batch 2
    expect(Number(await hist.getAttribute('data-n'))).toBe(4);
    expect(await hist.locator('svg rect').count()).toBe(10); // ten bins over [0, 1]
    expect(await hist.innerText()).toMatch(/NCE: β of the last 2 steps/);
    const [set] = (await idbRecords(page, 'adapters')) as AdapterRec[];
    expect(set).toMatchObject({ stage: 'nce', source: 'trained' });
    // the run's record keeps them: β = tanh(mean KL) ∈ [0, 1), not all equal
    const [run] = (await idbRecords(page, 'runs')) as (RunRec & { history: { beta?: number[][] } })[];
    const betas = (run!.history.beta ?? []).flat();
    expect(betas).toHaveLength(4);
    for (const b of betas) expect(b >= 0 && b < 1, String(b)).toBe(true);
    expect(new Set(betas).size).toBeGreaterThan(1);
    await screenshot(page, 'train-nce-beta');
    // back in Solve without a reload: the set trained since is a student there
    await page.goto(`${app.url}#/solve`);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    await until('the new set among the students', async () =>
      (await page.getByTestId('student').locator(`option[value="${set!.id}"]`).count()) === 1 ? true : null,
    );
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('Pause holds the run, Resume goes on from there, Cancel ends it with nothing saved', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/train`);
    await setUp(page, 'kd', 40, 2, 2);
    await page.getByTestId('train-start').click();
    await until('a first step', async () => ((await stepOf(page)).step >= 1 ? true : null));
    await page.getByTestId('train-pause').click();
    await page.waitForSelector(`${view}[data-phase="paused"]`);
    // a step under way when Pause came may still land; after that the counter stands still
    await page.waitForTimeout(5_000);
    const held = (await stepOf(page)).step;
    await page.waitForTimeout(4_000);
    expect((await stepOf(page)).step).toBe(held);
    expect(held).toBeLessThan(40);
    const [paused] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(paused).toMatchObject({ stage: 'kd', status: 'paused' });

    await page.getByTestId('train-resume').click();
    await page.waitForSelector(`${view}[data-phase="running"]`);
    await until('a step after the pause', async () => ((await stepOf(page)).step > held ? true : null));
    expect((await stepOf(page)).resumedFrom).toBe(0); // the same live run, not a reload

    await page.getByTestId('train-cancel').click();
    await until('the cancelled run', async () => {
      const [r] = (await idbRecords(page, 'runs')) as RunRec[];
      return r?.status === 'cancelled' ? r : null;
    });
    await page.waitForSelector(`${view}[data-phase="idle"]`);
    expect(await page.getByTestId('train-notice').innerText()).toMatch(
      /cancelled after \d+ steps; nothing was saved/,
    );
    expect(await idbRecords(page, 'adapters')).toEqual([]);
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    expect(await page.getByTestId('train-saved-item').count()).toBe(0);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('storage full at a checkpoint: the run pauses with the message, nothing of it is kept; Resume finishes it', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const { page, errors } = await openPage(ctx, `${app.url}#/train`);
    await setUp(page, 'kd', 3, 4, 1);
    // the app's own files are stored for offline use first (they count against the quota too)
    await page.getByTestId('offline-ready').waitFor({ timeout: 120_000 });
    const cdp = await ctx.newCDPSession(page);
    const origin = new URL(app.url).origin;
    const { usage } = await page.evaluate(() => navigator.storage.estimate());
    // room for the run's record, not for a checkpoint (LoRA + AdamW moments ≈ 0.5 MB)
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: (usage ?? 0) + 60_000 });
    await page.getByTestId('train-start').click();

    const notice = page.getByTestId('train-error');
    await notice.waitFor({ timeout: 300_000 });
    expect(await notice.getAttribute('data-code')).toBe('QUOTA_FULL');
    expect(await notice.innerText()).toMatch(
      /storage for this site is full.*nothing of it was kept.*paused/s,
    );
    await page.waitForSelector(`${view}[data-phase="paused"]`);
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    const [run] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(run).toMatchObject({ stage: 'kd', status: 'paused', step: 0, losses: [] });
    await screenshot(page, 'train-quota');

    await cdp.send('Storage.overrideQuotaForOrigin', { origin }); // space again
    await page.getByTestId('train-resume').click();
    await page.waitForSelector(`${view}[data-phase="done"]`, { timeout: 300_000 });
    expect(await page.getByTestId('train-step').innerText()).toBe('3 / 3');
    const runs = (await idbRecords(page, 'runs')) as RunRec[];
    expect(runs.find((r) => r.stage === 'kd')).toMatchObject({ status: 'done', step: 3 });
    expect(((await idbRecords(page, 'adapters')) as AdapterRec[]).map((s) => s.stage)).toEqual(['kd']);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);
});
