// The evaluator worker (Compare): the EvalEngine behind comlink, with its own GPU device.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { EvalEngine } from '../src/method/api/evaluator.ts';

installErrorTransfer();
Comlink.expose(new EvalEngine());
