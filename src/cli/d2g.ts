/**
 * The `d2g` command (Node): `npm run d2g -- <command> [options]`.
 *   generate      sample text from a llama2.c model, printed exactly as llama2.c's run.c prints it
 *   check-answer  is a predicted answer equivalent to the gold one (math, gsm8k, arith)?
 *   vote          accuracy of first / SC / WS / ASC / early-stopped voting over sampled rationales
 *   train         one stage of the method (kd, neg, mix, nat, linmix, nce, rank, nt, ul, cl) on a dataset
 *   sample        m rationales per question from a student (scored by a ranker), in vote's input format
 *   eval          a student's per-sequence losses and greedy accuracy on a dataset, as JSON
 *   repro         the paper's experiments, small: Tables 1–2, SC/WS/ASC at m = 1..16, ranker accuracy
 *   world         the synthetic arithmetic world: problems, teacher datasets, pre-training corpus
 *   dataset       statistics of a teacher dataset (D_pos / D_neg by our answer checking), or convert it to our JSONL
 *   inspect       what a model file holds (GGUF, MLC folder, our safetensors, llama2.c .bin), from its header
 *   plan          the memory planner: the bytes a model needs for inference or LoRA training, against a budget
 */
import { EngineError } from '../engine/errors.ts';
import { generateCommand } from './generate.ts';

const USAGE = `usage: npm run d2g -- <command> [options]

commands:
  generate --model <file> --tokenizer <file> [--prompt TEXT] --steps N [--temperature T]
           [--top-p P] [--seed S] [--n M] [--backend gpu|cpu] [--quant f32|q8_0|q4_0]
  check-answer --kind math|gsm8k|arith (--pred P --gold G | --pairs FILE)
  vote --input FILE --kind math|gsm8k|arith [--lambda L]
  train --stage kd|neg|mix|nat|linmix|nce|rank|nt|ul|cl --data FILE --out DIR [--model M]
          [--tokenizer T] [--kind arith|gsm8k|math] [--neg DIR] [--nat DIR] [--steps N] [--batch B]
          [--lr LR] [--targets q,v,...] [--rank R] [--seed S] [--held-out F] [--backend gpu|cpu]
          [--recompute]
  sample --data FILE --out FILE [--model M] [--tokenizer T] [--adapters DIR] [--ranker DIR]
          [--kind K] [--m 16] [--temperature 0.7] [--split held-out|train|all] [--limit N]
          [--max-new N] [--seed S] [--backend gpu|cpu]
  eval --data FILE [--model M] [--tokenizer T] [--adapters DIR] [--kind K] [--split held-out|train|all]
          [--held-out F] [--limit N] [--max-new N] [--batch B] [--texts] [--backend gpu|cpu]
  repro --data FILE [--quick] [--model M] [--tokenizer T] [--kind K] [--out FILE] [--steps N]
          [--batch B] [--test N] [--held-out F] [--m M] [--backend gpu|cpu] [--save DIR]
  world problems|dataset|corpus|tokenizer|stats --n N --seed S [--out FILE] [--k K]
          [--error-model FILE] [--world FILE] [--chain equations|running] [--meta]
  dataset stats --data FILE --kind math|gsm8k|arith [--format auto|ours|authors|gsm8k-solutions]
          [--held-out F] [--seed S] [--examples N]
  dataset convert --data FILE --kind math|gsm8k|arith --out FILE [--format auto|ours|authors|gsm8k-solutions]
  inspect FILE_OR_DIR [--json]      a .gguf, an MLC folder, a dust2gold .safetensors or a llama2.c .bin
  plan (--model FILE_OR_DIR | --config 7b|13b|stories260K|arith-student) [--weights q4_0|q8_0|q4_k|q6_k|f16|f32]
          [--m 16] [--context 1024] [--kv f32|f16] [--adapters N] [--budget 8GiB] [--binding-limit 128MiB]
          [--train [--batch 1] [--seq 512] [--rank 8] [--targets q,v] [--recompute] [--logits-chunk N]
                   [--stage kd|nat|nce|linmix|... [--du N]]]
          [--json]                  exit 0: fits; 2: refused (with what would fit)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'generate':
      return generateCommand(rest);
    // loaded on demand: answer checking brings the compute engine (a few MB) that generate does not need
    case 'check-answer':
      return (await import('./check-answer.ts')).checkAnswerCommand(rest);
    case 'vote':
      return (await import('./vote.ts')).voteCommand(rest);
    case 'train':
      return (await import('./train.ts')).trainCommand(rest);
    case 'sample':
      return (await import('./sample.ts')).sampleCommand(rest);
    case 'eval':
      return (await import('./eval.ts')).evalCommand(rest);
    case 'repro':
      return (await import('./repro.ts')).reproCommand(rest);
    case 'world':
      return (await import('./world.ts')).worldCommand(rest);
    case 'dataset':
      return (await import('./dataset.ts')).datasetCommand(rest);
    case 'inspect':
      return (await import('./inspect.ts')).inspectCommand(rest);
    case 'plan':
      return (await import('./plan.ts')).planCommand(rest);
    case undefined:
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return command ? 0 : 1;
    default:
      process.stderr.write(`unknown command "${command}"\n${USAGE}`);
      return 1;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof EngineError) process.stderr.write(`error (${e.code}): ${e.message}\n`);
    else process.stderr.write(`error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
