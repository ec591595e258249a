/**
 * Errors as the user sees them: a title, what happened, and what to do. Engine errors keep their
 * code across the worker (comlink-errors.ts); storage errors of the app are `AppError`s. Every view
 * shows failures through `describeError` and the ErrorNotice component, never as a raw exception.
 *
 * @example
 *   const m = describeError(new EngineError('NO_WEBGPU', '…'));
 *   m.title; // "This browser has no WebGPU"
 */
import { EngineError, type EngineErrorCode } from '../../engine/errors.ts';

export type AppErrorCode =
  | 'QUOTA_FULL' // the browser refused to store more (IndexedDB / Cache Storage quota)
  | 'STORAGE' // IndexedDB failed otherwise (private mode, blocked, corrupted)
  | 'DOWNLOAD'; // a URL the user gave could not be read

export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: AppErrorCode;
  constructor(code: AppErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export interface UserMessage {
  /** Stable code (engine or app), for tests and for styling. */
  code: string;
  title: string;
  /** What went wrong and what to do, in plain words. */
  message: string;
}

const TITLES: Partial<Record<EngineErrorCode | AppErrorCode, string>> = {
  NO_WEBGPU: 'This browser has no WebGPU',
  NO_ADAPTER: 'No usable GPU',
  FEATURE_MISSING: 'This GPU lacks a feature the model needs',
  LIMIT_EXCEEDED: 'This GPU is too small for the request',
  OUT_OF_MEMORY: 'The GPU ran out of memory',
  DEVICE_LOST: 'The GPU stopped responding',
  BAD_FILE: 'This file is not in a format we can read',
  BAD_MAGIC: 'This file is not in a format we can read',
  TRUNCATED_FILE: 'This file is incomplete',
  VOCAB_MISMATCH: 'The tokenizer does not fit the model',
  SHAPE_MISMATCH: 'The adapter does not fit the model',
  BAD_ARGUMENT: 'This cannot be done with these settings',
  QUOTA_FULL: 'Browser storage is full',
  STORAGE: 'The browser refused to store data',
  DOWNLOAD: 'Could not download the file',
};

/** What to do, added after the engine's own message where it does not say it already. */
const ADVICE: Partial<Record<EngineErrorCode, string>> = {
  NO_ADAPTER:
    'On Linux, Chrome and Edge may need chrome://flags/#enable-unsafe-webgpu and chrome://flags/#enable-vulkan; ' +
    'check chrome://gpu for "WebGPU: Hardware accelerated".',
  OUT_OF_MEMORY: 'Close other GPU-heavy tabs, or ask for fewer samples or a smaller model.',
  LIMIT_EXCEEDED: 'Ask for fewer samples or a shorter sequence, or use a smaller model.',
  DEVICE_LOST: 'Reload the page to open the GPU again.',
  VALIDATION: 'This is a bug in dust2gold: please report it with the message above, then reload.',
};

/**
 * Engine messages that say what to do already, in their own words: no ADVICE after them (a model
 * too big for the GPU is not helped by fewer samples).
 */
const ADVISED: Partial<Record<EngineErrorCode, RegExp>> = {
  LIMIT_EXCEEDED: /smaller model|fewer samples|shorter (context|sequence)/i,
  OUT_OF_MEMORY: /close other GPU-heavy tabs/i,
  DEVICE_LOST: /Resume goes on|Evaluate again|reload the page/i,
};

export function describeError(e: unknown): UserMessage {
  if (e instanceof AppError || e instanceof EngineError) {
    const advice = e instanceof EngineError && !ADVISED[e.code]?.test(e.message) ? ADVICE[e.code] : undefined;
    return {
      code: e.code,
      title: TITLES[e.code] ?? 'Something went wrong',
      message: advice && !e.message.includes(advice) ? `${e.message} ${advice}` : e.message,
    };
  }
  const err = e as { name?: unknown; message?: unknown } | null;
  const message = typeof err?.message === 'string' && err.message !== '' ? err.message : String(e);
  return { code: 'UNKNOWN', title: 'Something went wrong', message };
}
