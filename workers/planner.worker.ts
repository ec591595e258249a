// The Train view's planner: the next run's data as the student's tokenizer reads it and the plan of
// one LoRA step, without a GPU device (the adapter's limits; a big model's header, our model's files
// on the CPU), so the trainer worker starts only when a run does. Nothing else lives here.
import * as Comlink from 'comlink';
import { installErrorTransfer } from '../src/app/comlink-errors.ts';
import { TrainPlanner } from '../src/method/api/train-plan.ts';

installErrorTransfer();
Comlink.expose(new TrainPlanner());
