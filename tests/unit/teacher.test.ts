/**
 * The in-browser teacher run (src/method/teacher): prompts, labels, the dataset it writes, progress,
 * cancel / resume and model errors. The model is a scripted fake at the `TeacherModel` boundary and
 * nowhere else: it returns, for the question of the last user message, candidates chosen by the
 * request's seed (candidate (seed + j) mod 4 for the j-th of n), so the same request always gets the
 * same texts and a call with n = 4 gets each of the four candidates once. Every candidate carries a
 * label written by hand (the answer our checking must read, and whether it matches the gold).
 */
import { describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { answersEqual, extractAnswer, isCorrect, type AnswerKind } from '../../src/method/answers/index.ts';
import { parseDataset, splitPosNeg } from '../../src/method/datasets/index.ts';
import { FEW_SHOTS, SYSTEM_PROMPTS, buildMessages } from '../../src/method/teacher/prompt.ts';
import {
  DEFAULT_MAX_TOKENS,
  MemoryTeacherStore,
  applyStoreChange,
  callSeed,
  problemsFromDataset,
  problemsFromJsonl,
  problemsFromWorld,
  runTeacher,
  teacherConfig,
  teacherError,
  teacherProgressOf,
  type TeacherConfig,
  type TeacherProblem,
  type TeacherProgress,
  type TeacherStore,
  type TeacherStoreChange,
} from '../../src/method/teacher/run.ts';
import { correctChain } from '../../src/method/world/format.ts';
import { generateProblems } from '../../src/method/world/problems.ts';
import type {
  TeacherCompletion,
  TeacherLoadProgress,
  TeacherModel,
  TeacherRequest,
} from '../../src/method/teacher/types.ts';

// ---------------------------------------------------------------------------------------------
// Data: problems, and per question four candidate rationales with hand-written labels.

interface Candidate {
  text: string;
  /** The answer our checking must extract (null: none). */
  answer: string | null;
  correct: boolean;
}

interface Case extends TeacherProblem {
  candidates: Candidate[];
}

const GSM8K: Case[] = [
  {
    id: 'g1',
    question: 'A farmer has 3 pens with 12 sheep in each pen. How many sheep does he have?',
    gold: '3 pens * 12 sheep = <<3*12=36>>36 sheep\n#### 36',
    candidates: [
      { text: '3 * 12 = 36 sheep.\nThe answer is 36.', answer: '36', correct: true },
      { text: '3 + 12 = 15 sheep.\nThe answer is 15.', answer: '15', correct: false },
      { text: 'He has 3 pens of 12 sheep, so 36 in all.\n#### 36', answer: '36', correct: true },
      { text: 'I cannot tell how many sheep there are.', answer: null, correct: false },
    ],
  },
  {
    id: 'g2',
    question: 'Mia buys 4 books at $15 each and pays with a $100 bill. How much change does she get?',
    gold: '4 * 15 = <<4*15=60>>60\n100 - 60 = <<100-60=40>>40\n#### 40',
    candidates: [
      { text: '4 * 15 = $60. 100 - 60 = $40.\nThe answer is $40.', answer: '40', correct: true },
      { text: '4 * 15 = 60.\nThe answer is 60.', answer: '60', correct: false },
      { text: 'The answer is 40.00', answer: '40.00', correct: true },
      { text: 'She gets some change back.', answer: null, correct: false },
    ],
  },
  {
    id: 'g3',
    question: 'A tank holds 1,200 liters. It is half full. How many liters are in it?',
    gold: '1200 / 2 = <<1200/2=600>>600\n#### 600',
    candidates: [
      { text: '1,200 / 2 = 600 liters.\nThe answer is 600.', answer: '600', correct: true },
      { text: 'The answer is 1,200.', answer: '1200', correct: false },
      { text: 'Half of 1200 is 600, so 600 liters.', answer: '600', correct: true },
      { text: 'The answer is 600 liters.', answer: '600', correct: true },
    ],
  },
  {
    id: 'g4',
    question: 'Tom runs 5 km a day for 6 days. How far does he run?',
    gold: '5 * 6 = <<5*6=30>>30\n#### 30',
    candidates: [
      { text: '5 * 6 = 30 km.\nThe answer is 30.', answer: '30', correct: true },
      { text: '5 + 6 = 11.\nThe answer is 11.', answer: '11', correct: false },
      { text: 'Not enough information.', answer: null, correct: false },
      { text: 'He runs 30 km.', answer: '30', correct: true },
    ],
  },
  {
    id: 'g5',
    question: 'There are 28 students in 4 teams of equal size. How many students are in each team?',
    gold: '28 / 4 = <<28/4=7>>7\n#### 7',
    candidates: [
      { text: '28 / 4 = 7.\nThe answer is 7.', answer: '7', correct: true },
      { text: '28 * 4 = 112.\nThe answer is 112.', answer: '112', correct: false },
      { text: 'The answer is 7.', answer: '7', correct: true },
      { text: 'The answer is seven', answer: null, correct: false },
    ],
  },
];

const MATH: Case[] = [
  {
    id: 'm1',
    question: 'What is $\\frac{1}{4} + \\frac{1}{4}$?',
    gold: 'We add: $\\frac{1}{4} + \\frac{1}{4} = \\frac{2}{4} = \\boxed{\\frac{1}{2}}$.',
    meta: { level: 'Level 1', type: 'Prealgebra' },
    candidates: [
      { text: 'The sum is $\\frac{2}{4} = \\boxed{\\frac12}$.', answer: '\\frac12', correct: true },
      { text: 'So the sum is $\\boxed{0.5}$.', answer: '0.5', correct: true },
      { text: 'The sum is $\\boxed{\\frac{2}{8}}$.', answer: '\\frac{2}{8}', correct: false },
      { text: 'The sum is one half.', answer: null, correct: false },
    ],
  },
  {
    id: 'm2',
    question: 'Solve $2x - 4 = 10$.',
    gold: '$2x = 14$, so $x = \\boxed{7}$.',
    meta: { level: 'Level 2', type: 'Algebra' },
    candidates: [
      { text: '$x = \\boxed{7}$', answer: '7', correct: true },
      { text: 'Subtracting gives $x = \\boxed{3}$.', answer: '3', correct: false },
      { text: 'Adding 4 gives $2x = 14$, so $\\boxed{7}$.', answer: '7', correct: true },
      { text: 'x is 7.', answer: null, correct: false },
    ],
  },
];

const WORLD: Case[] = [
  {
    id: 'w0',
    question: 'Tom has 12 figs. He buys 3. How many figs does Tom have now?',
    gold: '15',
    candidates: [
      { text: '12, +3 = 15. The answer is 15.', answer: '15', correct: true },
      { text: '12, -3 = 9. The answer is 9.', answer: '9', correct: false },
      { text: '12, +3 = 15.', answer: null, correct: false },
      { text: 'The answer is 15.', answer: '15', correct: true },
    ],
  },
];

const problemsOf = (cases: readonly Case[]): TeacherProblem[] =>
  cases.map(({ id, question, gold, meta }) => ({ id, question, gold, ...(meta ? { meta } : {}) }));

// ---------------------------------------------------------------------------------------------
// The fake teacher: the one place a model is replaced.

interface FakeOptions {
  maxN?: number;
  id?: string;
  /** Called with the 0-based call number before the call answers (tests abort here). */
  onCall?: (call: number) => void;
  /** Throw this (when not undefined) on that call. */
  fail?: (call: number) => unknown;
  /** Reject a call when the signal aborted during it (as web-llm's interrupt does). */
  honorAbort?: boolean;
  loadError?: unknown;
  /** A clock the fake advances by 1000 ms per call. */
  clock?: { t: number };
  /** Override the answer (tests of the completion contract). */
  reply?: (req: TeacherRequest) => TeacherCompletion;
}

class FakeTeacher implements TeacherModel {
  readonly id: string;
  readonly maxN: number;
  readonly calls: TeacherRequest[] = [];
  loads = 0;
  unloads = 0;
  private readonly script: Map<string, Candidate[]>;

  constructor(
    cases: readonly Case[],
    private readonly opts: FakeOptions = {},
  ) {
    this.id = opts.id ?? 'fake-teacher';
    this.maxN = opts.maxN ?? 8;
    this.script = new Map(cases.map((c) => [c.question, c.candidates]));
  }

  load(onProgress?: (p: TeacherLoadProgress) => void): Promise<void> {
    if (this.opts.loadError !== undefined) return Promise.reject(this.opts.loadError);
    onProgress?.({ fraction: 0.5, text: 'Fetching param cache[1/2]' });
    onProgress?.({ fraction: 1, text: 'Finish loading' });
    this.loads++;
    return Promise.resolve();
  }

  async complete(req: TeacherRequest, signal?: AbortSignal): Promise<TeacherCompletion> {
    const call = this.calls.length;
    this.calls.push(structuredClone(req));
    await Promise.resolve();
    this.opts.onCall?.(call);
    const failure = this.opts.fail?.(call);
    if (failure !== undefined) throw failure;
    if (this.opts.honorAbort && signal?.aborted) throw new DOMException('interrupted', 'AbortError');
    if (this.opts.clock) this.opts.clock.t += 1000;
    if (this.opts.reply) return this.opts.reply(req);
    const question = req.messages[req.messages.length - 1]!.content;
    const cands = this.script.get(question);
    if (!cands) throw new Error(`the fake has no script for ${question}`);
    const texts = Array.from({ length: req.n }, (_, j) => cands[(req.seed + j) % cands.length]!.text);
    return { texts, tokens: 10 * req.n, truncated: 0 };
  }

  unload(): Promise<void> {
    this.unloads++;
    return Promise.resolve();
  }
}

const config = (kind: AnswerKind, extra: Partial<TeacherConfig> = {}): TeacherConfig =>
  teacherConfig({ modelId: 'fake-teacher', kind, k: 4, name: `${kind}-teacher`, ...extra });

async function rejection(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

function syncError(f: () => unknown): EngineError {
  try {
    f();
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

/** One run from scratch to the end, with a fresh store and model. */
async function unbroken(cases: Case[], cfg: TeacherConfig, fake: FakeOptions = {}) {
  const model = new FakeTeacher(cases, fake);
  const store = new MemoryTeacherStore();
  const res = await runTeacher({ model, store, runId: 'run', problems: problemsOf(cases), config: cfg });
  return { res, model, store };
}

const candidateOf = (cases: readonly Case[], id: string, text: string): Candidate => {
  const c = cases.find((x) => x.id === id)!.candidates.find((x) => x.text === text);
  if (!c) throw new Error(`"${text}" is no candidate of ${id}`);
  return c;
};

// ---------------------------------------------------------------------------------------------

describe('prompts per dataset kind', () => {
  it('MATH: the \\boxed{} system line, four worked examples as chat turns, the question last', () => {
    const m = buildMessages('math', 'What is $1 + 1$?');
    expect(m).toHaveLength(1 + 2 * 4 + 1);
    expect(m[0]).toEqual({
      role: 'system',
      content: 'Please reason step by step, and put your final answer within \\boxed{}.',
    });
    expect(m.slice(1, -1).map((x) => x.role)).toEqual([
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(m[1]!.content).toBe(FEW_SHOTS.math[0]!.question);
    expect(m[2]!.content).toBe(FEW_SHOTS.math[0]!.rationale);
    expect(m[m.length - 1]).toEqual({ role: 'user', content: 'What is $1 + 1$?' });
  });

  it('GSM8K asks for "The answer is n."; the world for its chain then "The answer is n."', () => {
    expect(SYSTEM_PROMPTS.gsm8k).toContain('"The answer is n."');
    expect(SYSTEM_PROMPTS.arith).toContain('"The answer is n."');
    for (const s of FEW_SHOTS.gsm8k) expect(s.rationale).toMatch(/\nThe answer is \d+\.$/);
    expect(FEW_SHOTS.arith.map((s) => [s.question, s.rationale])).toEqual([
      [
        'Tom has 12 figs. He buys 3. He loses 5. How many figs does Tom have now?',
        '12, +3 = 15, -5 = 10. The answer is 10.',
      ],
      [
        'Ann has 7 pears. She doubles them. She gives 5 to Sam. How many pears does Ann have now?',
        '7, ×2 = 14, -5 = 9. The answer is 9.',
      ],
      [
        'Max has 9 eggs. He finds 6. He triples them. He eats 4. How many eggs does Max have now?',
        '9, +6 = 15, ×3 = 45, -4 = 41. The answer is 41.',
      ],
    ]);
  });

  it('every worked example is judged correct by our answer checking', () => {
    for (const kind of ['math', 'gsm8k', 'arith'] as const)
      for (const s of FEW_SHOTS[kind]) {
        const a = extractAnswer(kind, s.rationale);
        expect(a, `${kind}: ${s.question}`).not.toBeNull();
        expect(answersEqual(kind, a!, s.answer), `${kind}: ${s.question}`).toBe(true);
        expect(isCorrect(kind, s.rationale, s.answer)).toBe(true);
      }
  });

  it('shots and system are options; a shot count out of range is refused', () => {
    expect(buildMessages('gsm8k', 'Q?', { shots: 0 })).toEqual([
      { role: 'system', content: SYSTEM_PROMPTS.gsm8k },
      { role: 'user', content: 'Q?' },
    ]);
    expect(buildMessages('arith', 'Q?', { shots: 1, system: '' })).toEqual([
      { role: 'user', content: FEW_SHOTS.arith[0]!.question },
      { role: 'assistant', content: FEW_SHOTS.arith[0]!.rationale },
      { role: 'user', content: 'Q?' },
    ]);
    const e = syncError(() => buildMessages('math', 'Q?', { shots: 5 }));
    expect(e.code).toBe('BAD_ARGUMENT');
    expect(e.message).toBe('the math prompt has 4 worked examples: choose 0 to 4 of them, not 5.');
  });

  it('the run sends each kind its prompt, with the configured number of shots', async () => {
    for (const [kind, cases] of [
      ['math', MATH],
      ['gsm8k', GSM8K],
      ['arith', WORLD],
    ] as const) {
      const { model } = await unbroken(cases, config(kind, { shots: 2 }));
      expect(model.calls[0]!.messages).toEqual(buildMessages(kind, cases[0]!.question, { shots: 2 }));
      expect(model.calls[0]!.maxTokens).toBe(DEFAULT_MAX_TOKENS[kind]);
    }
  });
});

describe('labels and the dataset written', () => {
  it('GSM8K: every rationale labelled as by hand; the output parses and splits 11 / 9', async () => {
    const { res, model } = await unbroken(GSM8K, config('gsm8k'));
    expect(res.status).toBe('finished');
    // k = 4 in one call of n = 4: each problem gets each of its candidates exactly once
    expect(model.calls.map((c) => c.n)).toEqual([4, 4, 4, 4, 4]);
    for (const p of res.dataset.problems) {
      expect(p.rationales.map((r) => r.text).sort()).toEqual(
        GSM8K.find((c) => c.id === p.id)!
          .candidates.map((c) => c.text)
          .sort(),
      );
      for (const r of p.rationales) {
        const c = candidateOf(GSM8K, p.id, r.text);
        expect({ id: p.id, text: r.text, answer: r.answer, correct: r.correct }).toEqual({
          id: p.id,
          text: c.text,
          answer: c.answer,
          correct: c.correct,
        });
      }
    }
    expect(res.progress).toMatchObject({ done: 5, total: 5, rationales: 20, correct: 11, noAnswer: 4 });

    const parsed = parseDataset(res.jsonl, { kind: 'gsm8k', format: 'ours', name: 'out' });
    expect(parsed.issues).toEqual([]);
    expect(parsed.format).toBe('ours');
    expect(parsed.problems.map((p) => [p.id, p.question, p.gold, p.goldAnswer])).toEqual(
      GSM8K.map((c) => [c.id, c.question, c.gold, c.gold.split('#### ')[1]]),
    );
    for (const [i, p] of parsed.problems.entries())
      expect(p.rationales.map((r) => [r.text, r.answer, r.correct, r.label])).toEqual(
        res.dataset.problems[i]!.rationales.map((r) => [r.text, r.answer, r.correct, r.correct]),
      );
    const { pos, neg } = splitPosNeg(parsed);
    expect([pos.length, neg.length]).toEqual([11, 9]);
    expect(pos.every((r) => candidateOf(GSM8K, r.problem.id, r.rationale.text).correct)).toBe(true);
    expect(neg.every((r) => !candidateOf(GSM8K, r.problem.id, r.rationale.text).correct)).toBe(true);
  });

  it('MATH: \\boxed answers checked by equivalence (\\frac12 ≡ 0.5 ≡ gold 1/2); level and type kept', async () => {
    const { res } = await unbroken(MATH, config('math'));
    for (const p of res.dataset.problems)
      for (const r of p.rationales) {
        const c = candidateOf(MATH, p.id, r.text);
        expect([r.answer, r.correct]).toEqual([c.answer, c.correct]);
      }
    const parsed = parseDataset(res.jsonl, { kind: 'math' });
    expect(parsed.issues).toEqual([]);
    expect(parsed.problems.map((p) => [p.id, p.goldAnswer, p.meta])).toEqual([
      ['m1', '\\frac{1}{2}', { level: 'Level 1', type: 'Prealgebra' }],
      ['m2', '7', { level: 'Level 2', type: 'Algebra' }],
    ]);
    const { pos, neg } = splitPosNeg(parsed);
    expect([pos.length, neg.length]).toEqual([4, 4]);
  });

  it('the world: "The answer is n." read, a chain without it has no answer', async () => {
    const { res } = await unbroken(WORLD, config('arith'));
    const first = JSON.parse(res.jsonl.trim()) as { id: string; gold: string; rationales: unknown[] };
    expect(first.id).toBe('w0');
    expect(first.gold).toBe('15');
    expect(res.dataset.problems[0]!.rationales.map((r) => [r.text, r.answer, r.correct]).sort()).toEqual(
      WORLD[0]!.candidates.map((c) => [c.text, c.answer, c.correct]).sort(),
    );
  });

  it('writes the exact JSON line of our format', async () => {
    const one: Case = { ...WORLD[0]!, candidates: WORLD[0]!.candidates.slice(0, 1) };
    const { res } = await unbroken([one], config('arith', { k: 1, temperature: 0.7 }));
    expect(res.jsonl).toBe(
      '{"id":"w0","question":"Tom has 12 figs. He buys 3. How many figs does Tom have now?","gold":"15",' +
        '"rationales":[{"text":"12, +3 = 15. The answer is 15.","correct":true}]}\n',
    );
  });
});

describe('batching and seeds', () => {
  it('k samples in calls of min(samplesPerCall, k, maxN); one seed per (problem, first sample)', async () => {
    const { model: one } = await unbroken(GSM8K.slice(0, 2), config('gsm8k'), { maxN: 1 });
    expect(one.calls.map((c) => c.n)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    expect(one.calls.map((c) => c.seed)).toEqual(
      ['g1', 'g2'].flatMap((id) => [0, 1, 2, 3].map((s) => callSeed(0, id, s))),
    );
    const { model: three } = await unbroken(GSM8K.slice(0, 1), config('gsm8k', { k: 7 }), { maxN: 3 });
    expect(three.calls.map((c) => [c.n, c.seed])).toEqual([
      [3, callSeed(0, 'g1', 0)],
      [3, callSeed(0, 'g1', 3)],
      [1, callSeed(0, 'g1', 6)],
    ]);
    const { model: cfgLimited } = await unbroken(GSM8K.slice(0, 1), config('gsm8k', { samplesPerCall: 2 }));
    expect(cfgLimited.calls.map((c) => c.n)).toEqual([2, 2]);
    for (const c of [...one.calls, ...three.calls]) {
      expect(Number.isInteger(c.seed) && c.seed >= 0 && c.seed < 2 ** 31).toBe(true);
      expect([c.temperature, c.topP, c.maxTokens]).toEqual([0.7, 1, 512]);
    }
    expect(new Set(one.calls.map((c) => c.seed)).size).toBe(8);
  });

  it('another run seed gives other call seeds', () => {
    expect(callSeed(1, 'g1', 0)).not.toBe(callSeed(0, 'g1', 0));
    expect(callSeed(0, 'g1', 0)).toBe(callSeed(0, 'g1', 0));
  });
});

describe('progress', () => {
  it('done / total, rationales, correct, tokens/s and ETA after every call', async () => {
    const clock = { t: 0 };
    const model = new FakeTeacher(GSM8K, { clock });
    const events: TeacherProgress[] = [];
    const loads: TeacherLoadProgress[] = [];
    const res = await runTeacher({
      model,
      store: new MemoryTeacherStore(),
      runId: 'p',
      problems: problemsOf(GSM8K),
      config: config('gsm8k', { samplesPerCall: 2 }),
      onProgress: (p) => events.push(p),
      onLoadProgress: (p) => loads.push(p),
      now: () => clock.t,
    });
    expect(loads).toEqual([
      { fraction: 0.5, text: 'Fetching param cache[1/2]' },
      { fraction: 1, text: 'Finish loading' },
    ]);
    // initial, then per problem one event after its first call (partial) and one when it is done, then final
    expect(events).toHaveLength(1 + 5 * 2 + 1);
    expect(events[0]).toEqual({
      done: 0,
      total: 5,
      rationales: 0,
      correct: 0,
      noAnswer: 0,
      truncated: 0,
      samplesDone: 0,
      samplesTotal: 20,
      current: 'g1',
      elapsedSeconds: 0,
      tokensPerSecond: null,
      etaSeconds: null,
    });
    // after the first call: 2 samples (20 tokens) in 1 s; 18 samples left at 0.5 s each
    expect(events[1]).toMatchObject({
      done: 0,
      samplesDone: 2,
      current: 'g1',
      elapsedSeconds: 1,
      tokensPerSecond: 20,
      etaSeconds: 9,
    });
    // with two seeded calls per problem a candidate can come twice: count by the hand labels
    const hand = res.dataset.problems.map((p) => p.rationales.map((r) => candidateOf(GSM8K, p.id, r.text)));
    const count = (cs: Candidate[][], f: (c: Candidate) => boolean) => cs.flat().filter(f).length;
    expect(events[2]).toMatchObject({
      done: 1,
      rationales: 4,
      correct: count(hand.slice(0, 1), (c) => c.correct),
      noAnswer: count(hand.slice(0, 1), (c) => c.answer === null),
      samplesDone: 4,
      current: 'g2',
      etaSeconds: 8,
    });
    expect(events.map((e) => e.done)).toEqual([0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
    expect(events[events.length - 1]).toEqual({
      done: 5,
      total: 5,
      rationales: 20,
      correct: count(hand, (c) => c.correct),
      noAnswer: count(hand, (c) => c.answer === null),
      truncated: 0,
      samplesDone: 20,
      samplesTotal: 20,
      current: null,
      elapsedSeconds: 10,
      tokensPerSecond: 20,
      etaSeconds: 0,
    });
    expect(res.progress).toEqual(events[events.length - 1]);
    expect(teacherProgressOf(res.state)).toMatchObject({
      done: 5,
      rationales: 20,
      correct: count(hand, (c) => c.correct),
    });
    expect(count(hand, (c) => c.correct)).toBeGreaterThan(0);
    expect(count(hand, (c) => !c.correct)).toBeGreaterThan(0);
  });

  it('tokens/s is null for a model that reports no token counts', async () => {
    const model = new FakeTeacher(WORLD, {
      reply: (req) => ({ texts: Array(req.n).fill('The answer is 15.') }),
    });
    const events: TeacherProgress[] = [];
    await runTeacher({
      model,
      store: new MemoryTeacherStore(),
      runId: 'x',
      problems: problemsOf(WORLD),
      config: config('arith'),
      onProgress: (p) => events.push(p),
    });
    expect(events.every((e) => e.tokensPerSecond === null)).toBe(true);
    expect(events[events.length - 1]).toMatchObject({ correct: 4, truncated: 0 });
  });

  it('counts rationales the model cut at maxTokens', async () => {
    const model = new FakeTeacher(WORLD, {
      reply: (req) => ({ texts: Array(req.n).fill('12, +3 = 15, +3 = 18, +3 ='), truncated: req.n }),
    });
    const res = await runTeacher({
      model,
      store: new MemoryTeacherStore(),
      runId: 'x',
      problems: problemsOf(WORLD),
      config: config('arith'),
    });
    expect(res.progress).toMatchObject({ rationales: 4, truncated: 4, noAnswer: 4, correct: 0 });
  });
});

describe('cancel and resume', () => {
  const cfg = () => config('gsm8k', { samplesPerCall: 2 }); // two calls per problem, 10 in all

  it('cancel during a call that finishes: the call is kept, the run stops; resuming gives the unbroken dataset', async () => {
    const ref = await unbroken(GSM8K, cfg());
    expect(ref.model.calls).toHaveLength(10);

    const store = new MemoryTeacherStore();
    const ctl = new AbortController();
    const first = new FakeTeacher(GSM8K, { onCall: (c) => c === 4 && ctl.abort() }); // g3's first call
    const part = await runTeacher({
      model: first,
      store,
      runId: 'r',
      problems: problemsOf(GSM8K),
      config: cfg(),
      signal: ctl.signal,
    });
    expect(part.status).toBe('cancelled');
    expect(first.calls).toHaveLength(5);
    expect(part.dataset.problems.map((p) => p.id)).toEqual(['g1', 'g2']);
    expect(part.jsonl).toBe(ref.res.jsonl.split('\n').slice(0, 2).join('\n') + '\n');
    const saved = (await store.load('r'))!;
    expect(saved.records.map((r) => r.index)).toEqual([0, 1]);
    expect(saved.partial).toMatchObject({ index: 2, id: 'g3' });
    expect(saved.partial!.texts).toHaveLength(2);
    expect(teacherProgressOf(saved)).toMatchObject({ done: 2, samplesDone: 10 });

    // "the page reloads": a new model, the saved run, no problems or settings given
    const second = new FakeTeacher(GSM8K);
    const rest = await runTeacher({ model: second, store, runId: 'r' });
    expect(rest.status).toBe('finished');
    expect(rest.jsonl).toBe(ref.res.jsonl);
    expect(rest.dataset).toEqual(ref.res.dataset);
    // no call made twice: the two sessions made exactly the unbroken run's calls
    expect([...first.calls, ...second.calls]).toEqual(ref.model.calls);
  });

  it('cancel that interrupts a call: its texts are dropped, the problem is redone on resume', async () => {
    const ref = await unbroken(GSM8K, cfg());
    const store = new MemoryTeacherStore();
    const ctl = new AbortController();
    const first = new FakeTeacher(GSM8K, { honorAbort: true, onCall: (c) => c === 5 && ctl.abort() }); // g3's second call
    const part = await runTeacher({
      model: first,
      store,
      runId: 'r',
      problems: problemsOf(GSM8K),
      config: cfg(),
      signal: ctl.signal,
    });
    expect(part.status).toBe('cancelled');
    const saved = (await store.load('r'))!;
    expect(saved.records.map((r) => r.id)).toEqual(['g1', 'g2']);
    expect(saved.partial!.texts).toHaveLength(2); // g3's first call was saved, its second was dropped
    const second = new FakeTeacher(GSM8K);
    const rest = await runTeacher({ model: second, store, runId: 'r' });
    expect(rest.jsonl).toBe(ref.res.jsonl);
    expect(second.calls).toEqual(ref.model.calls.slice(5));
  });

  it('a signal aborted before the start writes nothing but the run header', async () => {
    const store = new MemoryTeacherStore();
    const model = new FakeTeacher(GSM8K);
    const res = await runTeacher({
      model,
      store,
      runId: 'r',
      problems: problemsOf(GSM8K),
      config: cfg(),
      signal: AbortSignal.abort(),
    });
    expect(res.status).toBe('cancelled');
    expect(model.calls).toHaveLength(0);
    expect(res.jsonl).toBe('');
    expect((await store.load('r'))!.records).toEqual([]);
  });

  it('cancel and resume many times over gives the unbroken dataset', async () => {
    const ref = await unbroken(GSM8K, config('gsm8k', { samplesPerCall: 1 }), { maxN: 1 });
    const store = new MemoryTeacherStore();
    let sessions = 0;
    let calls = 0;
    for (;;) {
      sessions++;
      if (sessions > 20) throw new Error('the run never finished: resume does not go on where it stopped');
      const ctl = new AbortController();
      const model = new FakeTeacher(GSM8K, { maxN: 1, onCall: (c) => c === 2 && ctl.abort() });
      const res = await runTeacher({
        model,
        store,
        runId: 'r',
        ...(sessions === 1
          ? { problems: problemsOf(GSM8K), config: config('gsm8k', { samplesPerCall: 1 }) }
          : {}),
        signal: ctl.signal,
      });
      calls += model.calls.length;
      if (res.status === 'finished') {
        expect(res.jsonl).toBe(ref.res.jsonl);
        break;
      }
    }
    expect(sessions).toBe(7); // 20 calls, 3 per session
    expect(calls).toBe(20);
  });

  it('a finished run started again makes no call and returns the same dataset', async () => {
    const { res, store } = await unbroken(GSM8K, cfg());
    const model = new FakeTeacher(GSM8K);
    const again = await runTeacher({ model, store, runId: 'run' });
    expect(again.status).toBe('finished');
    expect(model.calls).toHaveLength(0);
    expect(again.jsonl).toBe(res.jsonl);
  });

  it('resuming checks the model, the settings and the problems against the saved run', async () => {
    const { store } = await unbroken(GSM8K, cfg());
    const other = new FakeTeacher(GSM8K, { id: 'Llama-3.2-1B-Instruct-q4f16_1-MLC' });
    const e1 = await rejection(runTeacher({ model: other, store, runId: 'run' }));
    expect(e1.code).toBe('BAD_ARGUMENT');
    expect(e1.message).toContain('was written by fake-teacher: load that model');
    const e2 = await rejection(
      runTeacher({ model: new FakeTeacher(GSM8K), store, runId: 'run', config: config('gsm8k', { k: 8 }) }),
    );
    expect(e2.message).toBe(
      'the saved run "run" has other settings: k (saved 4, now 8), samplesPerCall (saved 2, now 8). ' +
        'Go on with the saved settings, or start a new run under another name.',
    );
    const e3 = await rejection(
      runTeacher({
        model: new FakeTeacher(GSM8K),
        store,
        runId: 'run',
        problems: problemsOf(GSM8K.slice(1)),
      }),
    );
    expect(e3.message).toContain('is for another problem list (5 problems, not 4)');
    const e4 = await rejection(runTeacher({ model: new FakeTeacher(GSM8K), store, runId: 'nothing' }));
    expect(e4.code).toBe('BAD_ARGUMENT');
    expect(e4.message).toContain('there is no saved teacher run "nothing"');
  });
});

describe('model and store errors', () => {
  const cfg = () => config('gsm8k');

  it("device lost mid-run (as web-llm's worker reports it): a DEVICE_LOST EngineError, the finished problems saved, resume completes", async () => {
    const ref = await unbroken(GSM8K, cfg());
    const store = new MemoryTeacherStore();
    const lost =
      'DeviceLostError: The WebGPU device was lost while loading the model. This issue often occurs due to running out of memory (OOM).';
    const failing = new FakeTeacher(GSM8K, { fail: (c) => (c === 3 ? lost : undefined) });
    const e = await rejection(
      runTeacher({ model: failing, store, runId: 'r', problems: problemsOf(GSM8K), config: cfg() }),
    );
    expect(e.code).toBe('DEVICE_LOST');
    expect(e.message).toBe(
      'The GPU stopped while writing rationales for problem "g4" (device lost), most often because it ran out of memory: ' +
        'close other tabs and GPU-heavy programs, or pick a smaller model or a smaller maxTokens. ' +
        '3 of 5 problems are finished and saved; start the run again to go on from there.',
    );
    expect(e.cause).toBe(lost);
    const saved = (await store.load('r'))!;
    expect(saved.records.map((r) => r.id)).toEqual(['g1', 'g2', 'g3']);
    expect(saved.partial).toBeNull();
    const rest = await runTeacher({ model: new FakeTeacher(GSM8K), store, runId: 'r' });
    expect(rest.jsonl).toBe(ref.res.jsonl);
  });

  it('a generation error between the calls of one problem keeps the calls before it', async () => {
    const c2 = config('gsm8k', { samplesPerCall: 2 });
    const ref = await unbroken(GSM8K, c2);
    const store = new MemoryTeacherStore();
    const failing = new FakeTeacher(GSM8K, {
      fail: (c) => (c === 3 ? new Error('tokenizer exploded') : undefined),
    });
    const e = await rejection(
      runTeacher({ model: failing, store, runId: 'r', problems: problemsOf(GSM8K), config: c2 }),
    );
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toBe(
      'fake-teacher failed while writing rationales for problem "g2" (Error: tokenizer exploded). ' +
        '1 of 5 problems are finished and saved; start the run again to go on from there.',
    );
    const saved = (await store.load('r'))!;
    expect(saved.records.map((r) => r.id)).toEqual(['g1']);
    expect(saved.partial).toMatchObject({ index: 1, id: 'g2' });
    expect(saved.partial!.texts).toHaveLength(2);
    const second = new FakeTeacher(GSM8K);
    const rest = await runTeacher({ model: second, store, runId: 'r' });
    expect(rest.jsonl).toBe(ref.res.jsonl);
    expect(second.calls).toEqual(ref.model.calls.slice(3));
  });

  it('a model that returns the wrong number of texts is an error, and nothing of that call is kept', async () => {
    const store = new MemoryTeacherStore();
    const model = new FakeTeacher(GSM8K, { reply: () => ({ texts: ['The answer is 36.'] }) });
    const e = await rejection(
      runTeacher({ model, store, runId: 'r', problems: problemsOf(GSM8K), config: cfg() }),
    );
    expect(e.code).toBe('VALIDATION');
    expect(e.message).toContain('asked for 4 completions, it returned 1');
    expect(await store.load('r')).toMatchObject({ records: [], partial: null });
  });

  it('a load failure is an EngineError and leaves a saved run as it was', async () => {
    const { store } = await unbroken(GSM8K.slice(0, 2), cfg());
    const before = await store.load('run');
    const noGpu = Object.assign(new Error('WebGPU is not supported in your current environment'), {
      name: 'WebGPUNotAvailableError',
    });
    const e = await rejection(
      runTeacher({ model: new FakeTeacher(GSM8K, { loadError: noGpu }), store, runId: 'run' }),
    );
    expect(e.code).toBe('NO_WEBGPU');
    expect(await store.load('run')).toEqual(before);
    const fresh = new MemoryTeacherStore();
    const e2 = await rejection(
      runTeacher({
        model: new FakeTeacher(GSM8K, { loadError: 'Error: ArtifactManifestError: bad manifest' }),
        store: fresh,
        runId: 'new',
        problems: problemsOf(GSM8K),
        config: cfg(),
      }),
    );
    expect(e2.code).toBe('BAD_FILE');
    expect(e2.message).toBe(
      'Loading fake-teacher failed (Error: ArtifactManifestError: bad manifest): reload the page and try again, or pick another model.',
    );
    expect(await fresh.load('new')).toBeNull();
  });

  it('storage full while saving: LIMIT_EXCEEDED, the store holds the last good save, resume completes', async () => {
    const ref = await unbroken(GSM8K, cfg());
    const inner = new MemoryTeacherStore();
    let saves = 0;
    let full = true;
    const store: TeacherStore = {
      load: (id) => inner.load(id),
      delete: (id) => inner.delete(id),
      save: (id, change: TeacherStoreChange) => {
        saves++;
        if (full && saves === 4)
          return Promise.reject(new DOMException('The quota has been exceeded.', 'QuotaExceededError'));
        return inner.save(id, change);
      },
    };
    const e = await rejection(
      runTeacher({
        model: new FakeTeacher(GSM8K),
        store,
        runId: 'r',
        problems: problemsOf(GSM8K),
        config: cfg(),
      }),
    );
    expect(e.code).toBe('LIMIT_EXCEEDED');
    expect(e.message).toBe(
      "The browser's storage is full while saving the run: free space (delete cached models or old runs you do not need) " +
        'and try again. 2 of 5 problems are finished and saved; start the run again to go on from there.',
    );
    expect((await inner.load('r'))!.records.map((r) => r.id)).toEqual(['g1', 'g2']);
    full = false;
    const rest = await runTeacher({ model: new FakeTeacher(GSM8K), store, runId: 'r' });
    expect(rest.jsonl).toBe(ref.res.jsonl);
  });

  it('teacherError maps web-llm and browser failures to codes', () => {
    const ctx = { phase: 'generate' as const, modelId: 'M' };
    const named = (name: string, message: string) => Object.assign(new Error(message), { name });
    const cases: [unknown, string][] = [
      [named('WebGPUNotFoundError', 'Cannot find WebGPU in the environment'), 'NO_WEBGPU'],
      ['ShaderF16SupportError: This model requires WebGPU extension shader-f16', 'FEATURE_MISSING'],
      [named('FeatureSupportError', 'This model requires feature X'), 'FEATURE_MISSING'],
      ['DeviceLostError: The WebGPU device was lost', 'DEVICE_LOST'],
      [new Error('GPUOutOfMemoryError: Out of memory'), 'OUT_OF_MEMORY'],
      [new DOMException('quota', 'QuotaExceededError'), 'LIMIT_EXCEEDED'],
      [named('ContextWindowSizeExceededError', 'Prompt tokens exceed context window size'), 'LIMIT_EXCEEDED'],
      [named('ModelNotFoundError', 'Cannot find model record in appConfig for M'), 'BAD_ARGUMENT'],
      ['SeedTypeError: `seed` should be an integer, but got 1.5', 'BAD_ARGUMENT'],
      [named('RangeError', 'Make sure 0 < top_p <= 1.'), 'BAD_ARGUMENT'],
      [new TypeError('Failed to fetch'), 'TRUNCATED_FILE'],
      [new Error('something odd'), 'VALIDATION'],
      [42, 'VALIDATION'],
      [new EngineError('DISPOSED', 'already'), 'DISPOSED'],
    ];
    expect(cases.map(([e]) => teacherError(e, ctx).code)).toEqual(cases.map(([, code]) => code));
    expect(teacherError(new Error('x'), { phase: 'load', modelId: 'M' }).code).toBe('BAD_FILE');
    expect(
      teacherError(named('ContextWindowSizeExceededError', 'x'), { ...ctx, problemId: 'p7' }).message,
    ).toBe(
      'The prompt for problem "p7" is longer than M\'s context window: use fewer worked examples (shots), or a model with a longer context.',
    );
  });
});

describe('settings, inputs and the store', () => {
  it('teacherConfig fills METHOD.md defaults and refuses bad values', () => {
    expect(teacherConfig({ modelId: 'M', kind: 'math' })).toEqual({
      modelId: 'M',
      kind: 'math',
      k: 4,
      temperature: 0.7,
      topP: 1,
      maxTokens: 1024,
      seed: 0,
      samplesPerCall: 4,
      shots: 4,
      name: 'teacher',
    });
    expect(teacherConfig({ modelId: 'M', kind: 'arith', k: 16 })).toMatchObject({
      maxTokens: 128,
      samplesPerCall: 16,
      shots: 3,
    });
    const bads: [Partial<TeacherConfig>, string][] = [
      [{ k: 0 }, 'rationales per problem (k) must be a whole number from 1 to 1024, not 0.'],
      [{ temperature: 3 }, 'temperature must be from 0 (greedy) to 2; 0.7 is the usual choice, not 3.'],
      [
        { temperature: 0 },
        'with temperature 0 every one of the 4 rationales of a problem is the same text: raise it (0.7).',
      ],
      [{ topP: 0 }, 'top-p must be above 0 and at most 1 (1 = off), not 0.'],
      [{ maxTokens: 2.5 }, 'the longest rationale (maxTokens) must be a whole number ≥ 1, not 2.5.'],
      [{ seed: 0.5 }, 'the seed must be a whole number, not 0.5.'],
      [{ samplesPerCall: 0 }, 'samples per call must be a whole number ≥ 1, not 0.'],
      [{ shots: 9 }, 'the gsm8k prompt has 4 worked examples: use 0 to 4, not 9.'],
      [{ modelId: '' }, 'choose a teacher model (its id is empty).'],
    ];
    for (const [extra, message] of bads) {
      const e = syncError(() => teacherConfig({ modelId: 'M', kind: 'gsm8k', ...extra }));
      expect([e.code, e.message]).toEqual(['BAD_ARGUMENT', message]);
    }
    expect(teacherConfig({ modelId: 'M', kind: 'gsm8k', k: 1, temperature: 0 }).temperature).toBe(0);
  });

  it('refuses problems it could not check: a repeated id, a gold without answer, none at all', async () => {
    const run = (problems: TeacherProblem[]) =>
      rejection(
        runTeacher({
          model: new FakeTeacher(GSM8K),
          store: new MemoryTeacherStore(),
          runId: 'r',
          problems,
          config: config('gsm8k'),
        }),
      );
    const [a, b] = problemsOf(GSM8K);
    expect((await run([a!, { ...b!, id: 'g1' }])).message).toBe(
      'problem 2 has the repeated id "g1": every problem needs its own id.',
    );
    expect((await run([{ ...a!, gold: 'no number here' }])).message).toBe(
      'the gold of problem "g1" ("no number here") has no gsm8k answer, so its rationales could not be checked: fix or drop that problem.',
    );
    expect((await run([])).message).toBe(
      'the dataset has no problems: load one with questions and gold answers.',
    );
    const other = await rejection(
      runTeacher({
        model: new FakeTeacher(GSM8K, { id: 'B' }),
        store: new MemoryTeacherStore(),
        runId: 'r',
        problems: [a!],
        config: config('gsm8k'),
      }),
    );
    expect(other.message).toBe('the settings name the model fake-teacher, but the model given is B.');
  });

  it('problemsFromJsonl reads GSM8K, MATH and MATH-500 lines and reports the rest', () => {
    const gsm = problemsFromJsonl(
      [
        JSON.stringify({ question: 'How many?', answer: '2 + 2 = <<2+2=4>>4\n#### 4' }),
        '',
        '{"question": "Broken"',
        JSON.stringify({ question: 'No gold' }),
        JSON.stringify({ question: 'Bad gold', answer: 'none' }),
      ].join('\n'),
      'gsm8k',
    );
    expect(gsm.problems).toEqual([{ id: 'L1', question: 'How many?', gold: '2 + 2 = <<2+2=4>>4\n#### 4' }]);
    expect(gsm.issues.map((i) => i.line)).toEqual([3, 4, 5]);
    expect(gsm.issues[1]!.message).toBe('no gold ("answer", "solution", "gold" or "ground_truth")');
    const math = problemsFromJsonl(
      [
        JSON.stringify({
          problem: 'Find $x$.',
          solution: 'So $x = \\boxed{3}$.',
          level: 'Level 2',
          type: 'Algebra',
        }),
        JSON.stringify({
          problem: 'Find $y$.',
          solution: 'Thus $\\boxed{\\frac{1}{2}}$.',
          answer: '\\frac{1}{2}',
          subject: 'Algebra',
          level: 1,
          unique_id: 'test/algebra/1.json',
        }),
      ].join('\n'),
      'math',
    );
    expect(math.issues).toEqual([]);
    expect(math.problems).toEqual([
      {
        id: 'L1',
        question: 'Find $x$.',
        gold: 'So $x = \\boxed{3}$.',
        meta: { level: 'Level 2', type: 'Algebra' },
      },
      {
        id: 'test/algebra/1.json',
        question: 'Find $y$.',
        gold: '\\frac{1}{2}',
        meta: { level: '1', subject: 'Algebra' },
      },
    ]);
  });

  it('problemsFromDataset and problemsFromWorld give the run its problems', async () => {
    const ds = parseDataset(
      '{"id":"a","question":"Q1?","gold":"#### 3","level":"2","rationales":[{"text":"The answer is 3.","correct":true}]}\n' +
        '{"question":"Q2?","gold":"5"}\n',
      { kind: 'gsm8k', format: 'auto' },
    );
    expect(problemsFromDataset(ds)).toEqual([
      { id: 'a', question: 'Q1?', gold: '#### 3', meta: { level: '2' } },
      { id: 'L2', question: 'Q2?', gold: '5' },
    ]);
    const world = generateProblems(3, 7);
    const problems = problemsFromWorld(world);
    expect(problems.map((p) => p.id)).toEqual(['w0', 'w1', 'w2']);
    expect(problems.map((p) => [p.question, p.gold])).toEqual(
      world.map((w) => [w.question, String(w.answer)]),
    );
    // the world's own teacher chains run through the whole pipeline: a correct chain is D_pos
    const model = new FakeTeacher([], {
      reply: (req) => ({ texts: Array(req.n).fill(correctChain(world[0]!)) }),
    });
    const res = await runTeacher({
      model,
      store: new MemoryTeacherStore(),
      runId: 'w',
      problems: problems.slice(0, 1),
      config: config('arith'),
    });
    expect(res.dataset.problems[0]!.rationales.map((r) => [r.answer, r.correct])).toEqual(
      Array(4).fill([String(world[0]!.answer), true]),
    );
  });

  it('the in-memory store copies in and out and applies changes as the run expects', async () => {
    const store = new MemoryTeacherStore();
    const header = {
      version: 1 as const,
      runId: 'r',
      config: config('arith'),
      callSize: 4,
      problems: problemsOf(WORLD),
    };
    await store.save('r', { type: 'start', header });
    header.problems[0]!.question = 'changed after saving';
    const s = (await store.load('r'))!;
    expect(s.header.problems[0]!.question).toBe(WORLD[0]!.question);
    s.records.push({ index: 9, id: 'x', rationales: [], tokens: 0, truncated: 0 });
    expect((await store.load('r'))!.records).toEqual([]);
    const rec = (index: number, id: string) => ({ index, id, rationales: [], tokens: index, truncated: 0 });
    let st = applyStoreChange(null, { type: 'start', header });
    st = applyStoreChange(st, {
      type: 'partial',
      partial: { index: 1, id: 'b', texts: ['t'], tokens: 1, truncated: 0 },
    });
    st = applyStoreChange(st, { type: 'problem', record: rec(1, 'b') });
    st = applyStoreChange(st, { type: 'problem', record: rec(0, 'a') });
    st = applyStoreChange(st, { type: 'problem', record: rec(1, 'b') });
    expect(st.records.map((r) => r.index)).toEqual([0, 1]);
    expect(st.partial).toBeNull();
    expect(() => applyStoreChange(null, { type: 'problem', record: rec(0, 'a') })).toThrow(
      /before the run's start/,
    );
    await store.delete('r');
    expect(await store.load('r')).toBeNull();
  });

  it('a saved run this version cannot read is refused, not overwritten', async () => {
    const store = new MemoryTeacherStore();
    await store.save('r', { type: 'start', header: { version: 2 } as never });
    const e = await rejection(runTeacher({ model: new FakeTeacher(GSM8K), store, runId: 'r' }));
    expect([e.code, e.message]).toEqual([
      'BAD_FILE',
      'the saved teacher run "r" is not one this version of dust2gold can read: delete it and start again.',
    ]);
  });
});
