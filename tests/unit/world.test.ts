import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CORPUS,
  DEFAULT_ERROR_MODEL,
  ERROR_KINDS,
  Rng,
  VERBS,
  WORLD_CHARS,
  applyOp,
  checkErrorModel,
  correctChain,
  errorModelFrom,
  extractAnswer,
  generateCorpus,
  generateProblems,
  isCorrect,
  parseExercise,
  promptText,
  teacherSample,
  teacherSamples,
  trainingText,
  worldTokenizer,
  type ErrorKind,
  type ErrorModel,
  type Problem,
} from '../../src/method/world/index.ts';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { teacherStats, worldCommand } from '../../src/cli/world.ts';

const NO_ERRORS: ErrorModel = {
  wrongOp: {},
  wrongOperand: {},
  otherOperand: 0,
  drop: {},
  borrow: 0,
  carry: 0,
  slip: 0,
  stop: [0, 0, 0],
};

describe('Rng', () => {
  it('is mulberry32: the first draws of seed 1 are fixed', () => {
    const r = new Rng(1);
    expect([r.nextU32(), r.nextU32(), r.nextU32()]).toEqual([2693262067, 11749833, 2265367787]);
  });
  it('int covers both ends and stays in range; fork does not advance the parent', () => {
    const r = new Rng(5);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(r.int(1, 6));
    expect([...seen].sort()).toEqual([1, 2, 3, 4, 5, 6]);
    const a = new Rng(9);
    const b = new Rng(9);
    a.fork('x').next();
    expect(a.next()).toBe(b.next());
    expect(new Rng(9).fork('x').next()).not.toBe(new Rng(9).fork('y').next());
  });
});

describe('problems', () => {
  it('are deterministic per seed, and problem i does not depend on n', () => {
    const a = generateProblems(50, 7);
    expect(generateProblems(50, 7)).toEqual(a);
    expect(generateProblems(10, 7)).toEqual(a.slice(0, 10));
    expect(generateProblems(50, 8).map((p) => p.question)).not.toEqual(a.map((p) => p.question));
    expect(a[0]!.question).toBe(
      'Max has 3 nuts. He loses 3. He buys 12. He buys 7. How many nuts does Max have now?',
    );
    expect(a[0]!.answer).toBe(19);
    expect(correctChain(a[0]!)).toBe('3, -3 = 0, +12 = 12, +7 = 19. The answer is 19.');
    expect(correctChain(a[0]!, 'equations')).toBe('3 - 3 = 0. 0 + 12 = 12. 12 + 7 = 19. The answer is 19.');
  });

  it('have correct answers, amounts in 0..100 and the fixed sentence shapes', () => {
    for (const p of generateProblems(2000, 3)) {
      let v = p.start;
      expect(p.values[0]).toBe(v);
      p.steps.forEach((s, i) => {
        expect(s.op).toBe(VERBS[s.verb].op);
        v = applyOp(v, s.op, s.n);
        expect(p.values[i + 1]).toBe(v);
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(100);
        expect(p.question).toContain(s.sentence);
      });
      expect(p.answer).toBe(v);
      expect(p.steps.length === 2 || p.steps.length === 3).toBe(true);
      expect(p.question.startsWith(`${p.name} has ${p.start} ${p.object}.`)).toBe(true);
      expect(p.question.endsWith(`How many ${p.object} does ${p.name} have now?`)).toBe(true);
    }
  });

  it('the correct chain ends "The answer is n." and is judged correct', () => {
    for (const p of generateProblems(500, 4)) {
      const chain = correctChain(p);
      const eq = correctChain(p, 'equations');
      for (const c of [chain, eq]) {
        expect(c.endsWith(`The answer is ${p.answer}.`)).toBe(true);
        expect(isCorrect(c, p.answer)).toBe(true);
        expect(extractAnswer(c)).toBe(p.answer);
      }
      expect(eq.split('. ').length).toBe(p.steps.length + 1);
      expect(chain.split(', ').length).toBe(p.steps.length + 1);
      expect(chain.startsWith(`${p.start}, ${p.steps[0]!.op}${p.steps[0]!.n} = ${p.values[1]}`)).toBe(true);
    }
    expect(extractAnswer('1 + 2 = 3. The answer is 4. The answer is -5.')).toBe(-5);
    expect(extractAnswer('1 + 2 = 3.')).toBeNull();
  });

  it('step weights select the number of steps', () => {
    const ps = generateProblems(200, 1, { ...DEFAULT_CORPUS.world, stepWeights: [0, 0, 1] });
    expect(ps.every((p) => p.steps.length === 4)).toBe(true);
    expect(() => generateProblems(1, 1, { ...DEFAULT_CORPUS.world, stepWeights: [0, 0, 0] })).toThrow(
      /stepWeights/,
    );
  });
});

describe('teacher', () => {
  it('accuracy over 2000 questions (k = 4) is in 0.30..0.40, so |D_neg| > |D_pos|', () => {
    const s = teacherStats(2000, 1, 4, DEFAULT_CORPUS.world, DEFAULT_ERROR_MODEL);
    expect(s.samples).toBe(8000);
    expect(s.accuracy).toBeGreaterThan(0.3);
    expect(s.accuracy).toBeLessThan(0.4);
    expect(s.neg).toBeGreaterThan(s.pos);
    // systematic: problems with "loses" or "triples" are mostly failed, others mostly solved
    expect(s.byVerbPresent.loses!.acc).toBeLessThan(0.15);
    expect(s.byVerbPresent.triples!.acc).toBeLessThan(0.2);
    expect(s.byVerbPresent.buys!.acc).toBeGreaterThan(0.4);
    for (const k of ERROR_KINDS) expect(s.errorKinds[k]).toBeGreaterThan(0);
  });

  it('is deterministic per seed and writes correct chains with no errors enabled', () => {
    const ps = generateProblems(100, 2);
    expect(teacherSamples(ps, 3, 5)).toEqual(teacherSamples(ps, 3, 5));
    // the chain style changes the text only, never the errors or the answers
    const a = teacherSamples(ps, 2, 5, DEFAULT_ERROR_MODEL, 'running');
    const b = teacherSamples(ps, 2, 5, DEFAULT_ERROR_MODEL, 'equations');
    expect(a.flat().map((s) => [s.answer, s.errors])).toEqual(b.flat().map((s) => [s.answer, s.errors]));
    expect(a[0]![0]!.text).not.toBe(b[0]![0]!.text);
    const clean = teacherSamples(ps, 2, 5, NO_ERRORS);
    ps.forEach((p, i) => {
      for (const s of clean[i]!) {
        expect(s.text).toBe(correctChain(p));
        expect(s.correct).toBe(true);
        expect(s.errors).toEqual([]);
      }
    });
  });

  // One error kind on, everything else off: every sample with exactly one error event has a wrong
  // answer. The only cancellation of a single error is "stop" when the skipped steps add up to
  // nothing (e.g. +3 then -3), recomputed and excluded here. (Two errors in one chain can cancel,
  // e.g. a slip of +1 then one of -1: such a chain is judged correct, as an LLM's would be.)
  const single: Record<ErrorKind, Partial<ErrorModel>> = {
    slip: { slip: 0.3 },
    carry: { carry: 1 },
    borrow: { borrow: 1 },
    wrongOp: { wrongOp: { loses: { p: 1, op: '+' }, buys: { p: 1, op: '-' } } },
    wrongOperand: { otherOperand: 0.3, wrongOperand: { triples: { p: 1, n: 2 } } },
    drop: { drop: { gives: 1, finds: 1, doubles: 1 } },
    stop: { stop: [1, 1, 1] },
  };
  for (const kind of ERROR_KINDS) {
    it(`error "${kind}" occurs and gives a wrong answer`, () => {
      const m: ErrorModel = { ...NO_ERRORS, ...single[kind] };
      const ps = generateProblems(400, 11);
      const rng = new Rng(3);
      let seen = 0;
      for (const p of ps) {
        const s = teacherSample(p, m, rng);
        const kinds = new Set(s.errors.map((e) => e.kind));
        if (!kinds.has(kind)) continue;
        expect([...kinds]).toEqual([kind]);
        if (kind === 'stop' && stoppedAmount(p, s.errors[0]!.step) === p.answer) continue;
        if (s.errors.length === 1) {
          expect(s.correct).toBe(false);
          seen++;
        }
      }
      expect(seen).toBeGreaterThan(20);
    });
  }

  it('slipIfPresent slips on the other steps of problems with that verb, never on the verb itself', () => {
    const m: ErrorModel = { ...NO_ERRORS, slipIfPresent: { triples: 1 } };
    const rng = new Rng(4);
    let withTriples = 0;
    for (const p of generateProblems(300, 12)) {
      const s = teacherSample(p, m, rng);
      const idx = p.steps.map((st, i) => (st.verb === 'triples' ? -1 : i)).filter((i) => i >= 0);
      if (idx.length === p.steps.length) {
        expect(s.errors).toEqual([]);
        continue;
      }
      withTriples++;
      expect(s.errors).toEqual(idx.map((i) => ({ step: i, kind: 'slip' })));
    }
    expect(withTriples).toBeGreaterThan(30);
  });

  it('rejects malformed error models with a message', () => {
    expect(() => checkErrorModel({ ...DEFAULT_ERROR_MODEL, slip: 2 })).toThrow(/slip must be a probability/);
    expect(() => errorModelFrom({ drop: { jumps: 0.5 } as never })).toThrow(/unknown verb "jumps"/);
    expect(() => errorModelFrom({ wrongOp: { loses: { p: 0.5, op: '/' as never } } })).toThrow(/op must be/);
  });
});

/** The amount after `step` steps (what a teacher that stops there answers). */
function stoppedAmount(p: Problem, step: number): number {
  return p.values[step]!;
}

describe('corpus', () => {
  const docs = generateCorpus(3000, 11);

  it('is deterministic and has every kind, each within maxChars', () => {
    expect(generateCorpus(50, 11)).toEqual(docs.slice(0, 50));
    for (const k of ['question', 'facts', 'reading', 'parse'] as const)
      expect(docs.filter((d) => d.kind === k).length).toBeGreaterThan(300);
    for (const d of docs) expect(d.text.length).toBeLessThanOrEqual(DEFAULT_CORPUS.maxChars);
  });

  it('facts are true, readings mean their sentence, parses list the problem', () => {
    for (const d of docs) {
      if (d.kind === 'facts') {
        for (const line of d.text.split('\n')) {
          const m = /^(\d+) ([-+×]) (\d+) = (\d+)$/.exec(line);
          expect(m).not.toBeNull();
          expect(applyOp(Number(m![1]), m![2] as '+', Number(m![3]))).toBe(Number(m![4]));
          expect(Number(m![4])).toBeLessThanOrEqual(100);
        }
      } else if (d.kind === 'reading') {
        for (const line of d.text.split('\n')) {
          const m = /^(\w+) (\w+) (\d+|them)(?: \w+)*(?: to \w+)?\. → ([-+×]?)(\d+)$/.exec(line);
          expect(m, line).not.toBeNull();
          const verb = m![2]!;
          if (verb === 'has') expect(m![4]).toBe('');
          else expect(m![4]).toBe(VERBS[verb as keyof typeof VERBS].op);
        }
      }
    }
    const p = generateProblems(1, 7)[0]!;
    expect(parseExercise(p)).toBe(`${p.question} → 3, -3, +12, +7`);
  });

  it('contains no chain-format text', () => {
    for (const d of docs) {
      expect(d.text).not.toMatch(/Problem:|Solution:|The answer is|answer/);
      // an equation followed by more text on its line (the chain's "a + b = c. c - d = e.")
      expect(d.text).not.toMatch(/= -?\d+[^\d\n]/);
      for (const line of d.text.split('\n')) expect(line.split('=').length).toBeLessThanOrEqual(2);
    }
  });
});

describe('tokenizer coverage', () => {
  it('covers every problem, chain, teacher sample, corpus document and the §0 wrapper', () => {
    const tok = worldTokenizer();
    expect(tok.vocabSize).toBe(3 + [...WORLD_CHARS].length);
    const ps = generateProblems(1000, 21, { ...DEFAULT_CORPUS.world, stepWeights: [1, 1, 1] });
    const samples = teacherSamples(ps, 4, 21);
    ps.forEach((p, i) => {
      tok.encode(trainingText(p.question, correctChain(p)), true, true);
      for (const s of samples[i]!) {
        const ids = tok.encode(trainingText(p.question, s.text), true, true);
        expect(tok.decode(ids)).toBe(promptText(p.question) + s.text);
      }
    });
    for (const d of generateCorpus(2000, 5)) tok.encode(d.text, true, true);
  });
});

describe('world command', () => {
  it('writes dataset lines {question, gold, rationales: [{text, correct}]} with k samples', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'd2g-world-')), 'd.jsonl');
    expect(await worldCommand(['dataset', '--n', '5', '--seed', '3', '--k', '2', '--out', out])).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines.length).toBe(5);
    const ps = generateProblems(5, 3);
    const samples = teacherSamples(ps, 2, 3);
    lines.forEach((l, i) => {
      const d = JSON.parse(l) as Record<string, unknown>;
      expect(Object.keys(d)).toEqual(['question', 'gold', 'rationales']);
      expect(d.question).toBe(ps[i]!.question);
      expect(d.gold).toBe(String(ps[i]!.answer));
      expect(d.rationales).toEqual(samples[i]!.map((s) => ({ text: s.text, correct: s.correct })));
    });
  });

  it('refuses an unknown subcommand or chain style with a message', async () => {
    await expect(worldCommand(['nothing'])).rejects.toThrow(/world needs one of/);
    await expect(worldCommand(['problems', '--chain', 'prose'])).rejects.toThrow(/--chain is/);
  });
});
