// Train with any student, before anything is allocated: the data as the student's tokenizer reads
// it (`checkStageData`: examples it cannot read and examples over the cap are counted and left
// out, never trained on; the plan's sequence length is the longest example kept) and the plan of one
// LoRA step (`planTraining`: the planner's figures for LLaMA-7b q4_0 at 1 × 512 with and without
// recompute, docs/planner.md; a refusal keeps only the suggestions the trainer can follow).
import { describe, expect, it } from 'vitest';
import { SpmTokenizer } from '../../src/engine/io/spm.ts';
import { LLAMA_7B, type LlamaConfig } from '../../src/engine/model/config.ts';
import {
  planMemory,
  type DeviceLimits,
  type TrainingRequest,
  type TrainVariant,
} from '../../src/engine/plan.ts';
import { planTraining } from '../../src/method/api/big-student.ts';
import { checkStageData, measureItems, stageSides, stageVariant } from '../../src/method/api/train-plan.ts';
import { shapesOf } from '../../src/method/api/stage-inputs.ts';
import { DEFAULT_STAGE } from '../../src/method/stages/config.ts';
import { promptOf } from '../../src/method/stages/text.ts';
import type { StageAdapters, StageData } from '../../src/method/stages/types.ts';
import type { LoraTarget } from '../../src/engine/model/llama.ts';
import type { LoraState } from '../../src/engine/model/lora.ts';
import { tok512Vocab } from '../helpers/stories-gguf.ts';
import { tinyTok } from '../helpers/tiny-arith.ts';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

/** Tokens of an example for a character tokenizer: BOS, the prompt's and rationale's characters, EOS. */
const charTokens = (q: string, r: string) => 1 + promptOf(q).length + r.length + 1;

describe('checkStageData: what of the data a run trains on', () => {
  const data: StageData = {
    pos: [
      { question: '1+2', rationale: '1+2=3. The answer is 3.' },
      { question: '4+5', rationale: '4+5=9. The answer is 9. '.repeat(3).trim() }, // longer
      { question: '7+1', rationale: '7+1=8. The answer is $8.' }, // "$" is not in the alphabet
      { question: '2+2', rationale: '2+2=4. The answer is 4.' },
    ],
    neg: [
      { question: '1+2', rationale: '1+2=4. The answer is 4.' },
      { question: '6+3', rationale: '6+3=10. The answer is 10. Ok!' }, // "O", "k", "!" are not
    ],
  };

  it('a character tokenizer: lengths, the cap, unreadable characters; nothing of them kept', () => {
    const lens = measureItems(tinyTok, data.pos);
    expect([...lens]).toEqual([
      charTokens('1+2', data.pos[0]!.rationale) - 1,
      charTokens('4+5', data.pos[1]!.rationale) - 1,
      -1,
      charTokens('2+2', data.pos[3]!.rationale) - 1,
    ]);
    const short = charTokens('1+2', data.pos[0]!.rationale) - 1; // 48 tokens: 47 positions
    expect(short).toBe(47);
    const long = charTokens('4+5', data.pos[1]!.rationale) - 1;
    // no cap but the context: every readable example is kept
    const all = checkStageData(tinyTok, 'kd', data, 200, 200);
    expect(all.check).toEqual({
      maxSeq: 200,
      context: 200,
      longest: long,
      pos: { total: 4, kept: 3, unreadable: 1, tooLong: 0, chars: ['$'] },
      neg: { total: 2, kept: 1, unreadable: 1, tooLong: 0, chars: ['O', 'k', '!'] },
    });
    expect(all.data.pos.map((x) => x.question)).toEqual(['1+2', '4+5', '2+2']);
    expect(all.data.neg.map((x) => x.question)).toEqual(['1+2']);
    // a cap of 47 positions (48 tokens): the long one is left out and counted
    const capped = checkStageData(tinyTok, 'kd', data, short, 200);
    expect(capped.check.pos).toEqual({ total: 4, kept: 2, unreadable: 1, tooLong: 1, chars: ['$'] });
    expect(capped.check.longest).toBe(short);
    expect(capped.data.pos.map((x) => x.question)).toEqual(['1+2', '2+2']);
    // one position fewer: nothing of D_pos is left
    expect(checkStageData(tinyTok, 'kd', data, short - 1, 200).check.pos.kept).toBe(0);
    // the longest is taken over the sides the stage trains on: neg alone for the Neg stage
    expect(stageSides('neg')).toEqual(['neg']);
    expect(checkStageData(tinyTok, 'neg', data, 200, 200).check.longest).toBe(
      charTokens('1+2', data.neg[0]!.rationale) - 1,
    );
    expect(checkStageData(tinyTok, 'rank', data, 200, 200).check.longest).toBe(long);
  });

  it('SentencePiece: with byte fallback every character reads; without, the unknown token is refused', () => {
    const l2 = new SpmTokenizer(tok512Vocab(), 'tok512');
    const withBytes = checkStageData(l2, 'kd', data, 512, 512);
    expect(withBytes.check.pos).toEqual({ total: 4, kept: 4, unreadable: 0, tooLong: 0, chars: [] });
    expect(withBytes.check.neg).toEqual({ total: 2, kept: 2, unreadable: 0, tooLong: 0, chars: [] });
    const enc = (q: string, r: string) => [
      ...l2.encode(promptOf(q), true, false),
      ...l2.encode(r, false, true),
    ];
    expect(withBytes.check.longest).toBe(
      Math.max(...data.pos.map((x) => enc(x.question, x.rationale).length - 1)),
    );
    // a vocabulary of single characters, no byte pieces: "$", "O", "k", "!" become <unk>
    const chars = [...new Set('Problem:\nSolution0123456789+-=.Theanswri')];
    const small = new SpmTokenizer(
      {
        tokens: ['<unk>', '<s>', '</s>', '\u2581', ...chars],
        types: [2, 3, 3, 1, ...chars.map(() => 1)],
      },
      'small',
    );
    const c = checkStageData(small, 'kd', data, 512, 512);
    expect(c.check.pos).toEqual({ total: 4, kept: 3, unreadable: 1, tooLong: 0, chars: ['$'] });
    expect(c.check.neg).toEqual({ total: 2, kept: 1, unreadable: 1, tooLong: 0, chars: ['O', 'k', '!'] });
  });
});

/** A GPU that binds 2 GiB (what desktop adapters report), as `Gpu.limits` gives them. */
const limits = (): Record<string, number> => ({
  maxBufferSize: 4 * GiB,
  maxStorageBufferBindingSize: 2 * GiB - 4,
});
/** The same with the budget, as the planner takes them. */
const withBudget = (memoryBudget: number): DeviceLimits => ({
  maxBufferSize: 4 * GiB,
  maxStorageBufferBindingSize: 2 * GiB - 4,
  memoryBudget,
});

describe('planTraining: one LoRA step of a student', () => {
  const step = { batch: 1, seq: 512, rank: 8, targets: ['q', 'v'] as const, dropout: 0.05 };

  it('LLaMA-7b q4_0, 1 × 512, q and v at rank 8: 4.43 GiB with recompute fits 8 GiB; 17.2 GiB without is refused', () => {
    const s = { config: LLAMA_7B, weights: { matrices: 'q4_0' as const } };
    const on = planTraining(limits(), s, { ...step, recompute: true, memoryBudget: 8 * GiB });
    expect(on.error).toBeNull();
    expect(on.view.verdict).toBe('ok');
    expect(on.view.items.total).toBe(4_756_048_388);
    expect(on.view.items.weights).toBe(3_791_273_984);
    expect(on.view.text).toMatch(/^LoRA training: 1 × 512 tokens, rank 8 on q,v, recompute on/);
    const off = planTraining(limits(), s, { ...step, recompute: false, memoryBudget: 8 * GiB });
    expect(off.view.items.total).toBe(18_481_969_668);
    expect(off.view.verdict).toBe('refused');
    expect(off.error?.code).toBe('OUT_OF_MEMORY');
    expect(off.view.error).toEqual({ code: 'OUT_OF_MEMORY', message: off.error!.message });
    expect(off.view.suggestions[0]).toEqual({
      kind: 'recompute',
      total: 4_756_048_388,
      text: 'turn on recompute (gradient checkpointing) (4.4 GiB)',
    });
    expect(off.error!.message).toMatch(
      /^A LoRA training step on 1 × 512 tokens needs 17\.2 GiB .* budget is 8\.0 GiB: 9\.2 GiB over\. To fit: turn on recompute/,
    );
  });

  it('NAT, NCE and the linear mix: the frozen LoRAs, the unit and the teacher logits, by hand', () => {
    const s = { config: LLAMA_7B, weights: { matrices: 'q4_0' as const } };
    const plan = (variant?: TrainVariant) =>
      planTraining(limits(), s, {
        ...step,
        recompute: true,
        memoryBudget: 8 * GiB,
        ...(variant ? { variant } : {}),
      }).view;
    const kd = plan();
    const nat = plan(stageVariant('nat', DEFAULT_STAGE, LLAMA_7B));
    const nce = plan(stageVariant('nce', DEFAULT_STAGE, LLAMA_7B));
    const mix = plan(stageVariant('linmix', DEFAULT_STAGE, LLAMA_7B));
    expect(stageVariant('kd', DEFAULT_STAGE, LLAMA_7B)).toEqual({ kind: 'lora' });
    expect(stageVariant('nat', { ...DEFAULT_STAGE, du: 32 }, LLAMA_7B)).toEqual({ kind: 'nat', du: 32 });
    // without the run's inputs, the frozen adapters are counted with this config's shapes
    expect(stageVariant('nce', { ...DEFAULT_STAGE, du: 32 }, LLAMA_7B)).toEqual({ kind: 'nce', du: 32 });
    // a LoRA r8 on q and v: 8 · (4096 + 4096) values per site, 2 sites, 32 layers
    const P = 8 * 8192 * 2 * 32;
    // the unit (d_u = min(128, dim) = 128) per site: W_Q 128×4096, W_K and W_V1 128×4096, W_V2 4096×128
    const U = 4 * 128 * 4096 * 2 * 32;
    expect(kd.items.adapters).toBe(4 * P);
    expect(nat.items.adapters).toBe(4 * (2 * P + U)); // 544 MiB: the unit is 32× the LoRA here
    expect(nat.items.gradients).toBe(nat.items.adapters);
    // AdamW's two moments of the positive LoRA and the unit; a norm per trained tensor and the total
    expect(nat.items.optimizer).toBe(8 * (P + U) + 4 * (2 * 2 * 32 + 4 * 2 * 32) + 4);
    expect(nce.items.adapters).toBe(4 * (3 * P + U));
    expect(nce.items.optimizer).toBe(kd.items.optimizer);
    expect(nce.items.logits).toBe(kd.items.logits + 2 * 512 * 32000 * 4);
    expect(mix.items.adapters).toBe(4 * 2 * P);
    // what each needs with recompute at 1 × 512: all fit 8 GiB
    expect([kd, nat, nce, mix].map((p) => p.items.total)).toEqual([
      4_756_048_388, 7_248_190_980, 6_031_127_300, 4_957_440_516,
    ]);
    expect(nat.text).toMatch(
      /^NAT \(positive LoRA and integration unit beside the frozen negative LoRA\) training/,
    );

    // with the run's inputs, the frozen adapters have the shapes they were trained with
    const model = { dim: 4096, hiddenDim: 11008, nLayers: 32, kvDim: 4096 };
    const lora = (rank: number, targets: LoraTarget[]): LoraState => ({
      config: { rank, alpha: rank, dropout: 0, targets },
      model,
      tensors: {},
    });
    const qkvo: LoraTarget[] = ['q', 'k', 'v', 'o'];
    const natSet: StageAdapters = {
      lora: lora(16, qkvo),
      neg: lora(16, qkvo),
      nat: { config: { du: 16, targets: qkvo }, model, tensors: {} },
    };
    const r16 = { rank: 16, targets: qkvo, dropout: 0 };
    // NCE: the NAT set's width (16, whatever this config says), rank and targets
    expect(stageVariant('nce', { ...DEFAULT_STAGE, du: 32 }, LLAMA_7B, shapesOf('nce', natSet))).toEqual({
      kind: 'nce',
      du: 16,
      frozen: { pos: r16, neg: r16 },
    });
    const nce16 = plan(stageVariant('nce', DEFAULT_STAGE, LLAMA_7B, shapesOf('nce', natSet)));
    const P16 = 16 * 8192 * 4 * 32;
    const U16 = 4 * 16 * 4096 * 4 * 32;
    expect(nce16.items.adapters).toBe(4 * (P + 2 * P16 + U16));
    expect(nce16.items.gradients).toBe(nce16.items.adapters);
    expect(nce16.items.optimizer).toBe(kd.items.optimizer);
    // NAT beside a negative LoRA r4 (on q and v, as the positive one)
    const qv: LoraTarget[] = ['q', 'v'];
    const nat4 = plan(stageVariant('nat', DEFAULT_STAGE, LLAMA_7B, shapesOf('nat', { neg: lora(4, qv) })));
    const P4 = 4 * 8192 * 2 * 32;
    expect(nat4.items.adapters).toBe(4 * (P + P4 + U));
    expect(nat4.items.optimizer).toBe(nat.items.optimizer);
    // the linear mix beside the r4 one
    const mixQ = plan(
      stageVariant('linmix', DEFAULT_STAGE, LLAMA_7B, shapesOf('linmix', { neg: lora(4, qv) })),
    );
    expect(mixQ.items.adapters).toBe(4 * (P + P4));
  });

  it("a refusal names only what this trainer can do: no 'logits in chunks' (it computes them whole)", () => {
    // a small model with LLaMA's vocabulary: at 4 × 512 the logits and their gradient take 500 MiB
    const config: LlamaConfig = { ...LLAMA_7B, dim: 64, hiddenDim: 172, nLayers: 2, nHeads: 4, nKvHeads: 4 };
    const s = { config, weights: { matrices: 'f32' as const } };
    const p = { ...step, batch: 4, recompute: false, memoryBudget: 300 * MiB };
    const raw = planMemory({
      kind: 'training',
      config,
      weights: s.weights,
      limits: withBudget(300 * MiB),
      batch: 4,
      seq: 512,
      lora: { rank: 8, targets: ['q', 'v'], dropout: 0.05 },
      recompute: false,
    } satisfies TrainingRequest);
    const chunk = raw.suggestions.find((x) => x.kind === 'logitsChunk');
    expect(chunk).toBeDefined(); // the planner offers it here
    const { view, error } = planTraining(limits(), s, p);
    expect(view.items).toEqual(raw.items);
    expect(view.suggestions.map((x) => x.kind)).toEqual(
      raw.suggestions.map((x) => x.kind).filter((k) => k !== 'logitsChunk'),
    );
    const rawBatch = raw.suggestions.find((x) => x.kind === 'batch');
    expect(rawBatch).toMatchObject({ batch: 1 });
    expect(view.suggestions.find((x) => x.kind === 'batch')).toEqual(rawBatch);
    expect(error!.message).toBe(raw.error!.message.replace(`; or ${chunk!.text}`, ''));
    expect(error!.message).not.toMatch(/chunks/);
  });

  it('refuses a malformed request with what to give', () => {
    const s = { config: LLAMA_7B, weights: { matrices: 'q4_0' as const } };
    expect(() => planTraining(limits(), s, { ...step, seq: 4096, recompute: true })).toThrow(
      /this model reads at most 2048 positions/,
    );
    expect(() => planTraining(limits(), s, { ...step, targets: [], recompute: true })).toThrow(
      /at least one target/,
    );
  });
});
