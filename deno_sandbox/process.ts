/**
 * Processes of the `@deno/sandbox`-compatible API: `ChildProcess` and
 * `DenoProcess` over airlock runs (`SandboxProcess`), with the SDK's stdio
 * modes and `kill(signal)`; the exit status is mapped in `status.ts`, and
 * `DenoRepl` is in `repl.ts`.
 *
 * @module
 */

import type { SandboxProcess } from "../harness/sandbox.ts";
import type { RunStatus } from "../harness/run_result.ts";
import {
  type ChildProcessStatus,
  ENDING,
  type Signal,
  toStatus,
} from "./status.ts";
import {
  AirlockUnsupportedError,
  NO_INBOUND,
  rejectUnsupported,
  unsupported,
} from "./errors.ts";

/**
 * Buffered output and status (`output()`).
 *
 * @example Usage
 * ```ts ignore
 * const child = await sandbox.deno.run({ code: "console.log('hi')", stdout: "piped" });
 * const output: ChildProcessOutput = await child.output();
 * console.log(output.status.code, output.stdoutText); // 0 "hi\n"
 * ```
 */
export interface ChildProcessOutput {
  /** The exit status. */
  status: ChildProcessStatus;
  /** stdout bytes, or null unless `stdout: "piped"`. */
  readonly stdout: Uint8Array<ArrayBuffer> | null;
  /** stderr bytes, or null unless `stderr: "piped"`. */
  readonly stderr: Uint8Array<ArrayBuffer> | null;
  /** stdout as UTF-8, or null. */
  readonly stdoutText: string | null;
  /** stderr as UTF-8, or null. */
  readonly stderrText: string | null;
}

/**
 * Where a stream goes: to the caller, to this process's own stdio, or nowhere.
 *
 * @example Usage
 * ```ts
 * import type { StdioMode } from "./process.ts";
 * const mode: StdioMode = "piped";
 * console.log(mode);
 * ```
 */
export type StdioMode = "piped" | "inherit" | "null";

/**
 * Internal: what a process object is made from.
 *
 * @example Usage
 * ```ts ignore
 * const init: ProcessInit = { pid: 1, run, stdout: "piped", stderr: "inherit", stdinPiped: false };
 * const child = new DenoProcess(PROCESS_TOKEN, init);
 * ```
 */
export interface ProcessInit {
  /** The process's number within its sandbox. */
  pid: number;
  /** The airlock run. */
  run: SandboxProcess;
  /** Where the run's stdout goes. */
  stdout: StdioMode;
  /** Where the run's stderr goes. */
  stderr: StdioMode;
  /** The stdout to route instead of the run's own (the REPL's, frames removed). */
  stdoutSource?: ReadableStream<Uint8Array>;
  /** Whether the caller gets the run's stdin. */
  stdinPiped: boolean;
  /** Aborting kills the process. */
  signal?: AbortSignal;
}

const INTERNAL = Symbol("airlock deno_sandbox internal");

/**
 * Internal token for the constructors (not exported by `mod.ts`).
 *
 * @example Usage
 * ```ts ignore
 * const child = new DenoProcess(PROCESS_TOKEN, init);
 * ```
 */
export const PROCESS_TOKEN: symbol = INTERNAL;

/**
 * A process in the sandbox (an airlock run).
 *
 * @example Usage
 * ```ts ignore
 * const child = await sandbox.deno.run({ code: "console.log(1)", stdout: "piped" });
 * const { status, stdoutText } = await child.output();
 * ```
 */
export class ChildProcess extends EventTarget implements AsyncDisposable {
  #pid: number;
  #run: SandboxProcess;
  #stdin: WritableStream<Uint8Array<ArrayBuffer>> | null;
  #stdout: ReadableStream<Uint8Array<ArrayBuffer>> | null;
  #stderr: ReadableStream<Uint8Array<ArrayBuffer>> | null;
  #status: Promise<ChildProcessStatus>;
  #requested: Signal | null = null;

  /**
   * Not for callers: use `sandbox.deno.run()`.
   *
   * @param token Internal.
   * @param init Internal.
   */
  constructor(token: symbol, init: ProcessInit) {
    if (token !== INTERNAL) {
      throw new TypeError(
        "Cannot construct process objects directly: use sandbox.deno.run()",
      );
    }
    super();
    this.#pid = init.pid;
    this.#run = init.run;
    this.#stdin = init.stdinPiped
      ? init.run.stdin as WritableStream<Uint8Array<ArrayBuffer>>
      : null;
    this.#stdout = route(
      init.stdoutSource ?? init.run.stdout,
      init.stdout,
      Deno.stdout,
    );
    this.#stderr = route(init.run.stderr, init.stderr, Deno.stderr);
    this.#status = init.run.status.then((s) => toStatus(s, this.#requested));
    this.#status.catch(() => {});
    const signal = init.signal;
    if (signal) {
      const onAbort = () => void this.kill().catch(() => {});
      if (signal.aborted) onAbort();
      else {
        signal.addEventListener("abort", onAbort, { once: true });
        init.run.status.finally(() =>
          signal.removeEventListener("abort", onAbort)
        ).catch(() => {});
      }
    }
  }

  /** A number identifying the process within its sandbox (not a host pid). */
  get pid(): number {
    return this.#pid;
  }
  /** The process's stdin when `stdin: "piped"`, else null. */
  get stdin(): WritableStream<Uint8Array<ArrayBuffer>> | null {
    return this.#stdin;
  }
  /** The process's stdout when `stdout: "piped"`, else null. */
  get stdout(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    return this.#stdout;
  }
  /** The process's stderr when `stderr: "piped"`, else null. */
  get stderr(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    return this.#stderr;
  }
  /** Resolves with the exit status once the process (and its sandbox) is gone. */
  get status(): Promise<ChildProcessStatus> {
    return this.#status;
  }
  /**
   * airlock only: the run's own status (reason, limits, audit trail).
   *
   * @returns airlock's `RunStatus`.
   */
  get airlockStatus(): Promise<RunStatus> {
    return this.#run.status;
  }

  /**
   * Ends the process. airlock ends a run only one way: SIGKILL of its whole
   * sandbox (no signal handler runs); the status reports the signal asked
   * for. Signals that would not end a process are refused.
   *
   * Resolves once the run has ended (its processes gone, its status
   * settled), so the next `sandbox.fs` call, which airlock refuses while a
   * run is live, goes through. (The SDK resolves once the signal is sent.)
   *
   * @param signal Default SIGTERM.
   * @returns Resolves when the process is gone.
   */
  async kill(signal: Signal = "SIGTERM"): Promise<void> {
    if (!ENDING.has(signal)) {
      throw new AirlockUnsupportedError(
        `kill("${signal}")`,
        `airlock can only end a run (SIGKILL of its sandbox); it cannot deliver ${signal} to a live program. Use one of ${
          [...ENDING].join(", ")
        }`,
      );
    }
    this.#requested ??= signal;
    this.#run.kill();
    // airlock's run status settles only after the run is no longer live.
    await this.#status.catch(() => {});
  }

  /**
   * Waits for the exit and collects the piped streams.
   *
   * @returns Status and output (null for streams that are not piped).
   */
  async output(): Promise<ChildProcessOutput> {
    const read = (s: ReadableStream<Uint8Array<ArrayBuffer>> | null) =>
      s
        ? new Response(s).arrayBuffer().then((b) => new Uint8Array(b))
          .catch(() => null)
        : Promise.resolve(null);
    const [status, stdout, stderr] = await Promise.all([
      this.#status,
      read(this.#stdout),
      read(this.#stderr),
    ]);
    const decode = (b: Uint8Array | null) =>
      b === null ? null : new TextDecoder().decode(b);
    return {
      status,
      stdout,
      stderr,
      get stdoutText() {
        return decode(stdout);
      },
      get stderrText() {
        return decode(stderr);
      },
    };
  }

  /** Kills the process and waits for it. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill();
    await this.#status.catch(() => {});
  }
}

/**
 * A Deno program run by `sandbox.deno.run()` (or `sandbox.spawn("deno")`).
 * Its HTTP members are unsupported: nothing can connect into a sandbox.
 *
 * @example Usage
 * ```ts ignore
 * const child: DenoProcess = await sandbox.deno.run({ entrypoint: "main.ts" });
 * console.log((await child.status).code);
 * ```
 */
export class DenoProcess extends ChildProcess {
  /** Unsupported: servers in the sandbox are unreachable from outside. */
  get httpReady(): Promise<boolean> {
    return unsupported("DenoProcess.httpReady", NO_INBOUND);
  }
  /**
   * Unsupported: servers in the sandbox are unreachable from outside.
   *
   * @returns Never: rejects.
   */
  fetch(_url: string | URL, _init?: unknown): Promise<Response> {
    return rejectUnsupported("DenoProcess.fetch()", NO_INBOUND);
  }
}

function route(
  stream: ReadableStream<Uint8Array>,
  mode: StdioMode,
  sink: { write(p: Uint8Array): Promise<number> },
): ReadableStream<Uint8Array<ArrayBuffer>> | null {
  if (mode === "piped") {
    return stream as ReadableStream<Uint8Array<ArrayBuffer>>;
  }
  // Drained, never cancelled: a closed pipe would fail the program's writes.
  stream.pipeTo(
    new WritableStream({
      async write(chunk) {
        if (mode !== "inherit") return;
        for (let at = 0; at < chunk.length;) {
          at += await sink.write(chunk.subarray(at));
        }
      },
    }),
  ).catch(() => {});
  return null;
}
