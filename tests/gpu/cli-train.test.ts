// `d2g train` and `d2g eval` end to end, as a user runs them: a tiny model file, our JSONL data,
// neg → nat → nce and rank stages into directories, then eval of the NAT student as JSON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import { writeLlamaSafetensors } from '../../src/engine/io/checkpoint.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';
import { randomLlamaWeights } from '../../src/engine/model/random.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'd2g-train-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DATA = 'tests/fixtures/datasets/ours-arith.jsonl';

function d2g(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './tools/raw-hooks.mjs', 'src/cli/d2g.ts', ...args],
    { cwd: root, encoding: 'utf8', timeout: 300_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('d2g train / eval', () => {
  const chars = [...new Set(readFileSync(join(root, DATA), 'utf8'))]
    .filter((c) => c !== '"' && c !== '\\')
    .join('');
  const tok = new CharTokenizer([...new Set(chars + 'Problem:\nSolution:')].join(''));
  const config: LlamaConfig = {
    dim: 32,
    hiddenDim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    vocabSize: tok.vocabSize,
    maxSeqLen: 256,
    ropeTheta: 10000,
    normEps: 1e-5,
    sharedClassifier: false,
  };
  const model = join(dir, 'm.safetensors');
  writeFileSync(model, writeLlamaSafetensors(config, randomLlamaWeights(config, 5)));
  writeFileSync(join(dir, 'm.tokenizer.json'), JSON.stringify(tok.toJSON()));
  const common = ['--model', model, '--data', DATA, '--steps', '3', '--batch', '4'];

  it('neg → nat → nce, rank; eval prints losses and greedy accuracy', () => {
    const train = (stage: string, ...extra: string[]) => {
      const r = d2g('train', '--stage', stage, '--out', join(dir, stage), ...common, ...extra);
      expect(r.code, r.err).toBe(0);
      const j = JSON.parse(r.out);
      expect(j).toMatchObject({ stage, steps: 3 });
      expect(Number.isFinite(j.last_loss)).toBe(true);
    };
    train('neg');
    // --recompute re-runs each layer in the backward: the same losses to the bit
    const rc = d2g('train', '--stage', 'neg', '--out', join(dir, 'neg-rc'), ...common, '--recompute');
    expect(rc.code, rc.err).toBe(0);
    const losses = (stage: string) =>
      (JSON.parse(readFileSync(join(dir, stage, 'result.json'), 'utf8')) as { losses: number[] }).losses;
    expect(losses('neg-rc')).toHaveLength(3);
    expect(losses('neg-rc')).toEqual(losses('neg'));
    train('nat', '--neg', join(dir, 'neg'));
    train('nce', '--nat', join(dir, 'nat'));
    train('rank');
    for (const [stage, files] of [
      ['neg', ['lora.safetensors', 'result.json']],
      ['nat', ['lora.safetensors', 'neg.safetensors', 'nat.safetensors', 'result.json']],
      ['nce', ['lora.safetensors', 'result.json']],
      ['rank', ['rank.safetensors', 'head.safetensors', 'result.json']],
    ] as const)
      for (const f of files) expect(existsSync(join(dir, stage, f)), `${stage}/${f}`).toBe(true);
    const r = d2g(
      'eval',
      '--model',
      model,
      '--data',
      DATA,
      '--adapters',
      join(dir, 'nat'),
      '--split',
      'all',
      '--max-new',
      '8',
    );
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ student: 'nat', split: 'all', n: 12 });
    expect(j.accuracy).toBeGreaterThanOrEqual(0);
    expect(j.ci95[0]).toBeGreaterThanOrEqual(0);
    expect(j.losses).toHaveLength(48);
    for (const l of j.losses) expect(Number.isFinite(l.loss)).toBe(true);
    // m samples per question, scored by the ranker, then voted on
    const out = join(dir, 'samples.jsonl');
    const s = d2g(
      'sample',
      '--model',
      model,
      '--data',
      DATA,
      '--adapters',
      join(dir, 'nat'),
      '--ranker',
      join(dir, 'rank'),
      '--split',
      'all',
      '--limit',
      '3',
      '--m',
      '4',
      '--max-new',
      '8',
      '--out',
      out,
    );
    expect(s.code, s.err).toBe(0);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(3);
    for (const l of lines) {
      expect(l.samples).toHaveLength(4);
      for (const x of l.samples) {
        expect(x.score).toBeGreaterThan(0);
        expect(x.score).toBeLessThan(1);
      }
    }
    const v = d2g('vote', '--input', out, '--kind', 'arith');
    expect(v.code, v.err).toBe(0);
    expect(JSON.parse(v.out).n).toBe(3);
  });

  it('refuses NAT without a negative LoRA, and a tokenizer of another model', () => {
    const r = d2g('train', '--stage', 'nat', '--out', join(dir, 'x'), ...common);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/negative LoRA/);
    writeFileSync(join(dir, 'bad.tokenizer.json'), JSON.stringify({ type: 'char', chars: 'abc' }));
    const r2 = d2g('eval', '--model', model, '--tokenizer', join(dir, 'bad.tokenizer.json'), '--data', DATA);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/has \d+ tokens but .* expects \d+: they belong to different models/);
  });
});
