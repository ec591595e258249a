// Step splitting and the first divergence of a right and a wrong rationale (src/app/lib/steps.ts),
// on the world's teacher text, real GSM8K model solutions and MATH-500 solutions.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { firstDivergence, splitSteps, stepKey } from '../../src/app/lib/steps.ts';

const gsm8k = readFileSync(
  new URL('../../public/data/gsm8k/example_model_solutions.jsonl', import.meta.url),
  'utf8',
)
  .split('\n')
  .filter(Boolean)
  .map(
    (l) => JSON.parse(l) as Record<string, { solution: string; is_correct: boolean }> & { question: string },
  );
const math500 = readFileSync(new URL('../../public/data/math/math500.jsonl', import.meta.url), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as { solution: string });

describe('splitSteps', () => {
  it('arith: one equation per step, then the answer sentence', () => {
    expect(splitSteps('12 + 3 = 15. 15 - 5 = 10. 10 × 2 = 20. The answer is 20.', 'arith')).toEqual([
      '12 + 3 = 15.',
      '15 - 5 = 10.',
      '10 × 2 = 20.',
      'The answer is 20.',
    ]);
    // the running style (the world's default): the start, then each signed quantity with its total
    expect(splitSteps('8, ×2 = 16, -10 = 6, ×2 = 12. The answer is 12.', 'arith')).toEqual([
      '8',
      '×2 = 16',
      '-10 = 6',
      '×2 = 12.',
      'The answer is 12.',
    ]);
  });

  it('gsm8k: one step per line (real 6B solution), sentences when there is one line', () => {
    expect(splitSteps(gsm8k[0]!['6b_finetuning']!.solution, 'gsm8k')).toEqual([
      'Janet eats 3 ducks eggs for breakfast every morning and she sells the rest so she has 16 - 3 = <<16-3=13>>13 ducks eggs left',
      'She has 13 ducks eggs and she sells 2 each day so she makes 13 * 2 = $<<13*2=26>>26',
      'A: 26',
    ]);
    expect(splitSteps('He pays $2.50 for one. So 4 cost $10. The answer is 10.', 'gsm8k')).toEqual([
      'He pays $2.50 for one.',
      'So 4 cost $10.',
      'The answer is 10.',
    ]);
    expect(splitSteps('a\r\n\r\nb\r\n', 'gsm8k')).toEqual(['a', 'b']);
  });

  it('math: lines and sentences, never inside $…$, $$…$$, \\[…\\], environments or [asy]', () => {
    expect(splitSteps(math500[0]!.solution, 'math')).toEqual([
      'We have that $r = \\sqrt{0^2 + 3^2} = 3.$  Also, if we draw the line connecting the origin and $(0,3),$ this line makes an angle of $\\frac{\\pi}{2}$ with the positive $x$-axis.',
      '[asy]\nunitsize(0.8 cm);\n\ndraw((-0.5,0)--(3.5,0));\ndraw((0,-0.5)--(0,3.5));\ndraw(arc((0,0),3,0,90),red,Arrow(6));\n\ndot((0,3), red);\nlabel("$(0,3)$", (0,3), W);\ndot((3,0), red);\n[/asy]',
      'Therefore, the polar coordinates are $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$',
    ]);
    expect(
      splitSteps('So $$x = 1.\nY = 2$$ holds. Then \\[a. B\\] too. It costs \\$5. Done', 'math'),
    ).toEqual(['So $$x = 1.\nY = 2$$ holds.', 'Then \\[a. B\\] too.', 'It costs \\$5.', 'Done']);
    expect(
      splitSteps('We get\n\\begin{align*}\nx &= 1. \\\\\nY &= 2.\n\\end{align*}\nSo $x=1$.', 'math'),
    ).toEqual(['We get', '\\begin{align*}\nx &= 1. \\\\\nY &= 2.\n\\end{align*}', 'So $x=1$.']);
  });

  it('every MATH-500 solution splits into non-empty steps that join back to its words', () => {
    for (const p of math500) {
      const steps = splitSteps(p.solution, 'math');
      expect(steps.length).toBeGreaterThan(0);
      expect(steps.join('').replace(/\s/g, '')).toBe(p.solution.replace(/\s/g, ''));
    }
  });
});

describe('stepKey', () => {
  it('gsm8k: the results of the equations, whatever the wording', () => {
    expect(stepKey('She sold 48/2 = <<48/2=24>>24 clips in May.', 'gsm8k')).toBe('= 24');
    expect(stepKey('In May, Natalia sold 48 / 2 = 24 clips', 'gsm8k')).toBe('= 24');
    expect(stepKey('It takes 2*1/2=<<2*1/2=1.0>>1 bolt', 'gsm8k')).toBe('= 1');
    expect(stepKey('That is 1,000 + 200 = $1,200.00 total', 'gsm8k')).toBe('= 1200');
    expect(stepKey('A: 18', 'gsm8k')).toBe('A 18');
    expect(stepKey('#### 1,500', 'gsm8k')).toBe('A 1500');
    expect(stepKey('Janet has 16 eggs a day', 'gsm8k')).toBe('');
  });

  it('math: spacing, \\left/\\right and \\dfrac do not matter; the symbols do', () => {
    expect(stepKey('$\\left( 3, \\dfrac{\\pi}{2} \\right)$.', 'math')).toBe(
      stepKey('$(3,\\frac{\\pi}{2})$', 'math'),
    );
    expect(stepKey('$x = 2$', 'math')).not.toBe(stepKey('$y = 2$', 'math'));
  });
});

describe('firstDivergence', () => {
  const div = (a: string, b: string, kind: 'arith' | 'gsm8k' | 'math') =>
    firstDivergence(splitSteps(a, kind), splitSteps(b, kind), kind);

  it('arith: a wrong operation, a dropped step, an early stop, identical chains', () => {
    // "loses 5" read as a gain
    expect(
      div(
        '12 + 3 = 15. 15 - 5 = 10. The answer is 10.',
        '12 + 3 = 15. 15 + 5 = 20. The answer is 20.',
        'arith',
      ),
    ).toEqual({
      right: 1,
      wrong: 1,
    });
    // "gives 10 to Sam" skipped: the wrong chain doubles too early
    expect(
      div(
        '8 × 2 = 16. 16 - 10 = 6. 6 × 2 = 12. The answer is 12.',
        '8 × 2 = 16. 16 × 2 = 32. The answer is 32.',
        'arith',
      ),
    ).toEqual({ right: 1, wrong: 1 });
    // stopped after step 1
    expect(
      div('8 × 2 = 16. 16 - 10 = 6. The answer is 6.', '8 × 2 = 16. The answer is 16.', 'arith'),
    ).toEqual({
      right: 1,
      wrong: 1,
    });
    expect(div('1 + 1 = 2. The answer is 2.', '1 + 1 = 2.  The answer is 2.', 'arith')).toBeNull();
    // running style: "gives 10 to Sam" skipped
    expect(
      div(
        '8, ×2 = 16, -10 = 6, ×2 = 12. The answer is 12.',
        '8, ×2 = 16, ×2 = 32. The answer is 32.',
        'arith',
      ),
    ).toEqual({
      right: 2,
      wrong: 2,
    });
  });

  it('one side ending early points past its last step', () => {
    expect(firstDivergence(['1 + 1 = 2.', 'The answer is 2.'], ['1 + 1 = 2.'], 'arith')).toEqual({
      right: 1,
      wrong: 1,
    });
    expect(firstDivergence([], ['1 + 1 = 2.'], 'arith')).toEqual({ right: 0, wrong: 0 });
  });

  it('gsm8k, real solutions: narration is skipped, the first differing computation is marked', () => {
    const q = gsm8k[1]!; // the robe: 2 bolts blue, half that much white
    const right = q['175b_verification']!.is_correct ? q['175b_verification']! : q['6b_verification']!;
    expect(right.is_correct).toBe(true);
    const wrong = Object.values(q).find(
      (v): v is { solution: string; is_correct: boolean } =>
        typeof v === 'object' && !v.is_correct && v.solution.includes('100/2'),
    )!;
    expect(div(right.solution, wrong.solution, 'gsm8k')).toEqual({ right: 1, wrong: 1 });
    // Janet's ducks: both wrong and right start with a different first computation
    expect(
      div(gsm8k[0]!['175b_verification']!.solution, gsm8k[0]!['6b_finetuning']!.solution, 'gsm8k'),
    ).toEqual({
      right: 0,
      wrong: 0,
    });
    expect(
      firstDivergence(
        ['Let us think.', '2 + 3 = 5', 'A: 5'],
        ['2 + 3 = <<2+3=5>>5 apples', 'So far so good.', 'A: 6'],
        'gsm8k',
      ),
    ).toEqual({ right: 2, wrong: 2 });
  });
});
