/** `d2g generate`: llama2.c's run.c generate mode on our engine (GPU by default, or the CPU reference). */
import { parseArgs } from 'node:util';
import { EngineError } from '../engine/errors.ts';
import type { DType } from '../engine/gpu/tensor.ts';
import { generate } from '../engine/infer/generate.ts';
import { LlamaRunner } from '../engine/infer/runner.ts';
import { loadModelFiles, makeBackend, type BackendKind } from './load.ts';

function num(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new EngineError('BAD_ARGUMENT', `--${name} expects a number, got "${v}"`);
  return x;
}

export async function generateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      tokenizer: { type: 'string' },
      prompt: { type: 'string', default: '' },
      steps: { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      seed: { type: 'string' },
      n: { type: 'string' },
      backend: { type: 'string', default: 'gpu' },
      quant: { type: 'string', default: 'f32' },
    },
    strict: true,
  });
  if (!values.model || !values.tokenizer) {
    throw new EngineError('BAD_ARGUMENT', 'generate needs --model <file> and --tokenizer <file>');
  }
  const backend = values.backend as BackendKind;
  if (backend !== 'gpu' && backend !== 'cpu')
    throw new EngineError('BAD_ARGUMENT', '--backend is gpu or cpu');
  const quant = values.quant as DType;
  if (!['f32', 'q8_0', 'q4_0'].includes(quant))
    throw new EngineError('BAD_ARGUMENT', '--quant is f32, q8_0 or q4_0');
  // run.c's defaults: temperature 1.0, top-p 0.9, 256 steps, seed from the clock.
  const temperature = num(values.temperature, 'temperature', 1.0);
  const topp = num(values['top-p'], 'top-p', 0.9);
  const seed = num(values.seed, 'seed', Math.floor(Date.now() / 1000));
  const n = num(values.n, 'n', 1);
  const stepsArg = num(values.steps, 'steps', 256);
  if (!Number.isInteger(n) || n < 1) throw new EngineError('BAD_ARGUMENT', '--n must be a positive integer');

  const be = await makeBackend(backend);
  const { model, tokenizer } = await loadModelFiles(be as never, values.model, values.tokenizer, quant);
  const maxT = model.config.maxSeqLen;
  const steps = stepsArg <= 0 || stepsArg > maxT ? maxT : stepsArg;
  const runner = new LlamaRunner(model, { slots: n, maxT: steps, maxRows: Math.max(n, 64) });
  const prompt = tokenizer.encode(values.prompt ?? '', true, false);
  const stream = n === 1;
  let printedPrompt = false;
  const res = await generate(
    runner,
    tokenizer,
    Array.from({ length: n }, () => prompt),
    {
      steps,
      temperature,
      topp,
      seed,
      stopTokens: [tokenizer.bos], // run.c stops on BOS only
      ...(stream
        ? {
            onToken: (_s: number, _t: number, text: string) => {
              printedPrompt = true;
              process.stdout.write(text);
            },
          }
        : {}),
    },
  );
  if (stream) {
    if (!printedPrompt && res.texts[0]) process.stdout.write(res.texts[0]);
    process.stdout.write('\n');
  } else {
    process.stdout.write(res.texts.join('\n\n') + '\n');
  }
  const total = res.tokens.reduce((a, t) => a + t.length, 0);
  const seconds = (res.prefillMs + res.decodeMs) / 1000;
  if (total > 0 && seconds > 0) process.stderr.write(`achieved tok/s: ${(total / seconds).toFixed(3)}\n`);
  return 0;
}
