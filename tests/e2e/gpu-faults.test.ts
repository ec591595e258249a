// GPU faults in a real browser (WebGPU on SwiftShader), provoked in the app's own workers by
// wrapping the browser's WebGPU API there (harness `preludeWorker`: the worker script gets a few
// lines in front on its way in; the app has no test hook):
// - a lost device mid-training: the trainer worker's device is destroyed while the run goes; Train
//   pauses the run with the message, the run's record and its last checkpoint stay as they were
//   stored, and Resume goes on from that checkpoint in a fresh worker and finishes;
// - a GPU that lacks what we need: without the optional features (shader-f16, subgroups,
//   timestamp-query) Solve still samples; with a per-buffer limit below the model's largest tensor
//   Solve says which tensor needs how much and what to do, and the rest of the app works;
// - out of memory: the model's weights, or the KV cache for m = 32 samples, ask the driver for more
//   than it can give (the browser's own GPUOutOfMemoryError); Solve says so with what to do, and
//   (the KV cache) m = 4 then works; in Train the optimizer's state does not fit: the run pauses
//   with what to do, nothing of it is stored, and Resume on a fresh device finishes it;
// - a lost device while sampling: Solve says so and that a reload opens the GPU again, which works.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import {
  callSource,
  idbRecords,
  launch,
  openPage,
  preludeWorker,
  screenshot,
  startApp,
  until,
  solvePhase,
  sampleInSolve,
} from './harness.ts';

interface RunRec {
  id: string;
  stage: string;
  status: string;
  step: number;
  steps: number;
  losses: number[];
  error?: { code: string };
  adapterSetId?: string;
}
interface CkptRec {
  id: string;
  step: number;
}
interface AdapterRec {
  id: string;
  stage: string;
  source: string;
}

// ---- the faults: each runs in the worker, before the worker's own code, and uses only its body

/** Every device this worker opens is destroyed when a message comes on `channel` (a lost device). */
function loseDevicesOn(channel: string): void {
  const devices: GPUDevice[] = [];
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, desc?: GPUDeviceDescriptor) {
    const device = await request.call(this, desc);
    devices.push(device);
    return device;
  };
  new BroadcastChannel(channel).onmessage = () => {
    for (const d of devices) d.destroy();
  };
}

/**
 * Once a message comes on `channel`, the worker's next readback (a buffer map) destroys every device
 * it opened before that map: the loss lands inside the next GPU work, however short it is.
 */
function loseDevicesAtNextRead(channel: string): void {
  const devices: GPUDevice[] = [];
  let armed = false;
  const request = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, desc?: GPUDeviceDescriptor) {
    const device = await request.call(this, desc);
    devices.push(device);
    return device;
  };
  const map = GPUBuffer.prototype.mapAsync;
  GPUBuffer.prototype.mapAsync = function (this: GPUBuffer, ...args: Parameters<GPUBuffer['mapAsync']>) {
    if (armed) {
      armed = false;
      for (const d of devices.splice(0)) d.destroy();
    }
    return map.apply(this, args);
  };
  new BroadcastChannel(channel).onmessage = () => {
    armed = true;
  };
}

/**
 * The adapter and its devices report these limits instead of their own, and, with `noFeatures`,
 * no optional feature at all (the device is opened with none).
 */
function smallerGpu(cfg: { limits: Record<string, number>; noFeatures: boolean }): void {
  const limitsOf = (real: GPUSupportedLimits): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const k in real) out[k] = (real as unknown as Record<string, number>)[k]!;
    return Object.assign(out, cfg.limits);
  };
  const disguise = (o: GPUAdapter | GPUDevice) => {
    Object.defineProperty(o, 'limits', { value: limitsOf(o.limits) });
    if (cfg.noFeatures) Object.defineProperty(o, 'features', { value: new Set<string>() });
  };
  const requestAdapter = GPU.prototype.requestAdapter;
  GPU.prototype.requestAdapter = async function (this: GPU, opts?: GPURequestAdapterOptions) {
    const adapter = await requestAdapter.call(this, opts);
    if (adapter) disguise(adapter);
    return adapter;
  };
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, desc?: GPUDeviceDescriptor) {
    // the real device gets the real adapter's defaults for what the disguise changed
    const required = { ...(desc?.requiredLimits ?? {}) } as Record<string, number>;
    for (const k of Object.keys(cfg.limits)) delete required[k];
    const device = await requestDevice.call(this, {
      ...desc,
      requiredLimits: required,
      requiredFeatures: cfg.noFeatures ? [] : (desc?.requiredFeatures ?? []),
    });
    disguise(device);
    return device;
  };
}

/**
 * A buffer whose label starts with `label` and that is at least `minBytes` big is asked of the
 * driver at the device's largest buffer size instead: within the limits, so not a validation error,
 * but more than SwiftShader can allocate, so the browser reports its own GPUOutOfMemoryError
 * (`vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY`), exactly as on a GPU that is full.
 * Nothing is really allocated.
 */
function outOfMemoryFor(cfg: { label: string; minBytes: number }): void {
  const create = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (this: GPUDevice, desc: GPUBufferDescriptor) {
    if ((desc.label ?? '').startsWith(cfg.label) && desc.size >= cfg.minBytes)
      return create.call(this, { ...desc, size: this.limits.maxBufferSize, mappedAtCreation: false });
    return create.call(this, desc);
  };
}

// ---- helpers

const trainView = '[data-testid="view-train"]';

describe('app: GPU faults', () => {
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

  it('a lost device mid-training: the run pauses with the message, its checkpoint intact; Resume finishes it in a fresh worker', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    // only the first trainer worker can lose its device; the one Resume starts is left alone
    const fetches = await preludeWorker(ctx, 'trainer', (n) =>
      n === 1 ? callSource(loseDevicesOn, 'd2g-lose-device') : '',
    );
    const { page, errors } = await openPage(ctx, `${app.url}#/train`);
    await page.getByTestId('train-counts').waitFor({ timeout: 120_000 });
    await page.getByTestId('train-stage').selectOption('nat');
    await page.getByTestId('train-steps').fill('6');
    await page.getByTestId('train-batch').fill('4');
    await page.getByTestId('train-ckpt').fill('2');
    await page.getByTestId('train-start').click();

    // a checkpoint stored, then the device goes while the run is between checkpoints
    await until('a stored checkpoint', async () => ((await idbRecords(page, 'checkpoints')) as CkptRec[])[0]);
    await until('the step after the checkpoint', async () =>
      Number(await page.getByTestId('train-step').getAttribute('data-step')) >= 3 ? true : null,
    );
    await page.evaluate(() => new BroadcastChannel('d2g-lose-device').postMessage('lose'));

    // the message, or (were the fault unseen) the run's end
    await page.waitForSelector(`[data-testid="train-error"], ${trainView}[data-phase="done"]`, {
      timeout: 300_000,
    });
    const notice = page.getByTestId('train-error');
    expect(await notice.getAttribute('data-code')).toBe('DEVICE_LOST');
    const text = await notice.innerText();
    expect(text).toContain('The GPU stopped responding');
    await page.waitForSelector(`${trainView}[data-phase="paused"]`);
    const resume = page.getByTestId('train-resume');

    // what IndexedDB holds: the run, paused with the message, and its last checkpoint, which agree
    const [ckpt, ...moreCkpts] = (await idbRecords(page, 'checkpoints')) as CkptRec[];
    expect(moreCkpts).toEqual([]);
    const [run, ...moreRuns] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(moreRuns).toEqual([]);
    expect(run).toMatchObject({
      stage: 'nat',
      status: 'paused',
      step: ckpt!.step,
      error: { code: 'DEVICE_LOST' },
    });
    expect(ckpt!.step % 2).toBe(0);
    expect(ckpt!.step).toBeGreaterThanOrEqual(2);
    expect(ckpt!.step).toBeLessThan(6);
    expect(run!.losses).toHaveLength(ckpt!.step);
    expect(run!.losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(await idbRecords(page, 'adapters')).toEqual([]);
    expect(await resume.innerText()).toBe(`Resume from step ${ckpt!.step}`);
    expect(await page.getByTestId('train-notice').innerText()).toContain(
      `Resume goes on from the last checkpoint (step ${ckpt!.step})`,
    );
    console.log(`[gpu-faults] lost device: "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-device-lost');

    await resume.click();
    await page.waitForSelector(`${trainView}[data-phase="done"]`, { timeout: 300_000 });
    expect(fetches()).toBe(2); // Resume started a fresh worker (a fresh device)
    const step = page.getByTestId('train-step');
    expect(await step.innerText()).toBe('6 / 6');
    expect(Number(await step.getAttribute('data-resumed-from'))).toBe(ckpt!.step);
    expect(Number(await step.getAttribute('data-first-step'))).toBe(ckpt!.step + 1);
    expect(await page.getByTestId('train-resumed').innerText()).toContain(`step ${ckpt!.step}`);
    expect(await page.getByTestId('train-error').count()).toBe(0);
    // the curve goes on: the steps before the loss as stored, then the resumed ones
    expect(await page.getByTestId('chart-loss').getAttribute('data-points')).toBe('6');
    const [done] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(done).toMatchObject({ status: 'done', step: 6 });
    expect(done!.losses).toHaveLength(6);
    expect(done!.losses.slice(0, ckpt!.step)).toEqual(run!.losses);
    const sets = (await idbRecords(page, 'adapters')) as AdapterRec[];
    expect(sets).toHaveLength(1);
    expect(sets[0]).toMatchObject({ stage: 'nat', source: 'trained', id: done!.adapterSetId });
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    await screenshot(page, 'error-device-lost-resumed');
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);

  it('a GPU without the optional features still samples; one whose buffers are too small for the model says so', async () => {
    // no shader-f16, no subgroups, no timestamp-query: the student runs on f32 kernels without them
    const plain = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      serviceWorkers: 'block',
    });
    await preludeWorker(plain, 'inference', () => callSource(smallerGpu, { limits: {}, noFeatures: true }));
    {
      const { page, errors } = await openPage(plain, app.url);
      await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
      await sampleInSolve(page, 2, 24);
      expect(await page.getByTestId('sample-card').count()).toBe(2);
      expect(await page.locator('[data-testid="sample-card"][data-done="true"]').count()).toBe(2);
      expect(await page.getByTestId('solve-notice').count()).toBe(0);
      expect(errors).toEqual([]);
    }
    await plain.close();

    // weights larger than a binding are split by rows (tests/gpu/split-weights.test.ts); one row
    // that does not fit cannot be. 512 B per buffer: a row of w2 is 176 f32, 704 B
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    await preludeWorker(ctx, 'inference', () =>
      callSource(smallerGpu, { limits: { maxStorageBufferBindingSize: 512 }, noFeatures: false }),
    );
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('error'), { timeout: 120_000 });
    const notice = page.getByTestId('error');
    expect(await notice.getAttribute('data-code')).toBe('LIMIT_EXCEEDED');
    const text = await notice.innerText();
    expect(text).toContain('This GPU is too small for the request');
    expect(text).toMatch(
      /One row of the model's w2 tensor needs 704 B .* but this GPU binds at most 512 B per buffer/,
    );
    expect(text).toMatch(/Choose a smaller model/);
    // and nothing that would not help: fewer samples do not make the model fit
    expect(text).not.toMatch(/fewer samples/);
    // no Sample button to press into a broken engine
    expect(await page.getByTestId('sample').isDisabled()).toBe(true);
    console.log(`[gpu-faults] small GPU: "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-gpu-too-small');
    // the rest of the app works (Explore needs no GPU); nothing was stored
    await page.keyboard.press('2');
    await page.waitForSelector('[data-testid="view-explore"][data-phase="ready"]', { timeout: 60_000 });
    for (const store of ['adapters', 'runs', 'checkpoints', 'datasets'])
      expect(await idbRecords(page, store)).toEqual([]);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('out of memory: a model that does not fit, and samples that do not; Solve says so with what to do, and m = 4 then works', async () => {
    // the model's layers do not fit: Solve cannot start, and says why
    const full = await browser.newContext({
      viewport: { width: 1280, height: 800 },
      serviceWorkers: 'block',
    });
    await preludeWorker(full, 'inference', () =>
      callSource(outOfMemoryFor, { label: 'layers.', minBytes: 0 }),
    );
    {
      const { page, errors } = await openPage(full, app.url);
      await page.waitForSelector(solvePhase('error'), { timeout: 120_000 });
      const notice = page.getByTestId('error');
      expect(await notice.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
      const text = await notice.innerText();
      expect(text).toContain('The GPU ran out of memory');
      expect(text).toMatch(
        /arith-student.* \(206,208 parameters\) does not fit in the GPU memory that is free/,
      );
      expect(text).toMatch(
        /Close other GPU-heavy tabs and reload the page, or load a smaller model \(Models\)\.$/,
      );
      expect(await page.getByTestId('sample').isDisabled()).toBe(true);
      console.log(`[gpu-faults] out of memory (model): "${text.replace(/\s+/g, ' ')}"`);
      await screenshot(page, 'error-out-of-memory-model');
      expect(errors).toEqual([]);
    }
    await full.close();

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    // m = 32 needs K and V buffers of ≈ 1.8 MiB per layer and does not get them; m = 4 (≈ 0.15 MiB) does
    await preludeWorker(ctx, 'inference', () =>
      callSource(outOfMemoryFor, { label: 'kcache.', minBytes: 1024 * 1024 }),
    );
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    await sampleInSolve(page, 32, 120);
    const notice = page.getByTestId('solve-notice');
    await notice.waitFor({ timeout: 10_000 });
    expect(await notice.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    const text = await notice.innerText();
    expect(text).toContain('The GPU ran out of memory');
    expect(text).toMatch(/32 samples/);
    expect(text).toMatch(/fewer samples/);
    // no card is left waiting for text that will not come
    expect(await page.getByTestId('sample-card').count()).toBe(0);
    console.log(`[gpu-faults] out of memory: "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-out-of-memory');

    await sampleInSolve(page, 4, 40);
    expect(await page.getByTestId('solve-notice').count()).toBe(0);
    expect(await page.locator('[data-testid="sample-card"][data-done="true"]').count()).toBe(4);
    await page.getByTestId('vote-sc').waitFor();
    expect(await page.getByTestId('final-answer').getAttribute('data-done')).toBe('true');
    for (const store of ['adapters', 'runs', 'checkpoints', 'datasets'])
      expect(await idbRecords(page, store)).toEqual([]);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('out of memory for the student and the ranker: Solve keeps the base model, says so, and samples', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    // every adapter tensor (LoRA values and their gradients are made together) fails; the model does not
    await preludeWorker(ctx, 'inference', () =>
      callSource(outOfMemoryFor, { label: 'd(layers.', minBytes: 0 }),
    );
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    const notice = page.getByTestId('solve-notice');
    await notice.waitFor({ timeout: 10_000 });
    expect(await notice.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    const text = await notice.innerText();
    // the ranker is applied after the student: its message is the one left standing
    expect(text).toMatch(
      /The GPU has no room for the ranker "Ranker[^"]*"; Solve goes on with no ranker \(ASC votes like SC\)\./,
    );
    expect(text).toMatch(/load a smaller model/);
    expect(await page.getByTestId('student').inputValue()).toBe('base');
    expect(await page.getByTestId('ranker').inputValue()).toBe('none');
    console.log(`[gpu-faults] out of memory (adapters): "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-out-of-memory-adapters');
    await sampleInSolve(page, 4, 40);
    expect(await page.locator('[data-testid="sample-card"][data-done="true"]').count()).toBe(4);
    expect(await page.getByTestId('final-answer').getAttribute('data-done')).toBe('true');
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('a lost device while sampling: Solve says so and how to go on; after a reload it samples again', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, serviceWorkers: 'block' });
    const fetches = await preludeWorker(ctx, 'inference', (n) =>
      n === 1 ? callSource(loseDevicesOn, 'd2g-lose-device') : '',
    );
    const { page, errors } = await openPage(ctx, app.url);
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    await page.getByTestId('m').fill('4');
    await page.getByTestId('max-new').fill('120');
    await page.getByTestId('sample').click();
    // the device goes while the samples stream
    await page.waitForFunction(
      () =>
        [...document.querySelectorAll('[data-testid="sample-text"]')].some(
          (c) => (c.textContent ?? '').length > 0,
        ),
      undefined,
      { timeout: 120_000 },
    );
    await page.evaluate(() => new BroadcastChannel('d2g-lose-device').postMessage('lose'));
    await page.waitForSelector(solvePhase('error'), { timeout: 120_000 });
    const notice = page.getByTestId('error');
    expect(await notice.getAttribute('data-code')).toBe('DEVICE_LOST');
    const text = await notice.innerText();
    expect(text).toContain('The GPU stopped responding');
    expect(text).toMatch(/lost while sampling.*Reload the page to open the GPU again\./s);
    expect(await page.getByTestId('sample').isDisabled()).toBe(true);
    expect(await page.getByTestId('sample-card').count()).toBe(0);
    console.log(`[gpu-faults] lost device in Solve: "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-device-lost-solve');

    // as the message says: a reload opens the GPU again (a fresh worker, a fresh device)
    await page.reload();
    await page.waitForSelector(solvePhase('ready'), { timeout: 120_000 });
    expect(fetches()).toBe(2);
    await sampleInSolve(page, 2, 24);
    expect(await page.locator('[data-testid="sample-card"][data-done="true"]').count()).toBe(2);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 600_000);

  it('a lost device while evaluating in Compare: the run says so, keeps nothing; Evaluate again opens the GPU afresh and finishes', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    const fetches = await preludeWorker(ctx, 'evaluator', () =>
      callSource(loseDevicesAtNextRead, 'd2g-lose-device'),
    );
    const { page, errors } = await openPage(ctx, `${app.url}#/compare`);
    const status = (phase: string) => `[data-testid="compare-status"][data-phase="${phase}"]`;
    await page.waitForSelector(status('ready'), { timeout: 180_000 });
    await page.waitForSelector('[data-testid="kl-heatmap"]', { timeout: 120_000 });
    await page.getByLabel('Problems', { exact: true }).selectOption('8');
    await page.getByLabel('New tokens', { exact: true }).fill('48');
    // the evaluation's first readback loses the device (8 problems go by in a second or two here)
    await page.evaluate(() => new BroadcastChannel('d2g-lose-device').postMessage('lose'));
    await page.getByTestId('compare-run').click();
    await page.waitForSelector(`${status('error')}, ${status('done')}`, { timeout: 300_000 });
    const notice = page.getByTestId('compare-error');
    expect(await notice.getAttribute('data-code')).toBe('DEVICE_LOST');
    const text = await notice.innerText();
    expect(text).toMatch(
      /The GPU device was lost while evaluating "[^"]+" .*no result of this run was kept/s,
    );
    expect(text).toMatch(/Evaluate again: it opens the GPU afresh\.$/); // and no "reload the page" after it
    expect(await page.getByTestId('accuracy-row').count()).toBe(0);
    console.log(`[gpu-faults] lost device in Compare: "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-device-lost-compare');

    // as the message says; the same worker opens a fresh device and loads the model again
    await page.getByTestId('compare-run').click();
    await page.waitForSelector(status('done'), { timeout: 540_000 });
    expect(fetches()).toBe(1);
    expect(await page.getByTestId('compare-error').count()).toBe(0);
    const rows = page.getByTestId('accuracy-row');
    expect(await rows.count()).toBe(5);
    for (const n of await rows.evaluateAll((rs) => rs.map((r) => Number(r.getAttribute('data-n')))))
      expect(n).toBe(8);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);

  it('out of memory in Train: the run pauses with what to do, nothing of it stored; Resume on a fresh device finishes it', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, serviceWorkers: 'block' });
    // the first trainer worker cannot hold the optimizer's moments; the one Resume starts can
    const fetches = await preludeWorker(ctx, 'trainer', (n) =>
      n === 1 ? callSource(outOfMemoryFor, { label: 'adam.m(', minBytes: 0 }) : '',
    );
    const { page, errors } = await openPage(ctx, `${app.url}#/train`);
    await page.getByTestId('train-counts').waitFor({ timeout: 120_000 });
    await page.getByTestId('train-stage').selectOption('kd');
    await page.getByTestId('train-steps').fill('3');
    await page.getByTestId('train-batch').fill('4');
    await page.getByTestId('train-ckpt').fill('1');
    await page.getByTestId('train-start').click();

    // the message, or (were the fault unseen) the run's end
    await page.waitForSelector(`[data-testid="train-error"], ${trainView}[data-phase="done"]`, {
      timeout: 300_000,
    });
    const notice = page.getByTestId('train-error');
    expect(await notice.getAttribute('data-code')).toBe('OUT_OF_MEMORY');
    const text = await notice.innerText();
    expect(text).toContain('The GPU ran out of memory');
    expect(text).toMatch(
      /Setting up the run \(batch 4\) needed more GPU memory than is free.*close other GPU-heavy tabs.*smaller batch/s,
    );
    await page.waitForSelector(`${trainView}[data-phase="paused"]`);
    // no step ran on buffers the GPU did not give: nothing but the paused run's record is stored
    expect(await page.getByTestId('chart-loss').getAttribute('data-points')).toBe('0');
    const [run, ...more] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(more).toEqual([]);
    expect(run).toMatchObject({
      stage: 'kd',
      status: 'paused',
      step: 0,
      losses: [],
      error: { code: 'OUT_OF_MEMORY' },
    });
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    expect(await idbRecords(page, 'adapters')).toEqual([]);
    console.log(`[gpu-faults] out of memory (train): "${text.replace(/\s+/g, ' ')}"`);
    await screenshot(page, 'error-out-of-memory-train');

    await page.getByTestId('train-resume').click();
    await page.waitForSelector(`${trainView}[data-phase="done"]`, { timeout: 300_000 });
    expect(fetches()).toBe(2);
    expect(await page.getByTestId('train-step').innerText()).toBe('3 / 3');
    const [done] = (await idbRecords(page, 'runs')) as RunRec[];
    expect(done).toMatchObject({ status: 'done', step: 3 });
    expect(done!.losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    expect(((await idbRecords(page, 'adapters')) as AdapterRec[]).map((a) => a.stage)).toEqual(['kd']);
    expect(await idbRecords(page, 'checkpoints')).toEqual([]);
    expect(errors).toEqual([]);
    await ctx.close();
  }, 900_000);
});
