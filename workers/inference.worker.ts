// The inference worker: the engine behind comlink. Nothing else lives here.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { InferenceEngine } from '../src/engine/api/inference.ts';

installErrorTransfer();
Comlink.expose(new InferenceEngine());
