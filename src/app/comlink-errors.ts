/** Errors keep `name` and `code` across the worker boundary (comlink's default drops `code`). */
import * as Comlink from 'comlink';
import { fromPlainError, toPlainError, type PlainError } from '../engine/errors.ts';

export function installErrorTransfer(): void {
  Comlink.transferHandlers.set('throw', {
    // comlink marks thrown values with a private symbol; recognise it by its description.
    canHandle: (v: unknown): v is { value: unknown } =>
      typeof v === 'object' &&
      v !== null &&
      Object.getOwnPropertySymbols(v).some((s) => s.description === 'Comlink.thrown'),
    serialize: ({ value }: { value: unknown }) => [toPlainError(value), []],
    deserialize: (p: PlainError) => {
      throw fromPlainError(p);
    },
  } as unknown as Comlink.TransferHandler<unknown, unknown>);
}
