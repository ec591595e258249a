/**
 * Evaluation of a student (base model + adapters): per-sequence losses (teacher forcing) and
 * greedy solving of questions in batches, with answer checking and a 95% Wilson interval.
 */
import type { BackendTensor } from '../engine/backend/types.ts';
import { Tape } from '../engine/autograd/tape.ts';
import {
  linearMixInference,
  loraInference,
  natInference,
  type InferenceAdapter,
} from '../engine/infer/adapters.ts';
import { generate, type TextTokenizer } from '../engine/infer/generate.ts';
import { LlamaRunner } from '../engine/infer/runner.ts';
import type { KvType } from '../engine/kvcache.ts';
import type { ActType } from '../engine/ops/act.ts';
import type { LlamaModel } from '../engine/model/llama.ts';
import { destroyLora, loadLora, type LoraAdapter } from '../engine/model/lora.ts';
import { destroyNatUnit, loadNatUnit, type NatUnit } from '../engine/model/nat.ts';
import { llamaForward, loraHook, type SiteHook } from '../engine/train/forward.ts';
import { natHook } from '../engine/train/nat.ts';
import { rankerLogits, rationaleMask } from '../engine/train/objectives.ts';
import { EngineError } from '../engine/errors.ts';
import { destroyRankerHead, loadRankerHead } from '../engine/model/ranker.ts';
import { packBatch, sequenceLength, uploadBatch, type Example } from '../engine/train/trainer.ts';
import { isCorrect, type AnswerKind } from './answers/index.ts';
import { linearMixHook, type StageAdapters } from './stages/stages.ts';
import { encodeExample, promptOf } from './stages/text.ts';

/** A student's adapters, ready for the tape (losses) and for the KV-cache runner (sampling). */
export interface Student<T extends BackendTensor> {
  /** What it is: 'base', 'lora', 'nat' or 'linmix'. */
  kind: 'base' | 'lora' | 'nat' | 'linmix';
  hook(tape: Tape<T>): SiteHook<T> | null;
  inference(maxRows: number): InferenceAdapter<T> | null;
  destroy(): void;
}

/** Builds the student a stage's adapters describe (NAT if it has a unit, linear mix for linmix). */
export function loadStudent<T extends BackendTensor>(
  model: LlamaModel<T>,
  adapters: StageAdapters = {},
  stage: string | null = null,
): Student<T> {
  const be = model.be;
  const loras: LoraAdapter<T>[] = [];
  const lora = (s: NonNullable<StageAdapters['lora']>) => {
    const a = loadLora(be, model.config, s);
    loras.push(a);
    return a;
  };
  let unit: NatUnit<T> | null = null;
  const destroy = () => {
    for (const a of loras) destroyLora(be, a);
    if (unit) destroyNatUnit(be, unit);
  };
  if (adapters.nat && adapters.lora && adapters.neg) {
    const pos = lora(adapters.lora),
      neg = lora(adapters.neg);
    const u = (unit = loadNatUnit(be, model.config, adapters.nat));
    return {
      kind: 'nat',
      hook: (tape) => natHook(tape, pos, neg, u, { trainable: false, training: false, seed: 0 }),
      inference: (rows) => natInference(model, pos, neg, u, rows),
      destroy,
    };
  }
  if (stage === 'linmix' && adapters.lora && adapters.neg) {
    const pos = lora(adapters.lora),
      neg = lora(adapters.neg);
    return {
      kind: 'linmix',
      hook: (tape) => linearMixHook(tape, pos, neg, 0, false, true),
      inference: (rows) => linearMixInference(be, pos, neg, rows),
      destroy,
    };
  }
  if (adapters.lora) {
    const a = lora(adapters.lora);
    return {
      kind: 'lora',
      hook: (tape) => loraHook(tape, a, 0, false, true),
      inference: (rows) => loraInference(be, a, rows),
      destroy,
    };
  }
  return { kind: 'base', hook: () => null, inference: () => null, destroy };
}

/** Mean CE over each example's loss tokens (teacher forcing, no dropout), in micro-batches. */
export async function sequenceLosses<T extends BackendTensor>(
  model: LlamaModel<T>,
  student: Student<T>,
  examples: readonly Example[],
  microBatch = 16,
): Promise<number[]> {
  const out: number[] = [];
  const V = model.config.vocabSize;
  for (let i = 0; i < examples.length; i += microBatch) {
    const chunk = examples.slice(i, i + microBatch);
    const T = sequenceLength(chunk, model.config.maxSeqLen);
    const p = packBatch(chunk, T, 1);
    const tape = new Tape(model.be);
    try {
      const batch = uploadBatch(tape, p);
      const logits = llamaForward(tape, model, batch, student.hook(tape));
      const losses = tape.alloc([p.B * T], 'eval.losses');
      model.be.ops.crossentropyForward(losses, logits.t, batch.targets, p.B * T, V);
      const l = await model.be.read(losses);
      for (let b = 0; b < p.B; b++) {
        let s = 0,
          n = 0;
        for (let t = 0; t < T; t++) {
          if (p.weights[b * T + t]! !== 0) {
            s += l[b * T + t]!;
            n++;
          }
        }
        out.push(n ? s / n : 0);
      }
    } finally {
      tape.release();
    }
  }
  return out;
}

export interface SolveOptions {
  /** New tokens at most per answer. */
  maxNew: number;
  /** Sequences decoded together. */
  batch?: number;
  temperature?: number;
  seed?: number;
  /** The KV cache type (the runtime's `kv`: f16 for a big model, as its plan counts); default f32. */
  kv?: KvType;
  /** The activation type (the runtime's `act`: f16 for a big model on a GPU with shader-f16); default f32. */
  act?: ActType;
  /** Positions per sequence at most, prompt included (a big model's planned context); default the model's. */
  context?: number;
  onBatch?: (done: number, total: number) => void;
}

/**
 * The student's rationale for each question (greedy unless a temperature is given). A question whose
 * prompt leaves no room for an answer within `context` is refused before anything is decoded.
 */
export async function solve<T extends BackendTensor>(
  model: LlamaModel<T>,
  student: Student<T>,
  tok: TextTokenizer,
  questions: readonly string[],
  opts: SolveOptions,
): Promise<string[]> {
  const batch = opts.batch ?? 16;
  const cap = Math.min(model.config.maxSeqLen, opts.context ?? Infinity);
  const prompts = questions.map((q) => tok.encode(promptOf(q), true, false));
  const longest = Math.max(0, ...prompts.map((p) => p.length));
  if (longest >= cap) {
    // refused before anything is decoded: the prompt leaves no room for an answer
    const i = prompts.findIndex((p) => p.length === longest);
    throw new EngineError(
      'BAD_ARGUMENT',
      `Problem ${i + 1} takes ${longest} tokens with its prompt, and the model reads at most ${cap} positions here` +
        `${cap < model.config.maxSeqLen ? ' (the context it was planned for)' : ''}, with room left for the answer. ` +
        'Plan a longer context, or evaluate fewer problems.',
    );
  }
  const maxT = Math.min(cap, longest + opts.maxNew);
  const runner = new LlamaRunner(model, {
    slots: batch,
    maxT,
    maxRows: Math.max(64, batch),
    ...(opts.kv ? { kv: opts.kv } : {}),
    ...(opts.act ? { act: opts.act } : {}),
  });
  const adapter = student.inference(runner.maxRows);
  runner.setAdapter(adapter);
  const texts: string[] = [];
  try {
    for (let i = 0; i < prompts.length; i += batch) {
      const chunk = prompts.slice(i, i + batch);
      const r = await generate(runner, tok, chunk, {
        steps: maxT,
        temperature: opts.temperature ?? 0,
        topp: 1,
        seed: (opts.seed ?? 1) + i, // each batch its own streams
        stopTokens: [tok.eos, tok.bos],
      });
      // tokens hold the prompt after BOS, then the continuation: keep the continuation
      r.tokens.forEach((toks, s) => texts.push(continuation(tok, chunk[s]!, toks)));
      opts.onBatch?.(Math.min(i + batch, prompts.length), prompts.length);
    }
  } finally {
    runner.destroy();
    adapter?.destroy();
  }
  return texts;
}

/** The text of the tokens after the prompt (`toks` holds the prompt after BOS, then the rest). */
function continuation(tok: TextTokenizer, prompt: readonly number[], toks: readonly number[]): string {
  let prev = prompt.at(-1) ?? tok.bos;
  const parts: Uint8Array[] = [];
  for (const t of toks.slice(prompt.length - 1)) {
    parts.push(tok.decodeBytes(prev, t));
    prev = t;
  }
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    bytes.set(p, o);
    o += p.length;
  }
  return new TextDecoder().decode(bytes);
}

/** 95% Wilson score interval of k successes in n. */
export function wilson(k: number, n: number, z = 1.959963984540054): [number, number] {
  if (n === 0) return [0, 1];
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = p + (z * z) / (2 * n);
  const h = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, (c - h) / d), Math.min(1, (c + h) / d)];
}

export interface Accuracy {
  n: number;
  correct: number;
  accuracy: number;
  ci95: [number, number];
  solved: boolean[];
}

export function accuracyOf(kind: AnswerKind, texts: readonly string[], golds: readonly string[]): Accuracy {
  const solved = texts.map((t, i) => isCorrect(kind, t, golds[i]!));
  const k = solved.filter(Boolean).length;
  return {
    n: texts.length,
    correct: k,
    accuracy: texts.length ? k / texts.length : 0,
    ci95: wilson(k, texts.length),
    solved,
  };
}

export { encodeExample };

/** A ranker (rank LoRA + head) loaded from a rank stage's adapters. */
export interface Ranker {
  /** Scores s ∈ (0, 1) of (question, rationale) pairs, in batches. */
  score(items: readonly { question: string; rationale: string }[], batch?: number): Promise<number[]>;
  /** The same for encoded sequences (rationale tokens = the inputs whose lossMask is 1). */
  scoreExamples(exs: readonly Example[], batch?: number): Promise<number[]>;
  destroy(): void;
}

export function loadRanker<T extends BackendTensor>(
  model: LlamaModel<T>,
  tok: {
    encode(text: string, bos: boolean, eos: boolean): number[];
    bos: number;
    eos: number;
    vocabSize: number;
  },
  adapters: StageAdapters,
): Ranker {
  if (!adapters.rank || !adapters.head) {
    throw new EngineError(
      'BAD_ARGUMENT',
      'these adapters hold no ranker (rank LoRA + head): give the output of a rank stage.',
    );
  }
  const be = model.be;
  const lora = loadLora(be, model.config, adapters.rank);
  const head = loadRankerHead(be, adapters.head);
  const ranker: Ranker = {
    score: (items, batch) =>
      ranker.scoreExamples(
        items.map((it) => encodeExample(tok, it.question, it.rationale)),
        batch,
      ),
    async scoreExamples(all, batch = 16) {
      const out: number[] = [];
      for (let i = 0; i < all.length; i += batch) {
        const exs = all.slice(i, i + batch);
        const T = sequenceLength(exs, model.config.maxSeqLen);
        const tape = new Tape(be);
        try {
          const b = uploadBatch(tape, packBatch(exs, T, 1));
          const mask = tape.alloc([exs.length * T], 'rank.mask');
          be.write(mask, rationaleMask(exs, T));
          const z = rankerLogits(tape, model, b, mask, head, loraHook(tape, lora, 0, false, true), false);
          const s = tape.alloc([exs.length], 'rank.s');
          be.ops.sigmoidForward(s, z.t, exs.length);
          out.push(...(await be.read(s)));
        } finally {
          tape.release();
        }
      }
      return out;
    },
    destroy() {
      destroyLora(be, lora);
      destroyRankerHead(be, head);
    },
  };
  return ranker;
}
