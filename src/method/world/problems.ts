/**
 * The synthetic arithmetic world: one person, one kind of object, a starting amount and 2–4 steps,
 * each step one sentence with a verb of fixed meaning. Every intermediate amount stays in
 * 0..maxValue and every answer is a non-negative integer.
 *
 *   add: buys, finds, gets            "He buys 3."            v + 3
 *   sub: eats, loses, gives ... to X  "She gives 4 to Tom."   v − 4
 *   mul: doubles, triples             "He doubles them."      v × 2
 *
 * @example
 *   const p = generateProblem(new Rng(7));
 *   p.question; // "Eva has 14 plums. She finds 5. She doubles them. How many plums does Eva have now?"
 *   p.answer;   // 38
 */
import { EngineError } from '../../engine/errors.ts';
import { Rng } from './rng.ts';

export type Op = '+' | '-' | '×';
export type VerbId = 'buys' | 'finds' | 'gets' | 'eats' | 'loses' | 'gives' | 'doubles' | 'triples';
export type StepKind = 'add' | 'sub' | 'mul';

export interface Verb {
  id: VerbId;
  kind: StepKind;
  op: Op;
  /** The multiplier of a mul verb (its operand is fixed). */
  factor?: number;
}

export const VERBS: Readonly<Record<VerbId, Verb>> = {
  buys: { id: 'buys', kind: 'add', op: '+' },
  finds: { id: 'finds', kind: 'add', op: '+' },
  gets: { id: 'gets', kind: 'add', op: '+' },
  eats: { id: 'eats', kind: 'sub', op: '-' },
  loses: { id: 'loses', kind: 'sub', op: '-' },
  gives: { id: 'gives', kind: 'sub', op: '-' },
  doubles: { id: 'doubles', kind: 'mul', op: '×', factor: 2 },
  triples: { id: 'triples', kind: 'mul', op: '×', factor: 3 },
};
export const VERB_IDS = Object.keys(VERBS) as VerbId[];

export const PEOPLE: readonly { name: string; pronoun: 'He' | 'She' }[] = [
  { name: 'Tom', pronoun: 'He' },
  { name: 'Ann', pronoun: 'She' },
  { name: 'Sam', pronoun: 'He' },
  { name: 'Eva', pronoun: 'She' },
  { name: 'Max', pronoun: 'He' },
  { name: 'Liz', pronoun: 'She' },
  { name: 'Ben', pronoun: 'He' },
  { name: 'Kim', pronoun: 'She' },
  { name: 'Joe', pronoun: 'He' },
  { name: 'Mia', pronoun: 'She' },
];
export const OBJECTS: readonly string[] = [
  'apples',
  'eggs',
  'nuts',
  'figs',
  'plums',
  'buns',
  'cakes',
  'pears',
];

export interface Step {
  verb: VerbId;
  op: Op;
  /** The operand: the amount in the sentence, or the factor of a mul verb. */
  n: number;
  /** The person a `gives` step gives to. */
  to?: string;
  sentence: string;
}

export interface Problem {
  name: string;
  pronoun: 'He' | 'She';
  object: string;
  start: number;
  steps: Step[];
  /** The whole question text, ending "How many <object> does <name> have now?". */
  question: string;
  /** values[0] = start, values[i] = the amount after step i; answer = values[steps.length]. */
  values: number[];
  answer: number;
}

export interface WorldConfig {
  /** Relative weights of 2, 3, 4 steps (index 0 = 2 steps). */
  stepWeights: readonly number[];
  /** Relative weight of each verb; 0 or absent = never used. */
  verbWeights: Readonly<Partial<Record<VerbId, number>>>;
  /** Largest amount ever (start, intermediate, answer). */
  maxValue: number;
  /** Starting amount in minStart..maxStart. */
  minStart: number;
  maxStart: number;
  /** Largest operand of an add or sub sentence. */
  maxOperand: number;
}

export const DEFAULT_WORLD: WorldConfig = {
  stepWeights: [1, 1, 0],
  verbWeights: { buys: 1, finds: 1, gets: 1, eats: 1, loses: 1, gives: 1, doubles: 1, triples: 1 },
  maxValue: 100,
  minStart: 2,
  maxStart: 30,
  maxOperand: 20,
};

export function applyOp(v: number, op: Op, n: number): number {
  return op === '+' ? v + n : op === '-' ? v - n : v * n;
}

export function stepSentence(pronoun: string, verb: VerbId, n: number, to?: string): string {
  const v = VERBS[verb];
  if (v.kind === 'mul') return `${pronoun} ${verb} them.`;
  if (verb === 'gives') return `${pronoun} gives ${n} to ${to ?? 'Tom'}.`;
  return `${pronoun} ${verb} ${n}.`;
}

export function startSentence(name: string, n: number, object: string): string {
  return `${name} has ${n} ${object}.`;
}

export function questionSentence(name: string, object: string): string {
  return `How many ${object} does ${name} have now?`;
}

export function checkWorldConfig(c: WorldConfig): void {
  const bad = (m: string): never => {
    throw new EngineError('BAD_ARGUMENT', `world config: ${m}: fix the world configuration.`);
  };
  if (c.stepWeights.length === 0 || c.stepWeights.length > 3 || !c.stepWeights.some((w) => w > 0))
    bad('stepWeights needs 1 to 3 non-negative weights (for 2, 3, 4 steps), at least one positive');
  if (c.stepWeights.some((w) => !(w >= 0))) bad('stepWeights must be non-negative');
  for (const [k, w] of Object.entries(c.verbWeights)) {
    if (!(k in VERBS)) bad(`unknown verb "${k}" (known: ${VERB_IDS.join(', ')})`);
    if (!(typeof w === 'number' && w >= 0)) bad(`verb weight of ${k} must be a non-negative number`);
  }
  const hasAdd = VERB_IDS.some((v) => VERBS[v].kind === 'add' && (c.verbWeights[v] ?? 0) > 0);
  const hasSub = VERB_IDS.some((v) => VERBS[v].kind === 'sub' && (c.verbWeights[v] ?? 0) > 0);
  if (!hasAdd || !hasSub) bad('at least one add verb and one sub verb need a positive weight');
  if (!(Number.isInteger(c.maxValue) && c.maxValue >= 10 && c.maxValue <= 999))
    bad('maxValue must be an integer in 10..999');
  if (!(Number.isInteger(c.minStart) && Number.isInteger(c.maxStart) && 1 <= c.minStart))
    bad('minStart and maxStart must be positive integers');
  if (!(c.minStart <= c.maxStart && c.maxStart < c.maxValue)) bad('need minStart ≤ maxStart < maxValue');
  if (!(Number.isInteger(c.maxOperand) && c.maxOperand >= 1)) bad('maxOperand must be a positive integer');
}

/** One problem; all draws come from `rng`. */
export function generateProblem(rng: Rng, config: WorldConfig = DEFAULT_WORLD): Problem {
  const nSteps = 2 + rng.weighted(config.stepWeights);
  const person = rng.pick(PEOPLE);
  const object = rng.pick(OBJECTS);
  const start = rng.int(config.minStart, config.maxStart);
  const steps: Step[] = [];
  const values = [start];
  let v = start;
  for (let i = 0; i < nSteps; i++) {
    // verbs that keep the amount in 1..maxValue (mul needs v ≥ 1 so that no step is a no-op)
    const feasible = VERB_IDS.filter((id) => {
      const w = config.verbWeights[id] ?? 0;
      if (w <= 0) return false;
      const verb = VERBS[id];
      if (verb.kind === 'add') return v + 1 <= config.maxValue;
      if (verb.kind === 'sub') return v >= 1;
      return v >= 1 && v * verb.factor! <= config.maxValue;
    });
    const id = feasible[rng.weighted(feasible.map((f) => config.verbWeights[f] ?? 0))]!;
    const verb = VERBS[id];
    let n: number;
    if (verb.kind === 'add') n = rng.int(1, Math.min(config.maxOperand, config.maxValue - v));
    else if (verb.kind === 'sub') n = rng.int(1, Math.min(config.maxOperand, v));
    else n = verb.factor!;
    let to: string | undefined;
    if (id === 'gives') {
      const others = PEOPLE.filter((p) => p.name !== person.name);
      to = rng.pick(others).name;
    }
    v = applyOp(v, verb.op, n);
    values.push(v);
    const step: Step = { verb: id, op: verb.op, n, sentence: stepSentence(person.pronoun, id, n, to) };
    if (to !== undefined) step.to = to;
    steps.push(step);
  }
  const question = [
    startSentence(person.name, start, object),
    ...steps.map((s) => s.sentence),
    questionSentence(person.name, object),
  ].join(' ');
  return { name: person.name, pronoun: person.pronoun, object, start, steps, question, values, answer: v };
}

/** n problems from `seed`: problem i uses the stream fork(`problem:${i}`), so problem i does not depend on n. */
export function generateProblems(n: number, seed: number, config: WorldConfig = DEFAULT_WORLD): Problem[] {
  checkWorldConfig(config);
  const root = new Rng(seed);
  const out: Problem[] = [];
  for (let i = 0; i < n; i++) out.push(generateProblem(root.fork(`problem:${i}`), config));
  return out;
}

/** A short description of a problem's kind, for analysis: "3:buys,loses,doubles". */
export function problemKind(p: Problem): string {
  return `${p.steps.length}:${p.steps.map((s) => s.verb).join(',')}`;
}
