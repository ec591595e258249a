/**
 * The in-browser teacher's runs in IndexedDB (db.ts v2): `IdbTeacherStore implements TeacherStore`
 * (src/method/teacher/state.ts), used by the teacher worker while a run writes and by the page to
 * list and delete runs.
 *
 * - `teacherRuns`, key `runId`: one row per run, the header (settings + problem list), the samples
 *   of the problem in progress (`partial`), the tallies of the finished problems (what the list
 *   shows without reading the records) and, once made, the id of the dataset saved from it.
 * - `teacherRecords`, key `[runId, index]`: one row per finished problem (its k labelled rationales).
 *
 * Every `save` is one readwrite transaction over both stores: the record, the partial and the
 * tallies change together or not at all. A full quota aborts it (nothing of that save is kept, the
 * problems saved before stay) and becomes AppError('QUOTA_FULL') with what to do.
 *
 * The row arithmetic is pure (`runRowAfter`, `stateOfRows`, `summaryOf`: tests/unit/teacher-store.test.ts);
 * the IndexedDB part is tested in the browser (tests/e2e/teacher.test.ts).
 *
 * @example
 *   const store = new IdbTeacherStore();
 *   await runTeacher({ model, store, runId, problems, config });
 *   (await store.list())[0].done; // problems finished
 *   await store.delete(runId);
 */
import type {
  TeacherPartial,
  TeacherRecord,
  TeacherRunHeader,
  TeacherRunState,
  TeacherStore,
  TeacherStoreChange,
} from '../../method/teacher/state.ts';
import { db } from './db.ts';
import { AppError } from './errors.ts';

/** Tallies of a run's finished problems. */
export interface TeacherTally {
  /** Problems finished. */
  done: number;
  rationales: number;
  /** Judged correct by our answer checking (D_pos); the rest are D_neg. */
  correct: number;
  /** Rationales whose answer could not be read (part of D_neg). */
  noAnswer: number;
  /** Rationales cut at maxTokens. */
  truncated: number;
}

/** A row of `teacherRuns`. */
export interface TeacherRunRow extends TeacherTally {
  runId: string;
  header: TeacherRunHeader;
  partial: TeacherPartial | null;
  createdAt: number;
  updatedAt: number;
  /** The dataset saved from the finished run (db.ts `saveDataset`), once saved. */
  datasetId?: string;
}

/** A row of `teacherRecords`. */
export interface TeacherRecordRow {
  runId: string;
  index: number;
  record: TeacherRecord;
}

/** A saved run as the UI lists it. */
export interface TeacherRunSummary extends TeacherTally {
  runId: string;
  name: string;
  modelId: string;
  kind: TeacherRunHeader['config']['kind'];
  k: number;
  /** Problems in the run. */
  total: number;
  /** Samples written (the problem in progress included) of total × k. */
  samplesDone: number;
  samplesTotal: number;
  /** Every problem is finished. */
  finished: boolean;
  datasetId: string | null;
  createdAt: number;
  updatedAt: number;
}

const ZERO: TeacherTally = { done: 0, rationales: 0, correct: 0, noAnswer: 0, truncated: 0 };

/** What one finished problem adds to the tallies. */
export function tallyOf(r: TeacherRecord): TeacherTally {
  let correct = 0;
  let noAnswer = 0;
  for (const x of r.rationales) {
    if (x.correct) correct++;
    if (x.answer === null) noAnswer++;
  }
  return { done: 1, rationales: r.rationales.length, correct, noAnswer, truncated: r.truncated };
}

function addTally(a: TeacherTally, b: TeacherTally, sign: 1 | -1): TeacherTally {
  return {
    done: a.done + sign * b.done,
    rationales: a.rationales + sign * b.rationales,
    correct: a.correct + sign * b.correct,
    noAnswer: a.noAnswer + sign * b.noAnswer,
    truncated: a.truncated + sign * b.truncated,
  };
}

/**
 * The run's row after `change`, as `applyStoreChange` changes the state: `start` makes a fresh row
 * (no records, no dataset), `partial` replaces the partial, `problem` adds the record's tallies
 * (less those of `replaced`, the record it overwrites at the same index, if any) and clears the partial.
 */
export function runRowAfter(
  row: TeacherRunRow | undefined,
  change: TeacherStoreChange,
  replaced: TeacherRecord | undefined,
  now: number,
): TeacherRunRow {
  if (change.type === 'start')
    return {
      runId: change.header.runId,
      header: change.header,
      partial: null,
      ...ZERO,
      createdAt: now,
      updatedAt: now,
    };
  if (row === undefined)
    throw new Error(`a teacher store got a "${change.type}" change before the run's start`);
  if (change.type === 'partial') return { ...row, partial: change.partial, updatedAt: now };
  const tally = addTally(
    addTally(row, tallyOf(change.record), 1),
    replaced ? tallyOf(replaced) : { ...ZERO },
    -1,
  );
  return { ...row, ...tally, partial: null, updatedAt: now };
}

/** A run's state from its rows (records in ascending index, as the key order gives them). */
export function stateOfRows(row: TeacherRunRow, records: readonly TeacherRecordRow[]): TeacherRunState {
  return {
    header: row.header,
    records: [...records].sort((a, b) => a.index - b.index).map((r) => r.record),
    partial: row.partial,
  };
}

export function summaryOf(row: TeacherRunRow): TeacherRunSummary {
  const { config, problems } = row.header;
  return {
    runId: row.runId,
    name: config.name,
    modelId: config.modelId,
    kind: config.kind,
    k: config.k,
    total: problems.length,
    done: row.done,
    rationales: row.rationales,
    correct: row.correct,
    noAnswer: row.noAnswer,
    truncated: row.truncated,
    samplesDone: row.rationales + (row.partial?.texts.length ?? 0),
    samplesTotal: problems.length * config.k,
    finished: row.done === problems.length,
    datasetId: row.datasetId ?? null,
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

function isQuota(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || (e instanceof Error && /quota/i.test(e.message));
}

/** A failed write as the user sees it: QUOTA_FULL with what to do, or STORAGE. */
export function teacherStorageError(cause: unknown, what: string): AppError {
  if (isQuota(cause))
    return new AppError(
      'QUOTA_FULL',
      `The browser's storage for this site is full, so we could not ${what}; nothing of it was kept, and ` +
        'the problems finished before stay saved. Delete datasets or teacher runs you no longer need ' +
        '(Explore), or allow this site more storage, then press Resume to go on.',
      { cause },
    );
  const msg = (cause as { message?: unknown } | null)?.message;
  return new AppError(
    'STORAGE',
    `The browser refused to ${what} (${typeof msg === 'string' ? msg : String(cause)}); nothing of it was kept. ` +
      'In a private window storage may be off: use a normal window, or check the site settings.',
    { cause },
  );
}

const what = (change: TeacherStoreChange): string =>
  change.type === 'start'
    ? 'start the teacher run'
    : change.type === 'partial'
      ? `save the rationales written so far for problem "${change.partial.id}"`
      : `save the rationales of problem "${change.record.id}"`;

/**
 * The two object stores as one readwrite transaction sees them: what `saveChange` needs. The app
 * passes IndexedDB's; the unit tests pass maps.
 */
export interface TeacherTables {
  getRun(runId: string): Promise<TeacherRunRow | undefined>;
  putRun(row: TeacherRunRow): Promise<unknown>;
  getRecord(runId: string, index: number): Promise<TeacherRecordRow | undefined>;
  putRecord(row: TeacherRecordRow): Promise<unknown>;
  deleteRecords(runId: string): Promise<unknown>;
}

/**
 * One change of a run, written to the tables (inside one transaction): `start` clears the run's
 * records and writes a fresh row; `partial` rewrites the row; `problem` writes the record under
 * [runId, index] and the row with its tallies (less those of a record it replaces).
 */
export async function saveChange(
  t: TeacherTables,
  runId: string,
  change: TeacherStoreChange,
  now: number,
): Promise<void> {
  const row = await t.getRun(runId);
  let replaced: TeacherRecord | undefined;
  if (change.type === 'start') await t.deleteRecords(runId);
  else if (change.type === 'problem') {
    replaced = (await t.getRecord(runId, change.record.index))?.record;
    await t.putRecord({ runId, index: change.record.index, record: change.record });
  }
  await t.putRun(runRowAfter(row, change, replaced, now));
}

/** Key range of one run's records. */
const recordsOf = (runId: string) => IDBKeyRange.bound([runId, -Infinity], [runId, Infinity]);

const openTx = (d: Awaited<ReturnType<typeof db>>) =>
  d.transaction(['teacherRuns', 'teacherRecords'], 'readwrite');
type TeacherTx = ReturnType<typeof openTx>;

/** IndexedDB's stores as `TeacherTables`, inside `tx`. */
function tablesOf(tx: TeacherTx): TeacherTables {
  const runs = tx.objectStore('teacherRuns');
  const records = tx.objectStore('teacherRecords');
  return {
    getRun: (runId) => runs.get(runId),
    putRun: (row) => runs.put(row),
    getRecord: (runId, index) => records.get([runId, index]),
    putRecord: (row) => records.put(row),
    deleteRecords: (runId) => records.delete(recordsOf(runId)),
  };
}

/**
 * Runs `body` in one readwrite transaction over both stores: all of its writes or none. A failed
 * put reports only "AbortError"; the transaction's own error names a full quota.
 */
async function inTx<T>(label: string, body: (tx: TeacherTx) => Promise<T>): Promise<T> {
  let tx: TeacherTx;
  try {
    tx = openTx(await db());
  } catch (e) {
    throw e instanceof AppError ? e : teacherStorageError(e, label);
  }
  const done = tx.done;
  done.catch(() => {}); // observed below
  try {
    const out = await body(tx);
    await done;
    return out;
  } catch (e) {
    try {
      tx.abort();
    } catch {
      // already aborted or finished: nothing was committed either way
    }
    const txError = await done.then(
      () => null,
      (x: unknown) => x,
    );
    throw teacherStorageError([e, txError].find(isQuota) ?? e, label);
  }
}

export class IdbTeacherStore implements TeacherStore {
  /** Milliseconds clock for the rows' dates. */
  constructor(private readonly now: () => number = Date.now) {}

  async load(runId: string): Promise<TeacherRunState | null> {
    const d = await db();
    const tx = d.transaction(['teacherRuns', 'teacherRecords'], 'readonly');
    const [row, records] = await Promise.all([
      tx.objectStore('teacherRuns').get(runId),
      tx.objectStore('teacherRecords').getAll(recordsOf(runId)),
      tx.done,
    ]);
    return row ? stateOfRows(row, records) : null;
  }

  /** Applies one change in one transaction: the run's row and (for a problem) its record together. */
  async save(runId: string, change: TeacherStoreChange): Promise<void> {
    await inTx(what(change), (tx) => saveChange(tablesOf(tx), runId, change, this.now()));
  }

  /** Forgets a run and its records (a dataset saved from it stays). */
  async delete(runId: string): Promise<void> {
    await inTx('delete the teacher run', async (tx) => {
      await Promise.all([
        tx.objectStore('teacherRuns').delete(runId),
        tx.objectStore('teacherRecords').delete(recordsOf(runId)),
      ]);
    });
  }

  /** Every saved run, the most recently written first. */
  async list(): Promise<TeacherRunSummary[]> {
    try {
      const rows = await (await db()).getAll('teacherRuns');
      return rows.map(summaryOf).sort((a, b) => b.updatedAt - a.updatedAt);
    } catch (e) {
      throw e instanceof AppError ? e : teacherStorageError(e, 'read the saved teacher runs');
    }
  }

  /** One run's summary, or null. */
  async summary(runId: string): Promise<TeacherRunSummary | null> {
    const row = await (await db()).get('teacherRuns', runId);
    return row ? summaryOf(row) : null;
  }

  /** Notes the dataset saved from a finished run, so it is saved once. */
  async setDataset(runId: string, datasetId: string): Promise<void> {
    await inTx('note the dataset made from the teacher run', async (tx) => {
      const runs = tx.objectStore('teacherRuns');
      const row = await runs.get(runId);
      if (row) await runs.put({ ...row, datasetId, updatedAt: this.now() });
    });
  }
}
