/**
 * The teacher run: for each problem of a dataset, k rationales from a `TeacherModel`, each labelled
 * by our answer checking, collected as a dataset in our JSON-lines format
 * (`{"question", "gold", "rationales": [{"text", "correct"}]}`, src/method/datasets).
 *
 * - Batching: the k samples of a problem go in calls of `n` = min(samplesPerCall, k, model.maxN).
 * - Seeds: each call's seed is a hash of (run seed, problem id, index of its first sample), so a
 *   problem's rationales do not depend on which problems ran before it or in which session.
 * - Resume: the run's state is plain data kept by a `TeacherStore` (IndexedDB in the app, memory in
 *   tests): the header (settings + problem list) once, then after every call the samples written
 *   for the problem in progress, and after every problem its labelled record. Records are keyed by
 *   problem index, so a problem is never stored twice; a run started again with the same id goes
 *   on after the last saved call and writes exactly what an unbroken run writes.
 * - Cancel: an AbortSignal. The run stops before the next call; a call that finishes is kept, a
 *   call the model abandons is not. Nothing is lost that was saved.
 * - Errors: whatever the model throws (web-llm's classes, or their `Name: message` strings from a
 *   worker) becomes an EngineError a student can act on (`teacherError`); the store then holds the
 *   state after the last good call, ready to resume.
 *
 * @example
 *   const config = teacherConfig({ modelId: model.id, kind: 'gsm8k', k: 4 });
 *   const { problems } = problemsFromJsonl(text, 'gsm8k');
 *   const res = await runTeacher({ model, store, runId: 'gsm8k-train', problems, config, signal, onProgress });
 *   res.status; // 'finished' | 'cancelled'
 *   res.jsonl;  // our format; parseDataset(res.jsonl, { kind: 'gsm8k' }) reads it back
 */
import { EngineError } from '../../engine/errors.ts';
import { checkRationales, toOursJsonl } from '../datasets/formats.ts';
import { buildMessages } from './prompt.ts';
import type { TeacherCompletion, TeacherLoadProgress, TeacherModel, TeacherRequest } from './types.ts';

import { type TeacherConfig, type TeacherProblem, bad, checkConfig, goldAnswersOf } from './config.ts';
import {
  type TeacherPartial,
  type TeacherProgress,
  type TeacherRecord,
  type TeacherRunHeader,
  type TeacherRunResult,
  type TeacherRunState,
  type TeacherStatus,
  type TeacherStore,
  type TeacherStoreChange,
  applyStoreChange,
  callSeed,
  teacherDataset,
  teacherProgressOf,
} from './state.ts';
import { type TeacherErrorContext, loadTeacher, teacherError } from './errors.ts';

// ---------------------------------------------------------------------------------------------
// The run

export interface TeacherRunOptions {
  model: TeacherModel;
  store: TeacherStore;
  /** The run's key in the store. A saved run with this id is resumed. */
  runId: string;
  /** A new run's problems; for a resumed run optional (the saved list is used) and checked if given. */
  problems?: readonly TeacherProblem[];
  /** A new run's settings (`teacherConfig`); for a resumed run optional and checked if given. */
  config?: TeacherConfig;
  signal?: AbortSignal;
  onProgress?: (p: TeacherProgress) => void;
  onLoadProgress?: (p: TeacherLoadProgress) => void;
  /** Milliseconds clock for tokens/s and ETA (tests pass their own). */
  now?: () => number;
}

const CONFIG_KEYS: readonly (keyof TeacherConfig)[] = [
  'modelId',
  'kind',
  'k',
  'temperature',
  'topP',
  'maxTokens',
  'seed',
  'samplesPerCall',
  'shots',
  'name',
];

function checkSaved(state: TeacherRunState, runId: string): void {
  const h = state.header as Partial<TeacherRunHeader> | undefined;
  if (
    h?.version !== 1 ||
    h.runId !== runId ||
    !Array.isArray(h.problems) ||
    typeof h.config !== 'object' ||
    !Array.isArray(state.records)
  )
    throw new EngineError(
      'BAD_FILE',
      `the saved teacher run "${runId}" is not one this version of dust2gold can read: delete it and start again.`,
    );
}

function checkResume(state: TeacherRunState, opts: TeacherRunOptions): void {
  const { header } = state;
  const { runId, model } = opts;
  if (model.id !== header.config.modelId)
    bad(
      `the saved run "${runId}" was written by ${header.config.modelId}: load that model to go on with it ` +
        `(another model would mix two teachers in one dataset), or start a new run under another name.`,
    );
  if (opts.config) {
    const diff = CONFIG_KEYS.filter((key) => opts.config![key] !== header.config[key]).map(
      (key) =>
        `${key} (saved ${JSON.stringify(header.config[key])}, now ${JSON.stringify(opts.config![key])})`,
    );
    if (diff.length > 0)
      bad(
        `the saved run "${runId}" has other settings: ${diff.join(', ')}. Go on with the saved settings, ` +
          'or start a new run under another name.',
      );
  }
  if (opts.problems) {
    const a = opts.problems;
    const b = header.problems;
    const at =
      a.length !== b.length
        ? -1
        : a.findIndex((p, i) => p.id !== b[i]!.id || p.question !== b[i]!.question || p.gold !== b[i]!.gold);
    if (a.length !== b.length || at >= 0)
      bad(
        `the saved run "${runId}" is for another problem list (${b.length} problems` +
          (at >= 0 ? `; problem ${at + 1} differs` : `, not ${a.length}`) +
          '): go on without choosing a dataset, or start a new run under another name.',
      );
  }
}

/**
 * Runs (or resumes) a teacher run to its end or until `signal` aborts. Resolves with the dataset of
 * the finished problems; rejects with an EngineError when the model, the store or the settings fail,
 * the store then holding everything up to the last good call.
 */
export async function runTeacher(opts: TeacherRunOptions): Promise<TeacherRunResult> {
  const { model, store, runId, signal } = opts;
  const now = opts.now ?? Date.now;
  const storeOp = async <T>(
    f: () => Promise<T>,
    ctx: Omit<TeacherErrorContext, 'phase' | 'modelId'> = {},
  ) => {
    try {
      return await f();
    } catch (e) {
      throw teacherError(e, { phase: 'save', modelId: model.id, ...ctx });
    }
  };

  const state = await storeOp(() => store.load(runId));
  let header: TeacherRunHeader;
  if (state !== null) {
    checkSaved(state, runId);
    checkResume(state, opts);
    header = state.header;
  } else {
    if (!opts.problems || !opts.config)
      bad(`there is no saved teacher run "${runId}" to go on with: start one with a dataset and settings.`);
    const config = opts.config!;
    checkConfig(config);
    if (model.id !== config.modelId)
      bad(`the settings name the model ${config.modelId}, but the model given is ${model.id}.`);
    if (!Number.isInteger(model.maxN) || model.maxN < 1)
      throw new EngineError(
        'BAD_ARGUMENT',
        `the teacher model ${model.id} says it writes ${model.maxN} samples per call.`,
      );
    header = {
      version: 1,
      runId,
      config: { ...config },
      callSize: Math.min(config.samplesPerCall, config.k, model.maxN),
      problems: opts.problems!.map((p) => ({ ...p, ...(p.meta ? { meta: { ...p.meta } } : {}) })),
    };
  }
  const { config, problems } = header;
  const { kind, k } = config;
  const goldAnswers = goldAnswersOf(problems, kind);
  const callSize = Math.max(1, Math.min(header.callSize, model.maxN));

  await loadTeacher(model, opts.onLoadProgress);
  // `st` follows the store: every change is saved, then applied here the way the store applies it.
  let st: TeacherRunState;
  const commit = async (
    change: TeacherStoreChange,
    ctx: Omit<TeacherErrorContext, 'phase' | 'modelId'> = {},
  ) => {
    await storeOp(() => store.save(runId, change), ctx);
    st = applyStoreChange(st, change);
  };
  if (state === null) {
    st = { header, records: [], partial: null };
    await commit({ type: 'start', header });
  } else st = state;

  // Tallies (all sessions) and this session's pace.
  const base = teacherProgressOf(st);
  const tally = { ...base };
  const t0 = now();
  let sessionSamples = 0;
  let sessionTokens = 0;
  let sawTokens = false;
  const progress = (current: string | null): TeacherProgress => {
    const elapsedMs = Math.max(0, now() - t0);
    const left = tally.samplesTotal - tally.samplesDone;
    return {
      ...tally,
      current,
      elapsedSeconds: elapsedMs / 1000,
      tokensPerSecond: sawTokens && elapsedMs > 0 ? sessionTokens / (elapsedMs / 1000) : null,
      etaSeconds: sessionSamples > 0 ? (left * elapsedMs) / sessionSamples / 1000 : null,
    };
  };
  const emit = (current: string | null) => opts.onProgress?.(progress(current));
  const finish = (status: TeacherStatus): TeacherRunResult => {
    const p = progress(null);
    opts.onProgress?.(p);
    const dataset = teacherDataset(st);
    return { status, state: st, dataset, jsonl: toOursJsonl(dataset), progress: p };
  };

  const done = new Set(st.records.map((r) => r.index));
  const firstOpen = problems.findIndex((_, i) => !done.has(i));
  emit(firstOpen >= 0 ? problems[firstOpen]!.id : null);

  for (let index = 0; index < problems.length; index++) {
    if (done.has(index)) continue;
    if (signal?.aborted) return finish('cancelled');
    const problem = problems[index]!;
    const messages = buildMessages(kind, problem.question, { shots: config.shots });
    const saved = st.partial;
    let partial: TeacherPartial =
      saved !== null && saved.index === index && saved.id === problem.id && saved.texts.length < k
        ? { ...saved, texts: [...saved.texts] }
        : { index, id: problem.id, texts: [], tokens: 0, truncated: 0 };
    while (partial.texts.length < k) {
      if (signal?.aborted) return finish('cancelled');
      const start = partial.texts.length;
      const n = Math.min(callSize, k - start);
      const req: TeacherRequest = {
        messages,
        n,
        temperature: config.temperature,
        topP: config.topP,
        maxTokens: config.maxTokens,
        seed: callSeed(config.seed, problem.id, start),
      };
      const ctx = { problemId: problem.id, done: st.records.length, total: problems.length };
      let c: TeacherCompletion;
      try {
        c = await model.complete(req, signal);
      } catch (e) {
        if (signal?.aborted) return finish('cancelled');
        throw teacherError(e, { phase: 'generate', modelId: model.id, ...ctx });
      }
      if (!Array.isArray(c?.texts) || c.texts.length !== n || c.texts.some((t) => typeof t !== 'string'))
        throw teacherError(
          new Error(
            `asked for ${n} completions, it returned ${Array.isArray(c?.texts) ? c.texts.length : 'none'}`,
          ),
          { phase: 'generate', modelId: model.id, ...ctx },
        );
      const tokens = c.tokens !== undefined && Number.isFinite(c.tokens) ? c.tokens : 0;
      if (c.tokens !== undefined) sawTokens = true;
      const truncated = Math.min(n, Math.max(0, c.truncated ?? 0));
      partial = {
        ...partial,
        texts: [...partial.texts, ...c.texts],
        tokens: partial.tokens + tokens,
        truncated: partial.truncated + truncated,
      };
      sessionSamples += n;
      sessionTokens += tokens;
      tally.samplesDone += n;
      if (partial.texts.length < k) {
        await commit({ type: 'partial', partial }, ctx);
        emit(problem.id);
      }
    }
    const rationales = checkRationales(
      kind,
      goldAnswers[index]!,
      partial.texts.map((text) => ({ text })),
    );
    const record: TeacherRecord = {
      index,
      id: problem.id,
      rationales,
      tokens: partial.tokens,
      truncated: partial.truncated,
    };
    await commit(
      { type: 'problem', record },
      { problemId: problem.id, done: st.records.length, total: problems.length },
    );
    done.add(index);
    tally.done++;
    tally.rationales += rationales.length;
    tally.truncated += record.truncated;
    for (const r of rationales) {
      if (r.correct) tally.correct++;
      if (r.answer === null) tally.noAnswer++;
    }
    const next = problems.findIndex((_, i) => i > index && !done.has(i));
    emit(next >= 0 ? problems[next]!.id : null);
  }
  return finish('finished');
}

export * from './config.ts';
export * from './state.ts';
export * from './errors.ts';
