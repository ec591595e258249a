// Which adapter sets Compare may evaluate on a model (src/method/api/evaluator.ts `adapterMismatch`):
// the check Solve's setStudent makes, on the files' headers. The built-in sets fit the built-in
// student; on stories260K (another LLaMA shape) each says which dimension differs; a ranker's head
// is checked against the model's width.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readLlamaSafetensors } from '../../src/engine/io/checkpoint.ts';
import { adapterMismatch } from '../../src/method/api/evaluator.ts';
import { stories260K } from '../helpers/stories.ts';

const buf = (p: string) => {
  const b = readFileSync(p);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
};
function setFiles(stage: string): Record<string, ArrayBuffer> {
  const dir = `public/models/adapters/${stage}`;
  return Object.fromEntries(readdirSync(dir).map((f) => [f, buf(`${dir}/${f}`)]));
}
const arith = readLlamaSafetensors(buf('public/models/arith-student.safetensors'), 'arith-student').config;
const stories = stories260K().config;

describe('adapterMismatch', () => {
  it('every built-in set fits the built-in student', () => {
    for (const stage of ['kd', 'neg', 'nat', 'nce', 'rank'])
      expect(adapterMismatch(arith, setFiles(stage), stage), stage).toBe(null);
  });

  it('on stories260K each names the first dimension that differs, with both values', () => {
    const want = (['dim', 'hiddenDim', 'nLayers'] as const).find((k) => arith[k] !== stories[k]);
    const kvDim = (c: typeof arith) => (c.dim * c.nKvHeads) / c.nHeads;
    const [k, mine, theirs] = want
      ? [want, arith[want], stories[want]]
      : ['kvDim', kvDim(arith), kvDim(stories)];
    expect(mine).not.toBe(theirs);
    for (const stage of ['kd', 'neg', 'nat', 'nce'])
      expect(adapterMismatch(stories, setFiles(stage), `built-in ${stage}`)).toBe(
        `"built-in ${stage}" was trained for another model (${k} ${mine}, this model has ${theirs}).`,
      );
  });

  it('the base model (no files) and a ranker head of another width', () => {
    expect(adapterMismatch(stories, {}, 'base')).toBe(null);
    const rank = setFiles('rank');
    const wide = { ...arith, dim: arith.dim * 2 };
    expect(adapterMismatch(wide, rank, 'ranker')).toBe(
      `"ranker" was trained for another model (dim ${arith.dim}, this model has ${wide.dim}).`,
    );
    // the head alone (no LoRA to say its model): its width is checked
    expect(adapterMismatch(wide, { 'head.safetensors': rank['head.safetensors']! }, 'head')).toBe(
      `"head": its ranker head reads width ${arith.dim}, this model has ${wide.dim}.`,
    );
  });
});
