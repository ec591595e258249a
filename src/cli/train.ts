/**
 * `d2g train`: one stage of the method on a model and a teacher dataset; writes the stage's
 * adapters and result.json into --out.
 *   npm run d2g -- train --stage kd|neg|mix|nat|linmix|nce|rank|nt|ul|cl --data F --out DIR
 *        [--model M] [--tokenizer T] [--kind arith|gsm8k|math] [--neg DIR] [--nat DIR]
 *        [--steps N] [--batch B] [--lr LR] [--targets q,v,...] [--rank R] [--seed S]
 *        [--held-out F] [--backend gpu|cpu] [--recompute]
 * --recompute: activation recompute (one checkpoint per layer; docs/engine.md), what a 7B needs.
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import type { LoraTarget } from '../engine/model/llama.ts';
import { heldOutSplit, parseDataset, splitPosNeg } from '../method/datasets/index.ts';
import { STAGES, type StageName } from '../method/stages/config.ts';
import { readStageFiles, stageFiles } from '../method/stages/files.ts';
import { runStage, type StageAdapters, type StageData } from '../method/stages/stages.ts';
import { parseKind, readText, withArgErrors } from './check-answer.ts';
import { loadAnyModel, makeBackend, readBinary, type BackendKind } from './load.ts';

export const DEFAULT_MODEL = 'public/models/arith-student.safetensors';
const TARGETS: LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new EngineError('BAD_ARGUMENT', `--${name} expects a number, got "${v}"`);
  return x;
}

/** The adapters in a stage output directory. */
export async function readStageDir(dir: string): Promise<{ stage: string | null; adapters: StageAdapters }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    throw new EngineError(
      'BAD_ARGUMENT',
      `cannot read the directory ${dir}: give a stage's --out directory.`,
    );
  }
  const files: Record<string, ArrayBuffer> = {};
  for (const n of names)
    if (n.endsWith('.safetensors') || n === 'result.json') files[n] = await readBinary(join(dir, n));
  return readStageFiles(files);
}

/** Our data as D_pos / D_neg lists of the training side of the held-out split. */
export async function loadStageData(
  path: string,
  kind: ReturnType<typeof parseKind>,
  heldOut: number,
): Promise<StageData> {
  const ds = parseDataset(await readText('train', path), { kind, name: path.split('/').pop() ?? path });
  for (const i of ds.issues.slice(0, 5)) process.stderr.write(`${path}:${i.line}: skipped: ${i.message}\n`);
  const { train } = heldOutSplit(ds, { fraction: heldOut, seed: 0 });
  const { pos, neg } = splitPosNeg(train);
  const item = (r: (typeof pos)[number]) => ({ question: r.problem.question, rationale: r.rationale.text });
  return { pos: pos.map(item), neg: neg.map(item) };
}

export async function trainCommand(argv: string[]): Promise<number> {
  const { values } = withArgErrors('train', () =>
    parseArgs({
      args: argv,
      options: {
        stage: { type: 'string' },
        data: { type: 'string' },
        out: { type: 'string' },
        model: { type: 'string', default: DEFAULT_MODEL },
        tokenizer: { type: 'string' },
        kind: { type: 'string', default: 'arith' },
        neg: { type: 'string' },
        nat: { type: 'string' },
        steps: { type: 'string' },
        batch: { type: 'string' },
        lr: { type: 'string' },
        targets: { type: 'string' },
        rank: { type: 'string' },
        seed: { type: 'string' },
        'held-out': { type: 'string', default: '0.1' },
        backend: { type: 'string', default: 'gpu' },
        recompute: { type: 'boolean', default: false },
      },
      strict: true,
    }),
  );
  const stage = values.stage as StageName;
  if (!STAGES.includes(stage))
    throw new EngineError('BAD_ARGUMENT', `--stage is one of ${STAGES.join(', ')}`);
  if (!values.data || !values.out)
    throw new EngineError('BAD_ARGUMENT', 'train needs --data <file> and --out <dir>');
  const targets = values.targets?.split(',').map((t) => t.trim()) as LoraTarget[] | undefined;
  if (targets?.some((t) => !TARGETS.includes(t)))
    throw new EngineError('BAD_ARGUMENT', `--targets takes a comma list of ${TARGETS.join(', ')}`);
  const config = Object.fromEntries(
    Object.entries({
      steps: num(values.steps, 'steps'),
      batchSize: num(values.batch, 'batch'),
      lr: num(values.lr, 'lr'),
      rank: num(values.rank, 'rank'),
      alpha: values.rank ? 2 * Number(values.rank) : undefined,
      seed: num(values.seed, 'seed'),
      targets,
      recompute: values.recompute || undefined,
    }).filter(([, v]) => v !== undefined),
  );
  const kind = parseKind('train', values.kind);
  const data = await loadStageData(values.data, kind, num(values['held-out'], 'held-out') ?? 0.1);
  const inputs: StageAdapters = {};
  if (values.neg) {
    const d = await readStageDir(values.neg);
    const neg = d.adapters.lora ?? d.adapters.neg;
    if (!neg)
      throw new EngineError(
        'BAD_ARGUMENT',
        `${values.neg} holds no LoRA: give the --out directory of a neg stage.`,
      );
    inputs.neg = neg;
  }
  if (values.nat) Object.assign(inputs, (await readStageDir(values.nat)).adapters);
  const be = await makeBackend(values.backend as BackendKind);
  const { model, tokenizer } = await loadAnyModel(be as never, values.model, values.tokenizer);
  process.stderr.write(`${stage}: D_pos ${data.pos.length}, D_neg ${data.neg.length} (training side)\n`);
  const r = await runStage({
    stage,
    model,
    tokenizer,
    data,
    config,
    inputs,
    onProgress: (p) => {
      if (p.step === 1 || p.step % 10 === 0 || p.step === p.steps)
        process.stderr.write(
          `step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)}\n`,
        );
    },
  });
  await mkdir(values.out, { recursive: true });
  for (const [name, bytes] of Object.entries(stageFiles(r))) await writeFile(join(values.out, name), bytes);
  process.stdout.write(
    JSON.stringify({
      stage,
      out: values.out,
      steps: r.losses.length,
      first_loss: r.losses[0],
      last_loss: r.losses.at(-1),
    }) + '\n',
  );
  return 0;
}
