/**
 * Random access to a big file without holding it in memory: a Uint8Array (tests), a Blob or File
 * (`blob.slice(a, b).arrayBuffer()`), or a URL read with HTTP Range requests. Readers of big formats
 * (GGUF) take a ByteSource and read the header, then one tensor or one chunk of a tensor at a time.
 *
 * Every read returns exactly `length` bytes or throws EngineError: TRUNCATED_FILE when the source
 * ends early (a short read, a range past the end), BAD_ARGUMENT for a bad request or a server that
 * cannot serve ranges.
 *
 * @example
 *   const src = await fromUrl('https://example.org/llama-2-7b.Q4_K_M.gguf');
 *   const head = await src.read(0, 4); // 'GGUF'
 */
import { EngineError, formatBytes } from '../errors.ts';

export interface ByteSource {
  /** Total size in bytes. */
  readonly size: number;
  /** A name for messages (the file name). */
  readonly name: string;
  /** Exactly `length` bytes from `offset` (a fresh copy or a view the caller must not modify). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

const n = (v: number): string => v.toLocaleString('en-US');

/** Throws unless [offset, offset + length) is a valid range of a `size`-byte source. */
function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new EngineError(
      'BAD_ARGUMENT',
      `${name}: cannot read ${length} bytes at offset ${offset}; offset and length must be non-negative integers.`,
    );
  }
  if (offset + length > size) {
    throw new EngineError(
      'TRUNCATED_FILE',
      `${name} ends after ${n(size)} bytes (${formatBytes(size)}) but bytes up to ${n(offset + length)} are needed: the file is incomplete — download it again.`,
    );
  }
}

function shortRead(name: string, offset: number, want: number, got: number): EngineError {
  return new EngineError(
    'TRUNCATED_FILE',
    `${name}: reading ${n(want)} bytes at offset ${n(offset)} gave only ${n(got)}: the file ends early or changed while it was read — download or open it again.`,
  );
}

/** A source over bytes already in memory (reads are views, no copy). */
export function fromBytes(u8: Uint8Array, name = 'bytes'): ByteSource {
  return {
    size: u8.byteLength,
    name,
    async read(offset, length) {
      checkRange(name, u8.byteLength, offset, length);
      return u8.subarray(offset, offset + length);
    },
  };
}

/** A source over a Blob or File: each read is `blob.slice(offset, offset + length).arrayBuffer()`. */
export function fromBlob(blob: Blob, name?: string): ByteSource {
  const label = name ?? ((blob as Partial<File>).name || 'file');
  return {
    size: blob.size,
    name: label,
    async read(offset, length) {
      checkRange(label, blob.size, offset, length);
      let buf: ArrayBuffer;
      try {
        buf = await blob.slice(offset, offset + length).arrayBuffer();
      } catch (e) {
        throw new EngineError(
          'TRUNCATED_FILE',
          `${label} could not be read at offset ${n(offset)} (${e instanceof Error ? e.message : String(e)}): the file changed or was removed after it was chosen — choose it again.`,
          { cause: e },
        );
      }
      if (buf.byteLength !== length) throw shortRead(label, offset, length, buf.byteLength);
      return new Uint8Array(buf);
    },
  };
}

/** The last path segment of a URL, for messages. */
function urlName(url: string): string {
  const path = url.split(/[?#]/)[0] ?? url;
  const last = path.split('/').filter(Boolean).pop() ?? url;
  try {
    return decodeURIComponent(last);
  } catch {
    return last;
  }
}

/** "bytes 0-0/3825000000" → { start: 0, total: 3825000000 } (total null for "*"). */
function parseContentRange(h: string | null): { start: number; total: number | null } | null {
  const m = h ? /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(h.trim()) : null;
  if (!m) return null;
  return { start: Number(m[1]), total: m[3] === '*' ? null : Number(m[3]) };
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // nothing to free
  }
}

/**
 * A source over a URL. Finds the size with a first request for byte 0 (`Range: bytes=0-0`; the total
 * comes from Content-Range, or from a HEAD request's Content-Length when the server hides
 * Content-Range from cross-origin pages), then reads with Range requests. A server that answers a
 * Range request with the whole file (status 200) is refused: dust2gold would have to hold gigabytes.
 */
export async function fromUrl(
  url: string,
  fetchFn: typeof fetch = fetch,
  name: string = urlName(url),
): Promise<ByteSource> {
  const get = async (init: RequestInit, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetchFn(url, init);
    } catch (e) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `Could not reach ${url} while ${what} (${e instanceof Error ? e.message : String(e)}): check the address and your connection, or download the file and open it from disk.`,
        { cause: e },
      );
    }
    return res;
  };
  const httpError = (res: Response, what: string): EngineError =>
    new EngineError(
      'BAD_ARGUMENT',
      `${url} answered ${res.status}${res.statusText ? ` ${res.statusText}` : ''} while ${what}: check the address (the file may have moved or need a login), or download it and open it from disk.`,
    );
  const noRange = (): EngineError =>
    new EngineError(
      'BAD_ARGUMENT',
      `The server of ${url} ignores HTTP Range requests (it sent the whole file when asked for a part), so ${name} cannot be read piece by piece: download the file and open it from disk, or serve it from a server that supports Range requests.`,
    );

  const first = await get({ headers: { Range: 'bytes=0-0' } }, 'finding its size');
  if (first.status === 200) {
    await discard(first);
    throw noRange();
  }
  if (first.status === 416) {
    // Range Not Satisfiable for byte 0: an empty file
    await discard(first);
    return urlSource(url, name, 0, get, httpError, noRange);
  }
  if (first.status !== 206) {
    await discard(first);
    throw httpError(first, 'finding its size');
  }
  let size = parseContentRange(first.headers.get('Content-Range'))?.total ?? null;
  await discard(first);
  if (size === null) {
    const head = await get({ method: 'HEAD' }, 'finding its size');
    const len = head.headers.get('Content-Length');
    await discard(head);
    if (!head.ok) throw httpError(head, 'finding its size');
    if (len === null || !/^\d+$/.test(len.trim())) {
      throw new EngineError(
        'BAD_ARGUMENT',
        `${url} does not say how big ${name} is (no Content-Range total, no Content-Length): download the file and open it from disk.`,
      );
    }
    size = Number(len.trim());
  }
  return urlSource(url, name, size, get, httpError, noRange);
}

function urlSource(
  url: string,
  name: string,
  size: number,
  get: (init: RequestInit, what: string) => Promise<Response>,
  httpError: (res: Response, what: string) => EngineError,
  noRange: () => EngineError,
): ByteSource {
  return {
    size,
    name,
    async read(offset, length) {
      checkRange(name, size, offset, length);
      if (length === 0) return new Uint8Array(0);
      const what = `reading bytes ${n(offset)}–${n(offset + length - 1)} of ${name}`;
      const res = await get({ headers: { Range: `bytes=${offset}-${offset + length - 1}` } }, what);
      if (res.status === 200) {
        await discard(res);
        throw noRange();
      }
      if (res.status === 416) {
        await discard(res);
        throw new EngineError(
          'TRUNCATED_FILE',
          `${url} has no bytes at offset ${n(offset)} although ${name} was ${n(size)} bytes: the file on the server is shorter than it claims or changed — try again later or download it.`,
        );
      }
      if (res.status !== 206) {
        await discard(res);
        throw httpError(res, what);
      }
      const cr = parseContentRange(res.headers.get('Content-Range'));
      if (cr && cr.start !== offset) {
        await discard(res);
        throw new EngineError(
          'BAD_ARGUMENT',
          `The server of ${url} sent bytes from ${n(cr.start)} when asked for bytes from ${n(offset)}: it does not handle Range requests correctly; download the file and open it from disk.`,
        );
      }
      const buf = new Uint8Array(await res.arrayBuffer());
      if (buf.byteLength < length) throw shortRead(name, offset, length, buf.byteLength);
      if (buf.byteLength > length) {
        throw new EngineError(
          'BAD_ARGUMENT',
          `The server of ${url} sent ${n(buf.byteLength)} bytes when asked for ${n(length)}: it does not handle Range requests correctly; download the file and open it from disk.`,
        );
      }
      return buf;
    },
  };
}
