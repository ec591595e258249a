import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'd2g-vote-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `npm run d2g -- ...` the way package.json does (node --import tsx --import ./tools/raw-hooks.mjs). */
function d2g(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--import', './tools/raw-hooks.mjs', 'src/cli/d2g.ts', ...args],
    { cwd: root, encoding: 'utf8', timeout: 60_000 },
  );
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function file(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('d2g check-answer', () => {
  it('prints true / false for one pair', () => {
    expect(d2g('check-answer', '--kind', 'math', '--pred', '\\dfrac12', '--gold', '0.5')).toEqual({
      code: 0,
      out: 'true\n',
      err: '',
    });
    expect(d2g('check-answer', '--kind', 'math', '--pred', '(1,2]', '--gold', '(1,2)').out).toBe('false\n');
    // a rationale as pred, a full solution as gold
    expect(
      d2g(
        'check-answer',
        '--kind',
        'math',
        '--pred',
        'so $\\boxed{\\frac{\\sqrt2}{2}}$.',
        '--gold',
        'hence $\\boxed{\\sqrt{2}/2}$',
      ).out,
    ).toBe('true\n');
    expect(
      d2g('check-answer', '--kind', 'gsm8k', '--pred', 'The answer is $1,018.', '--gold', '#### 1018').out,
    ).toBe('true\n');
    expect(d2g('check-answer', '--kind', 'arith', '--pred', 'The answer is -4.', '--gold', '-4').out).toBe(
      'true\n',
    );
    expect(d2g('check-answer', '--kind', 'arith', '--pred', '-4', '--gold', '4').out).toBe('false\n');
  });

  it('--pairs FILE prints a JSON array of booleans', () => {
    const pairs = file(
      'pairs.json',
      JSON.stringify([
        { pred: 'x = 3', gold: '3' },
        { pred: 'x=3', gold: 'y=4' },
        { pred: 'The answer is $\\boxed{10\\%}$', gold: '\\boxed{10}' },
        { pred: '(A)', gold: '\\text{(B)}' },
      ]),
    );
    const r = d2g('check-answer', '--kind', 'math', '--pairs', pairs);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual([true, false, true, false]);
  });

  it('bad input: a clear EngineError and exit code 1', () => {
    const missingKind = d2g('check-answer', '--pred', '1', '--gold', '1');
    expect(missingKind.code).toBe(1);
    expect(missingKind.err).toMatch(/error \(BAD_ARGUMENT\): check-answer needs --kind math\|gsm8k\|arith/);
    const missingGold = d2g('check-answer', '--kind', 'math', '--pred', '1');
    expect(missingGold.code).toBe(1);
    expect(missingGold.err).toMatch(/needs --pred P --gold G/);
    const unreadable = d2g('check-answer', '--kind', 'math', '--pairs', join(dir, 'nope.json'));
    expect(unreadable.code).toBe(1);
    expect(unreadable.err).toMatch(/cannot read .*nope\.json/);
    const malformed = d2g('check-answer', '--kind', 'math', '--pairs', file('bad.json', '[{"pred": "1",'));
    expect(malformed.code).toBe(1);
    expect(malformed.err).toMatch(/error \(BAD_FILE\): .*is not valid JSON/);
    const wrongShape = d2g(
      'check-answer',
      '--kind',
      'math',
      '--pairs',
      file('shape.json', '[{"pred": 1, "gold": "1"}]'),
    );
    expect(wrongShape.code).toBe(1);
    expect(wrongShape.err).toMatch(/element 0 must be \{"pred": string, "gold": string\}/);
    const unknown = d2g('check-answer', '--kind', 'math', '--bogus', 'x');
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/BAD_ARGUMENT.*--bogus/);
  });
});

describe('d2g vote', () => {
  const rec = (id: number, gold: string, samples: [string, number?][]) =>
    JSON.stringify({
      id,
      question: `q${id}`,
      gold,
      samples: samples.map(([text, score]) => (score === undefined ? { text } : { text, score })),
    });
  // 1: SC wrong (3 × "1"), WS and ASC right ("4" scored high); first sample right
  // 2: SC and ASC wrong ("8": 2.3 > 1.9), WS right; first right
  // 3: unanimous and unscored: everything right, early stop after 4 samples
  const lines = [
    rec(1, 'x\n#### 4', [
      ['The answer is 4.', 0.95],
      ['4', 0.9],
      ['so 1', 0.05],
      ['The answer is 1', 0.1],
      ['1', 0.05],
    ]),
    '{"id": 2, "gold": ', // malformed: skipped with a warning
    rec(2, '#### 7', [
      ['The answer is 7.', 0.9],
      ['The answer is 8.', 0.1],
      ['8', 0.2],
    ]),
    '',
    rec(3, '#### 6', [['6'], ['6'], ['6'], ['6'], ['6']]),
  ];

  it('prints one JSON object with every accuracy; malformed lines are skipped with their line number', () => {
    const r = d2g('vote', '--input', file('samples.jsonl', lines.join('\n')), '--kind', 'gsm8k');
    expect(r.code).toBe(0);
    expect(r.err).toMatch(/warning: .*samples\.jsonl line 2: not valid JSON.*skipped/);
    const out = JSON.parse(r.out) as Record<string, unknown>;
    expect(out).toEqual({
      n: 3,
      skipped: 1,
      accuracy: { first: 1, sc: 1 / 3, ws: 1, asc: 2 / 3, early_stop: 1 / 3, early_stop_asc: 2 / 3 },
      mean_samples_early_stop: 4,
      mean_samples_early_stop_asc: 4,
    });
    expect(r.out.trim().split('\n')).toHaveLength(1);
  });

  it('--lambda changes ASC (λ = 0 is SC)', () => {
    const r = d2g(
      'vote',
      '--input',
      file('samples0.jsonl', lines.join('\n')),
      '--kind',
      'gsm8k',
      '--lambda',
      '0',
    );
    const out = JSON.parse(r.out) as { accuracy: { sc: number; asc: number } };
    expect(out.accuracy.asc).toBe(out.accuracy.sc);
  });

  it('a score outside [0, 1] stops the run and names the line', () => {
    const bad = [
      lines[0],
      rec(9, '#### 1', [
        ['1', 0.5],
        ['1', 1.5],
      ]),
    ].join('\n');
    const r = d2g('vote', '--input', file('badscore.jsonl', bad), '--kind', 'gsm8k');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(
      /error \(BAD_FILE\): vote: .*badscore\.jsonl line 2, sample 1: score 1\.5 is not a number in \[0, 1\]/,
    );
    expect(r.out).toBe('');
  });

  it('bad arguments and files: exit code 1 with a message', () => {
    expect(d2g('vote', '--kind', 'gsm8k').err).toMatch(/vote needs --input FILE/);
    expect(d2g('vote', '--input', file('x.jsonl', lines[0]!), '--kind', 'latin').err).toMatch(
      /vote needs --kind math\|gsm8k\|arith \(got "latin"\)/,
    );
    const lambda = d2g('vote', '--input', file('y.jsonl', lines[0]!), '--kind', 'gsm8k', '--lambda', '-1');
    expect(lambda.code).toBe(1);
    expect(lambda.err).toMatch(/--lambda expects a number ≥ 0/);
    const none = d2g('vote', '--input', file('none.jsonl', 'nope\n{}\n'), '--kind', 'gsm8k');
    expect(none.code).toBe(1);
    expect(none.err).toMatch(/line 1: not valid JSON/);
    expect(none.err).toMatch(/line 2: no "gold" string/);
    expect(none.err).toMatch(/has no usable record \(2 skipped\)/);
    const missing = d2g('vote', '--input', join(dir, 'missing.jsonl'), '--kind', 'gsm8k');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read/);
  });
});
