import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { datasetCommand } from '../../src/cli/dataset.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { parseDataset } from '../../src/method/datasets/index.ts';

const fx = (name: string) => fileURLToPath(new URL(`../fixtures/datasets/${name}`, import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'd2g-dataset-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => vi.restoreAllMocks());

/** Runs `dataset …` in this process and collects what it writes. */
async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  const code = await datasetCommand(args);
  vi.restoreAllMocks();
  return { code, out, err };
}

async function failure(...args: string[]): Promise<EngineError> {
  try {
    await run(...args);
  } catch (e) {
    vi.restoreAllMocks();
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

describe('d2g dataset stats', () => {
  it('prints JSON statistics of the GSM8K slice', async () => {
    const r = await run('stats', '--data', fx('gsm8k-solutions-slice.jsonl'), '--kind', 'gsm8k');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const s = JSON.parse(r.out) as Record<string, unknown>;
    expect(s).toMatchObject({
      name: 'gsm8k-solutions-slice.jsonl',
      kind: 'gsm8k',
      format: 'gsm8k-solutions',
      questions: 100,
      rationales: 400,
      pos: 148,
      neg: 252,
      noAnswer: 0,
      labels: { labelled: 400, disagree: 0, agreement: 1 },
      split: { fraction: 0.1, seed: 0, heldOut: { questions: 15 } },
      skipped: 0,
      issues: [],
    });
  });

  it('skipped lines with their numbers, label disagreements with examples, --held-out, --seed', async () => {
    const r = await run(
      'stats',
      '--data',
      fx('malformed.jsonl'),
      '--kind',
      'gsm8k',
      '--held-out',
      '0.5',
      '--seed',
      'abc',
      '--examples',
      '1',
      '--format',
      'ours',
    );
    const s = JSON.parse(r.out) as {
      skipped: number;
      issues: { line: number }[];
      labels: { disagree: number; examples: { line: number; index: number }[] };
      split: { fraction: number; seed: unknown };
    };
    expect(s.skipped).toBe(11);
    expect(s.issues.map((i) => i.line)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]);
    expect(s.labels.disagree).toBe(2);
    expect(s.labels.examples.map((e) => [e.line, e.index])).toEqual([[16, 0]]);
    expect(s.split).toMatchObject({ fraction: 0.5, seed: 'abc' });
  });

  it('an empty file prints zero counts and a warning', async () => {
    const r = await run('stats', '--data', fx('empty.jsonl'), '--kind', 'math');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({
      questions: 0,
      format: null,
      warnings: ['no usable question (the file is empty)'],
    });
  });

  it('bad arguments: a clear EngineError', async () => {
    const cases: [string[], RegExp][] = [
      [[], /dataset needs stats or convert \(got nothing\)/],
      [['frobnicate'], /dataset needs stats or convert \(got "frobnicate"\)/],
      [['stats', '--data', fx('empty.jsonl')], /dataset stats needs --kind math\|gsm8k\|arith/],
      [['stats', '--kind', 'math'], /dataset needs --data FILE/],
      [['stats', '--data', fx('empty.jsonl'), '--kind', 'math', '--format', 'csv'], /--format is auto, ours/],
      [['stats', '--data', fx('empty.jsonl'), '--kind', 'math', '--held-out', '2'], /--held-out .* 0 to 1/],
      [['stats', '--data', fx('empty.jsonl'), '--kind', 'math', '--out', 'x'], /stats takes no --out/],
      [['stats', '--data', join(dir, 'missing.jsonl'), '--kind', 'math'], /cannot read .*missing.jsonl/],
      [['stats', '--data', fx('empty.jsonl'), '--kind', 'math', '--bogus'], /Unknown option '--bogus'/],
      [
        ['stats', '--data', fx('gsm8k-solutions-slice.jsonl'), '--kind', 'math'],
        /is a GSM8K solutions file .* load it with kind gsm8k, not math/,
      ],
    ];
    for (const [args, re] of cases) {
      const e = await failure(...args);
      expect(e.code, args.join(' ')).toBe('BAD_ARGUMENT');
      expect(e.message, args.join(' ')).toMatch(re);
    }
  });
});

describe('d2g dataset convert', () => {
  it('writes our JSON lines with `correct` from our checking; skipped lines and disagreements on stderr', async () => {
    const out = join(dir, 'malformed-ours.jsonl');
    const r = await run('convert', '--data', fx('malformed.jsonl'), '--kind', 'gsm8k', '--out', out);
    expect(r.code).toBe(0);
    expect(r.out).toBe('');
    const err = r.err.split('\n');
    expect(err.filter((l) => l.startsWith('warning:')).map((l) => /line (\d+):/.exec(l)![1])).toEqual([
      '3',
      '4',
      '5',
      '6',
      '7',
      '8',
      '9',
      '10',
      '12',
      '13',
      '14',
    ]);
    expect(err.filter((l) => l.startsWith('note:'))).toEqual([
      `note: ${fx('malformed.jsonl')} line 16, rationale 0: labelled wrong, our checking says correct (answer "12", gold "12"); written as ours`,
      `note: ${fx('malformed.jsonl')} line 16, rationale 1: labelled correct, our checking says wrong (answer "8", gold "12"); written as ours`,
    ]);
    expect(err).toContain(
      `wrote 4 questions, 8 rationales (4 correct, 4 not) to ${out} (input format: ours); 11 lines skipped, 2 label disagreements`,
    );
    const written = readFileSync(out, 'utf8');
    expect(written.trim().split('\n').length).toBe(4);
    expect(JSON.parse(written.trim().split('\n')[3]!)).toEqual({
      question: 'Ann has 2 boxes of 6 eggs. How many eggs?',
      gold: '2 * 6 = 12\n#### 12',
      rationales: [
        { text: '2 * 6 = 12 eggs. The answer is 12.', correct: true },
        { text: '2 + 6 = 8. The answer is 8.', correct: false },
        { text: 'The answer is 12.00', correct: true },
      ],
    });
    const back = parseDataset(written, { kind: 'gsm8k' });
    expect(back.issues).toEqual([]);
    expect(back.problems.flatMap((p) => p.rationales.map((r) => r.label === r.correct))).toEqual(
      Array(8).fill(true),
    );
  });

  it("converts the authors' format", async () => {
    const out = join(dir, 'authors-ours.jsonl');
    const r = await run('convert', '--data', fx('authors-math.jsonl'), '--kind', 'math', '--out', out);
    expect(r.code).toBe(0);
    const first = JSON.parse(readFileSync(out, 'utf8').split('\n')[0]!) as {
      level: string;
      rationales: { correct: boolean }[];
    };
    expect(first.level).toBe('Level 2');
    expect(first.rationales.map((x) => x.correct)).toEqual([true, true, false, false]);
  });

  it('refuses an empty result, a missing --out, and overwriting the input', async () => {
    const out = join(dir, 'never.jsonl');
    const e = await failure('convert', '--data', fx('empty.jsonl'), '--kind', 'math', '--out', out);
    expect(e.code).toBe('BAD_FILE');
    expect(e.message).toMatch(
      /has no usable question \(0 lines skipped; the file is empty\); nothing written/,
    );
    expect(existsSync(out)).toBe(false);
    expect((await failure('convert', '--data', fx('empty.jsonl'), '--kind', 'math')).message).toMatch(
      /convert needs --out FILE/,
    );
    const copy = join(dir, 'copy.jsonl');
    copyFileSync(fx('no-negatives.jsonl'), copy);
    expect((await failure('convert', '--data', copy, '--kind', 'gsm8k', '--out', copy)).message).toMatch(
      /is the input file; write to another file/,
    );
    expect(
      (await failure('convert', '--data', copy, '--kind', 'gsm8k', '--out', out, '--seed', '1')).message,
    ).toMatch(/convert takes no --seed/);
  });
});
