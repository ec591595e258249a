/**
 * Which base model the method's views use (Solve, Train, Compare): the built-in arithmetic student
 * unless the user loaded another in Models (our safetensors format, or a GGUF LLaMA). Views that hold a model in a worker watch `source` and
 * reload when it changes; the worker checks the file and its tokenizer, and Models shows the
 * result (`info`, or the error as a message).
 */
import type { GgufPlanOptions, StudentModelInfo } from '../../method/api/runtime.ts';
import { publicUrl } from '../engine-client.ts';

export interface ModelChoice {
  /** What lists show: "arith-student (built-in)" or the file name. */
  label: string;
  /** URL (built-in or typed) or the bytes of a dropped / picked file, with its tokenizer JSON. */
  modelUrl?: string;
  tokenizerUrl?: string;
  modelBytes?: ArrayBuffer;
  tokenizerJson?: unknown;
  /** A GGUF LLaMA: the picked / dropped file (read in chunks by the worker), or its URL. */
  gguf?: Blob;
  ggufUrl?: string;
  /** web-llm's MLC build of a LLaMA, by its model URL: read from the browser's Cache Storage. */
  mlcUrl?: string;
  /** GGUF / MLC: what it was planned for (samples, context, memory budget). */
  plan?: GgufPlanOptions;
  /**
   * Names the choice across workers: a worker whose model has this key holds it already (the
   * Models view loads a GGUF into the inference worker itself, with progress, before choosing it).
   */
  key?: string;
  name: string;
  builtin: boolean;
}

export const BUILTIN_STUDENT: ModelChoice = {
  label: 'arith-student (built-in)',
  modelUrl: publicUrl('models/arith-student.safetensors'),
  tokenizerUrl: publicUrl('models/arith-student.tokenizer.json'),
  name: 'arith-student',
  builtin: true,
};

export class StudentModel {
  /** Changes only through `choose`; a new object each time, so watchers see every change. */
  source = $state.raw<ModelChoice>(BUILTIN_STUDENT);
  /** Set by the view that loaded it (config, parameter count). */
  info = $state.raw<StudentModelInfo | null>(null);

  choose(c: ModelChoice): void {
    this.info = null;
    this.source = { ...c };
  }

  reset(): void {
    this.choose(BUILTIN_STUDENT);
  }
}

export const studentModel = new StudentModel();
