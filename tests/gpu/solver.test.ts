// The Solve engine on the built-in arithmetic student (Node, Dawn): m samples of one question in one
// batch, streamed; answers extracted, ranker scores in (0, 1), votes; reproducible by seed and the
// same text as eval.ts `solve`; Stop ends a run cleanly; adapters for another model are refused
// with SHAPE_MISMATCH and the previous student stays usable. The built-in adapters are development
// copies (a few steps): nothing here asserts accuracy, only structure.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { readLoraSafetensors, writeLoraSafetensors } from '../../src/engine/io/checkpoint.ts';
import { extractAnswer } from '../../src/method/answers/index.ts';
import { StudentRuntime } from '../../src/method/api/runtime.ts';
import {
  SolverEngine,
  summarizeVotes,
  type SolveEvent,
  type SolveRequest,
} from '../../src/method/api/solver.ts';
import { loadStudent, solve } from '../../src/method/eval.ts';
import { readStageFiles } from '../../src/method/stages/files.ts';
import { generateProblems } from '../../src/method/world/index.ts';

function bytes(path: string): ArrayBuffer {
  const b = readFileSync(new URL(`../../${path}`, import.meta.url));
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
}

/** A built-in adapter set's files, by name (as adapters-store's `adapterFiles` gives them). */
function adapterSet(dir: string): Record<string, ArrayBuffer> {
  const base = `public/models/adapters/${dir}`;
  const out: Record<string, ArrayBuffer> = {};
  for (const f of readdirSync(new URL(`../../${base}`, import.meta.url))) out[f] = bytes(`${base}/${f}`);
  return out;
}

const problem = generateProblems(3, 5)[2]!;
const base: SolveRequest = {
  question: problem.question,
  kind: 'arith',
  gold: String(problem.answer),
  m: 4,
  temperature: 0.7,
  seed: 11,
  maxNew: 90,
};

/** Runs a request and collects every streamed event. */
async function run(solver: SolverEngine, req: SolveRequest, onBatch?: (n: number) => void) {
  const events: SolveEvent[] = [];
  let batches = 0;
  const result = await solver.solve(req, (evs) => {
    events.push(...evs);
    onBatch?.(++batches);
  });
  return { result, events };
}

describe('SolverEngine on arith-student', () => {
  let rt: StudentRuntime;
  let solver: SolverEngine;
  beforeAll(async () => {
    rt = await StudentRuntime.open(await nodeGpu());
    solver = new SolverEngine(rt);
    await solver.init();
    const info = await solver.load({
      modelBytes: bytes('public/models/arith-student.safetensors'),
      tokenizerJson: JSON.parse(readFileSync('public/models/arith-student.tokenizer.json', 'utf8')),
      name: 'arith-student',
    });
    expect(info.config.dim).toBe(64);
  }, 120_000);
  afterAll(() => solver?.dispose());

  it('m samples in one batch: streamed text, answers, ranker scores in (0, 1), votes', async () => {
    expect(await solver.setStudent(adapterSet('kd'), 'KD')).toEqual({
      name: 'KD',
      stage: 'kd',
      kind: 'lora',
    });
    expect(await solver.setRanker(adapterSet('rank'), 'ranker')).toBe('ranker');
    const { result, events } = await run(solver, base);
    expect(result.samples).toHaveLength(4);
    expect(result.student).toBe('KD');
    expect(result.ranker).toBe('ranker');
    for (let s = 0; s < 4; s++) {
      const sample = result.samples[s]!;
      // the streamed pieces add up to the final text
      const streamed = events
        .filter((e): e is Extract<SolveEvent, { type: 'text' }> => e.type === 'text' && e.seq === s)
        .map((e) => e.text)
        .join('');
      expect(streamed).toBe(sample.text);
      expect(sample.text.length).toBeGreaterThan(0);
      expect(sample.answer).toBe(extractAnswer('arith', sample.text));
      expect(sample.correct).toBe(sample.answer === base.gold);
      expect(['stop', 'length']).toContain(sample.reason);
      expect(sample.tokens).toBeLessThanOrEqual(90);
      expect(sample.score).toBeGreaterThan(0);
      expect(sample.score).toBeLessThan(1);
      // one done event, then its score event after it
      const done = events.findIndex((e) => e.type === 'done' && e.seq === s);
      const score = events.findIndex((e) => e.type === 'score' && e.seq === s);
      expect(done).toBeGreaterThanOrEqual(0);
      expect(score).toBeGreaterThan(done);
    }
    const last = events.filter((e) => e.type === 'votes').at(-1);
    expect(last?.type === 'votes' && last.votes).toEqual(result.votes);
    const v = result.votes;
    expect([v.done, v.m, v.scored]).toEqual([4, 4, 4]);
    expect(v.tallies.reduce((n, t) => n + t.count, 0) + v.abstained).toBe(4);
    expect(v.final).toBe(v.asc);
    expect(result.tokens).toBe(result.samples.reduce((n, x) => n + x.tokens, 0));
    expect(result.tokensPerSecond).toBeGreaterThan(0);
    expect(result.stopped).toBe(false);
  }, 120_000);

  it('is reproducible by seed and gives the same text as eval.ts solve', async () => {
    await solver.setStudent(adapterSet('kd'), 'KD');
    const a = await run(solver, base);
    const b = await run(solver, base);
    expect(b.result.samples.map((s) => s.text)).toEqual(a.result.samples.map((s) => s.text));
    const { stage, adapters } = readStageFiles(adapterSet('kd'));
    const student = loadStudent(rt.model, adapters, stage);
    try {
      // eval.ts counts positions: its maxNew 89 lets 90 new tokens through, our maxNew 90 too
      const texts = await solve(rt.model, student, rt.tokenizer, Array(4).fill(base.question) as string[], {
        maxNew: 89,
        batch: 4,
        temperature: 0.7,
        seed: 11,
      });
      expect(a.result.samples.map((s) => s.text)).toEqual(texts);
      // greedy, m = 1
      const g = await run(solver, { ...base, m: 1, temperature: 0 });
      const greedy = await solve(rt.model, student, rt.tokenizer, [base.question], { maxNew: 89, batch: 1 });
      expect(g.result.samples[0]!.text).toBe(greedy[0]);
    } finally {
      student.destroy();
    }
  }, 120_000);

  it('without a ranker: no scores, ASC votes like SC', async () => {
    expect(await solver.setRanker(null)).toBeNull();
    const { result, events } = await run(solver, { ...base, seed: 3 });
    expect(events.some((e) => e.type === 'score')).toBe(false);
    expect(result.samples.every((s) => s.score === null)).toBe(true);
    expect(result.votes.scored).toBe(0);
    expect(result.votes.asc).toBe(result.votes.sc);
    expect(result.votes.flipped).toBe(false);
    expect(result.ranker).toBeNull();
  }, 120_000);

  it('stop() ends the run cleanly and the engine is usable again', async () => {
    await solver.setStudent(null);
    const { result } = await run(solver, { ...base, m: 3, maxNew: 150, temperature: 1.2 }, (n) => {
      if (n === 2) solver.stop();
    });
    expect(result.stopped).toBe(true);
    expect(result.samples).toHaveLength(3);
    expect(result.samples.some((s) => s.reason === 'stopped')).toBe(true);
    expect(result.votes.done).toBe(3);
    const again = await run(solver, { ...base, m: 2 });
    expect(again.result.stopped).toBe(false);
    expect(again.result.samples).toHaveLength(2);
  }, 120_000);

  it('adapters for another model: SHAPE_MISMATCH, and the previous student is still used', async () => {
    await solver.setStudent(adapterSet('kd'), 'KD');
    const before = await run(solver, base);
    const kd = adapterSet('kd');
    const state = readLoraSafetensors(kd['lora.safetensors']!);
    const other = writeLoraSafetensors({ ...state, model: { ...state.model, dim: 128 } });
    const bad = { ...kd, 'lora.safetensors': other.buffer.slice(0) as ArrayBuffer };
    const err = await solver.setStudent(bad, 'for another model').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineError);
    expect((err as EngineError).code).toBe('SHAPE_MISMATCH');
    expect((err as EngineError).message).toMatch(
      /"for another model" was trained for another model \(dim 128, this model has 64\)/,
    );
    const after = await run(solver, base);
    expect(after.result.student).toBe('KD');
    expect(after.result.samples.map((s) => s.text)).toEqual(before.result.samples.map((s) => s.text));
    // a set with no student (the ranker's) and a ranker set with no ranker: clear messages
    await expect(solver.setStudent(adapterSet('rank'), 'ranker')).rejects.toThrow(/holds no student/);
    await expect(solver.setRanker(adapterSet('kd'), 'KD')).rejects.toThrow(/holds no ranker/);
  }, 120_000);

  it('a question the tokenizer cannot read, and bad settings: BAD_ARGUMENT with what to do', async () => {
    expect(solver.unreadable('Tom has $5 (and 50%).')).toEqual(['$', '(', '%', ')']);
    await expect(run(solver, { ...base, question: 'Tom has $5.' })).rejects.toThrow(
      /cannot read "\$" in this question/,
    );
    await expect(run(solver, { ...base, m: 33 })).rejects.toThrow(/from 1 to 32/);
    await expect(run(solver, { ...base, question: '  ' })).rejects.toThrow(/Type or pick a question/);
  }, 60_000);
});

describe('summarizeVotes', () => {
  it('ASC flips the majority when the minority scores high; early stopping and abstentions', () => {
    const samples = [
      { answer: '3', score: 0.01 },
      { answer: '5', score: 0.9 },
      { answer: '3', score: 0.01 },
      { answer: null, score: 0.5 },
      { answer: '5', score: 0.9 },
      { answer: '3', score: 0.01 },
      null, // not finished yet
    ];
    const v = summarizeVotes(samples, 'arith', '5');
    expect([v.done, v.m, v.abstained, v.scored]).toEqual([6, 7, 1, 6]);
    expect(v.tallies.map((t) => [t.answer, t.count, t.correct])).toEqual([
      ['3', 3, false],
      ['5', 2, true],
    ]);
    expect(v.tallies[0]!.asc).toBeCloseTo(3.03, 12);
    expect(v.tallies[1]!.asc).toBeCloseTo(3.8, 12);
    expect(v.tallies[1]!.ws).toBeCloseTo(1.8, 12);
    expect([v.sc, v.ws, v.asc, v.final, v.flipped]).toEqual(['3', '5', '5', '5', true]);
    expect(v.early).toMatchObject({ stopAt: 6, fired: false });
    const same = summarizeVotes(
      ['7', '7', '7', '7', '7'].map((answer) => ({ answer })),
      'arith',
      null,
    );
    expect(same.early).toMatchObject({ stopAt: 4, answer: '7', fired: true });
    expect(same.tallies[0]!.correct).toBeNull();
    expect(summarizeVotes([null, null], 'arith', '1')).toMatchObject({ done: 0, final: null, early: null });
  });
});
