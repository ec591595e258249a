import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import {
  datasetStats,
  detectFormat,
  heldOutSplit,
  isHeldOut,
  labelDisagreements,
  parseDataset,
  questionHash,
  requireNegatives,
  requirePositives,
  splitPosNeg,
  toOursJsonl,
  type Dataset,
} from '../../src/method/datasets/index.ts';

const fixture = (name: string): string =>
  readFileSync(new URL(`../fixtures/datasets/${name}`, import.meta.url), 'utf8');

const verdicts = (ds: Dataset) => ds.problems.map((p) => p.rationales.map((r) => r.correct));

/** Throws and returns the EngineError, so its code and message can be checked. */
function engineError(f: () => unknown): EngineError {
  try {
    f();
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

describe('GSM8K example_model_solutions.jsonl, lines 101–200 (real rationales with OpenAI labels)', () => {
  const text = fixture('gsm8k-solutions-slice.jsonl');
  const ds = parseDataset(text, { kind: 'gsm8k', name: 'slice' });
  // the labels as the file gives them, read here without the module
  const raw = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, { is_correct: boolean; solution: string }>);
  const MODELS = ['6b_finetuning', '6b_verification', '175b_finetuning', '175b_verification'];

  it('detects the format and loads every line', () => {
    expect(ds.format).toBe('gsm8k-solutions');
    expect(ds.issues).toEqual([]);
    expect(ds.lines).toBe(100);
    expect(ds.problems.length).toBe(100);
    expect(ds.problems.map((p) => p.rationales.length)).toEqual(Array(100).fill(4));
    expect(ds.problems[0]!.id).toBe('L1');
    expect(ds.problems[99]!.line).toBe(100);
    expect(ds.problems[0]!.rationales.map((r) => r.source)).toEqual(MODELS);
    ds.problems.forEach((p, i) => {
      expect(p.question).toBe(raw[i]!.question);
      expect(p.rationales.map((r) => r.text)).toEqual(MODELS.map((m) => raw[i]![m]!.solution));
      expect(p.rationales.map((r) => r.label)).toEqual(MODELS.map((m) => raw[i]![m]!.is_correct));
    });
  });

  it('our answer checking agrees with every label (as on the whole file)', () => {
    const labelledPos = raw.reduce((n, r) => n + MODELS.filter((m) => r[m]!.is_correct).length, 0);
    expect(labelledPos).toBe(148); // both classes present: agreement is not "always false"
    expect(labelDisagreements(ds)).toEqual([]);
    const { pos, neg } = splitPosNeg(ds);
    expect(pos.length).toBe(148);
    expect(neg.length).toBe(252);
    const s = datasetStats(ds);
    expect(s.labels).toEqual({ labelled: 400, agree: 400, disagree: 0, agreement: 1, examples: [] });
    expect(s.bySource).toEqual({
      '6b_finetuning': { rationales: 100, pos: 24 },
      '6b_verification': { rationales: 100, pos: 41 },
      '175b_finetuning': { rationales: 100, pos: 31 },
      '175b_verification': { rationales: 100, pos: 52 },
    });
    expect([s.questionsWithPos, s.questionsWithNeg, s.questionsWithBoth]).toEqual([59, 86, 45]);
    expect(s.noAnswer).toBe(0);
    expect(s.warnings).toEqual([]);
  });

  it('held-out split by question hash (counts checked with an independent Python FNV-1a)', () => {
    expect(heldOutSplit(ds, { fraction: 0.1, seed: 0 }).heldOut.problems.length).toBe(15);
    expect(heldOutSplit(ds, { fraction: 0.5, seed: 0 }).heldOut.problems.length).toBe(56);
    const s = datasetStats(ds, { heldOut: { fraction: 0.1, seed: 0 } });
    expect(s.split.train.questions + s.split.heldOut.questions).toBe(100);
    expect(s.split.train.rationales + s.split.heldOut.rationales).toBe(400);
    expect(s.split.train.pos + s.split.heldOut.pos).toBe(148);
  });

  it('a kind other than gsm8k is refused with a clear message', () => {
    const e = engineError(() => parseDataset(text, { kind: 'math', name: 'slice' }));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toMatch(/slice is a GSM8K solutions file .* load it with kind gsm8k, not math/);
    expect(engineError(() => parseDataset(text, { kind: 'arith', format: 'gsm8k-solutions' })).code).toBe(
      'BAD_ARGUMENT',
    );
  });

  it('read with the wrong --format, every line is skipped with a hint', () => {
    const wrong = parseDataset(text, { kind: 'gsm8k', format: 'authors' });
    expect(wrong.problems).toEqual([]);
    expect(wrong.issues.length).toBe(100);
    expect(wrong.issues[0]).toEqual({
      line: 1,
      message:
        'no "answer" (the gold solution); this line looks like the GSM8K solutions format but the file is in the authors\' format',
    });
  });
});

// The whole file, as the app bundles it (public/data/gsm8k).
const fullFile = fileURLToPath(
  new URL('../../public/data/gsm8k/example_model_solutions.jsonl', import.meta.url),
);
describe('GSM8K example_model_solutions.jsonl, the whole file', () => {
  it('1,319 questions × 4 rationales; our checking agrees with all 5,276 labels', () => {
    const text = readFileSync(fullFile, 'utf8');
    const ds = parseDataset(text, { kind: 'gsm8k' });
    let labelledPos = 0;
    for (const l of text.trim().split('\n'))
      for (const v of Object.values(JSON.parse(l) as Record<string, unknown>))
        if (typeof v === 'object' && v !== null && (v as { is_correct: boolean }).is_correct) labelledPos++;
    expect(labelledPos).toBe(2001);
    const s = datasetStats(ds, { heldOut: { fraction: 0.1, seed: 0 } });
    expect([s.questions, s.rationales, s.pos, s.neg, s.skipped]).toEqual([1319, 5276, 2001, 3275, 0]);
    expect(s.labels.agreement).toBe(1);
    expect(s.split.heldOut.questions).toBe(135); // same count from the Python reimplementation
  });
});

describe("the authors' format (MATH-500 problems, hand-written rationales)", () => {
  const ds = parseDataset(fixture('authors-math.jsonl'), { kind: 'math', name: 'authors' });

  it('reads the gold from the boxed solution and checks each generated answer', () => {
    expect(ds.format).toBe('authors');
    expect(ds.issues).toEqual([]);
    expect(ds.problems.map((p) => p.goldAnswer)).toEqual(['0.15', '11\\sqrt2', '2k+2', '6+9i']);
    // expected from the rules of docs/answers-voting.md: 15/100 ≡ 0.15 (exact rationals), √242 ≡ 11√2,
    // 2+2k ≡ 2k+2 and 9i+6 ≡ 6+9i (symbolic), a rationale without \boxed has no answer
    expect(verdicts(ds)).toEqual([
      [true, true, false, false],
      [true, false, true],
      [true, true, false, false],
      [true, true, false],
    ]);
    expect(ds.problems[0]!.rationales[3]!.answer).toBe(null);
    expect(ds.problems[0]!.meta).toEqual({ level: 'Level 2', type: 'Prealgebra' });
    expect(ds.problems.every((p) => p.rationales.every((r) => r.label === undefined))).toBe(true);
    const s = datasetStats(ds);
    expect([s.rationales, s.pos, s.neg, s.noAnswer]).toEqual([14, 8, 6, 1]);
    expect(s.labels).toEqual({ labelled: 0, agree: 0, disagree: 0, agreement: null, examples: [] });
  });

  it('a record without generated answers is a question with no rationales', () => {
    const one = parseDataset('{"question": "q", "answer": "#### 4"}\n', { kind: 'gsm8k' });
    expect(one.format).toBe('authors');
    expect(one.problems[0]!.rationales).toEqual([]);
    expect(datasetStats(one).warnings).toEqual([
      'no rationales: the questions can serve for evaluation, not for training',
    ]);
  });
});

describe('our format', () => {
  it('the synthetic world’s own labels agree with our checking', () => {
    const ds = parseDataset(fixture('ours-arith.jsonl'), { kind: 'arith' });
    expect(ds.format).toBe('ours');
    expect(ds.problems.length).toBe(12);
    const s = datasetStats(ds);
    expect([s.rationales, s.pos, s.labels.labelled, s.labels.disagree]).toEqual([48, 19, 48, 0]);
  });

  it('given labels are compared, never trusted: the split follows our checking', () => {
    const ds = parseDataset(fixture('ours-math.jsonl'), { kind: 'math', name: 'ours-math' });
    expect(ds.problems.map((p) => p.id)).toEqual(['alg-1', 'alg-1@L2', '7']);
    expect(verdicts(ds)).toEqual([[true, true, true], [false], [true, false]]);
    expect(labelDisagreements(ds)).toEqual([
      {
        id: 'alg-1',
        line: 1,
        index: 0,
        label: false,
        ours: true,
        answer: '0.5',
        goldAnswer: '\\frac12',
        text: 'so \\boxed{0.5}',
      },
      {
        id: '7',
        line: 3,
        index: 1,
        source: 'gpt',
        label: true,
        ours: false,
        answer: 'y=3',
        goldAnswer: 'x = 3',
        text: '\\boxed{y=3}',
      },
    ]);
    const { pos, neg } = splitPosNeg(ds);
    expect(pos.map((r) => `${r.problem.id}/${r.index}`)).toEqual(['alg-1/0', 'alg-1/1', 'alg-1/2', '7/0']);
    expect(neg.map((r) => `${r.problem.id}/${r.index}`)).toEqual(['alg-1@L2/0', '7/1']);
    const s = datasetStats(ds, { examples: 1 });
    expect(s.labels).toMatchObject({ labelled: 5, agree: 3, disagree: 2, agreement: 0.6 });
    expect(s.labels.examples.map((e) => e.line)).toEqual([1]);
    expect(s.duplicateQuestions).toBe(1); // line 2 is line 1 with other spacing
    expect(s.bySource).toEqual({ gpt: { rationales: 2, pos: 1 } });
    expect(s.warnings).toEqual([
      '2 of 5 given labels disagree with our answer checking; the split follows ours (see "labels.examples")',
      'the held-out split left no question held out (fraction 0.1, 3 questions)',
    ]);
    expect(ds.problems[0]!.meta).toEqual({ level: '1', type: 'Algebra' });
  });
});

describe('bad input', () => {
  it('a malformed line is reported with its line number and skipped; the rest loads', () => {
    const ds = parseDataset(fixture('malformed.jsonl'), { kind: 'gsm8k', name: 'malformed' });
    expect(ds.format).toBe('ours');
    expect(ds.problems.map((p) => p.line)).toEqual([1, 11, 15, 16]);
    expect(ds.issues.map((i) => i.line)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]);
    expect(ds.lines).toBe(15); // line 2 is blank
    const msg = Object.fromEntries(ds.issues.map((i) => [i.line, i.message]));
    expect(msg[3]).toMatch(/^not valid JSON \(/);
    expect(msg[4]).toMatch(/^not a JSON object/);
    expect(msg[5]).toMatch(/^no "gold"/);
    expect(msg[6]).toMatch(/^rationale 0 is not \{"text": string/);
    expect(msg[7]).toMatch(/^rationale 0: "correct" is "yes", not true or false/);
    expect(msg[8]).toBe(
      'the gold "#### none" has no gsm8k answer (a GSM8K gold ends "#### <number>" or is a number)',
    );
    expect(msg[9]).toMatch(/looks like the authors' format but the file is in our format$/);
    expect(msg[10]).toMatch(/^an empty or non-string "question"/);
    expect(msg[12]).toMatch(/^"rationales" is not an array/);
    // line 11 ends in \r and has a numeric gold; line 16's third label is null (no label)
    expect(verdicts(ds)).toEqual([[true, false], [true, false, false], [], [true, false, true]]);
    expect(ds.problems[1]!.goldAnswer).toBe('6');
    expect(ds.problems[3]!.rationales[2]!.label).toBe(undefined);
    const s = datasetStats(ds, { maxIssues: 3 });
    expect([s.questions, s.rationales, s.pos, s.neg, s.noAnswer]).toEqual([4, 8, 4, 4, 1]);
    expect([s.questionsWithoutRationales, s.questionsWithPos, s.questionsWithNeg]).toEqual([1, 3, 3]);
    expect(s.rationalesPerQuestion).toEqual({ min: 0, max: 3, mean: 2 });
    expect([s.labels.labelled, s.labels.disagree]).toEqual([4, 2]);
    expect([s.skipped, s.issues.length, s.issuesLeftOut]).toEqual([11, 3, 8]);
  });

  it('auto-detection skips junk before the first record; a byte-order mark and \\r\\n are fine', () => {
    const text =
      '\uFEFFnot json\r\n{"foo": 1}\r\n{"question": "q", "answer": "x \\\\boxed{3}", "generated_answer": ["\\\\boxed{3}"]}\r\n';
    const ds = parseDataset(text, { kind: 'math' });
    expect(ds.format).toBe('authors');
    expect(ds.issues.map((i) => i.line)).toEqual([1, 2]);
    expect(ds.issues[1]!.message).toMatch(/^not a record of a known format; expected one of /);
    expect(verdicts(ds)).toEqual([[true]]);
    expect(detectFormat({ question: 'q', ground_truth: 'A: 1' })).toBe('gsm8k-solutions');
    expect(detectFormat({ question: 'q', gold: '1' })).toBe('ours');
    expect(detectFormat([1])).toBe(null);
  });

  it('an empty dataset: no problems, no issues, a warning, and the stages refuse it', () => {
    for (const text of [fixture('empty.jsonl'), '\n  \n\r\n']) {
      const ds = parseDataset(text, { kind: 'math', name: 'empty.jsonl' });
      expect(ds).toEqual({
        name: 'empty.jsonl',
        kind: 'math',
        format: null,
        problems: [],
        issues: [],
        lines: 0,
      });
      const s = datasetStats(ds);
      expect([s.questions, s.rationales, s.posRate, s.rationalesPerQuestion.min]).toEqual([0, 0, 0, 0]);
      expect(s.warnings).toEqual(['no usable question (the file is empty)']);
      const e = engineError(() => requireNegatives(ds));
      expect(e.code).toBe('BAD_ARGUMENT');
      expect(e.message).toMatch(/^NAT needs negative rationales .* "empty.jsonl" has no usable question\./);
      expect(engineError(() => requirePositives(ds, 'CoT KD')).message).toMatch(
        /^CoT KD needs correct rationales .* "empty.jsonl" has no usable question\./,
      );
    }
    const junk = parseDataset('oops\n', { kind: 'math', name: 'junk' });
    expect(datasetStats(junk).warnings).toEqual(['no usable question (1 lines skipped, see "issues")']);
    expect(engineError(() => requireNegatives(junk)).message).toMatch(
      /"junk" has no usable question; 1 lines were skipped \(see the first: line 1, not valid JSON/,
    );
  });

  it('a dataset with no negatives: NAT refuses it with a message a student can act on', () => {
    const ds = parseDataset(fixture('no-negatives.jsonl'), { kind: 'gsm8k', name: 'no-negatives.jsonl' });
    const e = engineError(() => requireNegatives(ds, 'NAT'));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe(
      'NAT needs negative rationales (D_neg: rationales whose answer is wrong), because it learns from the ' +
        'teacher\'s mistakes; "no-negatives.jsonl" has 5 rationales over 3 questions and our answer checking ' +
        'finds every one of them correct. Add wrong rationales (sample the teacher more times per question ' +
        'or at a higher temperature, or keep the samples you filtered out), or train with CoT KD, which ' +
        'needs only D_pos.',
    );
    expect(requirePositives(ds).length).toBe(5);
    expect(datasetStats(ds, { heldOut: { fraction: 0, seed: 0 } }).warnings).toEqual([
      'no negatives: every rationale is correct by our checking, so NAT (and MIX, NT, UL, CL) will refuse this dataset; CoT KD can use it',
    ]);
    // the converse: nothing correct (here: the wrong kind, arith needs "The answer is n")
    const none = parseDataset(
      '{"question": "q", "gold": "5", "rationales": [{"text": "five"}, {"text": "it is 5"}]}',
      { kind: 'arith', name: 'none' },
    );
    expect(requireNegatives(none).length).toBe(2);
    expect(engineError(() => requirePositives(none)).message).toMatch(
      /"none" has 2 rationales over 1 questions and our answer checking finds none of them correct \(arith answers: is that the right kind/,
    );
    expect(datasetStats(none, { heldOut: { fraction: 0, seed: 0 } }).warnings).toEqual([
      'no positives: no rationale is correct by our checking; is "arith" the right kind for this file?',
      'no rationale has an answer that our arith extraction can read: check the kind',
    ]);
  });

  it('hostile text stays plain data; answers that defeat the normaliser are "not equal", fast', () => {
    const text = fixture('hostile.jsonl');
    const t0 = performance.now();
    const ds = parseDataset(text, { kind: 'math' });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(ds.issues).toEqual([]);
    const raw = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { question: string; rationales: { text: string }[] });
    ds.problems.forEach((p, i) => {
      expect(p.question).toBe(raw[i]!.question);
      expect(p.rationales.map((r) => r.text)).toEqual(raw[i]!.rationales.map((r) => r.text));
    });
    expect(ds.problems[0]!.question).toBe('<script>alert("x")</script> What is $1+1$?');
    expect(ds.problems[2]!.question).toBe('Half? \u0000 \u{1F600} \ud800 \u202e');
    // <b>2</b> is not 2; 9^{9^{9^{9}}} only by string (a power in an exponent never reaches the engine);
    // a 6,001-character sum and 2,000 nested braces are no match; unclosed \boxed{ is no answer
    expect(verdicts(ds)).toEqual([
      [true, false],
      [true, false, false],
      [false, false, true, false, false],
      [true, false],
    ]);
    expect(ds.problems[2]!.rationales.map((r) => r.answer === null)).toEqual([
      true,
      false,
      false,
      true,
      true,
    ]);
    // "__proto__" as a key, a source, an answer: nothing leaks into Object.prototype
    expect(({} as Record<string, unknown>).polluted).toBe(undefined);
    const s = datasetStats(ds);
    expect(Object.keys(s.bySource)).toEqual(['__proto__', 'constructor']);
    expect(Object.getPrototypeOf(s.bySource)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).rationales).toBe(undefined);
    // and it round-trips through our format unchanged
    const again = parseDataset(toOursJsonl(ds), { kind: 'math' });
    expect(again.problems.map((p) => [p.question, p.rationales.map((r) => r.text)])).toEqual(
      ds.problems.map((p) => [p.question, p.rationales.map((r) => r.text)]),
    );
  });
});

describe('train / held-out split', () => {
  const ds = parseDataset(fixture('gsm8k-solutions-slice.jsonl'), { kind: 'gsm8k' });

  it('questionHash matches an independent implementation (FNV-1a 32 + murmur3 finaliser)', () => {
    // values from a Python reimplementation over UTF-16 code units
    expect(questionHash('What is 2 + 2?', 0)).toBe(0.5572585619520396);
    expect(questionHash('What is 2 + 2?', 1)).toBe(0.4574041629675776);
    expect(questionHash('  What   is\n2 + 2? ', 0)).toBe(0.5572585619520396); // whitespace-normalised
    expect(questionHash('Janet’s ducks lay 16 eggs', 'abc')).toBe(0.8635313580743968);
  });

  it("a question's side does not depend on the other questions", () => {
    const opts = { fraction: 0.3, seed: 42 };
    const side = (d: Dataset) =>
      new Map([
        ...heldOutSplit(d, opts).train.problems.map((p) => [p.question, 'train'] as const),
        ...heldOutSplit(d, opts).heldOut.problems.map((p) => [p.question, 'held-out'] as const),
      ]);
    const all = side(ds);
    // every other question, in reverse order
    const some = side({ ...ds, problems: ds.problems.filter((_, i) => i % 2 === 0).reverse() });
    expect(some.size).toBe(50);
    for (const [q, s] of some) expect(s).toBe(all.get(q));
    for (const p of ds.problems) expect(isHeldOut(p.question, opts)).toBe(all.get(p.question) === 'held-out');
  });

  it('partitions the questions, keeps file order, and another seed gives another split', () => {
    const a = heldOutSplit(ds, { fraction: 0.2, seed: 1 });
    const b = heldOutSplit(ds, { fraction: 0.2, seed: 2 });
    expect(a.train.name).toBe('dataset (train)');
    expect(a.heldOut.name).toBe('dataset (held-out)');
    const lines = [...a.train.problems, ...a.heldOut.problems].map((p) => p.line).sort((x, y) => x - y);
    expect(lines).toEqual(ds.problems.map((p) => p.line));
    expect(a.heldOut.problems.map((p) => p.line)).toEqual(
      [...a.heldOut.problems.map((p) => p.line)].sort((x, y) => x - y),
    );
    expect(a.heldOut.problems.map((p) => p.line)).not.toEqual(b.heldOut.problems.map((p) => p.line));
    expect(heldOutSplit(ds, { fraction: 0, seed: 0 }).heldOut.problems).toEqual([]);
    expect(heldOutSplit(ds, { fraction: 1, seed: 0 }).train.problems).toEqual([]);
    expect(datasetStats(ds, { heldOut: { fraction: 0, seed: 0 } }).warnings).toEqual([]); // asked for
    expect(datasetStats(ds, { heldOut: { fraction: 1e-6, seed: 0 } }).warnings).toEqual([
      'the held-out split left no question held out (fraction 0.000001, 100 questions)',
    ]);
  });

  it('bad fractions and seeds are refused', () => {
    for (const fraction of [-0.1, 1.5, Number.NaN])
      expect(engineError(() => heldOutSplit(ds, { fraction, seed: 0 })).code).toBe('BAD_ARGUMENT');
    expect(engineError(() => isHeldOut('q', { fraction: 0.1, seed: Infinity })).message).toMatch(/seed/);
  });
});

describe('our JSON lines out', () => {
  it('convert the GSM8K slice: correct is ours, source kept, and it parses back the same', () => {
    const ds = parseDataset(fixture('gsm8k-solutions-slice.jsonl'), { kind: 'gsm8k' });
    const out = toOursJsonl(ds);
    const first = JSON.parse(out.split('\n')[0]!) as Record<string, unknown>;
    expect(Object.keys(first)).toEqual(['question', 'gold', 'rationales']);
    expect((first.rationales as unknown[])[0]).toEqual({
      text: ds.problems[0]!.rationales[0]!.text,
      correct: ds.problems[0]!.rationales[0]!.correct,
      source: '6b_finetuning',
    });
    const back = parseDataset(out, { kind: 'gsm8k' });
    expect(back.format).toBe('ours');
    const strip = (d: Dataset) =>
      d.problems.map((p) => ({ ...p, rationales: p.rationales.map((r) => ({ ...r, label: r.correct })) }));
    expect(back.problems).toEqual(strip(ds));
  });

  it('keeps ids given in the file and MATH metadata', () => {
    const ds = parseDataset(fixture('ours-math.jsonl'), { kind: 'math' });
    const lines = toOursJsonl(ds).trim().split('\n');
    expect(JSON.parse(lines[0]!)).toEqual({
      id: 'alg-1',
      question: 'What is $\\frac{1}{2} + 0$?',
      gold: '\\frac12',
      level: '1',
      type: 'Algebra',
      rationales: [
        { text: 'so \\boxed{0.5}', correct: true },
        { text: '\\boxed{\\dfrac{1}{2}}', correct: true },
        { text: '\\boxed{1/2}', correct: true },
      ],
    });
    expect(toOursJsonl({ ...ds, problems: [] })).toBe('');
  });

  it('reports progress line by line', () => {
    const seen: [number, number][] = [];
    parseDataset(fixture('no-negatives.jsonl'), { kind: 'gsm8k', onProgress: (d, t) => seen.push([d, t]) });
    expect(seen).toEqual([
      [1, 4],
      [2, 4],
      [3, 4],
      [4, 4],
    ]);
  });
});
