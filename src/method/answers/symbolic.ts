/**
 * The guarded symbolic/numeric check of two normalised MATH scalars with @cortex-js/compute-engine
 * 0.140.0. Only plain algebraic/trigonometric expressions get here (no equations, intervals, tuples,
 * sets, `\pm`, text, subscripts or words: those are compared elsewhere or not at all). Each answer
 * gets a signature: its canonical MathJSON, its free variables, and its numeric value (no variables)
 * or its values at three fixed points (up to three variables). Two answers are equal when the
 * canonical forms are identical, or when the variables are the same and every value agrees to a
 * relative 1e-9 (integers: exactly). Parsing runs in its own scope (no declaration leaks from one
 * answer to the next) under a time limit; any failure means "not equal".
 *
 * @example
 *   symbolicEqual('\\sqrt{2}/2', '\\frac{1}{\\sqrt{2}}') === true;
 *   symbolicEqual('(x+1)^2', 'x^2+2x+1') === true;
 */
import { ComputeEngine, type Expression } from '@cortex-js/compute-engine';

/** Longest normalised answer handed to the engine. */
export const MAX_SYMBOLIC_CHARS = 200;
/** Milliseconds the engine may spend on one answer. */
const TIME_LIMIT_MS = 250;
const RELATIVE_TOLERANCE = 1e-9;
const MAX_VARIABLES = 3;
/** Values of the 1st, 2nd, 3rd variable (sorted by name) at the three test points: positive, distinct. */
const POINTS = [
  [1.324717957244746, 0.6180339887498949, 2.23606797749979],
  [0.5772156649015329, 1.7320508075688772, 0.41421356237309515],
  [2.718281828459045, 0.36787944117144233, 1.1447298858494002],
];

const COMMANDS = new Set(
  (
    'frac sqrt pi cdot times div sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln exp ' +
    'binom lfloor rfloor lceil rceil alpha beta gamma delta theta phi varphi omega lambda mu sigma tau rho'
  ).split(' '),
);
const OPERATORS = new Set(
  (
    'Add Subtract Negate Multiply Divide Power Sqrt Root Square Rational Complex Exp Ln Log Lb Lg Sin Cos ' +
    'Tan Cot Sec Csc Arcsin Arccos Arctan Sinh Cosh Tanh Abs Factorial Binomial Floor Ceil'
  ).split(' '),
);
const CONSTANTS = new Set(['Pi', 'ExponentialE', 'ImaginaryUnit']);
const VARIABLE = /^(?:[a-zA-Z]|alpha|beta|gamma|delta|theta|phi|varphi|omega|lambda|mu|sigma|tau|rho)$/;

interface Value {
  re: number;
  im: number;
}
interface Signature {
  key: string;
  vars: string[];
  /** one value (no variables) or one per test point; null where the expression has no finite value */
  values: (Value | null)[];
}

let engine: ComputeEngine | null = null;
const cache = new Map<string, Signature | null>();
const CACHE_LIMIT = 10_000;

/** Text the engine may see: a whitelist of characters and commands, no letter words. */
function admissible(s: string): boolean {
  if (s.length === 0 || s.length > MAX_SYMBOLIC_CHARS) return false;
  // "_" only as the base of a logarithm ("\log_2 8"); elsewhere it is a subscript or a number base (1011_2)
  if (!/^[0-9a-zA-Z+\-*/^(){}[\].!| \\]*$/.test(s.replace(/\\log_/g, '\\log'))) return false;
  for (const m of s.matchAll(/\\([a-zA-Z]+|.)/g)) if (!COMMANDS.has(m[1]!)) return false;
  // a run of three letters outside a command is a word ("even", "Evelyn"), not a product of variables
  return !/[a-zA-Z]{3,}/.test(s.replace(/\\[a-zA-Z]+/g, ' '));
}

/** Largest literal in an exponent, and in a factorial or binomial: beyond, the engine can take seconds. */
const MAX_EXPONENT = 10_000;
const MAX_FACTORIAL = 1_000;
/** Where a subtree sits: an exponent or a factorial argument may not nest another power or factorial. */
type Context = 'plain' | 'exponent' | 'factorial';

/**
 * Collects the free variables of the MathJSON into `vars`; false when it holds an operator or symbol
 * outside the whitelist, or a power tower / huge factorial (`9^{9^{9^{9}}}` takes the engine 26 s to
 * find it has no finite value, and its time limit does not stop it).
 */
function walk(json: unknown, vars: Set<string>, ctx: Context = 'plain'): boolean {
  const limit = ctx === 'exponent' ? MAX_EXPONENT : ctx === 'factorial' ? MAX_FACTORIAL : Infinity;
  if (typeof json === 'number') return Math.abs(json) <= limit;
  if (typeof json === 'string') {
    if (CONSTANTS.has(json)) return true;
    if (VARIABLE.test(json)) {
      vars.add(json);
      return true;
    }
    return /^[+-]?\d/.test(json) && ctx === 'plain'; // numbers serialised as strings are big ones
  }
  if (Array.isArray(json)) {
    const [op, ...args] = json as unknown[];
    if (typeof op !== 'string' || !OPERATORS.has(op)) return false;
    const nests = op === 'Power' || op === 'Exp' || op === 'Root' || op === 'Factorial' || op === 'Binomial';
    if (nests && ctx !== 'plain') return false;
    if (op === 'Power' || op === 'Root') return walk(args[0], vars, ctx) && walk(args[1], vars, 'exponent');
    if (op === 'Exp') return walk(args[0], vars, 'exponent');
    if (op === 'Factorial' || op === 'Binomial') return args.every((a) => walk(a, vars, 'factorial'));
    return args.every((a) => walk(a, vars, ctx));
  }
  if (json !== null && typeof json === 'object' && 'num' in json) return ctx === 'plain';
  return false;
}

function valueOf(e: Expression): Value | null {
  const n = e.N();
  const re = n.re;
  const im = n.im;
  return Number.isFinite(re) && Number.isFinite(im) ? { re, im } : null;
}

function signature(s: string): Signature | null {
  engine ??= new ComputeEngine();
  const ce = engine;
  ce.pushScope();
  try {
    return ce.withTimeLimit(TIME_LIMIT_MS, () => {
      const e = ce.parse(s);
      if (!e.isValid) return null;
      const json = e.json;
      const found = new Set<string>();
      if (!walk(json, found) || found.size > MAX_VARIABLES) return null;
      const vars = [...found].sort();
      const values =
        vars.length === 0
          ? [valueOf(e)]
          : POINTS.map((p) => valueOf(e.subs(Object.fromEntries(vars.map((v, j) => [v, ce.number(p[j]!)])))));
      return { key: JSON.stringify(json), vars, values };
    });
  } catch {
    return null; // parse failure, CancellationError (time limit), anything the engine throws
  } finally {
    ce.popScope();
  }
}

function cachedSignature(s: string): Signature | null {
  const hit = cache.get(s);
  if (hit !== undefined) return hit;
  const sig = admissible(s) ? signature(s) : null;
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(s, sig);
  return sig;
}

function close(a: Value, b: Value): boolean {
  if (a.im === 0 && b.im === 0 && Number.isSafeInteger(a.re) && Number.isSafeInteger(b.re))
    return a.re === b.re;
  const diff = Math.hypot(a.re - b.re, a.im - b.im);
  const scale = Math.max(Math.hypot(a.re, a.im), Math.hypot(b.re, b.im));
  return diff <= RELATIVE_TOLERANCE * scale; // no absolute floor: 0 and 10^{-20} differ
}

/** True when the engine shows the two normalised scalars equal; false on any doubt. Never throws. */
export function symbolicEqual(a: string, b: string): boolean {
  const sa = cachedSignature(a);
  const sb = cachedSignature(b);
  if (!sa || !sb) return false;
  if (sa.key === sb.key) return true;
  if (sa.vars.join(',') !== sb.vars.join(',')) return false;
  let compared = 0;
  for (let k = 0; k < sa.values.length; k++) {
    const va = sa.values[k] ?? null;
    const vb = sb.values[k] ?? null;
    if (va === null && vb === null) continue;
    if (va === null || vb === null || !close(va, vb)) return false;
    compared++;
  }
  return compared >= (sa.vars.length === 0 ? 1 : 2);
}
