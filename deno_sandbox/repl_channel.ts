/**
 * The harness's side of the REPL's wire (`repl.ts`): answer frames cut out
 * of the driver's stdout (a per-REPL random marker, JSON, a newline;
 * everything else is the program's own output), and requests written to
 * its stdin, each paired with its answer.
 *
 * @module
 */

import { decodeValue } from "./tagged_json.ts";

/**
 * Splits frames out of a stdout stream. Everything else is forwarded to the
 * returned stream, which never applies backpressure to the splitter (frames
 * keep flowing even if nobody reads the output; the run's output cap bounds
 * the memory).
 *
 * @param source The run's stdout.
 * @param marker The frame marker.
 * @param onFrame Receives each frame's JSON text.
 * @returns The program's own output.
 *
 * @example Usage
 * ```ts
 * import { splitFrames } from "./repl_channel.ts";
 * import assert from "node:assert/strict";
 * const frames: string[] = [];
 * const source = new Blob(["hello <M>{\"id\":1}\nworld"]).stream();
 * const output = splitFrames(source, "<M>", (json) => frames.push(json));
 * assert.equal(await new Response(output).text(), "hello world");
 * assert.deepEqual(frames, ['{"id":1}']);
 * ```
 */
export function splitFrames(
  source: ReadableStream<Uint8Array>,
  marker: string,
  onFrame: (json: string) => void,
): ReadableStream<Uint8Array<ArrayBuffer>> {
  const mark = new TextEncoder().encode(marker);
  const decoder = new TextDecoder();
  let controller!: ReadableStreamDefaultController<Uint8Array<ArrayBuffer>>;
  const output = new ReadableStream<Uint8Array<ArrayBuffer>>({
    start: (c) => void (controller = c),
  });
  const emit = (bytes: Uint8Array) => {
    if (bytes.length === 0) return;
    try {
      controller.enqueue(bytes.slice());
    } catch { /* the reader cancelled: keep splitting frames */ }
  };
  (async () => {
    const reader = source.getReader();
    let buffer = new Uint8Array(0);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const joined = new Uint8Array(buffer.length + value.length);
        joined.set(buffer);
        joined.set(value, buffer.length);
        buffer = joined;
        for (;;) {
          const at = indexOf(buffer, mark);
          if (at === -1) {
            const hold = partialSuffix(buffer, mark);
            emit(buffer.subarray(0, buffer.length - hold));
            buffer = buffer.slice(buffer.length - hold);
            break;
          }
          emit(buffer.subarray(0, at));
          const end = buffer.indexOf(10, at + mark.length);
          if (end === -1) {
            buffer = buffer.slice(at);
            break;
          }
          onFrame(decoder.decode(buffer.subarray(at + mark.length, end)));
          buffer = buffer.slice(end + 1);
        }
      }
      emit(buffer);
    } catch {
      /* the run's stream failed: end the output */
    } finally {
      try {
        controller.close();
      } catch { /* cancelled */ }
    }
  })();
  return output;
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0]!;
  for (
    let at = haystack.indexOf(first);
    at !== -1 && at + needle.length <= haystack.length;
    at = haystack.indexOf(first, at + 1)
  ) {
    let i = 1;
    while (i < needle.length && haystack[at + i] === needle[i]) i++;
    if (i === needle.length) return at;
  }
  return -1;
}

/** Length of the longest suffix of `bytes` that starts `needle`. */
function partialSuffix(bytes: Uint8Array, needle: Uint8Array): number {
  for (let k = Math.min(bytes.length, needle.length - 1); k > 0; k--) {
    let i = 0;
    while (i < k && bytes[bytes.length - k + i] === needle[i]) i++;
    if (i === k) return k;
  }
  return 0;
}

/**
 * Requests to one driver and their answers.
 *
 * @example Usage
 * ```ts ignore
 * const channel = new ReplChannel(run.stdin, marker);
 * console.log(await channel.request({ op: "eval", code: "1 + 1" })); // 2
 * ```
 */
export class ReplChannel {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<
    number,
    { resolve(v: unknown): void; reject(e: Error): void }
  >();
  #next = 1;
  #ended: Error | null = null;
  #encoder = new TextEncoder();

  /**
   * Starts the channel: sends the marker as the first line.
   *
   * @param stdin The driver's stdin.
   * @param marker The frame marker (sent first).
   */
  constructor(stdin: WritableStream<Uint8Array>, marker: string) {
    this.#writer = stdin.getWriter();
    this.#write(`${marker}\n`);
  }

  /**
   * Sends a request and waits for its answer.
   *
   * @param request `{ op: "eval", code }` or `{ op: "call", fn, args }`.
   * @returns The decoded value.
   */
  request(request: Record<string, unknown>): Promise<unknown> {
    if (this.#ended) return Promise.reject(this.#ended);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }

  /** Asks the driver to exit (best effort). */
  async close(): Promise<void> {
    if (this.#ended) return;
    this.#write(`${JSON.stringify({ op: "close" })}\n`);
    await this.#writer.close().catch(() => {});
  }

  /**
   * Settles the request a frame answers (frames that answer none are
   * dropped: the program can print anything).
   *
   * @param json One frame from the driver.
   */
  onFrame(json: string): void {
    let reply: {
      id?: number;
      ok?: boolean;
      value?: unknown;
      error?: { name: string; message: string; stack: string };
    };
    try {
      reply = JSON.parse(json);
    } catch {
      return;
    }
    const waiter = this.#pending.get(Number(reply.id));
    if (!waiter) return;
    this.#pending.delete(Number(reply.id));
    if (reply.ok) {
      try {
        waiter.resolve(decodeValue(reply.value));
      } catch (error) {
        waiter.reject(error as Error);
      }
      return;
    }
    const error = decodeValue({ $: "Error", ...reply.error }) as Error;
    waiter.reject(error);
  }

  /**
   * Rejects every pending request and every later one.
   *
   * @param reason Why no more answers will come.
   */
  end(reason: Error): void {
    this.#ended ??= reason;
    for (const waiter of this.#pending.values()) waiter.reject(this.#ended);
    this.#pending.clear();
  }

  #write(text: string): void {
    // A failed write means the driver is gone; its run's status (which
    // follows) ends the channel with the reason.
    this.#writer.write(this.#encoder.encode(text)).catch(() => {});
  }
}
