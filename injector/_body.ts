/**
 * Message bodies for the injector: reading them by their framing, and
 * writing them re-framed. Bodies stream chunk by chunk (a 100 MB transfer
 * holds one chunk at a time), and the echo guard can sit in between.
 *
 * @module
 */

import { type BufferedReader, concat } from "./_channel.ts";
import {
  type BodyFraming,
  ChunkedDecoder,
  encodeChunk,
  LAST_CHUNK,
} from "./http1.ts";
import type { EchoRedactor } from "./echo_guard.ts";
import { UpstreamError } from "./upstream.ts";

/**
 * Yields the body bytes of one message, consuming exactly its framing from
 * `reader` (bytes after it stay buffered for the next message).
 *
 * @param reader Source.
 * @param framing How the body is delimited.
 * @returns Body chunks (decoded, for chunked bodies).
 * @throws {Error} If the stream ends before the framing says it should.
 *
 * @example Usage
 * ```ts ignore
 * for await (const chunk of readBody(reader, { kind: "length", length: 5 })) console.log(chunk);
 * ```
 */
export async function* readBody(
  reader: BufferedReader,
  framing: BodyFraming,
): AsyncGenerator<Uint8Array> {
  switch (framing.kind) {
    case "none":
      return;
    case "length": {
      let left = framing.length;
      while (left > 0) {
        const chunk = await reader.readSome(left);
        if (chunk === null) throw new Error(`body ended ${left} bytes early`);
        left -= chunk.length;
        yield chunk;
      }
      return;
    }
    case "chunked": {
      const decoder = new ChunkedDecoder();
      while (!decoder.done) {
        const chunk = await reader.readSome();
        if (chunk === null) throw new Error("chunked body ended early");
        for (const piece of decoder.push(chunk)) {
          if (piece.length > 0) yield piece;
        }
      }
      reader.unread(decoder.rest);
      return;
    }
    case "close":
      while (true) {
        const chunk = await reader.readSome();
        if (chunk === null) return;
        yield chunk;
      }
  }
}

/** How many body bytes {@linkcode readAhead} buffers at most. */
export const READ_AHEAD_BYTES = 256 * 1024;

/**
 * Reads a body ahead of its consumer and hands over everything that
 * arrived meanwhile as one chunk: while the previous chunk is encrypted and
 * written out, the next ones are read. A TLS connection yields one record
 * (16 KiB) per read, and every chunk costs a redactor pass, a chunk frame
 * and a TLS write; joining them is what makes a large download fast.
 *
 * Memory stays bounded (a slow reader cannot make the injector buffer a
 * whole download): reading pauses once `limit` bytes wait, so at most
 * `limit` plus one source chunk are held. An error of the source is thrown
 * to the consumer after the bytes that came before it. If the consumer
 * stops early, reading stops after the read in progress; the caller must
 * then not reuse the source's connection (a read may still be pending).
 *
 * @param source The body chunks. Each must own its bytes (they are kept).
 * @param limit Bytes buffered before reading pauses.
 * @returns The same bytes, in order, in fewer and larger chunks.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { readAhead } from "./_body.ts";
 * async function* source() {
 *   yield new Uint8Array([1]);
 *   yield new Uint8Array([2, 3]);
 * }
 * const out: number[] = [];
 * for await (const chunk of readAhead(source())) out.push(...chunk);
 * assert.deepEqual(out, [1, 2, 3]);
 * ```
 */
export async function* readAhead(
  source: AsyncIterable<Uint8Array>,
  limit: number = READ_AHEAD_BYTES,
): AsyncGenerator<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  let queue: Uint8Array[] = [];
  let queued = 0;
  let finished = false;
  let failure: { error: unknown } | null = null;
  let stopped = false;
  let wakeConsumer: (() => void) | null = null;
  let wakeReader: (() => void) | null = null;
  const wake = (which: "consumer" | "reader") => {
    const waiter = which === "consumer" ? wakeConsumer : wakeReader;
    if (which === "consumer") wakeConsumer = null;
    else wakeReader = null;
    waiter?.();
  };
  const reading = (async () => {
    try {
      while (!stopped) {
        if (queued >= limit) {
          await new Promise<void>((resolve) => wakeReader = resolve);
          continue;
        }
        const next = await iterator.next();
        if (next.done) break;
        if (next.value.length === 0) continue;
        queue.push(next.value);
        queued += next.value.length;
        wake("consumer");
      }
    } catch (error) {
      failure = { error };
    } finally {
      finished = true;
      wake("consumer");
    }
  })();
  try {
    while (true) {
      if (queue.length > 0) {
        const chunk = queue.length === 1 ? queue[0]! : concat(queue);
        queue = [];
        queued = 0;
        wake("reader");
        yield chunk;
      } else if (failure !== null) {
        throw (failure as { error: unknown }).error;
      } else if (finished) {
        return;
      } else {
        await new Promise<void>((resolve) => wakeConsumer = resolve);
      }
    }
  } finally {
    stopped = true;
    wake("reader");
    // Not awaited: a read in progress ends when its connection closes.
    void reading;
  }
}

/** Sends body chunks; returns how many body bytes were written. */
export type BodyWriter = (chunks: AsyncIterable<Uint8Array>) => Promise<number>;

/**
 * Writes chunks as a chunked body (including the last chunk).
 *
 * @param write Raw writer of the connection.
 * @returns A body writer.
 *
 * @example Usage
 * ```ts ignore
 * const bytes = await chunkedWriter((b) => channel.write(b))(chunks);
 * ```
 */
export function chunkedWriter(
  write: (bytes: Uint8Array) => Promise<void>,
): BodyWriter {
  return async (chunks) => {
    let total = 0;
    for await (const chunk of chunks) {
      if (chunk.length === 0) continue;
      total += chunk.length;
      await write(encodeChunk(chunk));
    }
    await write(LAST_CHUNK);
    return total;
  };
}

/**
 * Writes chunks as they are (for Content-Length bodies).
 *
 * @param write Raw writer of the connection.
 * @returns A body writer.
 *
 * @example Usage
 * ```ts ignore
 * await rawWriter((b) => channel.write(b))(chunks);
 * ```
 */
export function rawWriter(
  write: (bytes: Uint8Array) => Promise<void>,
): BodyWriter {
  return async (chunks) => {
    let total = 0;
    for await (const chunk of chunks) {
      total += chunk.length;
      await write(chunk);
    }
    return total;
  };
}

/** Content codings the echo guard can look inside. */
const DECODABLE = new Map<string, CompressionFormat>([
  ["gzip", "gzip"],
  ["x-gzip", "gzip"],
  ["deflate", "deflate"],
  ["br", "brotli" as CompressionFormat],
]);

/**
 * The content coding the echo guard decodes a response body with, from all
 * of the response's `Content-Encoding` field lines; null when it cannot
 * check the body. Two lines ("identity", then "gzip") or a list ("gzip,
 * br") are refused, not resolved: the guard would decode one way while the
 * program, which gets the relayed bytes, can decode them another way.
 *
 * @param values Every `Content-Encoding` value, in order.
 * @returns "identity", or one of gzip, x-gzip, deflate, br; or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { guardableCoding } from "./_body.ts";
 * assert.equal(guardableCoding([]), "identity");
 * assert.equal(guardableCoding(["GZIP"]), "gzip");
 * assert.equal(guardableCoding(["zstd"]), null);
 * assert.equal(guardableCoding(["identity", "gzip"]), null);
 * assert.equal(guardableCoding(["gzip, br"]), null);
 * ```
 */
export function guardableCoding(values: readonly string[]): string | null {
  if (values.length === 0) return "identity";
  if (values.length > 1) return null;
  const coding = values[0]!.trim().toLowerCase();
  if (coding === "" || coding === "identity") return "identity";
  return DECODABLE.has(coding) ? coding : null;
}

/**
 * The `Accept-Encoding` the injector sends upstream when it must scan a
 * response for echoed secrets: only codings it can decode.
 */
export const SCANNABLE_ENCODINGS = "gzip, deflate, br";

/**
 * Passes a body through the echo guard: decodes any content coding first
 * (a compressed echo would hide the secret from a byte scan), then replaces
 * every occurrence of a secret.
 *
 * @param chunks The raw body.
 * @param encoding The coding from {@linkcode guardableCoding}, or undefined.
 * @param redactor The guard.
 * @returns Plain (decoded) body chunks, safe for the sandbox.
 * @throws {UpstreamError} 502 for a coding the guard cannot look inside.
 *
 * @example Usage
 * ```ts ignore
 * const safe = guardBody(readBody(up.reader, framing), "gzip", new EchoRedactor([secret]));
 * ```
 */
export async function* guardBody(
  chunks: AsyncIterable<Uint8Array>,
  encoding: string | undefined,
  redactor: EchoRedactor,
): AsyncGenerator<Uint8Array> {
  let plain: AsyncIterable<Uint8Array> = chunks;
  const coding = encoding?.trim().toLowerCase();
  if (coding && coding !== "identity") {
    const format = DECODABLE.get(coding);
    if (!format) {
      // The coding is not quoted: it is the upstream's text.
      throw new UpstreamError(
        502,
        "cannot check the response for echoed secrets: unsupported content-encoding",
      );
    }
    plain = ReadableStream.from(chunks).pipeThrough(
      new DecompressionStream(format) as unknown as ReadableWritablePair<
        Uint8Array,
        Uint8Array
      >,
    );
  }
  for await (const chunk of plain) {
    const safe = redactor.push(chunk);
    if (safe.length > 0) yield safe;
  }
  const rest = redactor.flush();
  if (rest.length > 0) yield rest;
}
