/**
 * The adapters a stage builds on: which earlier set it needs (Neg for NAT and the linear mix, NAT
 * for NCE), the frozen adapters read from that set's files, and their shapes as the planner counts
 * them.
 */
import { EngineError } from '../../engine/errors.ts';
import type { LoraState } from '../../engine/model/lora.ts';
import type { LoraSpec } from '../../engine/plan.ts';
import type { StageName } from '../stages/config.ts';
import { readStageFiles } from '../stages/files.ts';
import type { StageAdapters } from '../stages/types.ts';

/** Which earlier adapter set a stage needs: NAT / linear mix a Neg set, NCE a NAT set. */
export function inputSetFor(stage: StageName): 'neg' | 'nat' | null {
  if (stage === 'nat' || stage === 'linmix') return 'neg';
  if (stage === 'nce') return 'nat';
  return null;
}

/** The inputs a stage takes from an adapter set's files; a clear refusal when the set is not one. */
export function stageInputs(stage: StageName, files: Record<string, ArrayBuffer> | undefined): StageAdapters {
  const need = inputSetFor(stage);
  if (!need) return {};
  const has = files && Object.keys(files).some((f) => f.endsWith('.safetensors'));
  if (!has) {
    throw new EngineError(
      'BAD_ARGUMENT',
      need === 'neg'
        ? `${stage === 'nat' ? 'NAT' : 'The linear mix'} learns next to a frozen negative LoRA, and none was given. ` +
            'Pick a Neg adapter set (the built-in "Negative LoRA" works), or train the Neg stage first.'
        : 'NCE distils the NAT model, and none was given. Pick a NAT adapter set (the built-in "NAT" works), ' +
            'or train the NAT stage first.',
    );
  }
  const { stage: from, adapters } = readStageFiles(files);
  if (need === 'neg') {
    // a Neg set's LoRA is the negative one; a NAT or linear-mix set carries it as `neg`
    const neg =
      from === 'neg' ? adapters.lora : (adapters.neg ?? (from === null ? adapters.lora : undefined));
    if (!neg)
      throw new EngineError(
        'BAD_ARGUMENT',
        `This adapter set comes from the ${from ?? 'unknown'} stage and holds no negative LoRA. ` +
          'Pick a set trained with the Neg stage (on D_neg).',
      );
    return { neg };
  }
  if (!adapters.lora || !adapters.neg || !adapters.nat)
    throw new EngineError(
      'BAD_ARGUMENT',
      `NCE needs a NAT adapter set (positive LoRA, negative LoRA and integration unit); this one comes from ` +
        `the ${from ?? 'unknown'} stage and holds ${Object.keys(files).sort().join(', ')}. Pick a NAT set.`,
    );
  return { lora: adapters.lora, neg: adapters.neg, nat: adapters.nat };
}

/**
 * The frozen adapters' shapes: the negative LoRA's rank and targets, NCE's NAT positive LoRA and
 * the unit's width (it sits on the negative LoRA's targets).
 */
export interface InputShapes {
  neg?: LoraSpec;
  pos?: LoraSpec;
  du?: number;
}

const specOf = (l: LoraState): LoraSpec => ({
  rank: l.config.rank,
  targets: [...l.config.targets],
  dropout: l.config.dropout,
});

/** The shapes of what `stage` takes from `inputs` (`stageInputs`' answer). */
export function shapesOf(stage: StageName, inputs: StageAdapters): InputShapes {
  return {
    ...(inputs.neg ? { neg: specOf(inputs.neg) } : {}),
    ...(stage === 'nce' && inputs.lora ? { pos: specOf(inputs.lora) } : {}),
    ...(inputs.nat ? { du: inputs.nat.config.du } : {}),
  };
}

/** The shapes of the frozen adapters in an adapter set's files, for `stage` (refused as `stageInputs`). */
export function inputShapes(stage: StageName, files: Record<string, ArrayBuffer>): InputShapes {
  return shapesOf(stage, stageInputs(stage, files));
}
