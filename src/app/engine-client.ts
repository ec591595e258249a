/**
 * The app's one door to its workers, each behind comlink: inference (the story model and the
 * Solve engine on the GPU), trainer (the stages on the GPU), evaluator (Compare's evaluations on
 * the GPU), teacher (a web-llm model writing rationales, its own GPU device) and data (dataset
 * parsing and answer checking, no GPU). Workers start on first use; each GPU worker owns its own device.
 */
import * as Comlink from 'comlink';
import type { InferenceEngine } from '../engine/api/inference.ts';
import type { SolverEngine } from '../method/api/solver.ts';
import { installErrorTransfer } from './comlink-errors.ts';
import type { DataService } from './lib/data-service.ts';

/**
 * What the inference worker exposes: the story model's engine and the Solve engine, each marked
 * with `Comlink.proxy` so `inference().solver.solve(...)` is a remote call on the worker's object.
 */
export interface InferenceApi {
  stories: InferenceEngine & Comlink.ProxyMarked;
  solver: SolverEngine & Comlink.ProxyMarked;
}

export type InferenceClient = Comlink.Remote<InferenceApi>;
export type DataClient = Comlink.Remote<DataService>;

let client: InferenceClient | null = null;
let dataClient: DataClient | null = null;

export function inference(): InferenceClient {
  if (!client) {
    installErrorTransfer();
    const worker = new Worker(new URL('../../workers/inference.worker.ts', import.meta.url), {
      type: 'module',
      name: 'inference',
    });
    client = Comlink.wrap<InferenceApi>(worker);
  }
  return client;
}

export function data(): DataClient {
  if (!dataClient) {
    installErrorTransfer();
    const worker = new Worker(new URL('../../workers/data.worker.ts', import.meta.url), {
      type: 'module',
      name: 'data',
    });
    dataClient = Comlink.wrap<DataService>(worker);
  }
  return dataClient;
}

/** A comlink client for a worker file under workers/ (started on first use, then reused). */
const started = new Map<string, Worker>();
export type WorkerName = 'trainer' | 'evaluator' | 'teacher';
export function workerFor(name: WorkerName, url: URL): Worker {
  let w = started.get(name);
  if (!w) {
    installErrorTransfer();
    w = new Worker(url, { type: 'module', name });
    started.set(name, w);
  }
  return w;
}

/** Ends a worker (its GPU device goes with it); the next call starts a fresh one. */
export function endWorker(name: WorkerName): void {
  started.get(name)?.terminate();
  started.delete(name);
}

export { Comlink };

/** The URL of a file under public/ (respects Vite's base). */
export function publicUrl(path: string): string {
  return new URL(`${import.meta.env.BASE_URL}${path}`, location.href).href;
}
