/**
 * The synthetic teacher: writes the chain of a problem step by step, the way a fallible LLM
 * would, and ends with "The answer is n.". Its mistakes are mostly *systematic and
 * problem-dependent*: it reliably misreads one verb ("loses" as a gain), one multiplier
 * ("triples" as ×2), skips "gives ... to X" sentences half the time, forgets to borrow when a
 * subtraction needs it, and stops early on long problems; the rest of its chain is right. On top
 * of that come rare random slips and wrong operands. Once a step goes wrong, the chain carries on
 * from the wrong amount (a consistent chain with a wrong answer), as an LLM's does.
 *
 * Every probability lives in an ErrorModel (JSON-able); DEFAULT_ERROR_MODEL gives ≈ 35 % of
 * samples correct on the default world (so |D_neg| > |D_pos|, as GPT-3.5 on MATH).
 *
 * @example
 *   const s = teacherSample(problem, DEFAULT_ERROR_MODEL, new Rng(1));
 *   s.text;    // "12, +3 = 15, +5 = 20. The answer is 20."  ("loses 5" read as a gain)
 *   s.errors;  // [{ step: 1, kind: 'wrongOp' }]
 */
import { EngineError } from '../../engine/errors.ts';
import {
  DEFAULT_CHAIN_STYLE,
  extractAnswer,
  formatChain,
  type ChainStep,
  type ChainStyle,
} from './format.ts';
import { VERBS, VERB_IDS, applyOp, type Op, type Problem, type VerbId } from './problems.ts';
import { Rng } from './rng.ts';

export type ErrorKind = 'slip' | 'carry' | 'borrow' | 'wrongOp' | 'wrongOperand' | 'drop' | 'stop';
export const ERROR_KINDS: readonly ErrorKind[] = [
  'slip',
  'carry',
  'borrow',
  'wrongOp',
  'wrongOperand',
  'drop',
  'stop',
];

export interface ErrorModel {
  /** Per verb: the teacher uses operation `op` instead of the verb's, with probability p. */
  wrongOp: Partial<Record<VerbId, { p: number; op: Op }>>;
  /** Per verb: the teacher uses operand `n` instead of the sentence's (e.g. ×2 for "triples"). */
  wrongOperand: Partial<Record<VerbId, { p: number; n: number }>>;
  /** Any add/sub step: the teacher takes another number of the problem as the operand. */
  otherOperand: number;
  /** Per verb: the teacher skips the sentence (writes no equation for it). */
  drop: Partial<Record<VerbId, number>>;
  /** A subtraction that needs a borrow (units of a < units of b): the teacher subtracts the smaller
   *  units digit from the larger (23 - 7 = 24). */
  borrow: number;
  /** An addition whose units carry: the teacher forgets the carry (18 + 5 = 13). */
  carry: number;
  /** Any equation: the result is off by ±1 or ±2. */
  slip: number;
  /** slipBySteps[s - 2]: extra slip probability per equation on s-step problems (a teacher that
   *  gets long problems wrong somewhere, in no fixed place). Optional; absent = [0, 0, 0]. */
  slipBySteps?: number[];
  /** slipIfPresent[v]: extra slip probability on every *other* step of a problem that contains
   *  verb v (the teacher gets v right but is thrown by it elsewhere, in no fixed place).
   *  Optional; absent = {}. */
  slipIfPresent?: Partial<Record<VerbId, number>>;
  /** stop[s - 2]: probability that on an s-step problem the teacher stops after step 1..s-1
   *  (uniform) and answers the amount so far. */
  stop: number[];
}

export const DEFAULT_ERROR_MODEL: ErrorModel = {
  wrongOp: { loses: { p: 0.85, op: '+' } },
  wrongOperand: { triples: { p: 0.8, n: 2 } },
  otherOperand: 0.03,
  drop: { gives: 0.5 },
  borrow: 0.6,
  carry: 0.05,
  slip: 0.02,
  stop: [0, 0.15, 0.3],
};

export interface TeacherError {
  /** 0-based index of the problem's step (sentence after the first). */
  step: number;
  kind: ErrorKind;
}

export interface TeacherSample {
  text: string;
  answer: number | null;
  correct: boolean;
  errors: TeacherError[];
}

/** Throws BAD_ARGUMENT unless m is a well-formed error model (probabilities in 0..1). */
export function checkErrorModel(m: ErrorModel): void {
  const bad = (msg: string): never => {
    throw new EngineError('BAD_ARGUMENT', `error model: ${msg}: fix the error-model JSON.`);
  };
  const prob = (p: unknown, where: string) => {
    if (!(typeof p === 'number' && p >= 0 && p <= 1)) bad(`${where} must be a probability in 0..1`);
  };
  const verb = (v: string, where: string) => {
    if (!VERB_IDS.includes(v as VerbId)) bad(`${where}: unknown verb "${v}" (known: ${VERB_IDS.join(', ')})`);
  };
  if (typeof m !== 'object' || m === null) bad('expected an object');
  for (const [v, e] of Object.entries(m.wrongOp ?? bad('wrongOp is missing'))) {
    verb(v, 'wrongOp');
    prob(e?.p, `wrongOp.${v}.p`);
    if (!['+', '-', '×'].includes(e?.op ?? '')) bad(`wrongOp.${v}.op must be "+", "-" or "×"`);
  }
  for (const [v, e] of Object.entries(m.wrongOperand ?? bad('wrongOperand is missing'))) {
    verb(v, 'wrongOperand');
    prob(e?.p, `wrongOperand.${v}.p`);
    if (!(Number.isInteger(e?.n) && (e?.n ?? -1) >= 0)) bad(`wrongOperand.${v}.n must be an integer ≥ 0`);
  }
  for (const [v, p] of Object.entries(m.drop ?? bad('drop is missing'))) {
    verb(v, 'drop');
    prob(p, `drop.${v}`);
  }
  prob(m.otherOperand, 'otherOperand');
  prob(m.borrow, 'borrow');
  prob(m.carry, 'carry');
  prob(m.slip, 'slip');
  if (!Array.isArray(m.stop) || m.stop.length > 3) bad('stop must be an array of up to 3 probabilities');
  m.stop.forEach((p, i) => prob(p, `stop[${i}]`));
  for (const [v, p] of Object.entries(m.slipIfPresent ?? {})) {
    verb(v, 'slipIfPresent');
    prob(p, `slipIfPresent.${v}`);
  }
  if (m.slipBySteps !== undefined) {
    if (!Array.isArray(m.slipBySteps) || m.slipBySteps.length > 3)
      bad('slipBySteps must be an array of up to 3 probabilities');
    m.slipBySteps.forEach((p, i) => prob(p, `slipBySteps[${i}]`));
  }
}

/** Merges a partial model (e.g. parsed from a JSON file) over the defaults, then checks it. */
export function errorModelFrom(partial: Partial<ErrorModel>): ErrorModel {
  const m = { ...DEFAULT_ERROR_MODEL, ...partial };
  checkErrorModel(m);
  return m;
}

function units(x: number): number {
  return ((x % 10) + 10) % 10;
}

/**
 * One teacher rationale for p. The error decisions of step i are drawn in a fixed order
 * (stop, drop, wrongOp, wrongOperand/otherOperand, borrow/carry, slip) so a model with a
 * probability of 0 consumes the same draws as one with a small probability.
 */
export function teacherSample(
  p: Problem,
  m: ErrorModel,
  rng: Rng,
  style: ChainStyle = DEFAULT_CHAIN_STYLE,
): TeacherSample {
  const errors: TeacherError[] = [];
  const parts: ChainStep[] = [];
  const nSteps = p.steps.length;
  const stopP = m.stop[nSteps - 2] ?? 0;
  const slipP = Math.min(1, m.slip + (m.slipBySteps?.[nSteps - 2] ?? 0));
  const present = new Set(p.steps.map((s) => s.verb));
  // extra slip on step i from the verbs present elsewhere in the problem
  const distracted = (i: number): number => {
    let extra = 0;
    for (const [v, q] of Object.entries(m.slipIfPresent ?? {}))
      if (present.has(v as VerbId) && p.steps[i]!.verb !== v) extra += q ?? 0;
    return extra;
  };
  const stopAfter = rng.chance(stopP) && nSteps > 1 ? rng.int(1, nSteps - 1) : nSteps;
  // the numbers of the problem text a confused teacher may pick instead of the right one
  const textNumbers = [p.start, ...p.steps.filter((s) => VERBS[s.verb].kind !== 'mul').map((s) => s.n)];
  let v = p.start;
  for (let i = 0; i < nSteps; i++) {
    const s = p.steps[i]!;
    const verb = VERBS[s.verb];
    const uDrop = rng.next();
    const uOp = rng.next();
    const uOperand = rng.next();
    const uOther = rng.next();
    const uArith = rng.next();
    const uSlip = rng.next();
    const uSlipSize = rng.next();
    if (i === stopAfter) {
      errors.push({ step: i, kind: 'stop' });
      break;
    }
    if (uDrop < (m.drop[s.verb] ?? 0)) {
      errors.push({ step: i, kind: 'drop' });
      continue;
    }
    let op = s.op;
    const wo = m.wrongOp[s.verb];
    if (wo && wo.op !== op && uOp < wo.p) {
      op = wo.op;
      errors.push({ step: i, kind: 'wrongOp' });
    }
    let n = s.n;
    const wn = m.wrongOperand[s.verb];
    if (wn && wn.n !== n && uOperand < wn.p) {
      n = wn.n;
      errors.push({ step: i, kind: 'wrongOperand' });
    } else if (verb.kind !== 'mul' && uOperand < m.otherOperand) {
      const others = textNumbers.filter((x) => x !== s.n);
      if (others.length > 0) {
        n = others[Math.floor(uOther * others.length)]!;
        errors.push({ step: i, kind: 'wrongOperand' });
      }
    }
    let r = applyOp(v, op, n);
    if (op === '-' && v >= n && units(v) < units(n) && uArith < m.borrow) {
      // "smaller from larger" in the units, no borrow: 23 - 7 = 24
      r = (Math.floor(v / 10) - Math.floor(n / 10)) * 10 + (units(n) - units(v));
      errors.push({ step: i, kind: 'borrow' });
    } else if (op === '+' && units(v) + units(n) >= 10 && uArith < m.carry) {
      r -= 10; // the carry is forgotten
      errors.push({ step: i, kind: 'carry' });
    }
    if (uSlip < Math.min(1, slipP + distracted(i))) {
      // size 1 or 2, down or up (up when down would go below 0)
      const d = uSlipSize < 0.5 ? 1 : 2;
      const down = uSlipSize < 0.25 || (uSlipSize >= 0.5 && uSlipSize < 0.75);
      r = down && r - d >= 0 ? r - d : r + d;
      errors.push({ step: i, kind: 'slip' });
    }
    parts.push({ a: v, op, n, r });
    v = r;
  }
  const text = formatChain(p.start, parts, v, style);
  const answer = extractAnswer(text);
  return { text, answer, correct: answer === p.answer, errors };
}

/** k samples for each problem; sample j of problem i uses rng.fork(`teacher:${i}:${j}`). */
export function teacherSamples(
  problems: readonly Problem[],
  k: number,
  seed: number,
  m: ErrorModel = DEFAULT_ERROR_MODEL,
  style: ChainStyle = DEFAULT_CHAIN_STYLE,
): TeacherSample[][] {
  checkErrorModel(m);
  if (!(Number.isInteger(k) && k >= 1))
    throw new EngineError('BAD_ARGUMENT', `teacher: k = ${k}: ask for at least one sample per question.`);
  const root = new Rng(seed).fork('teacher');
  return problems.map((p, i) => {
    const out: TeacherSample[] = [];
    for (let j = 0; j < k; j++) out.push(teacherSample(p, m, root.fork(`teacher:${i}:${j}`), style));
    return out;
  });
}
