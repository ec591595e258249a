// A teacher run's stored state (plain data), its store, its progress and the dataset it makes.
import { EngineError } from '../../engine/errors.ts';
import { extractGold } from '../answers/index.ts';
import { type Dataset, type Problem, type Rationale } from '../datasets/formats.ts';
import { questionHash } from '../datasets/split.ts';

import { type TeacherConfig, type TeacherProblem } from './config.ts';

// ---------------------------------------------------------------------------------------------
// State and store

export interface TeacherRunHeader {
  version: 1;
  runId: string;
  config: TeacherConfig;
  /** `n` per call when the run started: min(samplesPerCall, k, model.maxN). */
  callSize: number;
  problems: TeacherProblem[];
}

/** A finished problem: its k labelled rationales (our verdicts). */
export interface TeacherRecord {
  /** Position in the header's problem list. */
  index: number;
  id: string;
  rationales: Rationale[];
  /** Tokens the model reported for them (0 when it reports none). */
  tokens: number;
  /** How many stopped at maxTokens. */
  truncated: number;
}

/** The samples already written for the problem in progress (fewer than k). */
export interface TeacherPartial {
  index: number;
  id: string;
  texts: string[];
  tokens: number;
  truncated: number;
}

export interface TeacherRunState {
  header: TeacherRunHeader;
  /** Finished problems, by ascending index, each once. */
  records: TeacherRecord[];
  partial: TeacherPartial | null;
}

/** One step of a run, saved atomically. */
export type TeacherStoreChange =
  | { type: 'start'; header: TeacherRunHeader }
  | { type: 'partial'; partial: TeacherPartial }
  | { type: 'problem'; record: TeacherRecord };

/**
 * Where a run's state lives. `save` applies one change atomically (as `applyStoreChange` does): in
 * IndexedDB, the header and the partial in one object store, each record under [runId, index] in
 * another, so a save writes one problem, not the whole run.
 */
export interface TeacherStore {
  load(runId: string): Promise<TeacherRunState | null>;
  save(runId: string, change: TeacherStoreChange): Promise<void>;
  delete(runId: string): Promise<void>;
}

/** The state after `change`. A record replaces one with the same index and clears the partial. */
export function applyStoreChange(state: TeacherRunState | null, change: TeacherStoreChange): TeacherRunState {
  if (change.type === 'start') return { header: change.header, records: [], partial: null };
  if (state === null) throw new Error(`a teacher store got a "${change.type}" change before the run's start`);
  if (change.type === 'partial') return { ...state, partial: change.partial };
  const { record } = change;
  const records = state.records.filter((r) => r.index !== record.index);
  const at = records.findIndex((r) => r.index > record.index);
  records.splice(at < 0 ? records.length : at, 0, record);
  return { ...state, records, partial: null };
}

/** A store in memory (tests; a page without IndexedDB). Copies on the way in and out, as IndexedDB does. */
export class MemoryTeacherStore implements TeacherStore {
  private readonly runs = new Map<string, TeacherRunState>();
  /** Changes saved so far. */
  saves = 0;
  load(runId: string): Promise<TeacherRunState | null> {
    const s = this.runs.get(runId);
    return Promise.resolve(s ? structuredClone(s) : null);
  }
  save(runId: string, change: TeacherStoreChange): Promise<void> {
    this.runs.set(runId, applyStoreChange(this.runs.get(runId) ?? null, structuredClone(change)));
    this.saves++;
    return Promise.resolve();
  }
  delete(runId: string): Promise<void> {
    this.runs.delete(runId);
    return Promise.resolve();
  }
}

// ---------------------------------------------------------------------------------------------
// Progress and output

export interface TeacherProgress {
  /** Problems finished, in all sessions of the run. */
  done: number;
  total: number;
  /** Rationales of the finished problems; of them, judged correct by our checking, and without an answer. */
  rationales: number;
  correct: number;
  noAnswer: number;
  /** Rationales that stopped at maxTokens (many: raise maxTokens). */
  truncated: number;
  /** Samples written, the problem in progress included, of total × k. */
  samplesDone: number;
  samplesTotal: number;
  /** Id of the problem being written; null when none is. */
  current: string | null;
  /** Seconds since this session's first call. */
  elapsedSeconds: number;
  /** Tokens per second in this session; null until the model reported a token count. */
  tokensPerSecond: number | null;
  /** Seconds left at this session's pace; null before its first call returned. */
  etaSeconds: number | null;
}

export type TeacherStatus = 'finished' | 'cancelled';

export interface TeacherRunResult {
  status: TeacherStatus;
  state: TeacherRunState;
  /** The finished problems as a dataset (a cancelled run's too). */
  dataset: Dataset;
  /** `dataset` in our JSON lines. */
  jsonl: string;
  progress: TeacherProgress;
}

/** Counts of a saved state, as the UI shows a run before resuming it. */
export function teacherProgressOf(state: TeacherRunState): TeacherProgress {
  const { config, problems } = state.header;
  let rationales = 0;
  let correct = 0;
  let noAnswer = 0;
  let truncated = 0;
  for (const r of state.records) {
    rationales += r.rationales.length;
    truncated += r.truncated;
    for (const x of r.rationales) {
      if (x.correct) correct++;
      if (x.answer === null) noAnswer++;
    }
  }
  return {
    done: state.records.length,
    total: problems.length,
    rationales,
    correct,
    noAnswer,
    truncated,
    samplesDone: rationales + (state.partial?.texts.length ?? 0),
    samplesTotal: problems.length * config.k,
    current: null,
    elapsedSeconds: 0,
    tokensPerSecond: null,
    etaSeconds: null,
  };
}

/**
 * The finished problems of a run as a dataset in problem order. `line` is the position in the
 * output, so `toOursJsonl` writes each id (unless it is `L<that position>`) and parsing the output
 * gives the same ids back.
 */
export function teacherDataset(state: TeacherRunState): Dataset {
  const { config, problems } = state.header;
  const out: Problem[] = state.records.map((r, i) => {
    const p = problems[r.index];
    if (p === undefined || p.id !== r.id)
      throw new EngineError(
        'BAD_FILE',
        `the saved teacher run "${state.header.runId}" is damaged (record ${r.index} is not problem "${r.id}"): delete it and start again.`,
      );
    return {
      id: p.id,
      line: i + 1,
      question: p.question,
      gold: p.gold,
      goldAnswer: extractGold(config.kind, p.gold) ?? '',
      rationales: r.rationales,
      ...(p.meta ? { meta: p.meta } : {}),
    };
  });
  return {
    name: config.name,
    kind: config.kind,
    format: 'ours',
    problems: out,
    issues: [],
    lines: out.length,
  };
}

/** The seed of the call whose first sample is `start` of problem `id`: an integer in [0, 2^31). */
export function callSeed(runSeed: number, id: string, start: number): number {
  return Math.floor(questionHash(`${id} ${start}`, runSeed) * 2 ** 31);
}
