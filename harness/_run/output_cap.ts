/**
 * Byte caps on a sandbox's stdout/stderr: a flood cannot exhaust the
 * harness's memory. Past the cap the stream ends and the owner is told, so
 * it can stop the run and mark it "output-limit".
 *
 * @module
 */

/** A capped view of a byte stream. */
export interface CappedStream {
  /** The first `cap` bytes of the source, then end of stream. */
  readable: ReadableStream<Uint8Array>;
  /** Whether bytes were dropped. */
  readonly truncated: boolean;
  /**
   * The source's first chunk (up to 256 bytes), as written, for diagnosing
   * setup failures. Read eagerly, whether or not anyone consumes the stream.
   */
  readonly head: Uint8Array;
  /** Resolves once `head` is known (first chunk read, or end of stream). */
  readonly headReady: Promise<void>;
}

/**
 * Wraps `source` so at most `cap` bytes pass.
 *
 * @param source The child's pipe.
 * @param cap Bytes to keep.
 * @param onOverflow Called once when the cap is passed.
 * @returns The capped stream and its state.
 *
 * @example Usage
 * ```ts
 * import { capStream } from "./output_cap.ts";
 * const source = ReadableStream.from([new Uint8Array(10)]);
 * const capped = capStream(source, 4, () => {});
 * const bytes = await new Response(capped.readable).arrayBuffer();
 * console.log(bytes.byteLength, capped.truncated); // 4 true
 * ```
 */
export function capStream(
  source: ReadableStream<Uint8Array>,
  cap: number,
  onOverflow: () => void,
  options: { dropPrefix?: Uint8Array } = {},
): CappedStream {
  let seen = 0;
  // Bytes held back while they could still be the start of `dropPrefix`
  // (a line the runtime itself prints before any program output).
  let pendingPrefix: Uint8Array | null = options.dropPrefix?.length
    ? new Uint8Array(0)
    : null;
  let truncated = false;
  let head: Uint8Array = new Uint8Array(0);
  const reader = source.getReader();
  const readSafe = () =>
    reader.read().catch(() => ({ value: undefined, done: true as const }));
  // The first read starts now: a setup failure's message must be seen even
  // when the consumer never reads the stream.
  let early: ReturnType<typeof readSafe> | null = readSafe();
  const headReady = early.then((first) => {
    if (!first.done && first.value) head = first.value.slice(0, 256);
  });
  const readable = new ReadableStream<Uint8Array>({
    async pull(controller) {
      // Loops until something is enqueued or the stream closes: a pull that
      // returns with nothing enqueued would never be called again.
      while (true) {
        const { value, done } = await (early ?? readSafe());
        early = null;
        if (done || !value) {
          if (pendingPrefix?.length) deliver(controller, pendingPrefix);
          pendingPrefix = null;
          if (!truncated) controller.close();
          return;
        }
        let chunk = value;
        if (pendingPrefix !== null) {
          const prefix = options.dropPrefix!;
          const joined = concat(pendingPrefix, chunk);
          const n = Math.min(joined.length, prefix.length);
          if (!joined.subarray(0, n).every((b, i) => b === prefix[i])) {
            pendingPrefix = null; // not the prefix: everything is output
            chunk = joined;
          } else if (joined.length < prefix.length) {
            pendingPrefix = joined; // still undecided
            continue;
          } else {
            pendingPrefix = null;
            chunk = joined.subarray(prefix.length);
            if (chunk.length === 0) continue;
          }
        }
        deliver(controller, chunk);
        return;
      }
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  function deliver(
    controller: ReadableStreamDefaultController<Uint8Array>,
    value: Uint8Array,
  ) {
    const room = cap - seen;
    if (value.length <= room) {
      seen += value.length;
      controller.enqueue(value);
      return;
    }
    if (room > 0) controller.enqueue(value.subarray(0, room));
    seen = cap;
    truncated = true;
    controller.close();
    onOverflow();
    // Keep draining so the child never blocks on a full pipe before the
    // kill lands; the bytes are discarded.
    (async () => {
      try {
        while (!(await reader.read()).done) { /* discard */ }
      } catch { /* pipe closed */ }
    })();
  }
  return {
    readable,
    get truncated() {
      return truncated;
    },
    get head() {
      return head;
    },
    headReady,
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
