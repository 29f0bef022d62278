/**
 * Exit status in the `@deno/sandbox`-compatible API: the SDK's signal
 * names and status shape, and how airlock's run status maps onto it (a run
 * ends by SIGKILL of its sandbox whatever the cause; the status names the
 * signal asked for or the limit that ended it).
 *
 * @module
 */

import type { RunStatus } from "../harness/run_result.ts";

/**
 * Process signals, as the SDK names them.
 *
 * @example Usage
 * ```ts
 * import type { Signal } from "./mod.ts";
 * const signal: Signal = "SIGTERM";
 * console.log(signal);
 * ```
 */
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

/**
 * Signals `kill()` accepts: each ends the run (always by SIGKILL of its sandbox).
 *
 * @example Usage
 * ```ts
 * import { ENDING } from "./status.ts";
 * console.log(ENDING.has("SIGTERM"), ENDING.has("SIGUSR1")); // true false
 * ```
 */
export const ENDING: ReadonlySet<Signal> = new Set<Signal>([
  "SIGTERM",
  "SIGKILL",
  "SIGINT",
  "SIGQUIT",
  "SIGABRT",
  "SIGHUP",
]);

/**
 * Exit status, as the SDK reports it. A run that airlock ended (kill,
 * timeout, output or disk limit) reports SIGKILL (137) or the signal
 * `kill()` asked for; running out of memory reports `oom: true`.
 *
 * @example Usage
 * ```ts ignore
 * const child = await sandbox.deno.run({ code: "Deno.exit(3)" });
 * const status: ChildProcessStatus = await child.status;
 * console.log(status); // { success: false, code: 3, signal: null, oom: false }
 * ```
 */
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

function signalled(signal: Signal, oom = false): ChildProcessStatus {
  return {
    success: false,
    code: 128 + (SIGNAL_NUMBERS[signal] ?? 0),
    signal,
    oom,
  };
}

/**
 * Maps airlock's run status to the SDK's.
 *
 * @param s airlock's status of the run.
 * @param requested The signal `kill()` was asked for first, if any.
 * @returns The SDK's status.
 *
 * @example Usage
 * ```ts
 * import { toStatus } from "./status.ts";
 * import type { RunStatus } from "../harness/run_result.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(toStatus({ reason: "oom" } as RunStatus, null), {
 *   success: false,
 *   code: 137,
 *   signal: "SIGKILL",
 *   oom: true,
 * });
 * assert.equal(toStatus({ reason: "killed" } as RunStatus, "SIGINT").code, 130);
 * ```
 */
export function toStatus(
  s: RunStatus,
  requested: Signal | null,
): ChildProcessStatus {
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
