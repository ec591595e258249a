// The data worker: dataset parsing and answer checking behind comlink, off the main thread. No GPU.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { DataService } from '../src/app/lib/data-service.ts';

installErrorTransfer();
Comlink.expose(new DataService());
