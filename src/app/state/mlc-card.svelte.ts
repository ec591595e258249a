/**
 * The Models view's MLC card: web-llm's build of a LLaMA by its model URL (typed, or one of
 * web-llm's prebuilt LLaMA builds), what this browser's Cache Storage holds of it already, its
 * download into web-llm's own cache entries with progress, Cancel and resume (MlcDownloadState,
 * over src/app/lib/mlc-download.ts), then Inspect and the load as for any big model
 * (BigModelState, big-model.svelte.ts).
 *
 * @example
 *   const mlc = new MlcCardState(host, () => refreshStorage());
 *   await mlc.check(); // mlc.download.status: what the cache holds of mlc.url
 *   await mlc.downloadModel(); // mlc.download.progress while it runs
 *   await mlc.inspectModel(); // mlc.seen: the facts and the plan; then mlc.load()
 */
import { EngineError, formatBytes } from '../../engine/errors.ts';
import type { MlcInspection, StudentSource } from '../../method/api/runtime.ts';
import { describeError, type UserMessage } from '../lib/errors.ts';
import {
  downloadMlcModel,
  mlcCacheStatus,
  mlcModelId,
  WEBLLM_LLAMA_MODELS,
  type MlcCacheStatus,
  type MlcDownloadProgress,
} from '../lib/mlc-download.ts';
import { BigModelState, type BigHost } from './big-model.svelte.ts';

/** The MLC card's download: into web-llm's cache, with progress, Cancel and resume. */
export class MlcDownloadState {
  /** Which model the figures below are about (its URL as typed). */
  url = $state('');
  phase = $state<'idle' | 'checking' | 'downloading'>('idle');
  /** The download's progress: live while it runs, then where it ended. */
  progress = $state.raw<MlcDownloadProgress | null>(null);
  status = $state.raw<MlcCacheStatus | null>(null);
  error = $state.raw<UserMessage | null>(null);
  notice = $state('');
  private abort: AbortController | null = null;
  private checks = 0;

  /** What the browser's cache holds of the model at `url` already (web-llm's download counts). */
  async check(url: string): Promise<void> {
    const id = ++this.checks;
    if (url !== this.url) {
      // another model: what was said about the last one goes
      this.progress = null;
      this.error = null;
      this.notice = '';
    }
    this.url = url;
    this.status = null;
    if (this.phase === 'idle') this.phase = 'checking';
    try {
      const st = await mlcCacheStatus(url);
      if (id === this.checks) this.status = st;
    } catch (e) {
      if (id === this.checks) this.error = describeError(e);
    } finally {
      if (id === this.checks && this.phase === 'checking') this.phase = 'idle';
    }
  }

  /** Fetches what the cache lacks (files kept already are skipped), the quota checked first. */
  async download(url: string): Promise<void> {
    if (this.phase === 'downloading') return;
    this.url = url;
    this.error = null;
    this.notice = '';
    this.phase = 'downloading';
    this.progress = { bytesDone: 0, bytesTotal: 0, file: null };
    const abort = new AbortController();
    this.abort = abort;
    try {
      const r = await downloadMlcModel(url, {
        signal: abort.signal,
        onProgress: (p) => {
          if (this.abort === abort) this.progress = p;
        },
      });
      const kept = r.files - r.fetched;
      this.notice =
        r.fetched === 0
          ? `All ${r.files} files (${formatBytes(r.bytesTotal)}) were in this browser's cache already: nothing was downloaded.`
          : `Downloaded ${r.fetched} files (${formatBytes(r.bytesFetched)})${kept ? `; ${kept} were in the cache already` : ''}: all ${r.files} files (${formatBytes(r.bytesTotal)}) are in this browser's cache, where web-llm finds them too.`;
    } catch (e) {
      if ((e as Error | null)?.name === 'AbortError')
        this.notice =
          'Download cancelled: the files that arrived whole are kept; Download goes on from the next one.';
      else this.error = describeError(e);
    } finally {
      // the bar stays where the download ended (100% when it finished) until the next one
      if (this.abort === abort) this.abort = null;
      this.phase = 'idle';
    }
    await this.check(url);
  }

  cancel(): void {
    this.abort?.abort(new DOMException('The download was cancelled.', 'AbortError'));
  }
}

/** The MLC / web-llm card: the model URL, its download into the cache, then Inspect and the load. */
export class MlcCardState extends BigModelState<MlcInspection> {
  /** The MLC model's URL as typed (or as a preset put it). */
  url = $state(WEBLLM_LLAMA_MODELS[0]!.url);
  readonly download = new MlcDownloadState();

  /** `stored`: the download changed what this browser stores. */
  constructor(
    host: BigHost,
    private readonly stored: () => void,
  ) {
    super(host);
  }

  protected override async read(src: StudentSource): Promise<MlcInspection> {
    return (await this.solver()).inspectMlc(src);
  }

  /** The URL in a form web-llm keys its cache by, or null (the card's error says why). */
  private modelUrl(): string | null {
    const url = this.url.trim();
    try {
      // eslint-disable-next-line svelte/prefer-svelte-reactivity -- parsed once, never changed
      if (!/^https?:$/.test(new URL(url).protocol)) throw new Error('not http');
      return url;
    } catch {
      this.fail(
        new EngineError(
          'BAD_ARGUMENT',
          `"${url}" is not a model URL: give the full address of a web-llm model (https://huggingface.co/mlc-ai/<model>), or pick one from the list.`,
        ),
      );
      return null;
    }
  }

  /** The URL changed (typed or picked from the list): what the cache holds of it. */
  async check(): Promise<void> {
    const url = this.modelUrl();
    if (url === null) return;
    this.error = null;
    await this.download.check(url);
  }

  /** Downloads the model into web-llm's cache (resumes: files kept already are skipped). */
  async downloadModel(): Promise<void> {
    const url = this.modelUrl();
    if (url === null) return;
    this.error = null;
    await this.download.download(url);
    this.stored();
  }

  /** Reads the model from the cache (config, manifest, tokenizer) and plans it. */
  async inspectModel(): Promise<void> {
    const url = this.modelUrl();
    if (url === null) return;
    let id: string;
    try {
      id = mlcModelId(url);
    } catch (e) {
      this.fail(e);
      return;
    }
    await this.inspect({ label: id, name: id, key: this.newKey('mlc', url), mlcUrl: url }, true);
  }
}
