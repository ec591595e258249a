/**
 * The app's IndexedDB (through `idb`): versioned object stores for imported datasets, adapters,
 * runs and checkpoints. A dataset is one small record in `datasets` (what the list shows) plus its
 * problems in `datasetParts`, written in one transaction: all of it or nothing. A full quota becomes
 * an AppError('QUOTA_FULL') whose message says what to do, and the aborted transaction leaves no trace.
 *
 * Versions: 1 = datasets, datasetParts, adapters, runs, checkpoints; 2 adds teacherRuns and
 * teacherRecords (the in-browser teacher's runs: lib/teacher-store.ts). A new version adds an
 * `if (oldVersion < n)` block to `upgrade`; never edit an old block.
 *
 * @example
 *   const rec = await saveDataset(dataset, { source: 'teacher.jsonl', pos: 10, neg: 30 });
 *   (await listDatasets())[0].name;
 *   const back = await loadDataset(rec.id);
 */
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { Dataset, Problem } from '../../method/datasets/index.ts';
import { AppError } from './errors.ts';
import type { TeacherRecordRow, TeacherRunRow } from './teacher-store.ts';

export const DB_NAME = 'dust2gold';
export const DB_VERSION = 2;
/** Problems per `datasetParts` record: small records keep a load's peak memory low. */
export const PART_SIZE = 250;

/** What the dataset list shows, without the problems. */
export interface DatasetRecord {
  id: string;
  name: string;
  kind: Dataset['kind'];
  format: Dataset['format'];
  /** The file name or URL it came from. */
  source: string;
  createdAt: number;
  questions: number;
  rationales: number;
  pos: number;
  neg: number;
  /** Lines the parser skipped (with reasons in `issues`). */
  issues: Dataset['issues'];
  lines: number;
  parts: number;
}

export interface DatasetPart {
  datasetId: string;
  index: number;
  problems: Problem[];
}

/** Stored records of the later views (Train, Compare, Models); shapes are theirs to define. */
export interface StoredRecord {
  id: string;
  [key: string]: unknown;
}

interface D2gSchema extends DBSchema {
  datasets: { key: string; value: DatasetRecord; indexes: { byCreated: number } };
  datasetParts: { key: [string, number]; value: DatasetPart; indexes: { byDataset: string } };
  adapters: { key: string; value: StoredRecord };
  runs: { key: string; value: StoredRecord };
  checkpoints: { key: string; value: StoredRecord };
  // v2: the in-browser teacher (lib/teacher-store.ts)
  teacherRuns: { key: string; value: TeacherRunRow };
  teacherRecords: { key: [string, number]; value: TeacherRecordRow; indexes: { byRun: string } };
}

let dbPromise: Promise<IDBPDatabase<D2gSchema>> | null = null;

export function db(): Promise<IDBPDatabase<D2gSchema>> {
  dbPromise ??= openDB<D2gSchema>(DB_NAME, DB_VERSION, {
    upgrade(d, oldVersion) {
      if (oldVersion < 1) {
        d.createObjectStore('datasets', { keyPath: 'id' }).createIndex('byCreated', 'createdAt');
        d.createObjectStore('datasetParts', { keyPath: ['datasetId', 'index'] }).createIndex(
          'byDataset',
          'datasetId',
        );
        d.createObjectStore('adapters', { keyPath: 'id' });
        d.createObjectStore('runs', { keyPath: 'id' });
        d.createObjectStore('checkpoints', { keyPath: 'id' });
      }
      if (oldVersion < 2) {
        // a teacher run: header + partial + tallies, one row per run; its finished problems
        // under [runId, index], so each save writes one problem (lib/teacher-store.ts)
        d.createObjectStore('teacherRuns', { keyPath: 'runId' });
        d.createObjectStore('teacherRecords', { keyPath: ['runId', 'index'] }).createIndex('byRun', 'runId');
      }
    },
    blocking() {
      // another tab opens a newer version: let it, and reopen on next use
      void dbPromise?.then((d) => d.close());
      dbPromise = null;
    },
  }).catch((cause: unknown) => {
    dbPromise = null;
    throw storageError(cause, 'open the local database');
  });
  return dbPromise;
}

function isQuota(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || (e instanceof Error && /quota/i.test(e.message));
}

function storageError(cause: unknown, what: string): AppError {
  if (isQuota(cause))
    return new AppError(
      'QUOTA_FULL',
      `The browser's storage for this site is full, so we could not ${what}; nothing of it was kept. ` +
        'Delete saved datasets you no longer need (the × beside each in Explore), or allow this site more ' +
        'storage in the browser settings, then try again.',
      { cause },
    );
  const msg = (cause as { message?: unknown } | null)?.message;
  return new AppError(
    'STORAGE',
    `The browser refused to ${what} (${typeof msg === 'string' ? msg : String(cause)}); nothing was kept. ` +
      'In a private window storage may be off: use a normal window, or check the site settings.',
    { cause },
  );
}

function newId(): string {
  return `ds-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

/** Saves a parsed dataset (meta + parts) in one transaction; on any failure nothing is kept. */
export async function saveDataset(
  ds: Dataset,
  info: { source: string; pos: number; neg: number },
): Promise<DatasetRecord> {
  const d = await db();
  const id = newId();
  const parts: DatasetPart[] = [];
  for (let i = 0; i * PART_SIZE < ds.problems.length; i++)
    parts.push({ datasetId: id, index: i, problems: ds.problems.slice(i * PART_SIZE, (i + 1) * PART_SIZE) });
  const rec: DatasetRecord = {
    id,
    name: ds.name,
    kind: ds.kind,
    format: ds.format,
    source: info.source,
    createdAt: Date.now(),
    questions: ds.problems.length,
    rationales: ds.problems.reduce((a, p) => a + p.rationales.length, 0),
    pos: info.pos,
    neg: info.neg,
    issues: ds.issues.slice(0, 50),
    lines: ds.lines,
    parts: parts.length,
  };
  const tx = d.transaction(['datasets', 'datasetParts'], 'readwrite');
  const done = tx.done;
  done.catch(() => {}); // observed below; keeps an abort from surfacing as an unhandled rejection
  try {
    const writes: Promise<unknown>[] = [tx.objectStore('datasets').put(rec)];
    for (const p of parts) writes.push(tx.objectStore('datasetParts').put(p));
    for (const w of writes) w.catch(() => {});
    await Promise.all([...writes, done]);
  } catch (e) {
    try {
      tx.abort();
    } catch {
      // already aborted or finished: nothing was committed either way
    }
    // a put reports only "AbortError"; the transaction's own error names a full quota
    const txError = await done.then(
      () => null,
      (x: unknown) => x,
    );
    throw storageError([e, txError].find(isQuota) ?? e, `save "${ds.name}"`);
  }
  return rec;
}

export async function listDatasets(): Promise<DatasetRecord[]> {
  const d = await db();
  return (await d.getAllFromIndex('datasets', 'byCreated')).reverse();
}

/** A saved dataset, whole; throws STORAGE when it is gone or incomplete. */
export async function loadDataset(id: string): Promise<{ record: DatasetRecord; dataset: Dataset }> {
  const d = await db();
  const tx = d.transaction(['datasets', 'datasetParts'], 'readonly');
  const [record, parts] = await Promise.all([
    tx.objectStore('datasets').get(id),
    tx.objectStore('datasetParts').index('byDataset').getAll(id),
    tx.done,
  ]);
  if (!record || parts.length !== record.parts)
    throw new AppError(
      'STORAGE',
      'This saved dataset is gone or incomplete: delete it and import the file again.',
    );
  parts.sort((a, b) => a.index - b.index);
  return {
    record,
    dataset: {
      name: record.name,
      kind: record.kind,
      format: record.format,
      problems: parts.flatMap((p) => p.problems),
      issues: record.issues,
      lines: record.lines,
    },
  };
}

export async function deleteDataset(id: string): Promise<void> {
  const d = await db();
  const tx = d.transaction(['datasets', 'datasetParts'], 'readwrite');
  const keys = await tx.objectStore('datasetParts').index('byDataset').getAllKeys(id);
  await Promise.all([
    tx.objectStore('datasets').delete(id),
    ...keys.map((k) => tx.objectStore('datasetParts').delete(k)),
    tx.done,
  ]);
}
