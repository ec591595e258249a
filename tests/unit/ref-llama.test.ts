import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseLlama2c } from '../../src/engine/io/llama2c.ts';
import { Llama2cTokenizer } from '../../src/engine/io/tokenizer.ts';
import { Sampler } from '../../src/engine/infer/sampler.ts';
import { generateRef, generateRefTokens, RefLlama } from '../../src/engine/ref/llama.ts';

function load(path: string): ArrayBuffer {
  const b = readFileSync(path);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

const { config, weights } = parseLlama2c(load('public/models/stories260K.bin'), 'stories260K.bin');
const tok = Llama2cTokenizer.parse(load('public/models/tok512.bin'), config.vocabSize, 'tok512.bin');
const model = () => new RefLlama(config, weights);

// llama2.c's test_all.py (test_runc): `./run stories260K.bin -z tok512.bin -t 0.0 -n 200`, final "\n" stripped
const EXPECTED_GREEDY_200 =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to play with your ball, but I can't find it.\"\nLily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\nLily didn't want to help her mom, so she";

// llama2.c's doc/stories260K.md: `./run stories260K.bin -z tok512.bin -t 1.0 -p 0.9 -s 133742` (256 steps)
const EXPECTED_TOPP_133742 =
  "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and eat sandwiches. One day, Timmy's mom told him it was time to rest for a while. Timmy's friend Billy came over and took him a down.\nTimmy's mom saw that Timmy was sad, but Timmy said, \"I didn't understand what is it! We need to find some leafs.\" Timmy thought about it and took a deep breath on a spoon. He hoped it was important to be kind and continued to find its image next time.\nAfter they finished getting, Timmy's dad came up to his house and promised to help Timmy.";

describe('RefLlama (run.c forward + generate) on stories260K', () => {
  it("greedy from BOS, 200 steps, prints llama2.c's expected text exactly", () => {
    const { text, tokens } = generateRefTokens(
      model(),
      tok,
      '',
      200,
      new Sampler(config.vocabSize, 0, 0.9, 1),
    );
    expect(text).toBe(EXPECTED_GREEDY_200);
    expect(tokens.length).toBe(200); // forwards at positions 0..199 (BOS at 0), each gives the next token
  });

  it("temperature 1, top-p 0.9, seed 133742 reproduces llama2.c's documented sample", () => {
    expect(generateRef(model(), tok, '', 256, new Sampler(config.vocabSize, 1.0, 0.9, 133742))).toBe(
      EXPECTED_TOPP_133742,
    );
  });

  it('temperature sampling is deterministic per seed', () => {
    const gen = (seed: number) =>
      generateRef(model(), tok, 'Lily', 60, new Sampler(config.vocabSize, 0.8, 0.9, seed));
    const a = gen(2024);
    expect(gen(2024)).toBe(a);
    expect(gen(2025)).not.toBe(a);
    expect(a.startsWith('Lily')).toBe(true);
  });

  it('forces the prompt, prints it, and counts steps as positions from BOS', () => {
    const prompt = 'Once upon a time'; // BOS + 4 tokens
    expect(generateRef(model(), tok, prompt, 3, new Sampler(512, 0, 0.9, 1))).toBe('Once upon a');
    expect(generateRef(model(), tok, prompt, 4, new Sampler(512, 0, 0.9, 1))).toBe('Once upon a time');
    expect(generateRef(model(), tok, prompt, 5, new Sampler(512, 0, 0.9, 1))).toBe('Once upon a time,'); // first sampled token
    const greedy = generateRef(model(), tok, prompt, 30, new Sampler(512, 0, 0.9, 1));
    expect(EXPECTED_GREEDY_200.startsWith(greedy)).toBe(true); // the greedy story starts with these words
    expect(greedy.length).toBeGreaterThan(prompt.length);
    // steps 1: BOS forwarded once, one token sampled
    expect(generateRefTokens(model(), tok, '', 1, new Sampler(512, 0, 0.9, 1)).tokens).toEqual([403]);
  });

  it('forward checks its arguments', () => {
    const m = model();
    expect(() => m.forward(512, 0)).toThrow(/token 512 is outside the vocabulary/);
    expect(() => m.forward(1, 512)).toThrow(/position 512 is outside the context/);
    const logits = m.forward(1, 0);
    expect(logits.length).toBe(512);
    expect(logits.every(Number.isFinite)).toBe(true);
  });
});
