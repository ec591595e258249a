/**
 * Dataset loading for the data worker (workers/data.worker.ts): fetch or generate, parse with
 * src/method/datasets (our answer checking decides D_pos / D_neg), and describe. Runs off the main
 * thread because checking MATH answers symbolically can take seconds on a large file. No DOM, no
 * GPU; the unit tests run it in Node.
 *
 * @example
 *   const svc = new DataService();
 *   const { dataset, stats } = await svc.builtin('world', baseUrl, { n: 100 });
 *   stats.pos; // D_pos count
 */
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { AnswerKind } from '../../method/answers/index.ts';
import {
  datasetStats,
  parseDataset,
  type Dataset,
  type DatasetFormat,
  type DatasetStats,
} from '../../method/datasets/index.ts';
import {
  BUILTIN_DATASETS,
  guessKind,
  math500ToOurs,
  worldDatasetJsonl,
  type BuiltinId,
  type WorldOptions,
} from './builtin-data.ts';

export interface LoadedDataset {
  dataset: Dataset;
  stats: DatasetStats;
}

export interface ImportOptions {
  /** The file name or URL, for messages and the saved dataset's name. */
  name: string;
  kind: AnswerKind | 'auto';
  format: DatasetFormat | 'auto';
}

/** Fraction done, 0..1. */
export type ProgressFn = (fraction: number) => void;

/** Larger files are refused before reading: the parsed copy lives in memory next to the text. */
export const MAX_IMPORT_BYTES = 256 * 1024 * 1024;

const SHAPES =
  'our format {"question","gold","rationales":[{"text"}]}, the authors\' {"question","answer","generated_answer":[…]} ' +
  'or OpenAI\'s GSM8K solutions {"question","ground_truth","<model>":{"is_correct","solution"}}';

export class DataService {
  /** A built-in dataset; `baseUrl` is the app's public URL (files are fetched relative to it). */
  async builtin(
    id: BuiltinId,
    baseUrl: string,
    world: WorldOptions = {},
    onProgress?: ProgressFn,
  ): Promise<LoadedDataset> {
    const b = BUILTIN_DATASETS.find((d) => d.id === id);
    if (!b) throw new EngineError('BAD_ARGUMENT', `There is no built-in dataset "${id}".`);
    let text: string;
    if (!b.file) text = worldDatasetJsonl(world);
    else {
      const url = new URL(b.file, baseUrl).href;
      let res: Response;
      try {
        res = await fetch(url);
      } catch (cause) {
        throw new EngineError(
          'BAD_FILE',
          `Could not load ${b.title} (${b.file}): ${String(cause)}. Check the connection and reload; after one complete visit the app works offline.`,
          { cause },
        );
      }
      if (!res.ok) throw new EngineError('BAD_FILE', `${b.title} (${b.file}) answered HTTP ${res.status}.`);
      text = await res.text();
      if (id === 'math500') text = math500ToOurs(text);
    }
    return this.parseText(text, { name: b.title, kind: b.kind, format: 'auto' }, onProgress);
  }

  /** A file the user picked or downloaded (a Blob crosses the worker boundary without a copy of its text). */
  async importBlob(blob: Blob, opts: ImportOptions, onProgress?: ProgressFn): Promise<LoadedDataset> {
    if (blob.size > MAX_IMPORT_BYTES)
      throw new EngineError(
        'BAD_FILE',
        `"${opts.name}" is ${formatBytes(blob.size)}; the browser app imports up to ${formatBytes(MAX_IMPORT_BYTES)}. Split it, or use the command line (npm run d2g -- dataset stats).`,
      );
    return this.parseText(await blob.text(), opts, onProgress);
  }

  /** Statistics of a dataset (a saved one, loaded from IndexedDB). */
  describe(dataset: Dataset): DatasetStats {
    return datasetStats(dataset);
  }

  /** Parses and describes; throws BAD_FILE with what to do when no line is a usable record. */
  parseText(text: string, opts: ImportOptions, onProgress?: ProgressFn): LoadedDataset {
    if (text.trim() === '')
      throw new EngineError(
        'BAD_FILE',
        `"${opts.name}" is empty. Pick a JSON-lines file: one record per line in ${SHAPES}.`,
      );
    const kind = opts.kind === 'auto' ? guessKind(text) : opts.kind;
    if (kind === null)
      throw new EngineError(
        'BAD_FILE',
        `"${opts.name}" is not a dataset we can read: no line is a JSON record. ${firstLineHint(text)}Export JSON lines, one record per line, in ${SHAPES}.`,
      );
    let last = -1;
    const dataset = parseDataset(text, {
      kind,
      format: opts.format,
      name: opts.name,
      onProgress: (done, total) => {
        const f = Math.floor((done / total) * 100);
        if (f !== last) {
          last = f;
          onProgress?.(done / total);
        }
      },
    });
    if (dataset.problems.length === 0) {
      const first = dataset.issues
        .slice(0, 3)
        .map((i) => `line ${i.line}: ${i.message}`)
        .join('; ');
      throw new EngineError(
        'BAD_FILE',
        `"${opts.name}" has no usable question (${dataset.lines} lines read${first ? `; ${first}` : ''}). ` +
          `A dataset is JSON lines in ${SHAPES}; check the answer kind (now ${kind}).`,
      );
    }
    return { dataset, stats: datasetStats(dataset) };
  }
}

function firstLineHint(text: string): string {
  const line = text.split('\n', 1)[0] ?? '';
  const shown = line.length > 60 ? `${line.slice(0, 60)}…` : line;
  return `It starts ${JSON.stringify(shown)}. `;
}
