/**
 * The teacher's few-shot chain-of-thought prompt, one per answer kind, as chat messages: a system
 * message that says how to end the answer, then `shots` worked examples as user/assistant turns,
 * then the question as the last user message. Each kind asks for exactly the ending our answer
 * checking reads (src/method/answers), so a rationale without it counts as "no answer":
 *
 *   math   "… put your final answer within \boxed{}."  (the last \boxed{} is the answer). The system
 *          line is the chain-of-thought prompt Qwen2.5-Math-Instruct was trained with, so the model
 *          the docs suggest needs no examples; other models learn the format from the shots.
 *   gsm8k  "… The answer is n."  (the first number after the last "The answer is"; without it, the
 *          last number, so a "#### n" ending or a \boxed{n} from a MATH-tuned model is read too).
 *   arith  our synthetic world: the chain in the world's default style ("12, +3 = 15, -5 = 10.")
 *          then "The answer is n." (the only ending arith reads). Its shots are built from the
 *          world's own sentence and chain writers, so they are what the built-in student learns.
 *
 * The examples are our own (none is taken from a benchmark), each checked by our answer checking in
 * the tests. Chat turns, not one long text, because the models web-llm serves are chat-tuned.
 *
 * @example
 *   buildMessages('gsm8k', 'Ann has 3 apples…', { shots: 2 });
 *   // [{role:'system',…}, {role:'user',…}, {role:'assistant',…}, {role:'user',…}, {role:'assistant',…}, {role:'user', content:'Ann has 3 apples…'}]
 */
import { EngineError } from '../../engine/errors.ts';
import type { AnswerKind } from '../answers/index.ts';
import { DEFAULT_CHAIN_STYLE, formatChain, type ChainStep } from '../world/format.ts';
import {
  VERBS,
  applyOp,
  questionSentence,
  startSentence,
  stepSentence,
  type VerbId,
} from '../world/problems.ts';
import type { ChatMessage } from './types.ts';

/** A worked example: the question, the rationale as the teacher should write it, and its answer. */
export interface FewShot {
  question: string;
  rationale: string;
  /** The answer our checking must read in `rationale` (the tests hold every shot to it). */
  answer: string;
}

export const SYSTEM_PROMPTS: Readonly<Record<AnswerKind, string>> = {
  math: 'Please reason step by step, and put your final answer within \\boxed{}.',
  gsm8k:
    'Solve the math word problem. Reason step by step, then end with the sentence ' +
    '"The answer is n." where n is the final number alone.',
  arith:
    'Solve the word problem. Write the starting amount, then one step per sentence of the problem as ' +
    'its operation and the new amount, then end with "The answer is n."',
};

const MATH_SHOTS: readonly FewShot[] = [
  {
    question: 'What is the value of $\\sqrt{36 \\times \\sqrt{16}}$?',
    rationale:
      'First $\\sqrt{16} = 4$, so the expression is $\\sqrt{36 \\times 4} = \\sqrt{144} = 12$.\n' +
      'The final answer is $\\boxed{12}$.',
    answer: '12',
  },
  {
    question:
      'A bag holds 4 red marbles and 6 blue marbles. Two marbles are drawn at random without ' +
      'replacement. What is the probability that both are red? Express your answer as a common fraction.',
    rationale:
      'The first marble is red with probability $\\frac{4}{10}$. Then 3 of the remaining 9 marbles are ' +
      'red, so the second is red with probability $\\frac{3}{9}$. Both are red with probability ' +
      '$\\frac{4}{10} \\cdot \\frac{3}{9} = \\frac{12}{90} = \\frac{2}{15}$.\n' +
      'The final answer is $\\boxed{\\frac{2}{15}}$.',
    answer: '\\frac{2}{15}',
  },
  {
    question: 'Simplify $\\frac{x^2 - 9}{x - 3}$ for $x \\neq 3$.',
    rationale:
      'The numerator is a difference of squares: $x^2 - 9 = (x - 3)(x + 3)$. Since $x \\neq 3$ we can ' +
      'cancel $x - 3$, which leaves $x + 3$.\nThe final answer is $\\boxed{x + 3}$.',
    answer: 'x+3',
  },
  {
    question: 'What is the remainder when $2^{10}$ is divided by 7?',
    rationale:
      'Since $2^3 = 8 = 7 + 1$, we have $2^3 \\equiv 1 \\pmod 7$. Then ' +
      '$2^{10} = (2^3)^3 \\cdot 2 \\equiv 1 \\cdot 2 = 2 \\pmod 7$.\nThe final answer is $\\boxed{2}$.',
    answer: '2',
  },
];

const GSM8K_SHOTS: readonly FewShot[] = [
  {
    question:
      'A baker makes 24 muffins. She sells 3 boxes with 6 muffins in each box. How many muffins does she have left?',
    rationale: 'She sells 3 * 6 = 18 muffins. She has 24 - 18 = 6 muffins left.\nThe answer is 6.',
    answer: '6',
  },
  {
    question:
      'Museum tickets cost $12 for an adult and $7 for a child. How much does a family of 2 adults and 3 children pay?',
    rationale:
      'The adults pay 2 * 12 = $24. The children pay 3 * 7 = $21. Together they pay 24 + 21 = $45.\n' +
      'The answer is 45.',
    answer: '45',
  },
  {
    question: 'Liam reads 15 pages a day. How many days does he need to read a book of 240 pages?',
    rationale: 'He needs 240 / 15 = 16 days.\nThe answer is 16.',
    answer: '16',
  },
  {
    question: 'A jacket costs $40. It is on sale for 25% off. What is the sale price in dollars?',
    rationale:
      'The discount is 25% of $40, which is 0.25 * 40 = $10. The sale price is 40 - 10 = $30.\n' +
      'The answer is 30.',
    answer: '30',
  },
];

/** A world problem for a shot: a person, an object, a start and the steps (verb, amount, receiver). */
interface WorldShot {
  name: string;
  pronoun: 'He' | 'She';
  object: string;
  start: number;
  steps: readonly { verb: VerbId; n?: number; to?: string }[];
}

const WORLD_SHOT_SPECS: readonly WorldShot[] = [
  {
    name: 'Tom',
    pronoun: 'He',
    object: 'figs',
    start: 12,
    steps: [
      { verb: 'buys', n: 3 },
      { verb: 'loses', n: 5 },
    ],
  },
  {
    name: 'Ann',
    pronoun: 'She',
    object: 'pears',
    start: 7,
    steps: [{ verb: 'doubles' }, { verb: 'gives', n: 5, to: 'Sam' }],
  },
  {
    name: 'Max',
    pronoun: 'He',
    object: 'eggs',
    start: 9,
    steps: [{ verb: 'finds', n: 6 }, { verb: 'triples' }, { verb: 'eats', n: 4 }],
  },
];

/** A world shot in the world's own words: its sentence writers and its chain writer. */
function worldShot(s: WorldShot): FewShot {
  const steps: ChainStep[] = [];
  const sentences = [startSentence(s.name, s.start, s.object)];
  let v = s.start;
  for (const st of s.steps) {
    const verb = VERBS[st.verb];
    const n = verb.factor ?? st.n ?? 0;
    const r = applyOp(v, verb.op, n);
    steps.push({ a: v, op: verb.op, n, r });
    sentences.push(stepSentence(s.pronoun, st.verb, n, st.to));
    v = r;
  }
  sentences.push(questionSentence(s.name, s.object));
  return {
    question: sentences.join(' '),
    rationale: formatChain(s.start, steps, v, DEFAULT_CHAIN_STYLE),
    answer: String(v),
  };
}

export const FEW_SHOTS: Readonly<Record<AnswerKind, readonly FewShot[]>> = {
  math: MATH_SHOTS,
  gsm8k: GSM8K_SHOTS,
  arith: WORLD_SHOT_SPECS.map(worldShot),
};

export interface PromptOptions {
  /** How many worked examples to put before the question, 0..FEW_SHOTS[kind].length; default all. */
  shots?: number;
  /** Replaces the kind's system message; '' sends none. */
  system?: string;
}

/** The chat messages that ask the teacher for one rationale of `question`. */
export function buildMessages(kind: AnswerKind, question: string, opts: PromptOptions = {}): ChatMessage[] {
  const all = FEW_SHOTS[kind];
  const shots = opts.shots ?? all.length;
  if (!Number.isInteger(shots) || shots < 0 || shots > all.length)
    throw new EngineError(
      'BAD_ARGUMENT',
      `the ${kind} prompt has ${all.length} worked examples: choose 0 to ${all.length} of them, not ${shots}.`,
    );
  const system = opts.system ?? SYSTEM_PROMPTS[kind];
  const messages: ChatMessage[] = system === '' ? [] : [{ role: 'system', content: system }];
  for (const s of all.slice(0, shots))
    messages.push({ role: 'user', content: s.question }, { role: 'assistant', content: s.rationale });
  messages.push({ role: 'user', content: question });
  return messages;
}
