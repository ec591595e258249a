/**
 * Display state of the stories page (`#/stories`, llama2.c's stories260K): the model, m streaming
 * samples, live tokens/s, and errors as messages. Worker results are applied latest-wins (a new run
 * supersedes the old one).
 */
import type { GpuInfo } from '../../engine/gpu/device.ts';
import type { ModelInfo, TokenEvent } from '../../engine/api/inference.ts';
import { Comlink, inference, publicUrl } from '../engine-client.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';

export type Phase = 'starting' | 'loading' | 'ready' | 'sampling' | 'error';

export class SamplingState {
  phase = $state<Phase>('starting');
  gpu = $state.raw<GpuInfo | null>(null);
  model = $state.raw<ModelInfo | null>(null);
  error = $state('');
  /** The error as title + what to do (lib/errors.ts). */
  errorInfo = $state.raw<UserMessage | null>(null);
  prompt = $state('Once upon a time');
  n = $state(4);
  steps = $state(200);
  temperature = $state(0.8);
  topp = $state(0.9);
  seed = $state(42);
  texts = $state<string[]>([]);
  tokens = $state(0);
  tokensPerSecond = $state(0);
  private run = 0;
  private started = 0;
  private opened = false;

  /** Opens the GPU and loads the model, once (the view may be left and entered again). */
  async start(): Promise<void> {
    if (this.opened) return;
    this.opened = true;
    try {
      this.phase = 'starting';
      this.gpu = await inference().stories.init();
      this.phase = 'loading';
      this.model = await inference().stories.loadLlama2c(
        publicUrl('models/stories260K.bin'),
        publicUrl('models/tok512.bin'),
        'stories260K',
      );
      this.phase = 'ready';
    } catch (e) {
      this.fail(e);
    }
  }

  async sample(): Promise<void> {
    if (this.phase !== 'ready') return;
    const run = ++this.run;
    this.phase = 'sampling';
    this.texts = Array.from({ length: this.n }, () => '');
    this.tokens = 0;
    this.tokensPerSecond = 0;
    this.started = performance.now();
    const onTokens = Comlink.proxy((events: TokenEvent[]) => {
      if (run !== this.run) return;
      for (const e of events) this.texts[e.seq] = (this.texts[e.seq] ?? '') + e.text;
      this.tokens += events.length;
      const s = (performance.now() - this.started) / 1000;
      if (s > 0) this.tokensPerSecond = this.tokens / s;
    });
    try {
      const stats = await inference().stories.sample(
        {
          prompt: this.prompt,
          n: this.n,
          steps: this.steps,
          temperature: this.temperature,
          topp: this.topp,
          seed: this.seed,
        },
        onTokens,
      );
      if (run !== this.run) return;
      this.texts = stats.texts;
      this.tokensPerSecond = stats.tokensPerSecond;
      this.phase = 'ready';
    } catch (e) {
      if (run === this.run) this.fail(e);
    }
  }

  stop(): void {
    void inference().stories.stop();
  }

  private fail(e: unknown): void {
    this.errorInfo = describeError(e);
    this.error = this.errorInfo.message;
    this.phase = 'error';
  }
}
