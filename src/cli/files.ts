/**
 * Node-side byte sources for big model files: `fromFile` reads byte ranges with a FileHandle (one
 * open/read/close per read), so a multi-GB GGUF or MLC shard is never loaded whole; `fsFolder` is an
 * MLC folder (src/engine/io/mlc-quant.ts MlcFolder) over a directory. The browser's equivalents are
 * src/engine/io/bytesource.ts fromBlob / fromUrl.
 *
 * @example
 *   const src = await fromFile('llama-2-7b.Q4_K_M.gguf');
 *   const gguf = await readGgufHeader(src); // reads the header only
 *   const model = await openMlc(fsFolder('Llama-2-7b-chat-hf-q4f16_1-MLC'));
 */
import { open, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { EngineError, formatBytes } from '../engine/errors.ts';
import type { ByteSource } from '../engine/io/bytesource.ts';
import type { MlcFolder } from '../engine/io/mlc-quant.ts';

const fmt = (v: number): string => v.toLocaleString('en-US');

function cannotRead(path: string, cause: unknown): EngineError {
  return new EngineError(
    'BAD_ARGUMENT',
    `cannot read ${path}: ${cause instanceof Error ? cause.message : String(cause)}`,
    { cause },
  );
}

/**
 * A ByteSource over a file on disk. Its size is taken when it is made; every read returns exactly
 * `length` bytes (a fresh array) or throws TRUNCATED_FILE (past the end, or the file shrank since).
 */
export async function fromFile(path: string, name: string = basename(path)): Promise<ByteSource> {
  let size: number;
  try {
    const st = await stat(path);
    if (st.isDirectory()) {
      throw new EngineError('BAD_ARGUMENT', `${path} is a directory, not a file.`);
    }
    size = st.size;
  } catch (e) {
    if (e instanceof EngineError) throw e;
    throw cannotRead(path, e);
  }
  return {
    size,
    name,
    async read(offset, length) {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
        throw new EngineError(
          'BAD_ARGUMENT',
          `${name}: cannot read ${length} bytes at offset ${offset}; offset and length must be non-negative integers.`,
        );
      }
      if (offset + length > size) {
        throw new EngineError(
          'TRUNCATED_FILE',
          `${name} ends after ${fmt(size)} bytes (${formatBytes(size)}) but bytes up to ${fmt(offset + length)} are needed: the file is incomplete — download it again.`,
        );
      }
      const out = new Uint8Array(length);
      if (length === 0) return out;
      let got = 0;
      let fh;
      try {
        fh = await open(path, 'r');
      } catch (e) {
        throw cannotRead(path, e);
      }
      try {
        while (got < length) {
          const { bytesRead } = await fh.read(out, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
      } finally {
        await fh.close();
      }
      if (got < length) {
        throw new EngineError(
          'TRUNCATED_FILE',
          `${name}: reading ${fmt(length)} bytes at offset ${fmt(offset)} gave only ${fmt(got)}: the file ends early or changed while it was read — download or open it again.`,
        );
      }
      return out;
    },
  };
}

/** An MLC model folder on disk: open(path) is the file under `dir`, or null when there is none. */
export function fsFolder(dir: string): MlcFolder {
  const name = basename(dir);
  return {
    name,
    async open(path) {
      const full = join(dir, path);
      try {
        if (!(await stat(full)).isFile()) return null;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR')
          return null;
        throw cannotRead(full, e);
      }
      return fromFile(full, `${name}/${path}`);
    },
  };
}

/** true when `path` is a directory (false for a file; BAD_ARGUMENT when it does not exist). */
export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch (e) {
    throw cannotRead(path, e);
  }
}
