/**
 * What a `repro` run is and what it gives (experiments/repro.ts runs it): its settings, its result
 * (written part by part), the store a long run keeps its work in, and the checks that let a run
 * go on from an earlier result.
 */
import type { StageConfig, StageName } from '../stages/config.ts';
import type { StageCheckpoint, StageResult } from '../stages/types.ts';
import { wilson } from '../eval.ts';

export interface ReproProblem {
  question: string;
  /** The gold answer, extracted (e.g. "10"). */
  gold: string;
  /** The teacher's rationales of this held-out question (for the ranker's pairs). */
  pos: string[];
  neg: string[];
}

export interface ReproConfig {
  /** Stage settings shared by every stage (equal budget). */
  stage: Partial<StageConfig>;
  /** Samples per question for (c). */
  m: number;
  temperature: number;
  maxNew: number;
  /** The student whose samples are voted on. */
  voteStudent: 'kd' | 'nat';
  /**
   * Vote on the first this many held-out problems (default: all). Sampling m rationales per
   * problem and scoring each is the run's costliest part on a software GPU.
   */
  voteProblems?: number;
  lambda: number;
  seed: number;
  /** Steps between a stage's checkpoints when the run has a store. */
  checkpointEvery: number;
}

export const DEFAULT_REPRO: ReproConfig = {
  stage: {},
  m: 16,
  temperature: 0.7,
  maxNew: 96,
  voteStudent: 'nat',
  lambda: 1,
  seed: 1,
  checkpointEvery: 25,
};

export interface Acc {
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
}

/** The paper's Table 1: held-out problems solved by the D_pos model, the D_neg model, and NAT. */
export interface ReproTable1 {
  pos: number;
  neg: number;
  both: number;
  union: number;
  iou: number;
  nat: number;
  nat_and_neg_only: number;
}

export interface ReproResult {
  n: number;
  /** The held-out set: its size and a hash of its questions (`n1000-1a2b3c4d`). */
  heldout: string;
  config: ReproConfig;
  table1: ReproTable1;
  table2: Record<string, Acc & { first_loss?: number; last_loss?: number }>;
  voting: { m: number; sc: Acc; ws: Acc; asc: Acc; early_stop: Acc & { mean_samples: number } }[];
  /** Null until the ranker's pairs are scored. */
  ranker: { pairs: number; accuracy: number; ci95: [number, number] } | null;
  /** Seconds the run took, summed over the runs that made it (`prior`). */
  seconds: number;
  /**
   * What has not run yet, in the order it runs (`REPRO_PARTS`): empty in a finished run's result;
   * a report made part-way (`repro`'s `report`) lists the rest.
   */
  pending: string[];
}

/** The parts of a run after Table 1, in order: the votes, the ranker, the baselines, the controls. */
export const REPRO_PARTS = ['voting', 'ranker', 'mix', 'cl', 'nt', 'ul', 'nat_kd', 'nat_zero'] as const;

export type ReproLog = (line: string) => void;

/**
 * Where a long run keeps what it has done, so that a stopped run goes on where it was: finished
 * stages, the running stage's last checkpoint, and the evaluation's outputs (greedy texts per
 * student, the sampled rationales and their ranker scores, in chunks). The CLI keeps them in
 * `--save DIR`; without a store nothing is kept.
 */
export interface ReproStore {
  /** The run stored under `key` (a stage's name, or a control's: `nat_kd`), finished earlier with this budget, or null. */
  finished(key: string): Promise<StageResult | null>;
  finish(key: string, r: StageResult): Promise<void>;
  /** The last checkpoint of `stage` stored under `key` with this budget, or null. */
  checkpoint(key: string, stage: StageName): Promise<StageCheckpoint | null>;
  saveCheckpoint(key: string, c: StageCheckpoint): Promise<void>;
  /** A cached evaluation output under `key` (the key names everything it depends on), or null. */
  get<V>(key: string): Promise<V | null>;
  put(key: string, value: unknown): Promise<void>;
}

/** Table 2's control rows: NAT with the KD LoRA as its assistant, and with a zero assistant. */
export const REPRO_CONTROLS = ['nat_kd', 'nat_zero'] as const;

/** FNV-1a over the strings: names a list of questions in a cache key. */
export function fingerprint(xs: readonly string[]): string {
  let h = 0x811c9dc5;
  for (const x of xs) {
    for (let i = 0; i < x.length; i++) h = Math.imul(h ^ x.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ 0x0a, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}

export function acc(k: number, n: number): Acc {
  return { n, correct: k, accuracy: n ? k / n : 0, ci95: wilson(k, n) };
}

/** JSON with the object keys sorted: two configs compare equal whatever order they were written in. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x && typeof x === 'object')
    return `{${Object.keys(x)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((x as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(x) ?? 'null';
}

/**
 * Why `prior` cannot be resumed by a run on `heldout` with `cfg` (another held-out set, other
 * settings), or null when it can.
 */
export function priorMismatch(prior: ReproResult, heldout: string, cfg: ReproConfig): string | null {
  if (typeof prior.heldout !== 'string' || !Array.isArray(prior.pending))
    return 'it is not a repro result this version can resume (no held-out set or pending parts named)';
  if (prior.heldout !== heldout)
    return `it was run on another held-out set (${prior.heldout}; this run's is ${heldout})`;
  // voteProblems may differ: the votes and the ranker then run again (repro's `priorDone`), the rest is kept
  const keys = [...new Set([...Object.keys(cfg), ...Object.keys(prior.config ?? {})])]
    .filter((k) => k !== 'voteProblems')
    .sort();
  const differ = keys.filter(
    (k) =>
      canonical((cfg as unknown as Record<string, unknown>)[k]) !==
      canonical((prior.config as unknown as Record<string, unknown>)[k]),
  );
  return differ.length ? `it was run with other settings (${differ.join(', ')} differ)` : null;
}

/** Whether `prior`'s votes were taken on the problems a run with `cfg` votes on. */
export const sameVoteProblems = (prior: ReproResult, cfg: ReproConfig) =>
  (prior.config.voteProblems ?? null) === (cfg.voteProblems ?? null);

/** The held-out set's name in results and cache keys: its size and a hash of its questions. */
export const heldoutTag = (questions: readonly string[]) => `n${questions.length}-${fingerprint(questions)}`;
