/**
 * Display state of Explore: which dataset is open (built-in or saved), its statistics, the question
 * list with its filter, the selected question, and imports (parsed in the data worker, saved to
 * IndexedDB in one transaction). Worker results are latest-wins. The open dataset and question are
 * kept in the hash (`#/explore/gsm8k/12`) so a reload comes back to them.
 */
import type { AnswerKind } from '../../method/answers/index.ts';
import type { DatasetFormat, Problem } from '../../method/datasets/index.ts';
import { Comlink, data, publicUrl } from '../engine-client.ts';
import { BUILTIN_DATASETS, type BuiltinId } from '../lib/builtin-data.ts';
import type { LoadedDataset } from '../lib/data-service.ts';
import { deleteDataset, listDatasets, loadDataset, saveDataset, type DatasetRecord } from '../lib/db.ts';
import { AppError, describeError, type UserMessage } from '../lib/errors.ts';

/** `world`, `gsm8k`, `math500`, or `saved:<id>`. */
export type DatasetKey = BuiltinId | `saved:${string}`;

export type QuestionFilter = 'all' | 'both' | 'pos' | 'neg' | 'none';

export const FILTERS: readonly { id: QuestionFilter; label: string }[] = [
  { id: 'all', label: 'All' },
  { id: 'both', label: 'Right and wrong' },
  { id: 'pos', label: 'Only right' },
  { id: 'neg', label: 'Only wrong' },
  { id: 'none', label: 'No rationales' },
];

/** Per question: how many rationales are right / wrong. */
export interface QuestionCounts {
  pos: number;
  neg: number;
}

function countsOf(p: Problem): QuestionCounts {
  let pos = 0;
  for (const r of p.rationales) if (r.correct) pos++;
  return { pos, neg: p.rationales.length - pos };
}

function matches(f: QuestionFilter, c: QuestionCounts): boolean {
  if (f === 'both') return c.pos > 0 && c.neg > 0;
  if (f === 'pos') return c.pos > 0 && c.neg === 0;
  if (f === 'neg') return c.neg > 0 && c.pos === 0;
  if (f === 'none') return c.pos + c.neg === 0;
  return true;
}

function parseExploreHash(hash: string): { key: DatasetKey | null; question: number } {
  const [, view, key, q] = hash.replace(/^#/, '').split('/');
  if (view !== 'explore' || !key) return { key: null, question: 0 };
  const k = decodeURIComponent(key);
  const valid = k.startsWith('saved:') || BUILTIN_DATASETS.some((b) => b.id === k);
  return { key: valid ? (k as DatasetKey) : null, question: Math.max(0, Number(q) || 0) };
}

export class ExploreState {
  saved = $state.raw<DatasetRecord[]>([]);
  key = $state<DatasetKey | null>(null);
  loaded = $state.raw<LoadedDataset | null>(null);
  phase = $state<'idle' | 'loading' | 'ready' | 'error'>('idle');
  progress = $state(0);
  error = $state.raw<UserMessage | null>(null);
  filter = $state<QuestionFilter>('all');
  search = $state('');
  /** Index into `loaded.dataset.problems`. */
  selected = $state(0);
  worldN = $state(500);
  worldSeed = $state(1);

  importKind = $state<AnswerKind | 'auto'>('auto');
  importFormat = $state<DatasetFormat | 'auto'>('auto');
  importUrl = $state('');
  importing = $state(false);
  importError = $state.raw<UserMessage | null>(null);
  importNotice = $state('');

  counts = $derived(this.loaded ? this.loaded.dataset.problems.map(countsOf) : []);
  /** Indices of the questions that pass the filter and the search. */
  visible = $derived.by(() => {
    const ps = this.loaded?.dataset.problems ?? [];
    const q = this.search.trim().toLowerCase();
    const out: number[] = [];
    ps.forEach((p, i) => {
      if (matches(this.filter, this.counts[i]!) && (q === '' || p.question.toLowerCase().includes(q)))
        out.push(i);
    });
    return out;
  });
  problem = $derived(this.loaded?.dataset.problems[this.selected] ?? null);

  private run = 0;
  private started = false;

  /** First visit: the saved list, then the dataset named in the hash (default: the world). */
  async start(): Promise<void> {
    if (this.started) {
      // back in Explore from another view: put the open dataset and question back in the hash
      if (this.loaded) this.select(this.selected);
      return;
    }
    this.started = true;
    const { key, question } = parseExploreHash(location.hash);
    try {
      this.saved = await listDatasets();
    } catch (e) {
      this.importError = describeError(e);
    }
    await this.open(key ?? 'world', key ? question : undefined);
  }

  /** Opens a dataset at `question`, or at its first question with a right and a wrong rationale. */
  async open(key: DatasetKey, question?: number): Promise<void> {
    const run = ++this.run;
    this.key = key;
    this.importNotice = ''; // about the last import, not about what is opened now
    this.importError = null;
    this.phase = 'loading';
    this.progress = 0;
    this.error = null;
    const onProgress = Comlink.proxy((f: number) => {
      if (run === this.run) this.progress = f;
    });
    try {
      let res: LoadedDataset;
      if (key.startsWith('saved:')) {
        const { dataset } = await loadDataset(key.slice(6));
        res = { dataset, stats: await data().describe(dataset) };
      } else {
        const world = { n: this.worldN, seed: this.worldSeed };
        res = await data().builtin(key as BuiltinId, publicUrl(''), world, onProgress);
      }
      if (run !== this.run) return;
      this.show(key, res, question);
    } catch (e) {
      if (run !== this.run) return;
      this.loaded = null;
      this.error = describeError(e);
      this.phase = 'error';
    }
  }

  private show(key: DatasetKey, res: LoadedDataset, question?: number): void {
    const ps = res.dataset.problems;
    const first = Math.max(
      0,
      ps.findIndex((p) => p.rationales.some((r) => r.correct) && p.rationales.some((r) => !r.correct)),
    );
    this.key = key;
    this.loaded = res;
    this.filter = 'all';
    this.search = '';
    this.phase = 'ready';
    this.select(Math.min(question ?? first, Math.max(0, ps.length - 1)));
  }

  select(i: number): void {
    this.selected = i;
    if (this.key !== null && location.hash.startsWith('#/explore'))
      history.replaceState(null, '', `#/explore/${encodeURIComponent(this.key)}/${i}`);
  }

  /** Moves the selection by `d` within the visible questions (j / k). */
  step(d: number): void {
    const v = this.visible;
    if (v.length === 0) return;
    const at = v.indexOf(this.selected);
    const next = at < 0 ? 0 : Math.min(v.length - 1, Math.max(0, at + d));
    this.select(v[next]!);
  }

  async importFile(file: File): Promise<void> {
    await this.importBlob(file, file.name);
  }

  async importFromUrl(): Promise<void> {
    const url = this.importUrl.trim();
    if (url === '') return;
    await this.importBlob(null, url);
  }

  /** Parse in the worker, save in one transaction, then open it; on failure nothing is kept. */
  private async importBlob(blob: Blob | null, name: string): Promise<void> {
    this.importing = true;
    this.importError = null;
    this.importNotice = '';
    this.progress = 0;
    const onProgress = Comlink.proxy((f: number) => (this.progress = f));
    try {
      const b = blob ?? (await download(name));
      const res = await data().importBlob(
        b,
        { name, kind: this.importKind, format: this.importFormat },
        onProgress,
      );
      const rec = await saveDataset(res.dataset, { source: name, pos: res.stats.pos, neg: res.stats.neg });
      this.saved = await listDatasets();
      ++this.run;
      this.show(`saved:${rec.id}`, res);
      const skipped = res.stats.skipped;
      this.importNotice =
        `Imported "${name}": ${res.stats.questions.toLocaleString()} questions, ` +
        `${res.stats.rationales.toLocaleString()} rationales` +
        (skipped > 0 ? `; ${skipped.toLocaleString()} lines skipped (see below)` : '') +
        '.';
    } catch (e) {
      this.importError = describeError(e);
    } finally {
      this.importing = false;
    }
  }

  async remove(id: string): Promise<void> {
    try {
      await deleteDataset(id);
      this.saved = await listDatasets();
      if (this.key === `saved:${id}`) await this.open('world');
    } catch (e) {
      this.importError = describeError(e);
    }
  }
}

async function download(url: string): Promise<Blob> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (cause) {
    throw new AppError(
      'DOWNLOAD',
      `Could not download ${url}: the network failed or the server does not allow other sites to read it (CORS). ` +
        'Download the file yourself and import it with "Choose file".',
      { cause },
    );
  }
  if (!res.ok)
    throw new AppError(
      'DOWNLOAD',
      `${url} answered HTTP ${res.status}: check the address, or download the file and import it.`,
    );
  return res.blob();
}
