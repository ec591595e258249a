/**
 * A stage's output as files (the CLI writes them into a directory; the app into IndexedDB):
 *   result.json        {stage, config, losses, history, cancelled}
 *   lora.safetensors   the stage's LoRA (KD/MIX/NT/UL/CL/NCE student, NAT's positive LoRA)
 *   neg.safetensors    NAT's negative LoRA (nat, linmix)
 *   nat.safetensors    the integration unit (format dust2gold-nat)
 *   rank.safetensors, head.safetensors   the ranker's LoRA and head (format dust2gold-ranker-head)
 */
import { EngineError } from '../../engine/errors.ts';
import { readLoraSafetensors, writeLoraSafetensors } from '../../engine/io/checkpoint.ts';
import { readSafetensors, toFloat32, writeSafetensors } from '../../engine/io/safetensors.ts';
import type { NatState } from '../../engine/model/nat.ts';
import type { TensorState } from '../../engine/model/params.ts';
import type { RankerHeadState } from '../../engine/model/ranker.ts';
import type { StageAdapters, StageResult } from './stages.ts';

function writeTensors(t: TensorState, metadata: Record<string, string>): Uint8Array {
  const tensors: Parameters<typeof writeSafetensors>[0] = {};
  for (const [n, v] of Object.entries(t)) tensors[n] = { dtype: 'F32', shape: v.shape, data: v.data };
  return writeSafetensors(tensors, metadata);
}

function readTensors(
  buf: ArrayBuffer,
  format: string,
  name: string,
): { meta: Record<string, string>; tensors: TensorState } {
  const { metadata, tensors } = readSafetensors(buf);
  if (metadata.format !== format) {
    throw new EngineError(
      'BAD_MAGIC',
      `${name} is not a ${format} file (format "${metadata.format ?? 'none'}").`,
    );
  }
  const out: TensorState = {};
  for (const [n, t] of tensors) out[n] = { shape: t.shape, data: toFloat32(t) };
  return { meta: metadata, tensors: out };
}

function json<T>(text: string | undefined, what: string): T {
  try {
    return JSON.parse(text ?? '') as T;
  } catch {
    throw new EngineError('BAD_FILE', `${what}: the metadata is missing or not JSON.`);
  }
}

export function stageFiles(r: StageResult): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  const a = r.adapters;
  if (a.lora) files['lora.safetensors'] = writeLoraSafetensors(a.lora);
  if (a.neg) files['neg.safetensors'] = writeLoraSafetensors(a.neg);
  if (a.rank) files['rank.safetensors'] = writeLoraSafetensors(a.rank);
  if (a.nat)
    files['nat.safetensors'] = writeTensors(a.nat.tensors, {
      format: 'dust2gold-nat',
      config: JSON.stringify(a.nat.config),
      model: JSON.stringify(a.nat.model),
    });
  if (a.head)
    files['head.safetensors'] = writeTensors(a.head.tensors, {
      format: 'dust2gold-ranker-head',
      dim: String(a.head.dim),
    });
  const { adapters: _, ...rest } = r;
  files['result.json'] = new TextEncoder().encode(JSON.stringify(rest, null, 1) + '\n');
  return files;
}

/** Reads the adapters of a stage directory (files by name); `stage` from result.json when present. */
export function readStageFiles(files: Record<string, ArrayBuffer>): {
  stage: string | null;
  adapters: StageAdapters;
} {
  const a: StageAdapters = {};
  const f = (n: string) => files[n];
  if (f('lora.safetensors')) a.lora = readLoraSafetensors(f('lora.safetensors')!, 'lora.safetensors');
  if (f('neg.safetensors')) a.neg = readLoraSafetensors(f('neg.safetensors')!, 'neg.safetensors');
  if (f('rank.safetensors')) a.rank = readLoraSafetensors(f('rank.safetensors')!, 'rank.safetensors');
  if (f('nat.safetensors')) {
    const { meta, tensors } = readTensors(f('nat.safetensors')!, 'dust2gold-nat', 'nat.safetensors');
    a.nat = {
      config: json<NatState['config']>(meta.config, 'nat.safetensors'),
      model: json<NatState['model']>(meta.model, 'nat.safetensors'),
      tensors,
    };
  }
  if (f('head.safetensors')) {
    const { meta, tensors } = readTensors(
      f('head.safetensors')!,
      'dust2gold-ranker-head',
      'head.safetensors',
    );
    const head: RankerHeadState = { dim: Number(meta.dim), tensors };
    a.head = head;
  }
  let stage: string | null = null;
  if (f('result.json'))
    stage =
      json<{ stage?: string }>(new TextDecoder().decode(f('result.json')!), 'result.json').stage ?? null;
  return { stage, adapters: a };
}
