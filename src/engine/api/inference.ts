/**
 * The inference engine as one object with plain-data methods, so a worker can expose it
 * (workers/inference.worker.ts) and the app can call it through comlink. It owns the GPU device,
 * the model, the tokenizer and the runner; the UI only ever sees text and numbers.
 */
import { GpuBackend } from '../backend/gpu.ts';
import { EngineError } from '../errors.ts';
import type { GpuInfo } from '../gpu/device.ts';
import { Gpu } from '../gpu/gpu.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { parseLlama2c } from '../io/llama2c.ts';
import { Llama2cTokenizer } from '../io/tokenizer.ts';
import { generate } from '../infer/generate.ts';
import { LlamaRunner } from '../infer/runner.ts';
import { paramCount, type LlamaConfig } from '../model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../model/llama.ts';

export interface ModelInfo {
  name: string;
  config: LlamaConfig;
  params: number;
}

export interface SampleRequest {
  prompt: string;
  /** Number of samples (sequences in the batch). */
  n: number;
  steps: number;
  temperature: number;
  topp: number;
  seed: number;
}

export interface SampleStats {
  texts: string[];
  tokens: number;
  prefillMs: number;
  decodeMs: number;
  tokensPerSecond: number;
}

/** One streamed update: new text for sequence `seq`, or `done` when it ended. */
export interface TokenEvent {
  seq: number;
  text: string;
}

/** Downloads a file with a message a student understands when it fails. */
export async function fetchBytes(url: string, what: string): Promise<ArrayBuffer> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (cause) {
    throw new EngineError(
      'BAD_FILE',
      `Could not download the ${what} (${url}): ${String(cause)}. Check the connection and reload.`,
      { cause },
    );
  }
  if (!res.ok) throw new EngineError('BAD_FILE', `The ${what} at ${url} answered HTTP ${res.status}.`);
  return res.arrayBuffer();
}

export class InferenceEngine {
  private gpu: Gpu | null = null;
  private be: GpuBackend | null = null;
  private model: LlamaModel<Tensor> | null = null;
  private tokenizer: Llama2cTokenizer | null = null;
  private runner: LlamaRunner<Tensor> | null = null;
  private stopRequested = false;
  private name = '';

  /** Opens the GPU (navigator.gpu in a worker or page). */
  async init(): Promise<GpuInfo> {
    if (!this.gpu || this.gpu.state !== 'ready') {
      const g = (globalThis.navigator as Navigator | undefined)?.gpu;
      this.gpu = await Gpu.create(g, { powerPreference: 'high-performance' });
      this.be = new GpuBackend(this.gpu);
    }
    return this.gpu.info;
  }

  /** Loads a llama2.c checkpoint and its tokenizer from URLs. */
  async loadLlama2c(modelUrl: string, tokenizerUrl: string, name: string): Promise<ModelInfo> {
    await this.init();
    const [mbuf, tbuf] = await Promise.all([
      fetchBytes(modelUrl, 'model'),
      fetchBytes(tokenizerUrl, 'tokenizer'),
    ]);
    const { config, weights } = parseLlama2c(mbuf, name);
    const tokenizer = Llama2cTokenizer.parse(tbuf, config.vocabSize, tokenizerUrl.split('/').pop());
    this.unload();
    this.model = loadLlama(this.be!, config, weights);
    this.tokenizer = tokenizer;
    this.name = name;
    return { name, config, params: paramCount(config) };
  }

  /** Samples `n` continuations of one prompt in one batch, streaming pieces through `onTokens`. */
  async sample(req: SampleRequest, onTokens: (events: TokenEvent[]) => void): Promise<SampleStats> {
    const model = this.model,
      tok = this.tokenizer;
    if (!model || !tok) throw new EngineError('BAD_ARGUMENT', 'No model is loaded yet.');
    this.gpu?.assertReady();
    const steps = Math.min(Math.max(2, req.steps), model.config.maxSeqLen);
    if (!this.runner || this.runner.slots < req.n || this.runner.maxT < steps) {
      this.runner?.destroy();
      this.runner = new LlamaRunner(model, {
        slots: Math.max(req.n, 4),
        maxT: model.config.maxSeqLen,
        maxRows: 64,
      });
    }
    this.stopRequested = false;
    const prompt = tok.encode(req.prompt, true, false);
    let pending: TokenEvent[] = [];
    let count = 0;
    const res = await generate(
      this.runner,
      tok,
      Array.from({ length: req.n }, () => prompt),
      {
        steps,
        temperature: req.temperature,
        topp: req.topp,
        seed: req.seed,
        onToken: (seq, _token, text) => {
          count++;
          if (text) pending.push({ seq, text });
          // One message per decode step (all sequences), not one per token.
          if (seq === req.n - 1 || pending.length >= req.n) {
            onTokens(pending);
            pending = [];
          }
        },
        shouldStop: () => this.stopRequested,
      },
    );
    if (pending.length) onTokens(pending);
    const tokens = res.generated.reduce((a, b) => a + b, 0);
    return {
      texts: res.texts,
      tokens: count,
      prefillMs: res.prefillMs,
      decodeMs: res.decodeMs,
      tokensPerSecond: tokens / Math.max(1e-9, res.decodeMs / 1000),
    };
  }

  stop(): void {
    this.stopRequested = true;
  }

  modelName(): string {
    return this.name;
  }

  private unload(): void {
    this.runner?.destroy();
    this.runner = null;
    if (this.model) destroyLlama(this.model);
    this.model = null;
  }

  dispose(): void {
    this.unload();
    this.gpu?.destroy();
    this.gpu = null;
  }
}
