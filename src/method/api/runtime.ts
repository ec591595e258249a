/**
 * What a worker holds for the method's student: one GPU device, its backend and the loaded model
 * with its tokenizer. The inference worker's Solve and Compare engines share one runtime (one
 * device, one copy of the weights); the trainer worker has its own. Plain data in, plain data out:
 * nothing here reaches the UI but names and numbers.
 *
 * @example
 *   const rt = await StudentRuntime.open(navigator.gpu);
 *   await rt.load({ modelUrl: '/models/arith-student.safetensors' });
 *   rt.model.config.dim; // 64
 */
import { fetchBytes } from '../../engine/api/inference.ts';
import { GpuBackend } from '../../engine/backend/gpu.ts';
import { EngineError } from '../../engine/errors.ts';
import type { GpuInfo } from '../../engine/gpu/device.ts';
import { Gpu } from '../../engine/gpu/gpu.ts';
import type { Tensor } from '../../engine/gpu/tensor.ts';
import { CharTokenizer, checkTokenizerVocab } from '../../engine/io/chartok.ts';
import { readLlamaSafetensors } from '../../engine/io/checkpoint.ts';
import { paramCount, type LlamaConfig } from '../../engine/model/config.ts';
import { destroyLlama, loadLlama, type LlamaModel } from '../../engine/model/llama.ts';

export interface StudentModelInfo {
  name: string;
  config: LlamaConfig;
  params: number;
}

export interface StudentSource {
  /** URL of a safetensors model (our format, `writeLlamaSafetensors`). */
  modelUrl?: string;
  /** Its bytes instead of a URL (a dropped file). */
  modelBytes?: ArrayBuffer;
  /** URL of the char-tokenizer JSON; by default `<model>.tokenizer.json` next to `modelUrl`. */
  tokenizerUrl?: string;
  tokenizerJson?: unknown;
  name?: string;
}

export class StudentRuntime {
  private _model: LlamaModel<Tensor> | null = null;
  private _tokenizer: CharTokenizer | null = null;
  private _info: StudentModelInfo | null = null;

  private constructor(
    readonly gpu: Gpu,
    readonly be: GpuBackend,
  ) {}

  /** Opens a device on `gpu` (navigator.gpu in a worker; Node's GPU in tests). */
  static async open(gpu: GPU | undefined): Promise<StudentRuntime> {
    const g = await Gpu.create(gpu, { powerPreference: 'high-performance' });
    return new StudentRuntime(g, new GpuBackend(g));
  }

  get info(): GpuInfo {
    return this.gpu.info;
  }

  get model(): LlamaModel<Tensor> {
    if (!this._model) throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet.');
    this.gpu.assertReady();
    return this._model;
  }

  get tokenizer(): CharTokenizer {
    if (!this._tokenizer) throw new EngineError('BAD_ARGUMENT', 'No student model is loaded yet.');
    return this._tokenizer;
  }

  get modelInfo(): StudentModelInfo | null {
    return this._info;
  }

  /** Loads a model; the old one stays loaded until the new one is parsed and checked. */
  async load(src: StudentSource): Promise<StudentModelInfo> {
    const name = src.name ?? src.modelUrl?.split('/').pop() ?? 'model';
    const bytes = src.modelBytes ?? (src.modelUrl ? await fetchBytes(src.modelUrl, 'student model') : null);
    if (!bytes) throw new EngineError('BAD_ARGUMENT', 'Give a model file or a URL to load.');
    const tokUrl =
      src.tokenizerUrl ??
      (src.modelUrl ? src.modelUrl.replace(/\.safetensors$/, '') + '.tokenizer.json' : null);
    let json = src.tokenizerJson;
    if (json === undefined) {
      if (!tokUrl)
        throw new EngineError('BAD_ARGUMENT', 'This model needs its tokenizer file (.tokenizer.json).');
      const text = new TextDecoder().decode(await fetchBytes(tokUrl, 'tokenizer'));
      try {
        json = JSON.parse(text);
      } catch {
        throw new EngineError(
          'BAD_FILE',
          `The tokenizer at ${tokUrl} is not JSON: a character tokenizer file is {"type": "char", "chars": "..."}.`,
        );
      }
    }
    const { config, weights } = readLlamaSafetensors(bytes, name);
    const tokenizer = CharTokenizer.fromJSON(json);
    checkTokenizerVocab(tokenizer.vocabSize, config.vocabSize, tokUrl ?? 'the tokenizer', name);
    const model = await this.upload(config, weights, name);
    this.unload();
    this._model = model;
    this._tokenizer = tokenizer;
    this._info = { name, config, params: paramCount(config) };
    return this._info;
  }

  /**
   * The weights onto the GPU inside the device's out-of-memory scope (a browser reports a failed
   * allocation as a GPU error, not a throw); a model that does not fit leaves nothing behind.
   */
  private async upload(
    config: LlamaConfig,
    weights: Parameters<typeof loadLlama>[2],
    name: string,
  ): Promise<LlamaModel<Tensor>> {
    const made: { model?: LlamaModel<Tensor> } = {};
    try {
      await this.gpu.checked(() => {
        made.model = loadLlama(this.be, config, weights);
      });
    } catch (e) {
      if (made.model) destroyLlama(made.model);
      if (!(e instanceof EngineError && e.code === 'OUT_OF_MEMORY')) throw e;
      throw new EngineError(
        'OUT_OF_MEMORY',
        `${name} (${paramCount(config).toLocaleString('en')} parameters) does not fit in the GPU memory that is free. ` +
          'Close other GPU-heavy tabs and reload the page, or load a smaller model (Models).',
        { cause: e },
      );
    }
    return made.model!;
  }

  unload(): void {
    if (this._model) destroyLlama(this._model);
    this._model = null;
    this._tokenizer = null;
    this._info = null;
  }

  destroy(): void {
    this.unload();
    this.gpu.destroy();
  }
}
