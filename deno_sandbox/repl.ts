/**
 * The REPL behind `sandbox.deno.repl()` and `sandbox.deno.eval()`: a driver
 * program that runs in an ordinary airlock run, reads requests as JSON lines
 * on its stdin, evaluates them with `node:vm` in the global scope (so
 * declarations persist between evaluations), and writes each answer to
 * stdout as a frame: a per-REPL random marker, JSON, a newline. The harness
 * cuts the frames out of stdout; everything else is the program's own
 * output.
 *
 * Values cross as tagged JSON (`tagged_json.ts`). `DenoRepl` is the process
 * object callers hold; `ReplChannel` pairs its requests with the answers.
 *
 * @module
 */

import * as esbuild from "esbuild";
import { DenoProcess, type ProcessInit } from "./process.ts";
import { decodeValue, encodeValue } from "./tagged_json.ts";

/**
 * The driver program's source. The first stdin line is the frame marker;
 * then one JSON request per line: `{ id, op: "eval", code }`,
 * `{ id, op: "call", fn, args }` or `{ op: "close" }`.
 *
 * @returns JavaScript for `sandbox.run({ code })`.
 *
 * @example Usage
 * ```ts
 * import { replDriverSource } from "./repl.ts";
 * console.log(replDriverSource().startsWith('import vm from "node:vm"')); // true
 * ```
 */
export function replDriverSource(): string {
  return `import vm from "node:vm";
const encodeValue = ${encodeValue.toString()};
const decodeValue = ${decodeValue.toString()};
const encoder = new TextEncoder();
let marker = null;
const send = (reply) => {
  const bytes = encoder.encode(marker + JSON.stringify(reply) + "\\n");
  for (let at = 0; at < bytes.length;) at += Deno.stdout.writeSync(bytes.subarray(at));
};
const describe = (e) => ({
  name: String(e?.name ?? "Error"),
  message: String(e?.message ?? e),
  stack: String(e?.stack ?? ""),
});
const handle = async (request) => {
  try {
    let value;
    if (request.op === "eval") {
      value = vm.runInThisContext(request.code, { filename: "repl" });
    } else {
      const fn = vm.runInThisContext("(" + request.fn + ")", { filename: "repl" });
      if (typeof fn !== "function") throw new TypeError(request.fn + " is not a function");
      value = fn(...decodeValue(request.args));
    }
    if (value !== null && typeof value?.then === "function") value = await value;
    send({ id: request.id, ok: true, value: encodeValue(value) });
  } catch (error) {
    send({ id: request.id, ok: false, error: describe(error) });
  }
};
const decoder = new TextDecoder();
let buffered = "";
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  for (let end; (end = buffered.indexOf("\\n")) !== -1;) {
    const line = buffered.slice(0, end);
    buffered = buffered.slice(end + 1);
    if (marker === null) {
      marker = line;
      continue;
    }
    const request = JSON.parse(line);
    if (request.op === "close") Deno.exit(0);
    await handle(request);
  }
}
Deno.exit(0);
`;
}

/**
 * Compiles REPL input (TypeScript) to JavaScript on the harness side, as an
 * expression when it reads as one (`{ a: 1 }` is an object, as in Deno's
 * REPL).
 *
 * @param code The input.
 * @param asExpression Compile `(code)` (for `call`'s function).
 * @returns Script text for `vm.runInThisContext`.
 *
 * @example Usage
 * ```ts
 * import { compileReplInput } from "./repl.ts";
 * console.log(await compileReplInput("const n: number = 1")); // "const n = 1;\n"
 * console.log(await compileReplInput("{ a: 1 }")); // an object, not a block
 * ```
 */
export async function compileReplInput(
  code: string,
  asExpression = false,
): Promise<string> {
  const transform = async (text: string) =>
    (await esbuild.transform(text, { loader: "ts", logLevel: "silent" }))
      .code;
  if (asExpression || /^\s*\{/.test(code) && !/;\s*$/.test(code)) {
    try {
      const out = await transform(`(${code}\n)`);
      return asExpression ? out.replace(/;\s*$/, "") : out;
    } catch (error) {
      if (asExpression) throw replSyntaxError(error);
    }
  }
  try {
    return await transform(code);
  } catch (error) {
    throw replSyntaxError(error);
  }
}

function replSyntaxError(error: unknown): SyntaxError {
  const failure = error as { errors?: { text: string }[] };
  const text = failure.errors?.map((e) => e.text).join("; ") ??
    String(error);
  return new SyntaxError(`Cannot compile the REPL input: ${text}`);
}

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
 * import { splitFrames } from "./repl.ts";
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

/**
 * Internal: what a REPL is made from.
 *
 * @example Usage
 * ```ts ignore
 * new DenoRepl(PROCESS_TOKEN, { ...processInit, marker });
 * ```
 */
export interface ReplInit extends ProcessInit {
  /** The marker the driver frames its answers with. */
  marker: string;
}

/**
 * A Deno REPL (`sandbox.deno.repl()`): each `eval` runs in the same program,
 * in the global scope, so declarations persist.
 *
 * @example Usage
 * ```ts ignore
 * await using repl = await sandbox.deno.repl();
 * await repl.eval("var total = 40");
 * console.log(await repl.eval("total + 2")); // 42
 * console.log(await repl.call("(a, b) => a * b", 6, 7)); // 42
 * ```
 */
export class DenoRepl extends DenoProcess {
  #channel: ReplChannel;
  #closing: Promise<void> | null = null;

  /**
   * Not for callers: use `sandbox.deno.repl()`.
   *
   * @param token Internal.
   * @param init Internal.
   */
  constructor(token: symbol, init: ReplInit) {
    const stdin = init.run.stdin;
    if (!stdin) throw new TypeError("A REPL run needs a piped stdin");
    const channel = new ReplChannel(stdin, init.marker);
    const stdoutSource = splitFrames(
      init.run.stdout,
      init.marker,
      (json) => channel.onFrame(json),
    );
    super(token, { ...init, stdoutSource, stdinPiped: false });
    this.#channel = channel;
    // The run's status ends the channel, with the reason.
    this.status.then(
      (s) =>
        channel.end(
          new Error(
            `The Deno REPL exited (code ${s.code}${
              s.signal ? `, ${s.signal}` : ""
            }) before answering`,
          ),
        ),
      (error) => channel.end(error as Error),
    );
  }

  /**
   * Evaluates code (TypeScript) in the REPL's global scope.
   *
   * @param code The input; its completion value is the result (a promise
   *   result is awaited).
   * @returns The value, structured-cloned.
   */
  async eval<T = unknown>(code: string): Promise<T> {
    return await this.#channel.request({
      op: "eval",
      code: await compileReplInput(code),
    }) as T;
  }

  /**
   * Calls a function of the REPL (a name, or a function expression).
   *
   * @param fn `"add"` or `"(a, b) => a + b"`.
   * @param args Structured-cloneable arguments.
   * @returns The result, structured-cloned.
   */
  async call<T = unknown>(fn: string, ...args: unknown[]): Promise<T> {
    return await this.#channel.request({
      op: "call",
      fn: await compileReplInput(fn, true),
      args: encodeValue(args),
    }) as T;
  }

  /** Ends the REPL (its program exits; killed if it does not within 2 s). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#channel.close();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) =>
        timer = setTimeout(() => resolve("late"), 2_000)
      );
      const outcome = await Promise.race([
        this.status.catch(() => "gone" as const),
        late,
      ]);
      clearTimeout(timer);
      if (outcome === "late") await this.kill("SIGKILL");
      await this.status.catch(() => {});
    })();
    return this.#closing;
  }

  /** Same as `close()`. */
  override async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
