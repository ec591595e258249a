/**
 * Batched generation with llama2.c's run.c semantics per sequence: positions count from 0 with
 * BOS, prompt tokens are forced, `steps` bounds the positions (BOS and prompt included), and a
 * sequence ends when it samples a stop token (BOS, as in run.c; EOS too by default). m sequences
 * with different prompts run together: one prefill over all prompt rows, then one decode row per
 * live sequence per step. Sequences with the same prompt (m samples of one question) share its
 * prefill: it runs once, in the first such sequence's slot, and the others' slots get a copy of
 * its KV cache and its logits. Each sequence has its own seeded sampler, so a batch of one
 * reproduces run.c and the GPU and the CPU reference give the same text for the same seed.
 */
import type { BackendTensor } from '../backend/types.ts';
import { EngineError } from '../errors.ts';
import type { StreamDecoder } from '../io/tokenizer.ts';
import type { LlamaRunner, Row } from './runner.ts';
import { createSamplers } from './sampler.ts';

/** What generation needs of a tokenizer (llama2.c's BPE and our char tokenizer both fit). */
export interface TextTokenizer {
  readonly bos: number;
  readonly eos: number;
  readonly vocabSize: number;
  encode(text: string, bos: boolean, eos: boolean): number[];
  decodeBytes(prev: number, token: number): Uint8Array;
  createStreamDecoder(): StreamDecoder;
}

export interface GenerateOptions {
  /** Positions per sequence, BOS and prompt included (run.c's -n). */
  steps: number;
  temperature: number;
  topp: number;
  seed: number;
  /** Tokens that end a sequence (not printed). Default [BOS, EOS]; run.c stops on BOS only. */
  stopTokens?: readonly number[];
  /** Called for every printed piece, as soon as its sequence's token is known. */
  onToken?: (seq: number, token: number, text: string) => void;
  /** Checked between steps: return true to stop early. */
  shouldStop?: () => boolean;
  /**
   * Awaited after each sampling round, before the next forward (and before `shouldStop`), with the
   * sequences that ended in that round (a stop token or the step limit): room for async work
   * between decode steps, such as scoring finished sequences on the same device.
   */
  onStep?: (ended: readonly number[]) => void | Promise<void>;
  /**
   * Run one prefill per distinct prompt and copy its KV cache to the other sequences with the same
   * prompt (default true). The texts are the same either way; false prefills every sequence.
   */
  sharePrefill?: boolean;
}

export interface GenerateResult {
  texts: string[];
  /** Tokens after BOS (prompt included), per sequence. */
  tokens: number[][];
  /** Tokens sampled (not forced), per sequence. */
  generated: number[];
  prefillMs: number;
  /** Rows the prefill ran (prompt positions of the sequences that did not share another's). */
  prefillRows: number;
  decodeMs: number;
  /** Decode steps run (each one row per live sequence). */
  decodeSteps: number;
}

/** run.c's safe_printf: a lone control byte prints nothing. */
function printable(bytes: Uint8Array): boolean {
  if (bytes.length !== 1) return bytes.length > 0;
  const b = bytes[0]!;
  return b >= 0x80 || (b >= 0x20 && b < 0x7f) || (b >= 0x09 && b <= 0x0d);
}

export async function generate<T extends BackendTensor>(
  runner: LlamaRunner<T>,
  tok: TextTokenizer,
  prompts: readonly (readonly number[])[],
  opts: GenerateOptions,
): Promise<GenerateResult> {
  const m = prompts.length;
  if (m === 0) throw new EngineError('BAD_ARGUMENT', 'nothing to generate: no prompts');
  if (m > runner.slots) {
    throw new EngineError('BAD_ARGUMENT', `${m} sequences but the runner has ${runner.slots} slots.`);
  }
  const steps = Math.min(opts.steps > 0 ? opts.steps : runner.maxT, runner.maxT);
  const stop = new Set(opts.stopTokens ?? [tok.bos, tok.eos]);
  const samplers = createSamplers(tok.vocabSize, opts.temperature, opts.topp, opts.seed, m);
  const decoders = prompts.map(() => tok.createStreamDecoder());
  const texts = prompts.map(() => '');
  const tokens: number[][] = prompts.map(() => []);
  const generated = new Array<number>(m).fill(0);
  const last = prompts.map((p) => p[0] ?? tok.bos);
  const pos = new Array<number>(m).fill(0);
  const live = new Array<boolean>(m).fill(true);

  const emit = (s: number, next: number) => {
    tokens[s]!.push(next);
    const piece = printable(tok.decodeBytes(last[s]!, next)) ? decoders[s]!.push(last[s]!, next) : '';
    texts[s] += piece;
    opts.onToken?.(s, next, piece);
    last[s] = next;
  };

  // Prefill: every prompt position up to the last (capped by steps); forced tokens print as run.c.
  // A prompt seen before is not run again: its sequence copies the first one's cache and logits.
  const t0 = performance.now();
  const share = opts.sharePrefill ?? true;
  const firstOf = new Map<string, number>();
  const source = prompts.map((p, s) => {
    if (p.length === 0)
      throw new EngineError('BAD_ARGUMENT', `prompt ${s} is empty (it needs at least BOS).`);
    if (!share) return s;
    const key = p.join(',');
    const first = firstOf.get(key);
    if (first !== undefined) return first;
    firstOf.set(key, s);
    return s;
  });
  const rows: Row[] = [];
  const outputs: number[] = [];
  const outputOf = new Map<number, number>(); // a prefilled slot → its row in the prefill's logits
  const outSeq: number[] = [];
  prompts.forEach((p, s) => {
    const n = Math.min(p.length, steps);
    if (source[s] === s) for (let i = 0; i < n; i++) rows.push({ slot: s, pos: i, token: p[i]! });
    for (let i = 1; i < n; i++) emit(s, p[i]!);
    pos[s] = n;
    if (n === p.length) {
      if (source[s] === s) {
        outputOf.set(s, outputs.length);
        outputs.push(rows.length - 1);
      }
      outSeq.push(s);
    } else live[s] = false; // the prompt alone used up the steps
  });
  const V = tok.vocabSize;
  const prefilled = await runner.forward(rows, outputs);
  let logits = prefilled;
  if (source.some((f, s) => f !== s)) {
    for (const first of firstOf.values()) {
      const copies = source.flatMap((f, s) => (f === first && s !== first ? [s] : []));
      if (copies.length) runner.copySlot(first, copies, pos[first]!);
    }
    logits = new Float32Array(outSeq.length * V);
    outSeq.forEach((s, j) => {
      const o = outputOf.get(source[s]!)!;
      logits.set(prefilled.subarray(o * V, (o + 1) * V), j * V);
    });
  }
  const prefillMs = performance.now() - t0;

  const t1 = performance.now();
  let decodeSteps = 0;
  let active = outSeq;
  for (;;) {
    const nextRows: Row[] = [];
    const nextSeq: number[] = [];
    const ended: number[] = [];
    active.forEach((s, j) => {
      const next = samplers[s]!.sample(logits.subarray(j * V, (j + 1) * V));
      if (stop.has(next)) {
        live[s] = false;
        ended.push(s);
        return;
      }
      generated[s]!++;
      emit(s, next);
      if (pos[s]! >= steps) {
        live[s] = false;
        ended.push(s);
        return;
      }
      nextRows.push({ slot: s, pos: pos[s]!, token: next });
      nextSeq.push(s);
      pos[s]!++;
    });
    if (opts.onStep) await opts.onStep(ended);
    if (nextRows.length === 0 || opts.shouldStop?.()) break;
    logits = await runner.forward(
      nextRows,
      nextRows.map((_, i) => i),
    );
    decodeSteps++;
    active = nextSeq;
  }
  for (let s = 0; s < m; s++) {
    const rest = decoders[s]!.flush();
    if (rest) {
      texts[s] += rest;
      opts.onToken?.(s, -1, rest);
    }
  }
  return {
    texts,
    tokens,
    generated,
    prefillMs,
    prefillRows: rows.length,
    decodeMs: performance.now() - t1,
    decodeSteps,
  };
}
