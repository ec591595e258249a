/**
 * The pre-training corpus of the built-in student: the world's language and its arithmetic, never
 * its solutions. Four kinds of documents (one training sequence each, ≤ maxChars characters):
 *
 *   question  a problem text, as a teacher would be asked it (no solution)
 *             "Ann has 7 eggs. She buys 4. She eats 2. How many eggs does Ann have now?"
 *   facts     arithmetic facts of the world's range, one per line
 *             "18 + 5 = 23\n40 - 7 = 33\n12 × 3 = 36"
 *   reading   one sentence → the signed quantity or operation it means, one per line
 *             "She gives 4 to Tom. → -4\nHe doubles them. → ×2\nMax has 12 figs. → 12"
 *   parse     a whole problem → its quantities in order (reading a problem, no arithmetic)
 *             "Ann has 7 eggs. She buys 4. She eats 2. How many eggs does Ann have now? → 7, +4, -2"
 *
 * No document has the §0 wrapper ("Problem:", "Solution:"), an equation followed by another
 * equation on the same line, or "The answer is": the chain format is what KD teaches.
 */
import { EngineError } from '../../engine/errors.ts';
import {
  DEFAULT_WORLD,
  OBJECTS,
  PEOPLE,
  VERBS,
  VERB_IDS,
  checkWorldConfig,
  generateProblem,
  startSentence,
  stepSentence,
  type Op,
  type Problem,
  type Step,
  type WorldConfig,
} from './problems.ts';
import { Rng } from './rng.ts';

export type CorpusKind = 'question' | 'facts' | 'reading' | 'parse';
export const CORPUS_KINDS: readonly CorpusKind[] = ['question', 'facts', 'reading', 'parse'];

export interface CorpusDoc {
  kind: CorpusKind;
  text: string;
}

export interface CorpusConfig {
  /** Relative weights of the document kinds. */
  mix: Readonly<Record<CorpusKind, number>>;
  /** Longest document, in characters. */
  maxChars: number;
  world: WorldConfig;
}

export const DEFAULT_CORPUS: CorpusConfig = {
  mix: { question: 0.2, facts: 0.3, reading: 0.2, parse: 0.3 },
  maxChars: 110,
  world: DEFAULT_WORLD,
};

/** The signed form of a step: "+3", "-4", "×2". */
export function signed(s: Pick<Step, 'op' | 'n'>): string {
  return `${s.op}${s.n}`;
}

/** The parse exercise of a problem: "<question> → 7, +4, -2". */
export function parseExercise(p: Problem): string {
  return `${p.question} → ${[String(p.start), ...p.steps.map(signed)].join(', ')}`;
}

/** One arithmetic fact of the world's range: a + b or a - b with b ≤ maxOperand, or a × 2 / a × 3. */
export function randomFact(rng: Rng, w: WorldConfig): string {
  const r = rng.next();
  let op: Op;
  let a: number;
  let b: number;
  if (r < 0.42) {
    op = '+';
    b = rng.int(1, w.maxOperand);
    a = rng.int(0, w.maxValue - b);
  } else if (r < 0.84) {
    op = '-';
    b = rng.int(1, w.maxOperand);
    a = rng.int(b, w.maxValue);
  } else {
    op = '×';
    b = rng.chance(0.5) ? 2 : 3;
    a = rng.int(0, Math.floor(w.maxValue / b));
  }
  const c = op === '+' ? a + b : op === '-' ? a - b : a * b;
  return `${a} ${op} ${b} = ${c}`;
}

/** One reading line: a sentence of the world → what it means. */
export function randomReading(rng: Rng, w: WorldConfig): string {
  const person = rng.pick(PEOPLE);
  if (rng.chance(0.15)) {
    const n = rng.int(w.minStart, w.maxStart);
    return `${startSentence(person.name, n, rng.pick(OBJECTS))} → ${n}`;
  }
  const verbs = VERB_IDS.filter((v) => (w.verbWeights[v] ?? 0) > 0);
  const id = rng.pick(verbs);
  const verb = VERBS[id];
  const n = verb.kind === 'mul' ? verb.factor! : rng.int(1, w.maxOperand);
  const to = rng.pick(PEOPLE.filter((q) => q.name !== person.name)).name;
  return `${stepSentence(person.pronoun, id, n, to)} → ${signed({ op: verb.op, n })}`;
}

function lines(rng: Rng, maxChars: number, line: () => string): string {
  const out: string[] = [];
  let len = -1;
  for (;;) {
    const l = line();
    if (out.length > 0 && len + 1 + l.length > maxChars) break;
    out.push(l);
    len += 1 + l.length;
    if (out.length >= 12 || rng.chance(0.1)) break;
  }
  return out.join('\n');
}

export function corpusDoc(rng: Rng, c: CorpusConfig = DEFAULT_CORPUS): CorpusDoc {
  const kinds = CORPUS_KINDS;
  const kind = kinds[rng.weighted(kinds.map((k) => c.mix[k]))]!;
  switch (kind) {
    case 'question':
    case 'parse': {
      for (let tries = 0; ; tries++) {
        const p = generateProblem(rng, c.world);
        const text = kind === 'question' ? p.question : parseExercise(p);
        if (text.length <= c.maxChars) return { kind, text };
        if (tries > 100)
          throw new EngineError(
            'BAD_ARGUMENT',
            `corpus: problems do not fit in maxChars = ${c.maxChars}: raise maxChars or use fewer steps.`,
          );
      }
    }
    case 'facts':
      return { kind, text: lines(rng, c.maxChars, () => randomFact(rng, c.world)) };
    case 'reading':
      return { kind, text: lines(rng, c.maxChars, () => randomReading(rng, c.world)) };
  }
}

/** n documents from `seed`; document i uses the stream fork(`corpus:${i}`). */
export function generateCorpus(n: number, seed: number, c: CorpusConfig = DEFAULT_CORPUS): CorpusDoc[] {
  checkWorldConfig(c.world);
  if (!CORPUS_KINDS.some((k) => c.mix[k] > 0) || CORPUS_KINDS.some((k) => !(c.mix[k] >= 0)))
    throw new EngineError(
      'BAD_ARGUMENT',
      'corpus: the mix needs non-negative weights, at least one positive.',
    );
  const root = new Rng(seed).fork('corpus');
  const out: CorpusDoc[] = [];
  for (let i = 0; i < n; i++) out.push(corpusDoc(root.fork(`corpus:${i}`), c));
  return out;
}
