/** stories260K (llama2.c, MIT) from public/models, and llama2.c's expected outputs. */
import { readFileSync } from 'node:fs';
import { parseLlama2c } from '../../src/engine/io/llama2c.ts';
import { Llama2cTokenizer } from '../../src/engine/io/tokenizer.ts';

export function readBuf(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

export function stories260K() {
  const { config, weights } = parseLlama2c(readBuf('public/models/stories260K.bin'), 'stories260K.bin');
  const tokenizer = Llama2cTokenizer.parse(
    readBuf('public/models/tok512.bin'),
    config.vocabSize,
    'tok512.bin',
  );
  return { config, weights, tokenizer };
}

export const EXPECTED = JSON.parse(readFileSync('tests/fixtures/stories260K-expected.json', 'utf8')) as {
  greedy_200: string;
  topp09_seed133742_256: string;
};
