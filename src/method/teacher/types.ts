/**
 * The one boundary between dust2gold and a teacher language model. Everything of the teacher run
 * (prompts, answer checking, the dataset, progress, cancel, resume, error messages) is written
 * against `TeacherModel`; the only real implementation is the thin web-llm adapter
 * (webllm.ts), and tests put a scripted fake here and nowhere else.
 *
 * The request is OpenAI's chat-completion request reduced to what the run uses, so an adapter maps
 * it field by field (`topP` → `top_p`, `maxTokens` → `max_tokens`).
 *
 * @example
 *   await model.load((p) => console.log(Math.round(p.fraction * 100), p.text));
 *   const { texts } = await model.complete({ messages, n: 4, temperature: 0.7, topP: 1, maxTokens: 512, seed: 17 });
 */

export type ChatRole = 'system' | 'user' | 'assistant';

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export interface TeacherRequest {
  /** A system message (optional), few-shot user/assistant pairs, and the question as the last user message. */
  messages: ChatMessage[];
  /** How many completions of these messages to write (1 ≤ n ≤ the model's `maxN`). */
  n: number;
  /** Sampling temperature (0 = greedy). */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 = off. */
  topP: number;
  /** Longest completion in tokens; a completion cut here is returned as it is (see `truncated`). */
  maxTokens: number;
  /**
   * An integer in [0, 2^31): the same messages, settings and seed give the same completions on the
   * same model and device. The run derives it from the run's seed, the problem and the sample index,
   * which is what makes a resumed run write what an unbroken run would have written.
   */
  seed: number;
}

export interface TeacherCompletion {
  /** Exactly `n` complete texts, in order. */
  texts: string[];
  /** Tokens generated for all `n` texts together, when the model reports it (for tokens/s). */
  tokens?: number;
  /** How many of the texts stopped at `maxTokens` rather than at the model's end of text. */
  truncated?: number;
}

export interface TeacherLoadProgress {
  /** 0..1 over download, cache and GPU upload, as the model reports it. */
  fraction: number;
  /** The model's own description of the step ("Fetching param cache[12/27]: 480MB fetched…"). */
  text: string;
}

export interface TeacherModel {
  /** The model's id (web-llm's `model_id`, e.g. "Qwen2.5-Math-1.5B-Instruct-q4f16_1-MLC"). A run records it. */
  readonly id: string;
  /** The largest `n` one `complete` call accepts; 1 when the model writes one completion per call. */
  readonly maxN: number;
  /** Downloads (or reads from the browser's cache) and starts the model. Resolves at once when loaded. */
  load(onProgress?: (p: TeacherLoadProgress) => void): Promise<void>;
  /**
   * Writes `req.n` completions. Either resolves with all of them, whole, or rejects. When `signal`
   * aborts during the call, the model may stop early: it then rejects (never resolves with cut texts);
   * it may also finish the call and resolve.
   */
  complete(req: TeacherRequest, signal?: AbortSignal): Promise<TeacherCompletion>;
  /** Frees the model's GPU memory; `load` again before the next `complete`. */
  unload(): Promise<void>;
}
