// The Compare view's engine (src/method/api/evaluator.ts) on the built-in student and the built-in
// adapter sets: evaluate = repro's solve + accuracyOf, Table 1 adds up, and the token KL heat map
// equals a float64 CPU reference and the β that NCE's objective computes for the same sequence.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tape } from '../../src/engine/autograd/tape.ts';
import { CpuBackend } from '../../src/engine/backend/cpu.ts';
import { EngineError } from '../../src/engine/errors.ts';
import { nodeGpu } from '../../src/engine/gpu/node.ts';
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import { readLlamaSafetensors } from '../../src/engine/io/checkpoint.ts';
import { loadLlama } from '../../src/engine/model/llama.ts';
import { llamaForward, loraHook } from '../../src/engine/train/forward.ts';
import { natHook } from '../../src/engine/train/nat.ts';
import { nceObjective } from '../../src/engine/train/objectives.ts';
import { packBatch, uploadBatch } from '../../src/engine/train/trainer.ts';
import { loadLora } from '../../src/engine/model/lora.ts';
import { loadNatUnit } from '../../src/engine/model/nat.ts';
import { StudentRuntime } from '../../src/method/api/runtime.ts';
import {
  EvalEngine,
  table1Of,
  tokenKl,
  type EvalProblem,
  type EvalSet,
  type KlMap,
} from '../../src/method/api/evaluator.ts';
import { accuracyOf, loadStudent, solve } from '../../src/method/eval.ts';
import { heldOutSplit, parseDataset } from '../../src/method/datasets/index.ts';
import { worldDatasetJsonl } from '../../src/app/lib/builtin-data.ts';
import { readStageFiles } from '../../src/method/stages/files.ts';
import { encodeExample } from '../../src/method/stages/text.ts';

const MODEL = 'public/models/arith-student.safetensors';
const TOKENIZER = 'public/models/arith-student.tokenizer.json';
const buf = (p: string) => {
  const b = readFileSync(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
/** A built-in adapter set's files, as the app's adapter store hands them to the worker. */
function setFiles(stage: string): Record<string, ArrayBuffer> {
  const dir = `public/models/adapters/${stage}`;
  return Object.fromEntries(readdirSync(dir).map((f) => [f, buf(`${dir}/${f}`)]));
}
const set = (stage: string): EvalSet => ({ id: `builtin-${stage}`, name: stage, files: setFiles(stage) });
const base: EvalSet = { id: 'base', name: 'base', files: {} };
const tokenizerJson = JSON.parse(readFileSync(TOKENIZER, 'utf8')) as unknown;

// the held-out split of the app's world dataset, as repro takes it
const ds = parseDataset(worldDatasetJsonl({ n: 120, seed: 1 }), { kind: 'arith', name: 'world' });
const { heldOut } = heldOutSplit(ds, { fraction: 0.2, seed: 0 });
const problems: EvalProblem[] = heldOut.problems
  .slice(0, 4)
  .map((p) => ({ question: p.question, gold: p.goldAnswer, kind: 'arith' }));
const withRight = heldOut.problems.filter((p) => p.rationales.some((r) => r.correct));
const MAX_NEW = 56;

describe('EvalEngine on the built-in student', () => {
  const engine = new EvalEngine();
  let rt: StudentRuntime; // a second runtime: the reference computations run outside the engine
  beforeAll(async () => {
    const gpu = await nodeGpu();
    await engine.init(gpu);
    await engine.load({ modelBytes: buf(MODEL), tokenizerJson, name: 'arith-student' });
    rt = await StudentRuntime.open(gpu);
    await rt.load({ modelBytes: buf(MODEL), tokenizerJson, name: 'arith-student' });
  });
  afterAll(() => {
    engine.destroy();
    rt?.destroy();
  });

  it('has held-out problems to work on', () => {
    expect(problems.length).toBe(4);
    expect(withRight.length).toBeGreaterThan(0);
  });

  it('evaluate = solve + accuracyOf (as repro) for each set, with progress to the end', async () => {
    const sets = [base, set('kd'), set('neg'), set('nat')];
    const seen: number[] = [];
    const r = await engine.evaluate({ sets, problems, maxNew: MAX_NEW, batch: 16 }, (p) =>
      seen.push(p.fraction),
    );
    expect(r.cancelled).toBe(false);
    expect(r.sets.map((s) => s.id)).toEqual(['base', 'builtin-kd', 'builtin-neg', 'builtin-nat']);
    expect(r.sets.map((s) => s.kind)).toEqual(['base', 'lora', 'lora', 'nat']);
    expect(seen.at(-1)).toBe(1);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThanOrEqual(seen[i - 1]!);
    for (const [i, s] of sets.entries()) {
      const { adapters, stage } = readStageFiles(s.files);
      const student = loadStudent(rt.model, adapters, stage);
      const texts = await solve(
        rt.model,
        student,
        rt.tokenizer,
        problems.map((p) => p.question),
        { maxNew: MAX_NEW, batch: 16 },
      );
      student.destroy();
      const a = accuracyOf(
        'arith',
        texts,
        problems.map((p) => p.gold),
      );
      const got = r.sets[i]!;
      expect(got.texts, s.name).toEqual(texts);
      expect(got.solved, s.name).toEqual(a.solved);
      expect([got.n, got.correct, got.accuracy], s.name).toEqual([a.n, a.correct, a.accuracy]);
      expect(got.ci95, s.name).toEqual(a.ci95);
    }
    // Table 1 over these students: the counts add up and match repro's definitions
    const [P, N, A] = [r.sets[1]!.solved, r.sets[2]!.solved, r.sets[3]!.solved];
    const t = engine.table1(P, N, A);
    const count = (f: (i: number) => boolean) => problems.filter((_, i) => f(i)).length;
    expect(t.pos).toBe(count((i) => P[i]!));
    expect(t.neg).toBe(count((i) => N[i]!));
    expect(t.both).toBe(count((i) => P[i]! && N[i]!));
    expect(t.union).toBe(t.pos + t.neg - t.both);
    expect(t.nat).toBe(count((i) => A[i]!));
    expect(Object.values(t.regions).reduce((a, b) => a + b, 0)).toBe(problems.length);
  }, 600_000);

  it('Table 1 of a hand-made case: every region and IoU exactly', () => {
    const T = true,
      F = false;
    const t = table1Of([T, T, F, F, T, T, F, F], [T, F, T, F, T, F, T, F], [F, T, T, F, T, F, F, T]);
    expect(t.regions).toEqual({ p: 1, n: 1, a: 1, pn: 1, pa: 1, na: 1, pna: 1, none: 1 });
    expect([t.pos, t.neg, t.both, t.union, t.nat, t.nat_and_neg_only, t.total]).toEqual([
      4, 4, 2, 6, 4, 1, 8,
    ]);
    expect(t.iou).toBe(2 / 6);
    expect(table1Of([], [], []).iou).toBe(0);
    expect(() => table1Of([T], [T, F], [T])).toThrow(EngineError);
  });

  describe('KL heat map', () => {
    const p = withRight[0]!;
    const question = p.question;
    const rationale = p.rationales.find((r) => r.correct)!.text;
    const natFiles = setFiles('nat');
    let gpuMap: KlMap;
    beforeAll(async () => {
      gpuMap = await engine.klMap({ natFiles, question, rationale });
    });

    it('has one token per rationale character plus EOS, KL ≥ 0, β = tanh(mean KL)', () => {
      expect(gpuMap.tokens.length).toBe([...rationale].length + 1);
      expect(
        gpuMap.tokens
          .filter((t) => !t.eos)
          .map((t) => t.text)
          .join(''),
      ).toBe(rationale);
      expect(gpuMap.tokens.at(-1)!.eos).toBe(true);
      for (const t of gpuMap.tokens) expect(t.kl).toBeGreaterThanOrEqual(0);
      const mean = gpuMap.tokens.reduce((s, t) => s + t.kl, 0) / gpuMap.tokens.length;
      expect(Math.abs(gpuMap.meanKl - mean)).toBeLessThan(1e-9);
      expect(Math.abs(gpuMap.beta - Math.tanh(mean))).toBeLessThan(1e-6);
      expect(gpuMap.maxKl).toBe(Math.max(...gpuMap.tokens.map((t) => t.kl)));
      // the adapters differ, so the two models disagree somewhere
      expect(gpuMap.maxKl).toBeGreaterThan(0);
    });

    it('equals a float64 CPU reference (CpuBackend forwards, KL summed in TS) per token', async () => {
      const cpu = new CpuBackend('f64');
      const { config, weights } = readLlamaSafetensors(buf(MODEL), 'arith-student');
      const model = loadLlama(cpu, config, weights);
      const tok = CharTokenizer.fromJSON(tokenizerJson);
      const { adapters, stage } = readStageFiles(natFiles);
      const ex = encodeExample(tok, question, rationale);
      const T = ex.tokens.length - 1;
      const V = config.vocabSize;
      const pk = packBatch([ex], T, 1);
      const tape = new Tape(cpu);
      const nat = loadStudent(model, adapters, stage);
      const neg = loadStudent(model, { lora: adapters.neg! });
      const b = uploadBatch(tape, pk);
      const zT = await cpu.read(llamaForward(tape, model, b, nat.hook(tape)).t);
      const zN = await cpu.read(llamaForward(tape, model, b, neg.hook(tape)).t);
      const logSoftmax = (z: Float32Array, t: number) => {
        let mx = -Infinity;
        for (let v = 0; v < V; v++) mx = Math.max(mx, z[t * V + v]!);
        let s = 0;
        for (let v = 0; v < V; v++) s += Math.exp(z[t * V + v]! - mx);
        const lse = mx + Math.log(s);
        return Array.from({ length: V }, (_, v) => z[t * V + v]! - lse);
      };
      const ref: number[] = [];
      for (let t = 0; t < T; t++) {
        if (pk.weights[t] === 0) continue;
        const lN = logSoftmax(zN, t),
          lT = logSoftmax(zT, t);
        let kl = 0;
        for (let v = 0; v < V; v++) kl += Math.exp(lN[v]!) * (lN[v]! - lT[v]!);
        ref.push(kl);
      }
      expect(gpuMap.tokens.length).toBe(ref.length);
      // GPU float32 through 4 layers and two adapter paths vs float64: |Δ| ≤ 1e-4 + 1e-3·KL
      let worst = 0;
      gpuMap.tokens.forEach((t, i) => {
        const err = Math.abs(t.kl - ref[i]!);
        worst = Math.max(worst, err / (1e-4 + 1e-3 * ref[i]!));
        expect(err, `token ${i}`).toBeLessThanOrEqual(1e-4 + 1e-3 * ref[i]!);
      });
      const refBeta = Math.tanh(ref.reduce((a, c) => a + c, 0) / ref.length);
      expect(Math.abs(gpuMap.beta - refBeta)).toBeLessThan(1e-4);
      // the same engine function on the CPU backend (f32 references) agrees too
      const onCpu = await tokenKl(model, tok, adapters, stage, question, rationale);
      onCpu.tokens.forEach((t, i) =>
        expect(Math.abs(t.kl - ref[i]!)).toBeLessThanOrEqual(1e-4 + 1e-3 * ref[i]!),
      );
      expect(onCpu.tokens.map((t) => t.natTop)).toEqual(gpuMap.tokens.map((t) => t.natTop));
      tape.release();
      nat.destroy();
      neg.destroy();
      expect(worst).toBeLessThanOrEqual(1);
    }, 300_000);

    it("β equals the β NCE's objective computes for the same sequence", async () => {
      const model = rt.model;
      const { adapters } = readStageFiles(natFiles);
      const pos = loadLora(model.be, model.config, adapters.lora!);
      const neg = loadLora(model.be, model.config, adapters.neg!);
      const unit = loadNatUnit(model.be, model.config, adapters.nat!);
      const obj = nceObjective(model, {
        teacher: (tape) => natHook(tape, pos, neg, unit, { trainable: false, training: false, seed: 0 }),
        negative: (tape) => loraHook(tape, neg, 0, false, true),
        student: () => null,
      });
      const ex = encodeExample(rt.tokenizer, question, rationale);
      const norm = obj.prepare([ex]);
      const tape = new Tape(model.be);
      try {
        const r = await obj.run(tape, [ex], { norm, seed: 0, training: false });
        const beta = (r.metrics!['beta'] as number[])[0]!;
        expect(Math.abs(gpuMap.beta - beta)).toBeLessThan(1e-6);
      } finally {
        tape.release();
      }
    });

    it('a set without a negative LoRA is refused with a message that says what to pick', async () => {
      const err = await engine
        .klMap({ natFiles: setFiles('kd'), question, rationale })
        .then(() => null)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineError);
      expect((err as EngineError).code).toBe('BAD_ARGUMENT');
      expect((err as EngineError).message).toContain('negative LoRA (neg.safetensors)');
      expect((err as EngineError).message).toContain('NAT stage');
      // the engine still works after a refusal
      const again = await engine.klMap({ natFiles, question, rationale });
      expect(again.beta).toBe(gpuMap.beta);
    });

    it('a ranker set is refused as a student; an empty rationale and no problems too', async () => {
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'ok',
          (e: unknown) => (e instanceof EngineError ? e.code : String(e)),
        );
      expect(await code(engine.evaluate({ sets: [set('rank')], problems, maxNew: 8, batch: 4 }))).toBe(
        'BAD_ARGUMENT',
      );
      expect(await code(engine.evaluate({ sets: [base], problems: [], maxNew: 8, batch: 4 }))).toBe(
        'BAD_ARGUMENT',
      );
      expect(await code(engine.klMap({ natFiles, question, rationale: ' ' }))).toBe('BAD_ARGUMENT');
    });

    it('cancel stops an evaluation after the current batch; it resolves with the sets done', async () => {
      const run = engine.evaluate(
        { sets: [base, base], problems: problems.slice(0, 1), maxNew: 8, batch: 1 },
        (p) => {
          if (p.set === 0 && p.done === 1) engine.cancel();
        },
      );
      const r = await run;
      expect(r.cancelled).toBe(true);
      expect(r.sets.map((s) => s.id)).toEqual(['base']); // the first set had finished; the second never started
    });
  });
});
