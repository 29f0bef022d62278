/**
 * Why a sandboxed run ended, from what the harness did and the exit status.
 *
 * bubblewrap reports a child killed by signal N as exit code 128 + N, so a
 * program calling `Deno.exit(152)` is indistinguishable from one stopped by
 * RLIMIT_CPU: it can only misreport its own end, never hide a limit.
 *
 * @module
 */

/** Why a run ended. */
export type ExitReason =
  /** The program exited by itself (any exit code). */
  | "exit"
  /** The wall clock ran out; the harness killed the sandbox. */
  | "timeout"
  /** The JS heap or the data limit was exceeded. */
  | "oom"
  /** The CPU-time limit was reached (SIGXCPU). */
  | "cpu"
  /** A file grew past the file-size limit (SIGXFSZ). */
  | "file-size"
  /**
   * The scratch directory outgrew its quota and the harness killed the run
   * (only where the quota is measured, `quotaMode` "walk"; a scratch
   * filesystem refuses the write instead, ENOSPC, and the run goes on).
   */
  | "disk-limit"
  /** stdout or stderr passed the output cap; the harness killed the run. */
  | "output-limit"
  /** Killed on request (abort signal, `kill()`, `close()`). */
  | "killed"
  /** Ended by another signal (a crash). */
  | "crashed";

/** Signal numbers on Linux, by name, for the ones we report. */
const SIGNALS: Record<number, string> = {
  1: "SIGHUP",
  2: "SIGINT",
  4: "SIGILL",
  5: "SIGTRAP",
  6: "SIGABRT",
  7: "SIGBUS",
  8: "SIGFPE",
  9: "SIGKILL",
  11: "SIGSEGV",
  13: "SIGPIPE",
  15: "SIGTERM",
  24: "SIGXCPU",
  25: "SIGXFSZ",
  31: "SIGSYS",
};

/** What the harness knows when a sandbox process has ended. */
export interface ExitFacts {
  /** Exit code of bwrap (the program's, or 128 + signal). */
  code: number;
  /** Whether (and why) the harness itself killed the sandbox first. */
  killedFor: "timeout" | "output-limit" | "disk-limit" | "killed" | null;
}

/**
 * Classifies the end of a run.
 *
 * @param facts Exit status and any kill the harness made.
 * @returns The reason and, for signal deaths, the signal's name.
 *
 * @example Usage
 * ```ts
 * import { classifyExit } from "./exit_reason.ts";
 * console.log(classifyExit({ code: 152, killedFor: null })); // cpu
 * ```
 */
export function classifyExit(
  facts: ExitFacts,
): { reason: ExitReason; signal: string | null } {
  const signalNumber = facts.code > 128 && facts.code < 160
    ? facts.code - 128
    : null;
  const signal = signalNumber === null
    ? null
    : SIGNALS[signalNumber] ?? `SIG${signalNumber}`;
  if (facts.killedFor) return { reason: facts.killedFor, signal: "SIGKILL" };
  switch (signal) {
    case null:
      return { reason: "exit", signal: null };
    case "SIGTRAP": // V8's fatal out-of-memory handler traps.
      return { reason: "oom", signal };
    case "SIGXCPU":
      return { reason: "cpu", signal };
    case "SIGXFSZ":
      return { reason: "file-size", signal };
    case "SIGKILL": // CPU hard limit, or the kernel's OOM killer.
      return { reason: "killed", signal };
    default:
      return { reason: "crashed", signal };
  }
}
