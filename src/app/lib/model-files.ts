/**
 * Checks a student model's files (our safetensors + its `.tokenizer.json`) before the Models view
 * chooses them. The models this app runs are a few MB, so this runs on the main thread; the worker
 * that loads the chosen model checks it again.
 */
import { readLlamaSafetensors } from '../../engine/io/checkpoint.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../engine/io/chartok.ts';
import { EngineError } from '../../engine/errors.ts';
import { paramCount, type LlamaConfig } from '../../engine/model/config.ts';

export interface CheckedModel {
  config: LlamaConfig;
  params: number;
  chars: string;
}

/**
 * Checks a model file (our safetensors, `writeLlamaSafetensors`) and its tokenizer JSON before
 * anything is chosen. Throws EngineError: BAD_MAGIC / BAD_FILE / TRUNCATED_FILE for the model,
 * BAD_FILE for the tokenizer, VOCAB_MISMATCH when they disagree.
 */
export function checkModelFiles(
  model: ArrayBuffer,
  tokenizerText: string,
  names: { model: string; tokenizer: string },
): CheckedModel {
  const { config } = readLlamaSafetensors(model, names.model);
  let j: unknown;
  try {
    j = JSON.parse(tokenizerText);
  } catch {
    throw new EngineError(
      'BAD_FILE',
      `${names.tokenizer} is not JSON. The tokenizer is the .tokenizer.json file saved next to the model ({"type": "char", "chars": "…"}).`,
    );
  }
  let tok: CharTokenizer;
  try {
    tok = CharTokenizer.fromJSON(j);
  } catch (e) {
    throw new EngineError(
      'BAD_FILE',
      `${names.tokenizer} is not a tokenizer this app reads: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
  checkTokenizerVocab(tok.vocabSize, config.vocabSize, names.tokenizer, names.model);
  return { config, params: paramCount(config), chars: tok.chars };
}
