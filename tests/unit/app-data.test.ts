// The app's pure data helpers: math/text splitting for KaTeX, the built-in datasets (world, GSM8K
// solutions, MATH-500), kind guessing, the data worker's service, and user-facing error messages.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { guessKind, math500ToOurs, worldDatasetJsonl } from '../../src/app/lib/builtin-data.ts';
import { generateProblems, teacherSamples } from '../../src/method/world/index.ts';
import { DataService } from '../../src/app/lib/data-service.ts';
import { AppError, describeError } from '../../src/app/lib/errors.ts';
import { splitMath } from '../../src/app/lib/mathsplit.ts';
import { EngineError } from '../../src/engine/errors.ts';

const read = (p: string) => readFileSync(new URL(`../../public/data/${p}`, import.meta.url), 'utf8');
const svc = new DataService();

describe('splitMath', () => {
  it('inline, display, escaped dollars, unclosed delimiters', () => {
    expect(splitMath('So $x = 2$, \\$5.')).toEqual([
      { kind: 'text', value: 'So ' },
      { kind: 'math', value: 'x = 2', display: false },
      { kind: 'text', value: ', $5.' },
    ]);
    expect(splitMath('a $$\\frac12$$ b \\[y\\] c \\(z\\)')).toEqual([
      { kind: 'text', value: 'a ' },
      { kind: 'math', value: '\\frac12', display: true },
      { kind: 'text', value: ' b ' },
      { kind: 'math', value: 'y', display: true },
      { kind: 'text', value: ' c ' },
      { kind: 'math', value: 'z', display: false },
    ]);
    expect(splitMath('costs $5 and more')).toEqual([{ kind: 'text', value: 'costs $5 and more' }]);
    expect(splitMath('$\\text{\\$3}$')).toEqual([{ kind: 'math', value: '\\text{\\$3}', display: false }]);
    expect(splitMath('')).toEqual([]);
  });

  it('hostile text stays text outside math, and math bodies are passed as written', () => {
    const t = '<img src=x onerror=alert(1)> $\\href{javascript:alert(1)}{x}$ <script>alert(1)</script>';
    expect(splitMath(t)).toEqual([
      { kind: 'text', value: '<img src=x onerror=alert(1)> ' },
      { kind: 'math', value: '\\href{javascript:alert(1)}{x}', display: false },
      { kind: 'text', value: ' <script>alert(1)</script>' },
    ]);
  });
});

describe('built-in datasets', () => {
  it('world: 500 questions × 4 teacher samples, seed 1, parsed as arith; deterministic', () => {
    const text = worldDatasetJsonl({ n: 500, seed: 1, k: 4 });
    expect(text).toBe(worldDatasetJsonl({ n: 500, seed: 1, k: 4 }));
    const { dataset, stats } = svc.parseText(text, { name: 'world', kind: 'arith', format: 'auto' });
    expect(dataset.format).toBe('ours');
    expect(stats.questions).toBe(500);
    expect(stats.rationales).toBe(2000);
    // D_pos = the teacher samples the world itself judges correct (our checker agrees on every one)
    const world = teacherSamples(generateProblems(500, 1), 4, 1).flat();
    expect(stats.pos).toBe(world.filter((s) => s.correct).length);
    expect(stats.neg).toBe(world.filter((s) => !s.correct).length);
    expect(stats.pos).toBeGreaterThan(400); // ≈ 35 % right: a teacher worth learning from, and from its mistakes
    expect(stats.neg).toBeGreaterThan(stats.pos);
    expect(stats.labels.agreement).toBe(1);
    expect(dataset.problems[7]!.rationales.map((r) => r.text)).toEqual(
      world.slice(28, 32).map((s) => s.text),
    );
    expect(dataset.problems[0]!.id).toBe('w1-0');
    expect(dataset.problems[0]!.meta?.type).toMatch(/^[234]:/);
  });

  it('GSM8K model solutions: 1,319 questions, 5,276 rationales, 2,001 right, labels agree', () => {
    const { stats } = svc.parseText(read('gsm8k/example_model_solutions.jsonl'), {
      name: 'gsm8k',
      kind: 'auto',
      format: 'auto',
    });
    expect(stats.kind).toBe('gsm8k');
    expect(stats.format).toBe('gsm8k-solutions');
    expect([stats.questions, stats.rationales, stats.pos, stats.neg]).toEqual([1319, 5276, 2001, 3275]);
    expect(stats.questionsWithBoth).toBe(731);
    expect(stats.labels.agreement).toBe(1);
  });

  it('MATH-500: 500 problems with the reference solution as gold, its boxed answer extracted', () => {
    const text = read('math/math500.jsonl');
    const { dataset, stats } = svc.parseText(math500ToOurs(text), {
      name: 'm',
      kind: 'math',
      format: 'auto',
    });
    expect(stats.questions).toBe(500);
    expect(stats.rationales).toBe(0);
    expect(dataset.issues).toEqual([]);
    const first = JSON.parse(text.split('\n', 1)[0]!) as {
      answer: string;
      solution: string;
      unique_id: string;
    };
    expect(dataset.problems[0]!.id).toBe(first.unique_id);
    expect(dataset.problems[0]!.gold).toBe(first.solution);
    expect(dataset.problems[0]!.goldAnswer).toBe(first.answer);
    expect(dataset.problems[0]!.meta).toEqual({ level: '2', subject: 'Precalculus' });
    // a line that is not a MATH-500 record is passed on for the parser to report
    expect(math500ToOurs('{"x":1}\nnot json')).toBe('{"x":1}\nnot json');
  });
});

describe('guessKind', () => {
  it('from the first record', () => {
    expect(guessKind('\n{"question":"q","ground_truth":"x\\nA: 3"}')).toBe('gsm8k');
    expect(guessKind('{"question":"q","answer":"so \\\\boxed{2}","generated_answer":[]}')).toBe('math');
    expect(guessKind('{"question":"q","answer":"2+2 = 4\\n#### 4"}')).toBe('gsm8k');
    expect(
      guessKind('{"question":"q","gold":"7","rationales":[{"text":"3 + 4 = 7. The answer is 7."}]}'),
    ).toBe('arith');
    expect(guessKind('{"question":"q","gold":7,"rationales":[{"text":"so 7 apples"}]}')).toBe('gsm8k');
    expect(guessKind('{"question":"q","gold":"\\\\frac12"}')).toBe('math');
    expect(guessKind('not json\n[1,2]')).toBeNull();
  });
});

describe('DataService', () => {
  it('builtin world without the network', async () => {
    const { stats } = await svc.builtin('world', 'http://unused.invalid/', { n: 20, seed: 3 });
    expect(stats.questions).toBe(20);
    expect(stats.rationales).toBe(80);
  });

  it('refuses a file in the wrong format with what to do, and an empty file', () => {
    const e1 = (() => {
      try {
        svc.parseText('id,question\n1,What?', { name: 'table.csv', kind: 'auto', format: 'auto' });
      } catch (e) {
        return e;
      }
    })() as EngineError;
    expect(e1).toBeInstanceOf(EngineError);
    expect(e1.code).toBe('BAD_FILE');
    expect(e1.message).toContain('"table.csv" is not a dataset we can read');
    expect(e1.message).toContain('It starts "id,question"');
    expect(e1.message).toContain('Export JSON lines');
    const e2 = (() => {
      try {
        svc.parseText('{"question":"q"}\n{"foo":1}', { name: 'x.jsonl', kind: 'math', format: 'auto' });
      } catch (e) {
        return e;
      }
    })() as EngineError;
    expect(e2.code).toBe('BAD_FILE');
    expect(e2.message).toContain('"x.jsonl" has no usable question (2 lines read; line 1:');
    expect(() => svc.parseText(' \n', { name: 'e', kind: 'math', format: 'auto' })).toThrow(/is empty/);
  });

  it('importBlob reads a Blob and keeps the skipped lines as issues', async () => {
    const blob = new Blob([
      '{"question":"q","gold":"\\\\boxed{2}","rationales":[{"text":"\\\\boxed{2}"}]}\nnot json\n',
    ]);
    const { dataset, stats } = await svc.importBlob(blob, { name: 'b.jsonl', kind: 'auto', format: 'auto' });
    expect(dataset.kind).toBe('math');
    expect(stats.pos).toBe(1);
    expect(dataset.issues.map((i) => i.line)).toEqual([2]);
  });
});

describe('describeError', () => {
  it('titles by code, the engine message kept, advice added once', () => {
    const m = describeError(new EngineError('OUT_OF_MEMORY', 'The GPU ran out of memory: x.'));
    expect(m).toEqual({
      code: 'OUT_OF_MEMORY',
      title: 'The GPU ran out of memory',
      message:
        'The GPU ran out of memory: x. Close other GPU-heavy tabs, or ask for fewer samples or a smaller model.',
    });
    expect(describeError(new EngineError('NO_WEBGPU', 'Use Chrome.')).title).toBe(
      'This browser has no WebGPU',
    );
    expect(describeError(new AppError('QUOTA_FULL', 'full')).code).toBe('QUOTA_FULL');
    // a message that already says what to do gets no generic advice after it
    const big =
      'arith-student does not fit. Close other GPU-heavy tabs and reload the page, or load a smaller model (Models).';
    expect(describeError(new EngineError('OUT_OF_MEMORY', big)).message).toBe(big);
    const limit =
      'The w1 tensor needs 44 KiB but this GPU binds at most 32 KiB. Choose a smaller model or a quantized one.';
    expect(describeError(new EngineError('LIMIT_EXCEEDED', limit)).message).toBe(limit);
    expect(describeError(new EngineError('LIMIT_EXCEEDED', 'Too big.')).message).not.toBe('Too big.');
    // a lost device: the message's own way on (Resume, Evaluate again) stands alone; else reload
    const lostEval =
      'The GPU device was lost while evaluating "kd". Evaluate again: it opens the GPU afresh.';
    expect(describeError(new EngineError('DEVICE_LOST', lostEval)).message).toBe(lostEval);
    expect(describeError(new EngineError('DEVICE_LOST', 'Lost while sampling.')).message).toMatch(
      /^Lost while sampling\. .*Reload the page/,
    );
    expect(describeError('boom')).toEqual({
      code: 'UNKNOWN',
      title: 'Something went wrong',
      message: 'boom',
    });
  });
});
