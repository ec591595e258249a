/**
 * The app's teacher store (src/app/lib/teacher-store.ts) without a browser: its save logic
 * (`saveChange`, the same function IdbTeacherStore runs inside one IndexedDB transaction) over two
 * maps that copy on the way in and out as IndexedDB does, the run row's tallies (`runRowAfter`), the
 * state read back (`stateOfRows`), the list entry (`summaryOf`) and the storage errors. The teacher
 * run is the real `runTeacher`; the model is a scripted fake at the TeacherModel boundary. The
 * IndexedDB transactions themselves are tested in the browser (tests/e2e/teacher.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/app/lib/errors.ts';
import {
  runRowAfter,
  saveChange,
  stateOfRows,
  summaryOf,
  tallyOf,
  teacherStorageError,
  type TeacherRecordRow,
  type TeacherRunRow,
  type TeacherTables,
} from '../../src/app/lib/teacher-store.ts';
import {
  MemoryTeacherStore,
  callSeed,
  problemsFromWorld,
  runTeacher,
  teacherConfig,
  teacherProgressOf,
  type TeacherRecord,
  type TeacherRunHeader,
  type TeacherRunState,
  type TeacherStore,
  type TeacherStoreChange,
} from '../../src/method/teacher/run.ts';
import type { TeacherCompletion, TeacherModel, TeacherRequest } from '../../src/method/teacher/types.ts';
import { generateProblems } from '../../src/method/world/problems.ts';

// ---------------------------------------------------------------------------------------------
// The tables as maps, and a store over them that does what IdbTeacherStore does.

class MapTables implements TeacherTables {
  readonly runs = new Map<string, TeacherRunRow>();
  readonly records = new Map<string, TeacherRecordRow>();
  private key = (runId: string, index: number) => JSON.stringify([runId, index]);
  getRun(runId: string) {
    const r = this.runs.get(runId);
    return Promise.resolve(r ? structuredClone(r) : undefined);
  }
  putRun(row: TeacherRunRow) {
    this.runs.set(row.runId, structuredClone(row));
    return Promise.resolve();
  }
  getRecord(runId: string, index: number) {
    const r = this.records.get(this.key(runId, index));
    return Promise.resolve(r ? structuredClone(r) : undefined);
  }
  putRecord(row: TeacherRecordRow) {
    this.records.set(this.key(row.runId, row.index), structuredClone(row));
    return Promise.resolve();
  }
  deleteRecords(runId: string) {
    for (const [k, r] of this.records) if (r.runId === runId) this.records.delete(k);
    return Promise.resolve();
  }
  recordsOf(runId: string): TeacherRecordRow[] {
    return [...this.records.values()].filter((r) => r.runId === runId);
  }
}

/** IdbTeacherStore's load and save, over maps; after every save it checks the row against the state. */
class TablesStore implements TeacherStore {
  saves = 0;
  constructor(
    readonly t: MapTables,
    private readonly clock = { now: 1000 },
  ) {}
  async load(runId: string): Promise<TeacherRunState | null> {
    const row = await this.t.getRun(runId);
    return row ? stateOfRows(row, this.t.recordsOf(runId)) : null;
  }
  async save(runId: string, change: TeacherStoreChange): Promise<void> {
    await saveChange(this.t, runId, change, ++this.clock.now);
    this.saves++;
    // the row's tallies always equal the counts of the state read back
    const row = this.t.runs.get(runId)!;
    const p = teacherProgressOf((await this.load(runId))!);
    const s = summaryOf(row);
    expect([s.done, s.rationales, s.correct, s.noAnswer, s.truncated, s.samplesDone, s.samplesTotal]).toEqual(
      [p.done, p.rationales, p.correct, p.noAnswer, p.truncated, p.samplesDone, p.samplesTotal],
    );
  }
  async delete(runId: string): Promise<void> {
    this.t.runs.delete(runId);
    await this.t.deleteRecords(runId);
  }
}

// ---------------------------------------------------------------------------------------------
// Five world problems; per problem four candidates: right, wrong, no answer, cut at maxTokens.

const PROBLEMS = problemsFromWorld(generateProblems(5, 3));
type Sort = 'right' | 'wrong' | 'none' | 'cut';
const SORTS: readonly Sort[] = ['right', 'wrong', 'none', 'cut'];
const textOf = (sort: Sort, gold: string): string =>
  sort === 'right'
    ? `so it is ${gold}. The answer is ${gold}.`
    : sort === 'wrong'
      ? `so it is ${Number(gold) + 1}. The answer is ${Number(gold) + 1}.`
      : sort === 'none'
        ? 'I do not know.'
        : `first ${gold},`;
const K = 4;
const MAX_N = 2;
const SEED = 5;

/** The sort of choice j of a call with `seed`: candidate (seed + j) mod 4. */
const sortOf = (seed: number, j: number): Sort => SORTS[(seed + j) % SORTS.length]!;

class Scripted implements TeacherModel {
  readonly id = 'scripted-teacher';
  readonly maxN = MAX_N;
  calls = 0;
  constructor(private readonly afterCall?: (calls: number) => void) {}
  load(): Promise<void> {
    return Promise.resolve();
  }
  complete(req: TeacherRequest): Promise<TeacherCompletion> {
    this.calls++;
    const q = req.messages.at(-1)!.content;
    const p = PROBLEMS.find((x) => x.question === q)!;
    const sorts = Array.from({ length: req.n }, (_, j) => sortOf(req.seed, j));
    this.afterCall?.(this.calls);
    return Promise.resolve({
      texts: sorts.map((s) => textOf(s, p.gold)),
      tokens: 7 * req.n,
      truncated: sorts.filter((s) => s === 'cut').length,
    });
  }
  unload(): Promise<void> {
    return Promise.resolve();
  }
}

/** What every problem must get: the sorts of its k samples, by the fake's rule and the run's seeds. */
const expectedSorts = PROBLEMS.map((p) => {
  const out: Sort[] = [];
  for (let start = 0; start < K; start += MAX_N)
    for (let j = 0; j < MAX_N; j++) out.push(sortOf(callSeed(SEED, p.id, start), j));
  return out;
});
const all = expectedSorts.flat();
const count = (s: Sort) => all.filter((x) => x === s).length;

const config = teacherConfig({
  modelId: 'scripted-teacher',
  kind: 'arith',
  k: K,
  seed: SEED,
  name: 'scripted',
});

describe('teacher store: saveChange over tables, the row tallies, resume', () => {
  it('a run through the tables: every record under [runId, index], exact tallies, same dataset as the reference store', async () => {
    const t = new MapTables();
    const store = new TablesStore(t);
    const res = await runTeacher({ model: new Scripted(), store, runId: 'r1', problems: PROBLEMS, config });
    expect(res.status).toBe('finished');
    // start + per problem one partial (after its first call of 2) and one record
    expect(store.saves).toBe(1 + PROBLEMS.length * 2);

    const ref = new MemoryTeacherStore();
    const refRes = await runTeacher({
      model: new Scripted(),
      store: ref,
      runId: 'r1',
      problems: PROBLEMS,
      config,
    });
    expect(res.jsonl).toBe(refRes.jsonl);
    expect(await store.load('r1')).toEqual(await ref.load('r1'));

    const rows = t.recordsOf('r1').sort((a, b) => a.index - b.index);
    expect(rows.map((r) => [r.runId, r.index, r.record.id])).toEqual(PROBLEMS.map((p, i) => ['r1', i, p.id]));
    rows.forEach((r, i) => {
      const want = expectedSorts[i]!;
      expect(r.record.rationales.map((x) => x.correct)).toEqual(want.map((s) => s === 'right'));
      expect(r.record.rationales.map((x) => x.answer)).toEqual(
        want.map((s) =>
          s === 'right' ? PROBLEMS[i]!.gold : s === 'wrong' ? String(Number(PROBLEMS[i]!.gold) + 1) : null,
        ),
      );
      expect(r.record.truncated).toBe(want.filter((s) => s === 'cut').length);
      expect(r.record.tokens).toBe(7 * K);
    });

    const s = summaryOf(t.runs.get('r1')!);
    expect(s).toMatchObject({
      runId: 'r1',
      name: 'scripted',
      modelId: 'scripted-teacher',
      kind: 'arith',
      k: K,
      total: 5,
      done: 5,
      rationales: 20,
      correct: count('right'),
      noAnswer: count('none') + count('cut'),
      truncated: count('cut'),
      samplesDone: 20,
      samplesTotal: 20,
      finished: true,
      datasetId: null,
    });
    // the rule spreads the four sorts: none of the counts is trivial
    for (const sort of SORTS) expect(count(sort)).toBeGreaterThan(0);
  });

  it('cancel after a call that leaves a problem half done, then resume on the same tables: the unbroken dataset', async () => {
    const t = new MapTables();
    const store = new TablesStore(t);
    const ctl = new AbortController();
    // call 5 is the first call of problem 3: it finishes (kept as the partial), then the run stops
    const first = await runTeacher({
      model: new Scripted((n) => n === 5 && ctl.abort()),
      store,
      runId: 'r2',
      problems: PROBLEMS,
      config,
      signal: ctl.signal,
    });
    expect(first.status).toBe('cancelled');
    const row = t.runs.get('r2')!;
    expect(row.done).toBe(2);
    expect(row.partial).toMatchObject({ index: 2, id: PROBLEMS[2]!.id });
    expect(row.partial!.texts).toHaveLength(MAX_N);
    expect(summaryOf(row)).toMatchObject({ done: 2, samplesDone: 2 * K + MAX_N, finished: false });
    expect(t.recordsOf('r2')).toHaveLength(2);

    const again = new Scripted();
    const second = await runTeacher({ model: again, store, runId: 'r2' });
    expect(second.status).toBe('finished');
    expect(again.calls).toBe(PROBLEMS.length * 2 - 5); // only the calls not made yet
    const unbroken = await runTeacher({
      model: new Scripted(),
      store: new MemoryTeacherStore(),
      runId: 'r2',
      problems: PROBLEMS,
      config,
    });
    expect(second.jsonl).toBe(unbroken.jsonl);
    expect(summaryOf(t.runs.get('r2')!)).toMatchObject({ done: 5, correct: count('right'), finished: true });
  });

  it('two runs in the same tables do not see each other; start clears a run id reused after its row went', async () => {
    const t = new MapTables();
    const store = new TablesStore(t);
    await runTeacher({ model: new Scripted(), store, runId: 'a', problems: PROBLEMS, config });
    await runTeacher({ model: new Scripted(), store, runId: 'b', problems: PROBLEMS.slice(0, 2), config });
    expect(t.recordsOf('a')).toHaveLength(5);
    expect(t.recordsOf('b')).toHaveLength(2);
    // a row lost while its records stayed (e.g. deleted by hand): a new start under that id begins clean
    t.runs.delete('a');
    const res = await runTeacher({
      model: new Scripted(),
      store,
      runId: 'a',
      problems: PROBLEMS.slice(0, 1),
      config,
    });
    expect(res.dataset.problems).toHaveLength(1);
    expect(t.recordsOf('a')).toHaveLength(1);
    expect(t.recordsOf('b')).toHaveLength(2);
  });
});

describe('teacher store: row arithmetic', () => {
  const header: TeacherRunHeader = {
    version: 1,
    runId: 'h',
    config,
    callSize: 2,
    problems: PROBLEMS.slice(0, 3),
  };
  const rec = (index: number, sorts: Sort[]): TeacherRecord => ({
    index,
    id: PROBLEMS[index]!.id,
    rationales: sorts.map((s) => ({
      text: textOf(s, PROBLEMS[index]!.gold),
      answer: s === 'right' || s === 'wrong' ? '1' : null,
      correct: s === 'right',
    })),
    tokens: 0,
    truncated: sorts.filter((s) => s === 'cut').length,
  });

  it('tallies: a record adds its counts, one that replaces another at the same index takes the old counts off', () => {
    expect(tallyOf(rec(0, ['right', 'wrong', 'none', 'cut']))).toEqual({
      done: 1,
      rationales: 4,
      correct: 1,
      noAnswer: 2,
      truncated: 1,
    });
    let row = runRowAfter(undefined, { type: 'start', header }, undefined, 10);
    expect(row).toEqual({
      runId: 'h',
      header,
      partial: null,
      done: 0,
      rationales: 0,
      correct: 0,
      noAnswer: 0,
      truncated: 0,
      createdAt: 10,
      updatedAt: 10,
    });
    const partial = { index: 0, id: PROBLEMS[0]!.id, texts: ['x', 'y'], tokens: 3, truncated: 0 };
    row = runRowAfter(row, { type: 'partial', partial }, undefined, 11);
    expect(summaryOf(row)).toMatchObject({ samplesDone: 2, samplesTotal: 12, done: 0, updatedAt: 11 });
    const first = rec(0, ['right', 'right', 'none', 'wrong']);
    row = runRowAfter(row, { type: 'problem', record: first }, undefined, 12);
    expect(row.partial).toBeNull();
    expect([row.done, row.rationales, row.correct, row.noAnswer, row.truncated]).toEqual([1, 4, 2, 1, 0]);
    row = runRowAfter(
      row,
      { type: 'problem', record: rec(1, ['cut', 'cut', 'wrong', 'right']) },
      undefined,
      13,
    );
    expect([row.done, row.rationales, row.correct, row.noAnswer, row.truncated]).toEqual([2, 8, 3, 3, 2]);
    // problem 0 written again (a replaced record): its old counts go, the new ones come
    const redo = rec(0, ['wrong', 'wrong', 'wrong', 'wrong']);
    row = runRowAfter(row, { type: 'problem', record: redo }, first, 14);
    expect([row.done, row.rationales, row.correct, row.noAnswer, row.truncated]).toEqual([2, 8, 1, 2, 2]);
    expect(summaryOf(row)).toMatchObject({ finished: false, createdAt: 10, updatedAt: 14 });
    // a start makes the row new again: no tallies, no dataset
    row = runRowAfter({ ...row, datasetId: 'ds-1' }, { type: 'start', header }, undefined, 15);
    expect(summaryOf(row)).toMatchObject({ done: 0, rationales: 0, datasetId: null, createdAt: 15 });
  });

  it('a partial or a problem before the start is refused', () => {
    expect(() =>
      runRowAfter(
        undefined,
        { type: 'partial', partial: { index: 0, id: 'x', texts: [], tokens: 0, truncated: 0 } },
        undefined,
        1,
      ),
    ).toThrow(/"partial" change before the run's start/);
    expect(() =>
      runRowAfter(undefined, { type: 'problem', record: rec(0, ['right']) }, undefined, 1),
    ).toThrow(/"problem" change before/);
  });

  it('stateOfRows puts the records in problem order; summaryOf says finished only when every problem is', () => {
    const row: TeacherRunRow = {
      ...runRowAfter(undefined, { type: 'start', header }, undefined, 1),
      done: 3,
      datasetId: 'ds-9',
    };
    const rows: TeacherRecordRow[] = [2, 0, 1].map((i) => ({
      runId: 'h',
      index: i,
      record: rec(i, ['right']),
    }));
    expect(stateOfRows(row, rows).records.map((r) => r.index)).toEqual([0, 1, 2]);
    expect(summaryOf(row)).toMatchObject({ finished: true, datasetId: 'ds-9', total: 3 });
    expect(summaryOf({ ...row, done: 2 }).finished).toBe(false);
  });
});

describe('teacher store: storage errors', () => {
  it('a full quota is QUOTA_FULL with what to do; anything else is STORAGE with the browser’s words', () => {
    const quota = teacherStorageError(
      new DOMException('The quota has been exceeded.', 'QuotaExceededError'),
      'x',
    );
    expect(quota).toBeInstanceOf(AppError);
    expect(quota.code).toBe('QUOTA_FULL');
    expect(quota.message).toMatch(
      /^The browser's storage for this site is full, so we could not x; nothing of it/,
    );
    expect(quota.message).toMatch(/finished before stay saved/);
    expect(quota.message).toMatch(/press Resume/);
    expect(teacherStorageError(new Error('Quota exceeded while writing'), 'x').code).toBe('QUOTA_FULL');
    const other = teacherStorageError(
      new DOMException('The database connection is closing.', 'InvalidStateError'),
      'y',
    );
    expect(other.code).toBe('STORAGE');
    expect(other.message).toMatch(/^The browser refused to y \(The database connection is closing\.\)/);
  });
});
