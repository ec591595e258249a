// What goes wrong in a teacher run, as EngineErrors a student understands (docs/teacher.md).
import { EngineError, type EngineErrorCode } from '../../engine/errors.ts';
import type { TeacherLoadProgress, TeacherModel } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * The code an unrecognised generation failure gets. EngineErrorCode has no "model failed" code yet;
 * VALIDATION ("reported with its label") is the nearest: something inside the model's runtime broke.
 */
const GENERATION_FAILED: EngineErrorCode = 'VALIDATION';
/** The code an unrecognised load failure gets: the model's files could not be used. */
const LOAD_FAILED: EngineErrorCode = 'BAD_FILE';

export interface TeacherErrorContext {
  phase: 'load' | 'generate' | 'save';
  modelId: string;
  /** The problem being written. */
  problemId?: string;
  /** What the store holds, for the "your progress is saved" sentence. */
  done?: number;
  total?: number;
}

/** Name and message of anything thrown: an Error, a DOMException, or a worker's "Name: message" string. */
function describeThrown(e: unknown): { name: string; message: string } {
  if (typeof e === 'string') {
    const m = /^(\w*(?:Error|Exception)): ([\s\S]*)$/.exec(e);
    return m ? { name: m[1]!, message: m[2]! } : { name: '', message: e };
  }
  if (typeof e === 'object' && e !== null) {
    const o = e as { name?: unknown; message?: unknown };
    return {
      name: typeof o.name === 'string' ? o.name : '',
      message: typeof o.message === 'string' ? o.message : String(e),
    };
  }
  return { name: '', message: String(e) };
}

const CONFIG_ERRORS =
  /^(ConfigValueError|MinValueError|NonNegativeError|InvalidNumberStringError|DependencyError|SeedTypeError|StreamingCountError|UnsupportedFieldsError)$/;

/**
 * Anything a teacher model or a store threw, as an EngineError with a message a student can act
 * on. Recognises web-llm 0.2.86's error classes by name (they reach us as objects, or across its
 * web worker as "Name: message" strings) and the browser's DOMExceptions.
 */
export function teacherError(e: unknown, ctx: TeacherErrorContext): EngineError {
  if (e instanceof EngineError) return e;
  const { name, message } = describeThrown(e);
  const what = `${name ? `${name}: ` : ''}${message}`;
  const model = ctx.modelId;
  const doing =
    ctx.phase === 'load'
      ? `loading ${model}`
      : ctx.phase === 'save'
        ? 'saving the run'
        : `writing rationales${ctx.problemId !== undefined ? ` for problem "${ctx.problemId}"` : ''}`;
  const saved =
    ctx.done !== undefined && ctx.total !== undefined
      ? ` ${ctx.done} of ${ctx.total} problems are finished and saved; start the run again to go on from there.`
      : '';
  const err = (code: EngineErrorCode, msg: string) => new EngineError(code, msg + saved, { cause: e });

  if (
    /^WebGPUNot(Available|Found)Error$/.test(name) ||
    /WebGPU is not supported|Cannot find WebGPU/i.test(message)
  )
    return err(
      'NO_WEBGPU',
      `This browser has no WebGPU, which the teacher model needs: use a recent Chrome or Edge (or another browser with WebGPU turned on).`,
    );
  if (name === 'ShaderF16SupportError' || /shader-f16/.test(message))
    return err(
      'FEATURE_MISSING',
      `${model} needs the GPU feature shader-f16, which this browser or GPU does not offer: pick the q4f32_1 build of the model instead (its id ends in q4f32_1-MLC).`,
    );
  if (name === 'FeatureSupportError')
    return err(
      'FEATURE_MISSING',
      `${model} needs a GPU feature this browser lacks (${message}): pick another model.`,
    );
  if (name === 'DeviceLostError' || /device (was |is )?lost/i.test(message))
    return err(
      'DEVICE_LOST',
      `The GPU stopped while ${doing} (device lost), most often because it ran out of memory: close other tabs and GPU-heavy programs, or pick a smaller model or a smaller maxTokens.`,
    );
  if (/out of memory|OutOfMemory|failed to allocate|allocation fail/i.test(`${name} ${message}`))
    return err(
      'OUT_OF_MEMORY',
      `The GPU ran out of memory while ${doing}: close other tabs, or pick a smaller model or a smaller maxTokens.`,
    );
  if (name === 'QuotaExceededError' || /quota/i.test(message))
    return err(
      'LIMIT_EXCEEDED',
      `The browser's storage is full while ${doing}: free space (delete cached models or old runs you do not need) and try again.`,
    );
  if (name === 'ContextWindowSizeExceededError')
    return err(
      'LIMIT_EXCEEDED',
      `The prompt for problem "${ctx.problemId ?? '?'}" is longer than ${model}'s context window: use fewer worked examples (shots), or a model with a longer context.`,
    );
  if (name === 'ModelNotFoundError' || name === 'MissingModelError')
    return err(
      'BAD_ARGUMENT',
      `${model} is not a model web-llm knows: pick one from its list of prebuilt models.`,
    );
  if (CONFIG_ERRORS.test(name) || (name === 'RangeError' && /^Make sure/.test(message)))
    return err(
      'BAD_ARGUMENT',
      `web-llm refused a setting of the run (${message}): change it and start again.`,
    );
  if (name === 'NetworkError' || /Failed to fetch|NetworkError|net::ERR|Load failed/i.test(message))
    return err(
      'TRUNCATED_FILE',
      `The download of ${model} stopped (${what}): check the connection and load it again; the files already downloaded stay in the browser's cache.`,
    );
  if (ctx.phase === 'load')
    return err(
      LOAD_FAILED,
      `Loading ${model} failed (${what}): reload the page and try again, or pick another model.`,
    );
  if (ctx.phase === 'save')
    return err(
      LOAD_FAILED,
      `The run's progress could not be read or saved in the browser's storage (${what}): reload the page and start the run again.`,
    );
  return err(GENERATION_FAILED, `${model} failed while ${doing} (${what}).`);
}

/** Loads the model, turning its failures into EngineErrors. */
export async function loadTeacher(
  model: TeacherModel,
  onProgress?: (p: TeacherLoadProgress) => void,
): Promise<void> {
  try {
    await model.load(onProgress);
  } catch (e) {
    throw teacherError(e, { phase: 'load', modelId: model.id });
  }
}
