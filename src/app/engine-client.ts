/** The app's one door to the engine: the inference worker behind comlink. */
import * as Comlink from 'comlink';
import type { InferenceEngine } from '../engine/api/inference.ts';
import { installErrorTransfer } from './comlink-errors.ts';

export type InferenceClient = Comlink.Remote<InferenceEngine>;

let client: InferenceClient | null = null;

export function inference(): InferenceClient {
  if (!client) {
    installErrorTransfer();
    const worker = new Worker(new URL('../../workers/inference.worker.ts', import.meta.url), {
      type: 'module',
      name: 'inference',
    });
    client = Comlink.wrap<InferenceEngine>(worker);
  }
  return client;
}

export { Comlink };

/** The URL of a file under public/ (respects Vite's base). */
export function publicUrl(path: string): string {
  return new URL(`${import.meta.env.BASE_URL}${path}`, location.href).href;
}
