// The inference worker: the engines behind comlink. Nothing else lives here.
//   stories  llama2.c's story model (the #/stories demo)
//   solver   the Solve view: the method's student, its adapters and the ranker
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import type { InferenceApi } from '../src/app/engine-client.ts';
import { InferenceEngine } from '../src/engine/api/inference.ts';
import { SolverEngine } from '../src/method/api/solver.ts';

installErrorTransfer();
const api: InferenceApi = {
  stories: Comlink.proxy(new InferenceEngine()),
  solver: Comlink.proxy(new SolverEngine()),
};
Comlink.expose(api);
