/**
 * Every error the engine throws: one class, a stable `code`, and a message a student can act on.
 * Errors keep `name` and `code` across a worker boundary (see `toPlainError`/`fromPlainError`).
 *
 * @example
 *   throw new EngineError('TRUNCATED_FILE', 'model.bin ends after 1,024 of 1,056,540 bytes: the download stopped early; fetch it again.');
 */
export type EngineErrorCode =
  | 'NO_WEBGPU' // navigator.gpu missing
  | 'NO_ADAPTER' // requestAdapter gave null
  | 'FEATURE_MISSING' // a required GPU feature is absent
  | 'LIMIT_EXCEEDED' // a buffer or dispatch beyond the device's limits
  | 'OUT_OF_MEMORY' // allocation failed on the device
  | 'DEVICE_LOST' // the GPU device was lost (driver reset, tab in background, destroy)
  | 'VALIDATION' // WebGPU rejected a command: an engine bug, reported with its label
  | 'BAD_FILE' // a file whose format is not what it claims
  | 'BAD_MAGIC' // a header or magic number that is not ours
  | 'TRUNCATED_FILE' // a file shorter than its header says
  | 'VOCAB_MISMATCH' // tokenizer and model disagree on the vocabulary
  | 'SHAPE_MISMATCH' // tensors or adapters whose shapes do not fit the model
  | 'NON_FINITE' // NaN or Inf in a loss or gradient: the run stopped before writing it
  | 'BAD_ARGUMENT' // a caller passed something out of range
  | 'DISPOSED'; // used after destroy()

export class EngineError extends Error {
  override readonly name = 'EngineError';
  readonly code: EngineErrorCode;
  constructor(code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Plain-data form for postMessage (structured clone drops the class). */
export interface PlainError {
  name: string;
  code?: string;
  message: string;
}

export function toPlainError(e: unknown): PlainError {
  if (e instanceof EngineError) return { name: e.name, code: e.code, message: e.message };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

export function fromPlainError(p: PlainError): Error {
  if (p.name === 'EngineError' && p.code) return new EngineError(p.code as EngineErrorCode, p.message);
  const e = new Error(p.message);
  e.name = p.name;
  return e;
}

/** Formats a byte count for messages: 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}
