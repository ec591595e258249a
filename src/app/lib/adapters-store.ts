/**
 * Adapter sets: what a stage produced (the files `stageFiles` writes: lora / neg / nat / rank /
 * head safetensors + result.json), by name. Two sources: the built-in sets shipped with the app
 * (public/models/adapters/index.json, trained by `npm run d2g -- repro --save`) and the sets the
 * user trained or imported, kept in IndexedDB's `adapters` store (one record = meta + files, one
 * put: all of it or nothing). Solve picks a student from this list, Train adds to it, Models
 * renames, deletes, exports and imports.
 *
 * @example
 *   const sets = await listAdapterSets();            // built-in first, then saved, newest first
 *   const files = await adapterFiles(sets[0].id);    // { 'lora.safetensors': ArrayBuffer, ... }
 *   await saveAdapterSet({ name: 'my NAT', stage: 'nat', model: 'arith-student', source: 'trained' }, files);
 */
import { publicUrl } from '../engine-client.ts';
import { db } from './db.ts';
import { AppError } from './errors.ts';

export type AdapterSource = 'builtin' | 'trained' | 'imported';

/** What a list shows; the files' bytes stay where they are until `adapterFiles`. */
export interface AdapterSetMeta {
  id: string;
  name: string;
  /** The stage that made it (kd, neg, nat, nce, rank, mix, ...). */
  stage: string;
  /** The base model it belongs to (e.g. "arith-student"). */
  model: string;
  source: AdapterSource;
  createdAt: number;
  /** File names of the set. */
  files: string[];
  bytes: number;
  /** Free-form figures to show (steps, last loss, accuracy). */
  summary?: Record<string, number | string>;
}

/** The IndexedDB record: the meta plus the files' bytes. */
export interface AdapterSetRecord extends AdapterSetMeta {
  data: Record<string, ArrayBuffer>;
}

/** public/models/adapters/index.json */
export interface BuiltinIndex {
  model: string;
  /** The full `d2g repro` run these sets come from (its JSON, under public/), when shipped. */
  repro?: string;
  sets: {
    id: string;
    name: string;
    stage: string;
    /** Folder under public/, ending in "/". */
    dir: string;
    files: string[];
    bytes: number;
    summary?: Record<string, number | string>;
  }[];
}

export const BUILTIN_INDEX = 'models/adapters/index.json';

let builtin: Promise<BuiltinIndex> | null = null;

async function builtinIndex(): Promise<BuiltinIndex> {
  builtin ??= fetch(publicUrl(BUILTIN_INDEX))
    .then(async (r) => {
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      return (await r.json()) as BuiltinIndex;
    })
    .catch((cause: unknown) => {
      builtin = null;
      throw new AppError(
        'STORAGE',
        `The list of built-in adapters could not be read (${String(cause)}). Reload the page; offline, ` +
          'open the app once online first so it can store itself.',
        { cause },
      );
    });
  return builtin;
}

/** The path (under public/) of the shipped `d2g repro` results, or null when none is shipped. */
export async function builtinReproPath(): Promise<string | null> {
  return (await builtinIndex()).repro ?? null;
}

function newId(): string {
  return `ad-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function metaOf(r: AdapterSetRecord): AdapterSetMeta {
  const { data: _, ...meta } = r;
  return meta;
}

/** Built-in sets (in index order), then the saved ones, newest first. */
export async function listAdapterSets(): Promise<AdapterSetMeta[]> {
  const idx = await builtinIndex();
  const fixed: AdapterSetMeta[] = idx.sets.map((s) => ({
    id: s.id,
    name: s.name,
    stage: s.stage,
    model: idx.model,
    source: 'builtin',
    createdAt: 0,
    files: s.files,
    bytes: s.bytes,
    ...(s.summary ? { summary: s.summary } : {}),
  }));
  const stored = ((await (await db()).getAll('adapters')) as unknown as AdapterSetRecord[])
    .map(metaOf)
    .sort((a, b) => b.createdAt - a.createdAt);
  return [...fixed, ...stored];
}

/** The files of a set, by file name. */
export async function adapterFiles(id: string): Promise<Record<string, ArrayBuffer>> {
  const idx = await builtinIndex();
  const b = idx.sets.find((s) => s.id === id);
  if (b) {
    const out: Record<string, ArrayBuffer> = {};
    await Promise.all(
      b.files.map(async (f) => {
        const url = publicUrl(b.dir + f);
        const r = await fetch(url).catch((cause: unknown) => {
          throw new AppError('STORAGE', `Could not read the built-in adapter file ${f}: ${String(cause)}.`, {
            cause,
          });
        });
        if (!r.ok)
          throw new AppError('STORAGE', `The built-in adapter file ${url} answered HTTP ${r.status}.`);
        out[f] = await r.arrayBuffer();
      }),
    );
    return out;
  }
  const rec = (await (await db()).get('adapters', id)) as unknown as AdapterSetRecord | undefined;
  if (!rec)
    throw new AppError('STORAGE', 'This adapter set is gone (deleted in another tab?). Pick another one.');
  return rec.data;
}

/** Saves a set in one put; on a full quota nothing is kept and the error says what to do. */
export async function saveAdapterSet(
  meta: Pick<AdapterSetMeta, 'name' | 'stage' | 'model' | 'source'> & {
    summary?: AdapterSetMeta['summary'] | undefined;
  },
  files: Record<string, ArrayBuffer | Uint8Array>,
): Promise<AdapterSetMeta> {
  const data: Record<string, ArrayBuffer> = {};
  for (const [k, v] of Object.entries(files))
    data[k] =
      v instanceof ArrayBuffer
        ? v
        : (v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength) as ArrayBuffer);
  const { summary, ...rest } = meta;
  const rec: AdapterSetRecord = {
    ...rest,
    ...(summary ? { summary } : {}),
    id: newId(),
    createdAt: Date.now(),
    files: Object.keys(data).sort(),
    bytes: Object.values(data).reduce((n, b) => n + b.byteLength, 0),
    data,
  };
  try {
    await (await db()).put('adapters', rec as never);
  } catch (cause) {
    const quota = (cause as { name?: string } | null)?.name === 'QuotaExceededError';
    throw new AppError(
      quota ? 'QUOTA_FULL' : 'STORAGE',
      quota
        ? `The browser's storage for this site is full, so "${meta.name}" was not saved. Delete adapters or ` +
            'datasets you no longer need (Models, Explore), then save again.'
        : `The browser refused to save "${meta.name}" (${String(cause)}); nothing was kept.`,
      { cause },
    );
  }
  return metaOf(rec);
}

export async function renameAdapterSet(id: string, name: string): Promise<void> {
  const d = await db();
  const tx = d.transaction('adapters', 'readwrite');
  const rec = (await tx.store.get(id)) as unknown as AdapterSetRecord | undefined;
  if (!rec) throw new AppError('STORAGE', 'Built-in adapters cannot be renamed; save a copy first.');
  rec.name = name.trim() || rec.name;
  await Promise.all([tx.store.put(rec as never), tx.done]);
}

export async function deleteAdapterSet(id: string): Promise<void> {
  const d = await db();
  await d.delete('adapters', id);
}
