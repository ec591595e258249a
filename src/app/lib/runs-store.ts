/**
 * Training runs and their checkpoints in IndexedDB (stores `runs` and `checkpoints`, keyPath `id`).
 * A run record says what was trained on what (stage, student, data, inputs, settings), how far it got and
 * its losses up to its last checkpoint; its checkpoint (one record per run, id = the run's id,
 * replaced each time) holds the state to go on from. Both are written in **one transaction**, so
 * after a reload or a crash the run's losses and its checkpoint always belong together; on a full
 * quota nothing of the write is kept and the error says what to do.
 *
 * @example
 *   await createRun(run);
 *   await saveCheckpoint(run.id, checkpoint);       // run.step / losses / history follow it
 *   const open = await unfinishedRun();             // running or paused, newest first
 *   const c = await loadCheckpoint(open.id);        // → TrainerEngine.start({ resume: c })
 *   await finishRun(run.id, { adapterSetId });      // the checkpoint goes, the run stays as history
 */
import type { StageConfig, StageName } from '../../method/stages/config.ts';
import type { StageCheckpoint } from '../../method/stages/types.ts';
import { db, type StoredRecord } from './db.ts';
import { AppError, type UserMessage } from './errors.ts';

export type RunStatus = 'running' | 'paused' | 'done' | 'cancelled' | 'failed';

/** Where a run's data came from, enough to rebuild exactly the same D_pos / D_neg after a reload. */
export interface RunDataSource {
  /** `world` (generated with n and seed) or `saved:<dataset id>`. */
  key: string;
  name: string;
  /** The world's size and seed (key `world`). */
  n?: number;
  seed?: number;
  /** The held-out split by question (heldOutSplit). */
  heldOut: { fraction: number; seed: number };
  /** Counts of the training side, for the list. */
  pos: number;
  neg: number;
  questions: number;
  heldOutQuestions: number;
}

/**
 * The student a run trains, enough to open it again after a reload: the built-in model, a URL (our
 * safetensors model, a GGUF file, web-llm's MLC build in the browser's cache), or a file from the
 * user's disk, which a page cannot reopen by itself (the user picks it again; name and size must match).
 */
export interface RunModel {
  /** The model's name: the trained adapter set's `model` (Solve offers the set only with it). */
  name: string;
  /** What lists show ("stories260K.gguf", "arith-student (built-in)"). */
  label: string;
  kind: 'builtin' | 'safetensors-url' | 'safetensors-file' | 'gguf-url' | 'gguf-file' | 'mlc';
  /** safetensors-url, gguf-url: the file's URL; mlc: the model's URL (as web-llm's list names it). */
  url?: string;
  tokenizerUrl?: string;
  /** safetensors-file, gguf-file: what was picked. */
  file?: { name: string; size: number; lastModified: number };
}

export interface RunRecord {
  id: string;
  stage: StageName;
  /** The student (absent in runs stored before students other than the built-in one could train). */
  model?: RunModel;
  /** At most this many positions per example (longer ones were left out); absent: the model's context. */
  maxSeq?: number;
  /** The memory budget it was planned for, in bytes; absent: none given (4 GiB assumed). */
  memoryBudget?: number;
  data: RunDataSource;
  /** The adapter set the stage builds on (Neg for NAT, NAT for NCE), or null. */
  input: { id: string; name: string } | null;
  /** The full stage settings. */
  config: StageConfig;
  checkpointEvery: number;
  status: RunStatus;
  createdAt: number;
  updatedAt: number;
  /** Steps done at the last checkpoint (0 before the first). */
  step: number;
  steps: number;
  /** Per-step losses up to the last checkpoint (the live curve has the later ones). */
  losses: number[];
  /** Per-step figures up to the last checkpoint (NAT `alpha`, NCE `beta`, ranker `pair_acc`). */
  history: Record<string, (number | number[])[]>;
  /** The adapter set made from it, once done. */
  adapterSetId?: string;
  /** Why it stopped or paused, when it was not the user. */
  error?: UserMessage;
}

export interface CheckpointRecord {
  /** The run's id. */
  id: string;
  step: number;
  savedAt: number;
  checkpoint: StageCheckpoint;
}

const asStored = (r: RunRecord | CheckpointRecord) => r as unknown as StoredRecord;

export function newRunId(): string {
  return `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function isQuota(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  return name === 'QuotaExceededError' || (e instanceof Error && /quota/i.test(e.message));
}

function storageError(cause: unknown, what: string): AppError {
  if (isQuota(cause))
    return new AppError(
      'QUOTA_FULL',
      `The browser's storage for this site is full, so we could not ${what}; nothing of it was kept and ` +
        'the run is paused. Delete adapters or datasets you no longer need (Models, Explore), or allow this ' +
        'site more storage, then press Resume.',
      { cause },
    );
  const msg = (cause as { message?: unknown } | null)?.message;
  return new AppError(
    'STORAGE',
    `The browser refused to ${what} (${typeof msg === 'string' ? msg : String(cause)}); nothing of it was kept.`,
    { cause },
  );
}

/**
 * Runs `body` in one readwrite transaction over runs + checkpoints: all of its writes or none. A
 * failed put reports only "AbortError"; the transaction's own error names a full quota.
 */
const openTx = (d: Awaited<ReturnType<typeof db>>) => d.transaction(['runs', 'checkpoints'], 'readwrite');
type RunsTx = ReturnType<typeof openTx>;

async function inTx(what: string, body: (tx: RunsTx) => Promise<unknown>[]): Promise<void> {
  const tx = openTx(await db());
  const done = tx.done;
  done.catch(() => {}); // observed below
  try {
    const writes = body(tx);
    for (const w of writes) w.catch(() => {});
    await Promise.all([...writes, done]);
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
    throw storageError([e, txError].find(isQuota) ?? e, what);
  }
}

export async function createRun(run: RunRecord): Promise<void> {
  await inTx('start the run', (tx) => [tx.objectStore('runs').put(asStored(run))]);
}

/** Stores the run's new checkpoint and the run's record that matches it, together. */
export async function saveCheckpoint(run: RunRecord, checkpoint: StageCheckpoint): Promise<RunRecord> {
  const now = Date.now();
  const next: RunRecord = {
    ...run,
    step: checkpoint.step,
    losses: [...checkpoint.losses],
    history: checkpoint.history,
    updatedAt: now,
  };
  const rec: CheckpointRecord = { id: run.id, step: checkpoint.step, savedAt: now, checkpoint };
  await inTx(`store the checkpoint at step ${checkpoint.step}`, (tx) => [
    tx.objectStore('runs').put(asStored(next)),
    tx.objectStore('checkpoints').put(asStored(rec)),
  ]);
  return next;
}

/** Changes a run's status (and error); the checkpoint stays. */
export async function setRunStatus(
  id: string,
  status: RunStatus,
  error?: UserMessage,
): Promise<RunRecord | null> {
  let out: RunRecord | null = null;
  await inTx('update the run', (tx) => [
    (async () => {
      const store = tx.objectStore('runs');
      const rec = (await store.get(id)) as unknown as RunRecord | undefined;
      if (!rec) return;
      const { error: _, ...rest } = rec;
      out = { ...rest, status, updatedAt: Date.now(), ...(error ? { error } : {}) };
      await store.put(asStored(out));
    })(),
  ]);
  return out;
}

/**
 * Ends a run: done (with its adapter set and final losses), cancelled or failed. The checkpoint is
 * deleted in the same transaction: an ended run is history, not something to resume.
 */
export async function endRun(
  run: RunRecord,
  status: 'done' | 'cancelled' | 'failed',
  extra: {
    adapterSetId?: string;
    losses?: number[];
    history?: RunRecord['history'];
    error?: UserMessage;
  } = {},
): Promise<RunRecord> {
  const { error: _, ...rest } = run;
  const next: RunRecord = {
    ...rest,
    status,
    updatedAt: Date.now(),
    ...(extra.losses ? { losses: extra.losses, step: extra.losses.length } : {}),
    ...(extra.history ? { history: extra.history } : {}),
    ...(extra.adapterSetId ? { adapterSetId: extra.adapterSetId } : {}),
    ...(extra.error ? { error: extra.error } : {}),
  };
  await inTx('record the end of the run', (tx) => [
    tx.objectStore('runs').put(asStored(next)),
    tx.objectStore('checkpoints').delete(run.id),
  ]);
  return next;
}

/** Every run, newest first. */
export async function listRuns(): Promise<RunRecord[]> {
  const runs = (await (await db()).getAll('runs')) as unknown as RunRecord[];
  return runs.sort((a, b) => b.createdAt - a.createdAt);
}

/** The newest run that is running or paused (a reload or a lost device interrupted it), if any. */
export async function unfinishedRun(): Promise<RunRecord | null> {
  return (await listRuns()).find((r) => r.status === 'running' || r.status === 'paused') ?? null;
}

export async function loadCheckpoint(id: string): Promise<StageCheckpoint | null> {
  const rec = (await (await db()).get('checkpoints', id)) as unknown as CheckpointRecord | undefined;
  return rec?.checkpoint ?? null;
}

/** Forgets a run and its checkpoint (its adapter set, if any, stays). */
export async function deleteRun(id: string): Promise<void> {
  await inTx('delete the run', (tx) => [
    tx.objectStore('runs').delete(id),
    tx.objectStore('checkpoints').delete(id),
  ]);
}
