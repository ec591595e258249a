// The trainer worker: the method's stages on its own GPU device, behind comlink. Nothing else lives here.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { TrainerEngine } from '../src/method/api/trainer.ts';

installErrorTransfer();
Comlink.expose(new TrainerEngine());
