// A tiny LLaMA and an a + b task for the method's stage tests: "a+b=c. The answer is c." is right,
// off by one is wrong. Small enough that every stage trains a few steps in seconds on SwiftShader.
import { CharTokenizer } from '../../src/engine/io/chartok.ts';
import type { LlamaConfig } from '../../src/engine/model/config.ts';

export const tinyTok = new CharTokenizer('0123456789+-=. Taehnswri:\nPoblmSut');

export const tinyConfig: LlamaConfig = {
  dim: 32,
  hiddenDim: 64,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 2,
  vocabSize: tinyTok.vocabSize,
  maxSeqLen: 64,
  ropeTheta: 10000,
  normEps: 1e-5,
  sharedClassifier: false,
};

/** Problem i: its question, the right rationale and a wrong one (off by one). */
export function arithCase(i: number): { question: string; a: number; b: number; pos: string; neg: string } {
  const a = (i * 7) % 10,
    b = (i * 3 + 1) % 10;
  return {
    question: `${a}+${b}`,
    a,
    b,
    pos: `${a}+${b}=${a + b}. The answer is ${a + b}.`,
    neg: `${a}+${b}=${a + b + 1}. The answer is ${a + b + 1}.`,
  };
}
