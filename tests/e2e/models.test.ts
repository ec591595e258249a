// Models in a real browser: the student's card and facts, the built-in adapter sets, a built-in set
// exported as a PEFT zip (read here with fflate and our safetensors reader), that zip imported back
// (a new row, in IndexedDB, read with the raw IndexedDB API), renamed, deleted; a wrong adapter
// file and wrong model files refused with a clear message and nothing added or chosen.
import { readFileSync } from 'node:fs';
import { unzipSync } from 'fflate';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../../src/engine/io/safetensors.ts';
import { idbRecords, launch, openPage, screenshot, startApp } from './harness.ts';

const ab = (u: Uint8Array) => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
const builtinIds = ['builtin-kd', 'builtin-neg', 'builtin-nat', 'builtin-nce', 'builtin-rank'];
const row = (page: Page, sel: string) => page.locator(`[data-testid="adapter-row"]${sel}`);

interface Rec {
  id: string;
  name: string;
  stage: string;
  model: string;
  source: string;
  files: string[];
  bytes: number;
}

describe('app: Models', () => {
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

  it('card, built-in sets, PEFT export → import → rename → delete, wrong files refused', async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    const { page, errors } = await openPage(ctx, `${app.url}#/models`);

    // the base model's facts (read from the model file) and its card
    await page.waitForSelector('[data-testid="model-params"]:text-is("206,208")', { timeout: 60_000 });
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');
    expect(await page.getByTestId('model-config').innerText()).toMatch(
      /dim 64, hidden 176, 4 layers, 4 heads/,
    );
    await page.waitForSelector('[data-testid="model-card"] table');
    const card = await page.getByTestId('model-card').innerText();
    expect(card).toContain('A 206,208-parameter character-level LLaMA');
    expect(card).toContain('45.7 % [42.6, 48.8]'); // the sizing study's table
    expect(await page.getByTestId('model-card').locator('strong').first().innerText()).not.toContain('**');
    expect(await page.getByTestId('stories-link').getAttribute('href')).toBe('#/stories');

    // the built-in sets, in index order, without rename / delete
    await page.waitForSelector('[data-testid="adapter-row"][data-id="builtin-rank"]');
    const ids = await page
      .getByTestId('adapter-row')
      .evaluateAll((rs) => rs.map((r) => r.getAttribute('data-id')));
    expect(ids).toEqual(builtinIds);
    expect(await row(page, '[data-id="builtin-kd"]').innerText()).toMatch(
      /KD — CoT distillation on D_pos\s+builtin/,
    );
    expect(await row(page, '[data-source="builtin"]').getByTestId('adapter-delete').count()).toBe(0);
    expect(await row(page, '[data-source="builtin"]').getByTestId('adapter-rename').count()).toBe(0);
    await page.waitForSelector('[data-testid="storage-usage"]');
    await screenshot(page, 'models-light');

    // export the built-in KD set
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 60_000 }),
      row(page, '[data-id="builtin-kd"]').getByTestId('adapter-export').click(),
    ]);
    expect(download.suggestedFilename()).toBe('kd-cot-distillation-on-d-pos-peft.zip');
    const zipBytes = readFileSync((await download.path())!);
    const zip = unzipSync(zipBytes);
    expect(Object.keys(zip).sort()).toEqual([
      'README.txt',
      'adapter_config.json',
      'adapter_model.safetensors',
      'result.json',
    ]);
    const config = JSON.parse(new TextDecoder().decode(zip['adapter_config.json'])) as Record<
      string,
      unknown
    >;
    expect(config).toMatchObject({
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      r: 8,
      lora_alpha: 16,
      bias: 'none',
      base_model_name_or_path: 'arith-student',
      target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
    });
    const { metadata, tensors } = readSafetensors(ab(zip['adapter_model.safetensors']!));
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.size).toBe(4 * 7 * 2);
    expect(tensors.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!.shape).toEqual([
      8, 64,
    ]);
    expect(tensors.get('base_model.model.model.layers.3.mlp.down_proj.lora_A.weight')!.shape).toEqual([
      8, 176,
    ]);
    expect(tensors.get('base_model.model.model.layers.3.mlp.gate_proj.lora_B.weight')!.shape).toEqual([
      176, 8,
    ]);

    // a wrong file: a clear message, nothing added
    await page.getByTestId('adapter-import').setInputFiles({
      name: 'notes.txt',
      mimeType: 'text/plain',
      buffer: Buffer.from('not an adapter'),
    });
    await page.waitForSelector('[data-testid="adapter-import-error"]');
    expect(await page.getByTestId('adapter-import-error').innerText()).toMatch(
      /"notes\.txt" is not a PEFT adapter\. Import adapter_config\.json \+ adapter_model\.safetensors/,
    );
    // the weights without their config
    await page.getByTestId('adapter-import').setInputFiles({
      name: 'adapter_model.safetensors',
      mimeType: 'application/octet-stream',
      buffer: Buffer.from(zip['adapter_model.safetensors']!),
    });
    await page.waitForSelector(
      '[data-testid="adapter-import-error"]:has-text("adapter_config.json is missing")',
    );
    await screenshot(page, 'models-import-error');
    expect(await page.getByTestId('adapter-row').count()).toBe(5);
    expect(await idbRecords(page, 'adapters')).toEqual([]);

    // import the zip back
    await page.getByTestId('adapter-import').setInputFiles({
      name: 'kd-peft.zip',
      mimeType: 'application/zip',
      buffer: zipBytes,
    });
    await page.waitForSelector('[data-testid="adapter-import-ok"]', { timeout: 60_000 });
    expect(await page.getByTestId('adapter-import-error').count()).toBe(0);
    const imported = row(page, '[data-source="imported"]');
    await imported.waitFor();
    expect(await page.getByTestId('adapter-row').count()).toBe(6);
    expect(await imported.getAttribute('data-stage')).toBe('kd');
    expect(await imported.getByTestId('adapter-source').innerText()).toBe('imported');
    let recs = (await idbRecords(page, 'adapters')) as Rec[];
    expect(recs).toHaveLength(1);
    const kdBytes = readFileSync('public/models/adapters/kd/lora.safetensors').length;
    const resultBytes = readFileSync('public/models/adapters/kd/result.json').length;
    expect(recs[0]).toMatchObject({
      source: 'imported',
      stage: 'kd',
      model: 'arith-student',
      files: ['lora.safetensors', 'result.json'],
      bytes: kdBytes + resultBytes,
    });
    await screenshot(page, 'models-imported');

    // rename it
    await imported.getByTestId('adapter-rename').click();
    await imported.getByTestId('adapter-rename-input').fill('KD from PyTorch');
    await imported.getByTestId('adapter-rename-save').click();
    await page.waitForSelector(
      '[data-testid="adapter-row"][data-source="imported"] [data-testid="adapter-name"]:text-is("KD from PyTorch")',
    );
    recs = (await idbRecords(page, 'adapters')) as Rec[];
    expect(recs.map((r) => r.name)).toEqual(['KD from PyTorch']);

    // delete it (asks once more)
    await imported.getByTestId('adapter-delete').click();
    expect(await idbRecords(page, 'adapters')).toHaveLength(1);
    await imported.getByTestId('adapter-delete-confirm').click();
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="adapter-row"]').length === 5);
    expect(await idbRecords(page, 'adapters')).toEqual([]);

    // model files: one alone, a tokenizer for another vocabulary, a truncated model: nothing chosen
    const model = readFileSync('public/models/arith-student.safetensors');
    await page.getByText('Load another model').click();
    await page
      .getByTestId('model-file')
      .setInputFiles({ name: 'm.safetensors', mimeType: 'application/octet-stream', buffer: model });
    await page.waitForSelector('[data-testid="model-error"][data-code="BAD_ARGUMENT"]');
    expect(await page.getByTestId('model-error').innerText()).toMatch(/needs two files/);
    await page.getByTestId('model-file').setInputFiles([
      { name: 'm.safetensors', mimeType: 'application/octet-stream', buffer: model },
      {
        name: 'm.tokenizer.json',
        mimeType: 'application/json',
        buffer: Buffer.from('{"type":"char","chars":"abc"}'),
      },
    ]);
    await page.waitForSelector('[data-testid="model-error"][data-code="VOCAB_MISMATCH"]');
    expect(await page.getByTestId('model-error').innerText()).toMatch(
      /has 6 tokens but m\.safetensors expects 77/,
    );
    await page.getByTestId('model-file').setInputFiles([
      { name: 'm.safetensors', mimeType: 'application/octet-stream', buffer: model.subarray(0, 5000) },
      {
        name: 'm.tokenizer.json',
        mimeType: 'application/json',
        buffer: readFileSync('public/models/arith-student.tokenizer.json'),
      },
    ]);
    await page.waitForSelector('[data-testid="model-error"][data-code="TRUNCATED_FILE"]');
    await page.getByTestId('model-file').setInputFiles([
      {
        name: 'm.safetensors',
        mimeType: 'application/octet-stream',
        buffer: Buffer.from('hello, this is not a model'),
      },
      {
        name: 'm.tokenizer.json',
        mimeType: 'application/json',
        buffer: readFileSync('public/models/arith-student.tokenizer.json'),
      },
    ]);
    await page.waitForSelector('[data-testid="model-error"][data-code="BAD_FILE"]');
    expect(await page.getByTestId('model-name').innerText()).toBe('arith-student (built-in)');
    await screenshot(page, 'models-model-error');

    // the same model under another name is accepted and becomes the model in use; back to the built-in
    await page.getByTestId('model-file').setInputFiles([
      { name: 'copy.safetensors', mimeType: 'application/octet-stream', buffer: model },
      {
        name: 'copy.tokenizer.json',
        mimeType: 'application/json',
        buffer: readFileSync('public/models/arith-student.tokenizer.json'),
      },
    ]);
    await page.waitForSelector('[data-testid="model-name"]:text-is("copy.safetensors")');
    expect(await page.getByTestId('model-ok').innerText()).toMatch(/206,208 parameters/);
    await page.getByTestId('model-reset').click();
    await page.waitForSelector('[data-testid="model-name"]:text-is("arith-student (built-in)")');

    await page.keyboard.press('d');
    await screenshot(page, 'models-dark');
    expect(errors).toEqual([]);
    await ctx.close();
  }, 240_000);
});
