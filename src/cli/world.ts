/**
 * `d2g world`: the synthetic arithmetic world as JSONL (one JSON object per line).
 *   problems   {"question","gold","steps","kind"}
 *   dataset    {"question","gold","rationales":[{"text","correct"}]} with k teacher samples
 *              (--meta adds "kind" and each rationale's "errors")
 *   corpus     {"kind","text"}: the pre-training corpus (no solutions)
 *   tokenizer  {"type":"char","chars":...}: the world's char tokenizer (one JSON object)
 *   stats      teacher accuracy and error kinds by problem kind (JSON)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import {
  DEFAULT_CORPUS,
  DEFAULT_ERROR_MODEL,
  DEFAULT_WORLD,
  ERROR_KINDS,
  generateCorpus,
  generateProblems,
  problemKind,
  teacherSamples,
  errorModelFrom,
  CHAIN_STYLES,
  DEFAULT_CHAIN_STYLE,
  type ChainStyle,
  worldTokenizer,
  type ErrorModel,
  type WorldConfig,
} from '../method/world/index.ts';

export const WORLD_USAGE = `  world problems|dataset|corpus|tokenizer|stats --n N --seed S [--out FILE] [--k K]
           [--error-model FILE] [--world FILE] [--chain equations|running] [--meta]`;

function int(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 0)
    throw new EngineError('BAD_ARGUMENT', `--${name} expects a non-negative integer, got "${v}".`);
  return x;
}

function readJson(file: string, what: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new EngineError(
      'BAD_FILE',
      `${what} ${file} could not be read as JSON (${e instanceof Error ? e.message : String(e)}): check the path and the JSON.`,
    );
  }
}

/** Teacher accuracy overall, by number of steps and by verb present, and error-kind counts. */
export function teacherStats(n: number, seed: number, k: number, world: WorldConfig, em: ErrorModel) {
  const problems = generateProblems(n, seed, world);
  const samples = teacherSamples(problems, k, seed, em);
  const acc = (xs: boolean[]) => ({ n: xs.length, acc: xs.filter(Boolean).length / Math.max(1, xs.length) });
  const all: boolean[] = [];
  const bySteps: Record<string, boolean[]> = {};
  const byVerb: Record<string, boolean[]> = {};
  const errorKinds: Record<string, number> = Object.fromEntries(ERROR_KINDS.map((e) => [e, 0]));
  const errorsByVerb: Record<string, Record<string, number>> = {};
  let questionsAnyCorrect = 0;
  problems.forEach((p, i) => {
    const ss = samples[i]!;
    if (ss.some((s) => s.correct)) questionsAnyCorrect++;
    for (const s of ss) {
      all.push(s.correct);
      (bySteps[String(p.steps.length)] ??= []).push(s.correct);
      for (const v of new Set(p.steps.map((x) => x.verb))) (byVerb[v] ??= []).push(s.correct);
      for (const e of s.errors) {
        errorKinds[e.kind] = (errorKinds[e.kind] ?? 0) + 1;
        const verb = p.steps[e.step]!.verb;
        const row = (errorsByVerb[verb] ??= {});
        row[e.kind] = (row[e.kind] ?? 0) + 1;
      }
    }
  });
  const map = (r: Record<string, boolean[]>) =>
    Object.fromEntries(Object.entries(r).map(([key, v]) => [key, acc(v)]));
  return {
    questions: n,
    k,
    samples: all.length,
    pos: all.filter(Boolean).length,
    neg: all.filter((x) => !x).length,
    accuracy: acc(all).acc,
    questionsWithAPositive: questionsAnyCorrect,
    bySteps: map(bySteps),
    byVerbPresent: map(byVerb),
    errorKinds,
    errorsByVerb,
  };
}

export async function worldCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      n: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      k: { type: 'string' },
      'error-model': { type: 'string' },
      world: { type: 'string' },
      meta: { type: 'boolean', default: false },
      chain: { type: 'string', default: DEFAULT_CHAIN_STYLE },
    },
    allowPositionals: true,
    strict: true,
  });
  const what = positionals[0];
  const n = int(values.n, 'n', 1000);
  const seed = int(values.seed, 'seed', 1);
  const k = int(values.k, 'k', 4);
  const world: WorldConfig = values.world
    ? { ...DEFAULT_WORLD, ...(readJson(values.world, 'world config') as Partial<WorldConfig>) }
    : DEFAULT_WORLD;
  const em: ErrorModel = values['error-model']
    ? errorModelFrom(readJson(values['error-model'], 'error model') as Partial<ErrorModel>)
    : DEFAULT_ERROR_MODEL;
  const style = values.chain as ChainStyle;
  if (!CHAIN_STYLES.includes(style))
    throw new EngineError('BAD_ARGUMENT', `--chain is ${CHAIN_STYLES.join(' or ')}, got "${values.chain}".`);
  const lines: string[] = [];
  switch (what) {
    case 'problems':
      for (const p of generateProblems(n, seed, world))
        lines.push(
          JSON.stringify({
            question: p.question,
            gold: String(p.answer),
            steps: p.steps.length,
            kind: problemKind(p),
          }),
        );
      break;
    case 'dataset': {
      const problems = generateProblems(n, seed, world);
      const samples = teacherSamples(problems, k, seed, em, style);
      problems.forEach((p, i) => {
        const rationales = samples[i]!.map((s) =>
          values.meta
            ? { text: s.text, correct: s.correct, errors: s.errors }
            : { text: s.text, correct: s.correct },
        );
        const line: Record<string, unknown> = { question: p.question, gold: String(p.answer), rationales };
        if (values.meta) line.kind = problemKind(p);
        lines.push(JSON.stringify(line));
      });
      break;
    }
    case 'corpus':
      for (const d of generateCorpus(n, seed, { ...DEFAULT_CORPUS, world })) lines.push(JSON.stringify(d));
      break;
    case 'tokenizer':
      lines.push(JSON.stringify(worldTokenizer().toJSON()));
      break;
    case 'stats':
      lines.push(JSON.stringify(teacherStats(n, seed, k, world, em), null, 2));
      break;
    default:
      throw new EngineError(
        'BAD_ARGUMENT',
        `world needs one of problems, dataset, corpus, tokenizer, stats (got ${what ?? 'nothing'}).\n${WORLD_USAGE}`,
      );
  }
  const text = lines.join('\n') + '\n';
  if (values.out) writeFileSync(values.out, text);
  else process.stdout.write(text);
  return 0;
}
