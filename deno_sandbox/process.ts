/**
 * Processes of the `@deno/sandbox`-compatible API: `ChildProcess`,
 * `DenoProcess` and `DenoRepl` over airlock runs (`SandboxProcess`), with
 * the SDK's stdio modes, exit status shape and `kill(signal)`.
 *
 * @module
 */

import type { SandboxProcess } from "../harness/sandbox.ts";
import type { RunStatus } from "../harness/run_result.ts";
import {
  AirlockUnsupportedError,
  NO_INBOUND,
  rejectUnsupported,
  unsupported,
} from "./errors.ts";
import { compileReplInput, ReplChannel, splitFrames } from "./repl.ts";
import { encodeValue } from "./tagged_json.ts";

/** Process signals, as the SDK names them. */
export type Signal =
  | "SIGABRT"
  | "SIGALRM"
  | "SIGBREAK"
  | "SIGBUS"
  | "SIGCHLD"
  | "SIGCONT"
  | "SIGEMT"
  | "SIGFPE"
  | "SIGHUP"
  | "SIGILL"
  | "SIGINFO"
  | "SIGINT"
  | "SIGIO"
  | "SIGPOLL"
  | "SIGUNUSED"
  | "SIGKILL"
  | "SIGPIPE"
  | "SIGPROF"
  | "SIGPWR"
  | "SIGQUIT"
  | "SIGSEGV"
  | "SIGSTKFLT"
  | "SIGSTOP"
  | "SIGSYS"
  | "SIGTERM"
  | "SIGTRAP"
  | "SIGTSTP"
  | "SIGTTIN"
  | "SIGTTOU"
  | "SIGURG"
  | "SIGUSR1"
  | "SIGUSR2"
  | "SIGVTALRM"
  | "SIGWINCH"
  | "SIGXCPU"
  | "SIGXFSZ";

/** Linux signal numbers. */
const SIGNAL_NUMBERS: Partial<Record<Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** Signals `kill()` accepts: each ends the run (always by SIGKILL of its sandbox). */
const ENDING: ReadonlySet<Signal> = new Set<Signal>([
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGQUIT",
  "SIGABRT",
  "SIGHUP",
]);

/** Exit status, as the SDK reports it. */
export interface ChildProcessStatus {
  /** Exit code 0. */
  success: boolean;
  /** The exit code (128 + N when ended by signal N). */
  code: number;
  /** The signal that ended it, or null. */
  signal: Signal | null;
  /** Ended by running out of memory (then `code` is 137). */
  oom: boolean;
}

/** Buffered output and status (`output()`). */
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

/** Where a stream goes: to the caller, to this process's own stdio, or nowhere. */
export type StdioMode = "piped" | "inherit" | "null";

/** Internal: what a process object is made from. */
export interface ProcessInit {
  pid: number;
  run: SandboxProcess;
  stdout: StdioMode;
  stderr: StdioMode;
  /** The stdout to route instead of the run's own (the REPL's, frames removed). */
  stdoutSource?: ReadableStream<Uint8Array>;
  /** Whether the caller gets the run's stdin. */
  stdinPiped: boolean;
  signal?: AbortSignal;
}

const INTERNAL = Symbol("airlock deno_sandbox internal");

/** Internal token for the constructors (not exported by `deno_sandbox.ts`). */
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
   * @param signal Default SIGTERM.
   * @returns Resolves once the kill is sent (not when the process is gone).
   */
  kill(signal: Signal = "SIGTERM"): Promise<void> {
    if (!ENDING.has(signal)) {
      return Promise.reject(
        new AirlockUnsupportedError(
          `kill("${signal}")`,
          `airlock can only end a run (SIGKILL of its sandbox); it cannot deliver ${signal} to a live program. Use one of ${
            [...ENDING].join(", ")
          }`,
        ),
      );
    }
    this.#requested ??= signal;
    this.#run.kill();
    return Promise.resolve();
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

/** A Deno program run by `sandbox.deno.run()`. */
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

/** Internal: what a REPL is made from. */
export interface ReplInit extends ProcessInit {
  /** The marker the driver frames its answers with. */
  marker: string;
}

/**
 * A Deno REPL (`sandbox.deno.repl()`): each `eval` runs in the same program,
 * in the global scope, so declarations persist.
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

function signalled(signal: Signal, oom = false): ChildProcessStatus {
  return {
    success: false,
    code: 128 + (SIGNAL_NUMBERS[signal] ?? 0),
    signal,
    oom,
  };
}

/** Maps airlock's run status to the SDK's. */
function toStatus(s: RunStatus, requested: Signal | null): ChildProcessStatus {
  switch (s.reason) {
    case "exit":
      return {
        success: s.exitCode === 0,
        code: s.exitCode,
        signal: null,
        oom: false,
      };
    case "killed":
      return signalled(requested ?? "SIGKILL");
    case "oom":
      return signalled("SIGKILL", true);
    case "cpu":
      return signalled("SIGXCPU");
    case "file-size":
      return signalled("SIGXFSZ");
    case "crashed":
      return {
        success: false,
        code: s.exitCode,
        signal: s.signal !== null && s.signal in SIGNAL_NUMBERS
          ? s.signal as Signal
          : null,
        oom: false,
      };
    default: // timeout, output-limit, disk-limit: the harness SIGKILLed it
      return signalled("SIGKILL");
  }
}
