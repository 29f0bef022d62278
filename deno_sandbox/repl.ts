/**
 * The REPL behind `sandbox.deno.repl()` and `sandbox.deno.eval()`: a driver
 * program that runs in an ordinary airlock run, reads requests as JSON lines
 * on its stdin, evaluates them with `node:vm` in the global scope (so
 * declarations persist between evaluations), and writes each answer to
 * stdout as a frame: a per-REPL random marker, JSON, a newline. The harness
 * cuts the frames out of stdout; everything else is the program's own
 * output.
 *
 * Values cross as tagged JSON (`tagged_json.ts`); the harness's side of the
 * wire (frames cut out of stdout, requests paired with answers) is
 * `repl_channel.ts`. `DenoRepl` is the process object callers hold.
 *
 * @module
 */

import * as esbuild from "esbuild";
import { DenoProcess, type ProcessInit } from "./process.ts";
import { ReplChannel, splitFrames } from "./repl_channel.ts";
import { decodeValue, encodeValue } from "./tagged_json.ts";
import { wrapTopLevelAwait } from "./top_level_await.ts";

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
// import() has no loader here (programs are bundled before they run).
const refuseImport = (specifier) => {
  throw new TypeError("Cannot import '" + specifier + "' in sandbox.deno.eval() or a REPL: the local sandbox (airlock) bundles programs before they run; import it from a sandbox.deno.run() program (npm packages: Sandbox.create({ airlock: { npm: [...] } }))");
};
const options = { filename: "repl", importModuleDynamically: refuseImport };
const describe = (e) => ({
  name: String(e?.name ?? "Error"),
  message: String(e?.message ?? e),
  stack: String(e?.stack ?? ""),
});
const handle = async (request) => {
  try {
    let value;
    if (request.op === "eval") {
      value = vm.runInThisContext(request.code, options);
    } else {
      const fn = vm.runInThisContext("(" + request.fn + ")", options);
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
 * REPL); input with top-level `await` becomes an async function with its
 * declarations hoisted (`top_level_await.ts`).
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
      return asExpression
        ? out.replace(/;\s*$/, "")
        : await withTopLevelAwait(out);
    } catch (error) {
      if (asExpression) throw replSyntaxError(error);
    }
  }
  let out: string;
  try {
    out = await transform(code);
  } catch (error) {
    throw replSyntaxError(error);
  }
  return await withTopLevelAwait(out);
}

async function withTopLevelAwait(js: string): Promise<string> {
  return (await wrapTopLevelAwait(js)) ?? js;
}

function replSyntaxError(error: unknown): SyntaxError {
  const failure = error as { errors?: { text: string }[] };
  const text = failure.errors?.map((e) => e.text).join("; ") ??
    String(error);
  return new SyntaxError(`Cannot compile the REPL input: ${text}`);
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
