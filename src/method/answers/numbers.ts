/**
 * Exact numbers for answer checking: a plain integer, decimal, `a/b`, `\frac{a}{b}` or mixed number
 * `3\frac{1}{2}` read as a rational of BigInts, so `18.00` ≡ `18`, `0.5` ≡ `\frac{1}{2}` and two large
 * integers that differ by 1 never pass as equal (as a floating-point tolerance would let them).
 *
 * @example
 *   rationalsEqual(parseRational('0.50')!, parseRational('\\frac{1}{2}')!) === true;
 */

/** `num / den` with den > 0 (not reduced). */
export interface Rational {
  num: bigint;
  den: bigint;
}

/** More digits than this is no answer anyone writes; reading it as a BigInt is not worth the time. */
const MAX_DIGITS = 400;

function decimal(s: string): Rational | null {
  const m = /^([+-]?)(\d*)(?:\.(\d+))?$/.exec(s);
  if (!m || (m[2] === '' && m[3] === undefined) || s.length > MAX_DIGITS) return null;
  const frac = m[3] ?? '';
  const num = BigInt((m[2] || '0') + frac) * (m[1] === '-' ? -1n : 1n);
  return { num, den: 10n ** BigInt(frac.length) };
}

function divide(a: Rational, b: Rational): Rational | null {
  if (b.num === 0n) return null;
  const sign = b.num < 0n ? -1n : 1n;
  return { num: a.num * b.den * sign, den: a.den * b.num * sign };
}

/** The exact value of a plain number, `a/b`, `\frac{a}{b}` (signed) or `n\frac{a}{b}`; else null. */
export function parseRational(input: string): Rational | null {
  const s = input.replace(/\s+/g, '');
  if (s.length === 0 || s.length > MAX_DIGITS) return null;
  const plain = decimal(s);
  if (plain) return plain;
  const slash = /^([+-]?[\d.]+)\/([+-]?[\d.]+)$/.exec(s);
  if (slash) {
    const a = decimal(slash[1]!);
    const b = decimal(slash[2]!);
    return a && b ? divide(a, b) : null;
  }
  const frac = /^([+-]?)(\d*)\\frac\{([+-]?[\d.]+)\}\{([+-]?[\d.]+)\}$/.exec(s);
  if (frac) {
    const a = decimal(frac[3]!);
    const b = decimal(frac[4]!);
    const q = a && b ? divide(a, b) : null;
    if (!q) return null;
    let r = q;
    if (frac[2] !== '') {
      // a mixed number (MATH's convention): 3\frac{1}{2} = 3 + 1/2; only with a plain positive fraction
      if (q.num < 0n) return null;
      r = { num: BigInt(frac[2]!) * q.den + q.num, den: q.den };
    }
    return frac[1] === '-' ? { num: -r.num, den: r.den } : r;
  }
  return null;
}

export function rationalsEqual(a: Rational, b: Rational): boolean {
  return a.num * b.den === b.num * a.den;
}

/** A plain decimal with `,`, `$`, `%`, spaces and a final period dropped: "$1,000.50" → 1000.5. */
export function plainNumber(s: string): Rational | null {
  return decimal(s.replace(/[,$%\s]/g, '').replace(/\.$/, ''));
}
