/** Node-side loading shared by the CLI commands and benchmarks: files → model on a backend. */
import { readFile } from 'node:fs/promises';
import { CpuBackend, type CpuTensor } from '../engine/backend/cpu.ts';
import { GpuBackend } from '../engine/backend/gpu.ts';
import type { Backend, BackendTensor } from '../engine/backend/types.ts';
import { EngineError } from '../engine/errors.ts';
import { Gpu } from '../engine/gpu/gpu.ts';
import { nodeGpu } from '../engine/gpu/node.ts';
import type { Tensor } from '../engine/gpu/tensor.ts';
import { parseLlama2c } from '../engine/io/llama2c.ts';
import { Llama2cTokenizer } from '../engine/io/tokenizer.ts';
import { CharTokenizer, checkTokenizerVocab } from '../engine/io/chartok.ts';
import { readLlamaSafetensors } from '../engine/io/checkpoint.ts';
import type { TextTokenizer } from '../engine/infer/generate.ts';
import { loadLlama, type LlamaModel } from '../engine/model/llama.ts';
import type { DType } from '../engine/gpu/tensor.ts';

export type BackendKind = 'gpu' | 'cpu';

export async function readBinary(path: string): Promise<ArrayBuffer> {
  try {
    const b = await readFile(path);
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  } catch (cause) {
    throw new EngineError('BAD_ARGUMENT', `cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

export async function makeBackend(kind: BackendKind): Promise<Backend<Tensor> | Backend<CpuTensor>> {
  if (kind === 'cpu') return new CpuBackend();
  return new GpuBackend(await Gpu.create(await nodeGpu(), { powerPreference: 'high-performance' }));
}

export async function loadModelFiles<T extends BackendTensor>(
  be: Backend<T>,
  modelPath: string,
  tokenizerPath: string,
  matrices: DType = 'f32',
): Promise<{ model: LlamaModel<T>; tokenizer: Llama2cTokenizer }> {
  const name = modelPath.split('/').pop() ?? modelPath;
  const { config, weights } = parseLlama2c(await readBinary(modelPath), name);
  const tokenizer = Llama2cTokenizer.parse(
    await readBinary(tokenizerPath),
    config.vocabSize,
    tokenizerPath.split('/').pop(),
  );
  return { model: loadLlama(be, config, weights, { matrices }), tokenizer };
}

/**
 * A model and its tokenizer from files: a llama2.c checkpoint (`.bin`, tokenizer `.bin`) or our
 * safetensors model (tokenizer: a char-tokenizer JSON, by default `<model>.tokenizer.json`).
 */
export async function loadAnyModel<T extends BackendTensor>(
  be: Backend<T>,
  modelPath: string,
  tokenizerPath?: string,
): Promise<{ model: LlamaModel<T>; tokenizer: TextTokenizer }> {
  if (modelPath.endsWith('.bin')) {
    if (!tokenizerPath)
      throw new EngineError('BAD_ARGUMENT', 'a llama2.c model (.bin) needs --tokenizer <file>');
    return loadModelFiles(be, modelPath, tokenizerPath);
  }
  const name = modelPath.split('/').pop() ?? modelPath;
  const { config, weights } = readLlamaSafetensors(await readBinary(modelPath), name);
  const tokPath = tokenizerPath ?? modelPath.replace(/\.safetensors$/, '') + '.tokenizer.json';
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(await readBinary(tokPath)));
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw new EngineError(
      'BAD_FILE',
      `${tokPath} is not JSON: a character tokenizer file is {"type": "char", "chars": "..."}.`,
    );
  }
  const tokenizer = CharTokenizer.fromJSON(json);
  checkTokenizerVocab(tokenizer.vocabSize, config.vocabSize, tokPath, name);
  return { model: loadLlama(be, config, weights), tokenizer };
}
