// Compare's engine (src/method/api/evaluator.ts) with a GGUF student (Node, Dawn): stories260K
// written to GGUF by our writer, with llama2.c's tok512 vocabulary as its SentencePiece tokenizer.
// The evaluator plans it for batch × context (f16 KV cache, as the plan counts), loads it with
// progress through the same runtime as Solve, and evaluates GSM8K problems greedily: each answer
// equals the one decoded alone (one sequence, the same f16 KV cache and positions) and accuracy is
// GSM8K's checker over those texts. Refusals are typed and leave the loaded model as it was: a plan
// over the budget, a batch over the plan, a prompt longer than the planned context, a set made for
// another model; a cancelled load.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { generate } from '../../src/engine/infer/generate.ts';
import { LlamaRunner } from '../../src/engine/infer/runner.ts';
import { EvalEngine, type EvalProblem, type EvalSet } from '../../src/method/api/evaluator.ts';
import { StudentRuntime, type LoadProgress } from '../../src/method/api/runtime.ts';
import { parseDataset } from '../../src/method/datasets/index.ts';
import { accuracyOf } from '../../src/method/eval.ts';
import { promptOf } from '../../src/method/stages/text.ts';
import { stories260KGguf } from '../helpers/stories-gguf.ts';

const F32 = stories260KGguf('F32');
const Q8 = stories260KGguf('Q8_0');
const file = (b: Uint8Array<ArrayBuffer>, name: string) => new File([b], name);
const base: EvalSet = { id: 'base', name: 'base', files: {} };

// six short GSM8K test questions (the shortest of the first 40, in file order), as the app ships them
const gsm8k = parseDataset(readFileSync('public/data/gsm8k/example_model_solutions.jsonl', 'utf8'), {
  kind: 'gsm8k',
  name: 'gsm8k',
});
const short = gsm8k.problems
  .slice(0, 40)
  .map((p) => p.question.length)
  .sort((a, b) => a - b)[5]!;
const problems: EvalProblem[] = gsm8k.problems
  .slice(0, 40)
  .filter((p) => p.question.length <= short)
  .slice(0, 6)
  .map((p) => ({ question: p.question, gold: p.goldAnswer, kind: 'gsm8k' }));
const MAX_NEW = 24;

/** A built-in adapter set's files (made for arith-student). */
function builtinSet(stage: string): Record<string, ArrayBuffer> {
  const dir = `public/models/adapters/${stage}`;
  return Object.fromEntries(
    readdirSync(dir).map((f) => {
      const b = readFileSync(`${dir}/${f}`);
      return [f, b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer];
    }),
  );
}

async function engineError(p: Promise<unknown>): Promise<EngineError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof EngineError) return e;
    throw e;
  }
  throw new Error('expected an EngineError');
}

/** One question decoded alone: greedy, f16 KV, `maxT` positions; the text after the prompt. */
async function alone(rt: StudentRuntime, question: string, maxT: number): Promise<string> {
  const tok = rt.tokenizer;
  const prompt = tok.encode(promptOf(question), true, false);
  const runner = new LlamaRunner(rt.model, { slots: 1, maxT, kv: 'f16' });
  try {
    const r = await generate(runner, tok, [prompt], {
      steps: maxT,
      temperature: 0,
      topp: 1,
      seed: 1,
      stopTokens: [tok.eos, tok.bos],
    });
    let prev = prompt.at(-1)!;
    const bytes: number[] = [];
    for (const t of r.tokens[0]!.slice(prompt.length - 1)) {
      bytes.push(...tok.decodeBytes(prev, t));
      prev = t;
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  } finally {
    runner.destroy();
  }
}

describe('EvalEngine with a GGUF student (stories260K)', () => {
  const engine = new EvalEngine();
  let rt: StudentRuntime; // the reference decodes run outside the engine
  beforeAll(async () => {
    const gpu = await nodeGpu();
    await engine.init(gpu);
    rt = await StudentRuntime.open(gpu);
    await rt.load({ gguf: file(F32, 'ref.gguf'), plan: { sequences: 1, context: 512 } });
  });
  afterAll(() => {
    engine.destroy();
    rt?.destroy();
  });

  it('plans batch 16 × 512 (f16 KV by hand), loads with progress, reads $ % \\ through byte fallback', async () => {
    const src = { gguf: file(F32, 'stories260K.gguf'), key: 'k1', name: 'stories260K' };
    const seen = await engine.inspect({ ...src, plan: { sequences: 16, context: 512 } });
    const p = seen.plan;
    expect([p.sequences, p.context, p.kv, p.verdict]).toEqual([16, 512, 'f16', 'ok']);
    expect(p.items.kv).toBe(2 * 5 * 16 * 512 * 32 * 2); // k and v · layers · batch · positions · kvDim · 2 B
    expect(engine.modelInfo).toBe(null); // planning loads nothing

    const progress: LoadProgress[] = [];
    const info = await engine.load({ ...src, plan: { sequences: 16, context: 512 } }, (q) =>
      progress.push(q),
    );
    expect(info).toMatchObject({
      name: 'stories260K',
      format: 'gguf',
      key: 'k1',
      limits: { sequences: 16, context: 512 },
    });
    expect(progress.at(-1)!.bytesDone).toBe(seen.facts.dataBytes);
    expect(engine.modelInfo?.key).toBe('k1');
    expect(engine.unreadable('Janet pays $2, 50% off, \\frac{1}{2}')).toEqual([]);
  }, 120_000);

  it('evaluate: each GSM8K answer = the question decoded alone; accuracy = GSM8K checking of the texts', async () => {
    const tok = rt.tokenizer;
    const longest = Math.max(...problems.map((q) => tok.encode(promptOf(q.question), true, false).length));
    expect(longest + MAX_NEW).toBeLessThanOrEqual(512);
    const fractions: number[] = [];
    // two batches of 4 (the engine was loaded for 16: a smaller batch is fine)
    const r = await engine.evaluate({ sets: [base], problems, maxNew: MAX_NEW, batch: 4 }, (q) =>
      fractions.push(q.fraction),
    );
    expect(r.cancelled).toBe(false);
    expect(fractions.at(-1)).toBe(1);
    const got = r.sets[0]!;
    expect(problems.length).toBe(6);
    expect(fractions).toEqual([0, 4 / 6, 1]);
    expect([got.id, got.kind, got.n]).toEqual(['base', 'base', 6]);
    for (const [i, q] of problems.entries())
      expect(got.texts[i], `problem ${i + 1}`).toBe(await alone(rt, q.question, longest + MAX_NEW));
    expect(got.texts.every((t) => t.length > 0)).toBe(true);
    const a = accuracyOf(
      'gsm8k',
      got.texts,
      problems.map((q) => q.gold),
    );
    expect([got.solved, got.correct, got.accuracy, got.ci95]).toEqual([
      a.solved,
      a.correct,
      a.accuracy,
      a.ci95,
    ]);
  }, 300_000);

  it('refusals: a batch over the plan, a set made for another model; the model stays', async () => {
    const over = await engineError(engine.evaluate({ sets: [base], problems, maxNew: 8, batch: 17 }));
    expect(over.code).toBe('BAD_ARGUMENT');
    expect(over.message).toMatch(/^stories260K was loaded here for batches of at most 16 sequences/);
    const kd = builtinSet('kd');
    expect(engine.fits(kd, 'KD')).toMatch(
      /^"KD" was trained for another model \(\w+ \d+, this model has \d+\)\.$/,
    );
    const misfit = await engineError(
      engine.evaluate({
        sets: [base, { id: 'kd', name: 'KD', files: kd }],
        problems: problems.slice(0, 1),
        maxNew: 4,
        batch: 16,
      }),
    );
    expect(misfit.code).toBe('SHAPE_MISMATCH');
    expect(misfit.message).toMatch(
      /^"KD" was trained for another model .*Leave it out of the students to compare/,
    );
    expect(engine.modelInfo?.key).toBe('k1');
  }, 120_000);

  it('a plan over the budget is refused with its suggestion, a cancelled load too: the model stays', async () => {
    const tiny = { sequences: 16, context: 512, memoryBudget: 2 * 2 ** 20 };
    const seen = await engine.inspect({ gguf: file(F32, 'b.gguf'), plan: tiny });
    expect(seen.plan.verdict).toBe('refused');
    expect(seen.plan.error?.code).toBe('OUT_OF_MEMORY');
    expect(seen.plan.suggestions.length).toBeGreaterThan(0);
    const oom = await engineError(engine.load({ gguf: file(F32, 'b.gguf'), key: 'b', plan: tiny }));
    expect(oom.code).toBe('OUT_OF_MEMORY');
    expect(oom.message).toMatch(/To fit: /);
    expect(engine.modelInfo?.key).toBe('k1');

    let calls = 0;
    const cancelled = engine.load(
      { gguf: file(Q8, 'q8.gguf'), key: 'q8', plan: { sequences: 1, context: 32 } },
      (q) => {
        if (++calls === 3 && q.bytesDone > 0) engine.cancelLoad();
      },
    );
    await expect(cancelled).rejects.toMatchObject({ name: 'AbortError' });
    expect(engine.modelInfo?.key).toBe('k1'); // (that nothing of it stays: tests/gpu/runtime-gguf.test.ts)
  }, 120_000);

  it('a prompt longer than the planned context is refused, naming the problem; unload frees the model', async () => {
    await engine.load({
      gguf: file(F32, 's.gguf'),
      key: 'short',
      name: 'short',
      plan: { sequences: 4, context: 32 },
    });
    const long = await engineError(engine.evaluate({ sets: [base], problems, maxNew: 8, batch: 4 }));
    expect(long.code).toBe('BAD_ARGUMENT');
    expect(long.message).toMatch(
      /^Problem \d+ takes \d+ tokens with its prompt, and the model reads at most 32 positions here \(the context it was planned for\)/,
    );
    await engine.unload();
    expect(engine.modelInfo).toBe(null);
  }, 120_000);
});
