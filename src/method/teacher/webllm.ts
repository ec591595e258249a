/**
 * The teacher model over @mlc-ai/web-llm (0.2.86): a prebuilt MLC model the user picks, downloaded
 * once into the browser's cache and run on WebGPU. Deliberately thin: it maps our request onto
 * `engine.chat.completions.create` field by field and nothing else; prompts, checking, progress,
 * resume and error messages live in run.ts and prompt.ts, where they are tested. web-llm is
 * imported only when a model is loaded, so the app does not download it until then.
 *
 * Facts from web-llm 0.2.86 (lib/index.js) this relies on:
 * - `n` > 1 is a loop over the choices inside one non-streaming request, the seed set once before
 *   it, so one seeded request gives n different, reproducible choices. Streaming refuses n > 1.
 * - `interruptGenerate()` stops the running request; its choices come back with finish_reason
 *   "abort" (the rest empty). We then reject, so no cut text is ever taken for a rationale.
 * - Errors thrown inside a web worker arrive as "Name: message" strings (teacherError reads them).
 *
 * @example
 *   const model = new WebLlmTeacher({ modelId: 'Qwen2.5-Math-1.5B-Instruct-q4f16_1-MLC' });
 *   await runTeacher({ model, store, runId, problems, config: teacherConfig({ modelId: model.id, kind: 'math' }) });
 *   await model.unload();
 */
import type {
  AppConfig,
  ChatCompletionMessageParam,
  InitProgressReport,
  MLCEngineConfig,
  MLCEngineInterface,
} from '@mlc-ai/web-llm';
import type {
  ChatMessage,
  TeacherCompletion,
  TeacherLoadProgress,
  TeacherModel,
  TeacherRequest,
} from './types.ts';

export interface WebLlmTeacherOptions {
  /** A `model_id` of web-llm's prebuilt list (or of `appConfig`), e.g. "Qwen2.5-Math-1.5B-Instruct-q4f16_1-MLC". */
  modelId: string;
  /**
   * A worker whose script runs `new WebWorkerMLCEngineHandler()` as its onmessage: generation then
   * runs off the page's thread. Without one the model runs on the calling thread.
   */
  worker?: Worker;
  /** Another model list (a model of your own); default web-llm's `prebuiltAppConfig`. */
  appConfig?: AppConfig;
  /** Largest `n` per request (default 16). */
  maxN?: number;
}

/** A prebuilt model as a picker shows it. */
export interface WebLlmModelInfo {
  id: string;
  /** GPU memory web-llm says the model needs, in MB. */
  vramMB: number | null;
  /** Marked by web-llm as fit for low-memory devices. */
  lowResource: boolean;
  /** Needs the `shader-f16` GPU feature (the q4f16 / q0f16 builds). */
  needsF16: boolean;
}

/** web-llm's `ModelType.embedding` (0.2.86): such a model writes no text. */
const EMBEDDING_MODEL = 1;

/**
 * web-llm's prebuilt models that write text (from `prebuiltAppConfig.model_list`, embedding models
 * left out), e.g. to fill a picker.
 */
export async function webLlmModels(): Promise<WebLlmModelInfo[]> {
  const { prebuiltAppConfig } = await import('@mlc-ai/web-llm');
  return prebuiltAppConfig.model_list
    .filter((m) => (m.model_type as number | undefined) !== EMBEDDING_MODEL)
    .map((m) => ({
      id: m.model_id,
      vramMB: m.vram_required_MB ?? null,
      lowResource: m.low_resource_required ?? false,
      needsF16: (m.required_features ?? []).includes('shader-f16') || /q\d+f16/.test(m.model_id),
    }));
}

/** Our chat message as web-llm's (OpenAI's) message type. */
const toWebLlm = (m: ChatMessage): ChatCompletionMessageParam =>
  m.role === 'system'
    ? { role: 'system', content: m.content }
    : m.role === 'user'
      ? { role: 'user', content: m.content }
      : { role: 'assistant', content: m.content };

const abortError = () => new DOMException('the teacher run was cancelled', 'AbortError');

export class WebLlmTeacher implements TeacherModel {
  readonly id: string;
  readonly maxN: number;
  private engine: MLCEngineInterface | null = null;
  private loading: Promise<void> | null = null;

  constructor(private readonly opts: WebLlmTeacherOptions) {
    this.id = opts.modelId;
    this.maxN = opts.maxN ?? 16;
  }

  load(onProgress?: (p: TeacherLoadProgress) => void): Promise<void> {
    if (this.engine) return Promise.resolve();
    this.loading ??= (async () => {
      try {
        const webllm = await import('@mlc-ai/web-llm');
        const config: MLCEngineConfig = {
          initProgressCallback: (r: InitProgressReport) =>
            onProgress?.({ fraction: r.progress, text: r.text }),
          ...(this.opts.appConfig ? { appConfig: this.opts.appConfig } : {}),
        };
        this.engine = this.opts.worker
          ? await webllm.CreateWebWorkerMLCEngine(this.opts.worker, this.id, config)
          : await webllm.CreateMLCEngine(this.id, config);
      } finally {
        this.loading = null;
      }
    })();
    return this.loading;
  }

  async complete(req: TeacherRequest, signal?: AbortSignal): Promise<TeacherCompletion> {
    const engine = this.engine;
    if (!engine) throw new Error(`ModelNotLoadedError: load ${this.id} before writing rationales`);
    if (signal?.aborted) throw abortError();
    const interrupt = () => void engine.interruptGenerate();
    signal?.addEventListener('abort', interrupt, { once: true });
    try {
      const res = await engine.chat.completions.create({
        messages: req.messages.map(toWebLlm),
        n: req.n,
        temperature: req.temperature,
        top_p: req.topP,
        max_tokens: req.maxTokens,
        seed: req.seed,
        stream: false,
      });
      const choices = [...res.choices].sort((a, b) => a.index - b.index);
      if (choices.some((c) => c.finish_reason === 'abort')) throw abortError();
      return {
        texts: choices.map((c) => c.message.content ?? ''),
        ...(res.usage ? { tokens: res.usage.completion_tokens } : {}),
        truncated: choices.filter((c) => c.finish_reason === 'length').length,
      };
    } finally {
      signal?.removeEventListener('abort', interrupt);
    }
  }

  async unload(): Promise<void> {
    const engine = this.engine;
    this.engine = null;
    if (engine) await engine.unload();
  }
}
