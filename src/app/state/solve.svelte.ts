/**
 * Display state of Solve: the problem (built-in world, GSM8K, MATH-500, or typed), the student
 * (base or an adapter set) and the ranker, m / temperature / seed, and one run's m streaming cards
 * with their answers and scores, the SC / WS / ASC votes and the early-stopping point. The GPU work
 * and the votes run in the inference worker (`inference().solver`); worker results are applied
 * latest-wins. Errors become messages (lib/errors.ts): `fatal` ones (no GPU, the model) put the
 * view in the error phase; a run's or an adapter's only fill `notice`.
 */
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { AnswerKind } from '../../method/answers/index.ts';
import type { StudentModelInfo } from '../../method/api/runtime.ts';
import type { EndReason, SolveEvent, VoteSummary } from '../../method/api/solver.ts';
import { Comlink, data, inference, publicUrl } from '../engine-client.ts';
import { adapterFiles, listAdapterSets, type AdapterSetMeta } from '../lib/adapters-store.ts';
import { BUILTIN_DATASETS, type BuiltinId } from '../lib/builtin-data.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import { studentModel, type ModelChoice } from './student-model.svelte.ts';

export type Phase = 'starting' | 'loading' | 'ready' | 'sampling' | 'error';

/** Where the question comes from. */
export type ProblemSource = BuiltinId | 'custom';

export const STUDENT_STAGES = ['kd', 'nat', 'nce', 'mix', 'nt', 'ul', 'cl', 'linmix'] as const;

export const SOURCES: readonly { id: ProblemSource; title: string; kind: AnswerKind | null }[] = [
  ...BUILTIN_DATASETS.map((d) => ({ id: d.id, title: d.title, kind: d.kind })),
  { id: 'custom', title: 'Type a question', kind: null },
];

export interface ProblemItem {
  id: string;
  question: string;
  /** The gold answer (extracted), when known. */
  gold: string | null;
}

export interface Card {
  text: string;
  done: boolean;
  answer: string | null;
  score: number | null;
  correct: boolean | null;
  reason: EndReason | null;
}

/** One bar of a voting rule. */
export interface VoteRow {
  answer: string;
  value: number;
  correct: boolean | null;
}

/** What the last run was about (the cards and bars describe it, not the current picks). */
export interface RunInfo {
  question: string;
  gold: string | null;
  kind: AnswerKind;
  student: string;
  ranker: string | null;
  m: number;
}

const WORLD = { n: 500, seed: 1 };
/** New tokens per sample: the world's rationales are 40–90 characters. */
export const DEFAULT_MAX_NEW = 120;

export class SolveState {
  phase = $state<Phase>('starting');
  gpu = $state.raw<GpuInfo | null>(null);
  model = $state.raw<StudentModelInfo | null>(null);
  /** A failure that leaves nothing to do here (no WebGPU, the model). */
  fatal = $state.raw<UserMessage | null>(null);
  /** A failed run, problem list or adapter choice (the view stays usable). */
  notice = $state.raw<UserMessage | null>(null);

  source = $state<ProblemSource>('world');
  problems = $state.raw<ProblemItem[]>([]);
  problemsLoading = $state(false);
  index = $state(0);
  customQuestion = $state(
    'Ann has 12 apples. She buys 7. She gives 4 to Tom. How many apples does Ann have now?',
  );
  customGold = $state('15');
  customKind = $state<AnswerKind>('arith');
  /** Characters of the question the model cannot read (filled by the worker). */
  unreadable = $state.raw<string[]>([]);

  sets = $state.raw<AdapterSetMeta[]>([]);
  /** Sets made for another model (id → why they do not fit this one): not offered. */
  unfit = $state.raw<Record<string, string>>({});
  studentId = $state('base');
  rankerId = $state('none');
  /** What the worker holds now (names), and a pick being applied. */
  appliedStudent = $state('base');
  appliedRanker = $state<string | null>(null);
  applying = $state(false);

  m = $state(16);
  temperature = $state(0.7);
  seed = $state(1);
  maxNew = $state(DEFAULT_MAX_NEW);

  cards = $state<Card[]>([]);
  votes = $state.raw<VoteSummary | null>(null);
  run = $state.raw<RunInfo | null>(null);
  tokens = $state(0);
  tokensPerSecond = $state(0);
  stopped = $state(false);

  students = $derived(
    this.sets.filter((s) => (STUDENT_STAGES as readonly string[]).includes(s.stage) && !this.unfit[s.id]),
  );
  rankers = $derived(this.sets.filter((s) => s.stage === 'rank' && !this.unfit[s.id]));
  /** Student sets that do not fit the model, with why (for a disabled option). */
  unfitStudents = $derived(
    this.sets
      .filter((s) => this.unfit[s.id] && (STUDENT_STAGES as readonly string[]).includes(s.stage))
      .map((s) => ({ set: s, why: this.unfit[s.id]! })),
  );
  /** Ranker sets that do not fit the model, with why. */
  unfitRankers = $derived(
    this.sets
      .filter((s) => this.unfit[s.id] && s.stage === 'rank')
      .map((s) => ({ set: s, why: this.unfit[s.id]! })),
  );
  /** Samples at most: 32, or what a GGUF model was planned for. */
  maxM = $derived(Math.min(32, this.model?.limits?.sequences ?? 32));
  kind = $derived<AnswerKind>(
    this.source === 'custom' ? this.customKind : (SOURCES.find((s) => s.id === this.source)?.kind ?? 'arith'),
  );
  problem = $derived<ProblemItem | null>(
    this.source === 'custom'
      ? { id: 'custom', question: this.customQuestion, gold: this.customGold.trim() || null }
      : (this.problems[this.index] ?? null),
  );

  private runId = 0;
  private running: Promise<void> = Promise.resolve();
  private listId = 0;
  private opened = false;
  private loaded: ModelChoice | null = null;

  /**
   * Opens the GPU, loads the model, lists adapters and problems: once per page. Each later visit
   * lists the adapter sets again (one trained or imported meanwhile shows up).
   */
  async start(): Promise<void> {
    if (this.opened) {
      await this.refreshSets();
      return;
    }
    this.opened = true;
    if (this.source !== 'custom') void this.loadProblems(this.source);
    try {
      this.phase = 'starting';
      this.gpu = await inference().solver.init();
      await this.loadModel(studentModel.source);
    } catch (e) {
      this.fail(e);
    }
  }

  /** Follows the shared choice of base model (Models changes it). */
  async useModel(choice: ModelChoice): Promise<void> {
    // only after a first load was tried (not when the GPU itself failed), and only for a new choice
    if (
      this.loaded === null ||
      this.loaded === choice ||
      this.phase === 'starting' ||
      this.phase === 'loading'
    )
      return;
    if (this.phase === 'sampling') {
      await this.stop();
      await this.running;
    }
    try {
      await this.loadModel(choice);
    } catch (e) {
      this.fail(e);
    }
  }

  private async loadModel(choice: ModelChoice): Promise<void> {
    this.phase = 'loading';
    this.fatal = null;
    this.loaded = choice;
    const { label: _l, builtin: _b, ...src } = choice;
    const solver = inference().solver;
    // Models loads a GGUF into this worker itself (with its progress bar): use it as it is
    const held = choice.key !== undefined ? await solver.modelInfo() : null;
    if (held && held.key === choice.key) {
      await solver.setStudent(null);
      await solver.setRanker(null);
      this.model = held;
    } else this.model = await solver.load(src);
    studentModel.info = this.model;
    this.appliedStudent = 'base';
    this.appliedRanker = null;
    try {
      // all of them, each checked against the model: a set made for another model is not offered
      this.sets = await listAdapterSets();
      this.unfit = await this.checkSets(this.sets, this.model.name);
    } catch (e) {
      this.notice = describeError(e);
    }
    if (!this.students.some((s) => s.id === this.studentId)) this.studentId = 'base';
    if (!this.rankers.some((s) => s.id === this.rankerId)) this.rankerId = 'none';
    this.m = Math.min(this.m, this.maxM);
    // the method's picture by default: a trained student and the ranker
    const fits = (s: AdapterSetMeta) => !this.unfit[s.id];
    const pick = (stage: string) =>
      this.sets.find((s) => s.stage === stage && s.source === 'builtin' && fits(s))?.id;
    // the furthest stage of the method that was trained for real (≥ 100 steps), NCE before NAT before KD
    const trained = (stage: string) =>
      this.sets.find(
        (s) =>
          s.stage === stage && s.source === 'builtin' && fits(s) && Number(s.summary?.['steps'] ?? 0) >= 100,
      )?.id;
    const student = trained('nce') ?? trained('nat') ?? trained('kd') ?? pick('nce') ?? pick('kd');
    const ranker = pick('rank');
    if (student && this.studentId === 'base') this.studentId = student;
    if (ranker && this.rankerId === 'none') this.rankerId = ranker;
    await this.apply();
    await this.checkQuestion();
    this.phase = 'ready';
  }

  /** The adapter sets listed again, each new one checked against the model; the picks stay. */
  private async refreshSets(): Promise<void> {
    if (!this.model || this.phase !== 'ready') return;
    try {
      const sets = await listAdapterSets();
      if (sets.length === this.sets.length && sets.every((s, i) => s.id === this.sets[i]!.id)) return;
      const unfit = await this.checkSets(
        sets.filter((s) => !this.sets.some((k) => k.id === s.id)),
        this.model.name,
      );
      const kept = Object.fromEntries(
        Object.entries(this.unfit).filter(([id]) => sets.some((s) => s.id === id)),
      );
      this.sets = sets;
      this.unfit = { ...kept, ...unfit };
      // a picked set deleted meanwhile (Models): back to the base model / no ranker
      if (!this.students.some((s) => s.id === this.studentId)) this.studentId = 'base';
      if (!this.rankers.some((s) => s.id === this.rankerId)) this.rankerId = 'none';
      await this.apply();
    } catch (e) {
      this.notice = describeError(e);
    }
  }

  /**
   * Which student / ranker sets do not fit the model (id → the worker's SHAPE_MISMATCH message).
   * A set made for a model of this name is taken to fit (setStudent still checks it); others are
   * checked on their headers in the worker, which allocates nothing.
   */
  private async checkSets(sets: readonly AdapterSetMeta[], model: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const s of sets) {
      if (s.model === model) continue;
      if (!(STUDENT_STAGES as readonly string[]).includes(s.stage) && s.stage !== 'rank') continue;
      const why = await inference().solver.fits(await adapterFiles(s.id), s.name);
      if (why !== null) out[s.id] = why;
    }
    return out;
  }

  /** Sends the picked student and ranker to the worker (a set that does not fit falls back). */
  async apply(): Promise<void> {
    if (!this.model) return;
    this.applying = true;
    try {
      const want = this.students.find((s) => s.id === this.studentId) ?? null;
      if ((want?.name ?? 'base') !== this.appliedStudent) {
        try {
          const files = want ? await adapterFiles(want.id) : null;
          this.appliedStudent = (await inference().solver.setStudent(files, want?.name ?? 'base')).name;
        } catch (e) {
          this.notice = describeError(e);
          this.studentId = this.students.find((s) => s.name === this.appliedStudent)?.id ?? 'base';
        }
      }
      const rank = this.rankers.find((s) => s.id === this.rankerId) ?? null;
      if ((rank?.name ?? null) !== this.appliedRanker) {
        try {
          const files = rank ? await adapterFiles(rank.id) : null;
          this.appliedRanker = await inference().solver.setRanker(files, rank?.name ?? 'none');
        } catch (e) {
          this.notice = describeError(e);
          this.rankerId = this.rankers.find((s) => s.name === this.appliedRanker)?.id ?? 'none';
        }
      }
    } finally {
      this.applying = false;
    }
  }

  async chooseStudent(id: string): Promise<void> {
    this.studentId = id;
    this.notice = null;
    await this.apply();
  }

  async chooseRanker(id: string): Promise<void> {
    this.rankerId = id;
    this.notice = null;
    await this.apply();
  }

  async chooseSource(source: ProblemSource): Promise<void> {
    this.source = source;
    this.index = 0;
    if (source !== 'custom') await this.loadProblems(source);
    await this.checkQuestion();
  }

  async choose(index: number): Promise<void> {
    const n = this.problems.length;
    if (n === 0) return;
    this.index = ((Math.round(index) % n) + n) % n;
    await this.checkQuestion();
  }

  /** Asks the worker which characters of the question the model cannot read. */
  async checkQuestion(): Promise<void> {
    const q = this.problem?.question ?? '';
    if (!this.model || !q) {
      this.unreadable = [];
      return;
    }
    this.unreadable = await inference().solver.unreadable(q);
  }

  private async loadProblems(id: BuiltinId): Promise<void> {
    const list = ++this.listId;
    this.problemsLoading = true;
    this.problems = [];
    try {
      const res = await data().builtin(id, publicUrl(''), WORLD);
      if (list !== this.listId) return;
      this.problems = res.dataset.problems.map((p) => ({
        id: p.id,
        question: p.question,
        gold: p.goldAnswer,
      }));
    } catch (e) {
      if (list === this.listId) this.notice = describeError(e);
    } finally {
      if (list === this.listId) this.problemsLoading = false;
    }
  }

  /** Samples m rationales of the current problem (the run in flight is `running`). */
  sample(): Promise<void> {
    if (this.phase !== 'ready') return this.running;
    this.running = this.runOnce();
    return this.running;
  }

  private async runOnce(): Promise<void> {
    const problem = this.problem;
    if (this.phase !== 'ready' || !problem || this.applying) return;
    const id = ++this.runId;
    const m = Math.min(this.maxM, Math.max(1, Math.round(this.m) || 16));
    this.m = m;
    this.phase = 'sampling';
    this.notice = null;
    this.stopped = false;
    this.cards = Array.from({ length: m }, () => ({
      text: '',
      done: false,
      answer: null,
      score: null,
      correct: null,
      reason: null,
    }));
    this.votes = null;
    this.tokens = 0;
    this.tokensPerSecond = 0;
    this.run = {
      question: problem.question,
      gold: problem.gold,
      kind: this.kind,
      student: this.appliedStudent,
      ranker: this.appliedRanker,
      m,
    };
    // Events come through their own message channel: one sent before the run ended may arrive
    // after the result, and would add text the final cards already hold.
    let ended = false;
    const onEvents = Comlink.proxy((events: SolveEvent[]) => {
      if (id === this.runId && !ended) this.applyEvents(events);
    });
    try {
      const r = await inference().solver.solve(
        {
          question: problem.question,
          kind: this.kind,
          gold: problem.gold,
          m,
          temperature: Math.max(0, Number(this.temperature) || 0),
          seed: Math.round(Number(this.seed) || 0),
          maxNew: Math.max(1, Math.round(this.maxNew) || DEFAULT_MAX_NEW),
        },
        onEvents,
      );
      if (id !== this.runId) return;
      r.samples.forEach((s, i) => {
        this.cards[i] = { ...s, done: true };
      });
      this.votes = r.votes;
      this.tokens = r.tokens;
      this.tokensPerSecond = r.tokensPerSecond;
      this.stopped = r.stopped;
      this.phase = 'ready';
    } catch (e) {
      if (id !== this.runId) return;
      // a failed run shows its message, not cards still waiting for text that will not come
      this.run = null;
      this.cards = [];
      this.votes = null;
      const msg = describeError(e);
      if (msg.code === 'DEVICE_LOST' || msg.code === 'DISPOSED') this.fail(e);
      else {
        this.notice = msg;
        this.phase = 'ready';
      }
    } finally {
      ended = true;
    }
  }

  private applyEvents(events: SolveEvent[]): void {
    for (const e of events) {
      if (e.type === 'text') {
        const c = this.cards[e.seq];
        if (c) c.text += e.text;
      } else if (e.type === 'done') {
        this.cards[e.seq] = { ...e.sample, done: true };
      } else if (e.type === 'score') {
        const c = this.cards[e.seq];
        if (c) c.score = e.score;
      } else if (e.type === 'votes') {
        this.votes = e.votes;
      } else {
        this.tokens = e.tokens;
        this.tokensPerSecond = e.ms > 0 ? e.tokens / (e.ms / 1000) : 0;
      }
    }
  }

  async stop(): Promise<void> {
    await inference().solver.stop();
  }

  private fail(e: unknown): void {
    this.fatal = describeError(e);
    this.phase = 'error';
  }
}
