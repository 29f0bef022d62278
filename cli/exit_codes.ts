/**
 * Exit codes of `deno task run` (and the other airlock commands). When the
 * program exits by itself, its own code passes through; the codes below mean
 * airlock stopped it or could not start it. `--json` always gives the exact
 * `reason` and `exitCode`.
 *
 * @module
 */

import type { ExitReason } from "../runtime/exit_reason.ts";

/** Exit codes of airlock's commands, by meaning. */
export const EXIT_CODES = {
  /** The run was stopped at the JS heap or data limit. */
  oom: 117,
  /** The run was stopped at the CPU-time limit. */
  cpu: 118,
  /** A file outgrew the file-size limit. */
  fileSize: 119,
  /** The scratch directory outgrew its quota. */
  diskLimit: 120,
  /** stdout or stderr passed the output cap. */
  outputLimit: 121,
  /** Killed on request (Ctrl-C, abort). */
  killed: 122,
  /** The program crashed on a signal. */
  crashed: 123,
  /** The wall-clock limit ran out (as `timeout(1)`). */
  timeout: 124,
  /** Bad command line, or invalid policy or input. */
  usage: 125,
  /** The sandbox could not be set up (bwrap missing, namespaces refused). */
  setup: 126,
  /** The program was refused before running (syntax error, unavailable import). */
  bundle: 127,
} as const;

/**
 * The CLI exit code for a run that ended for `reason`.
 *
 * @param reason Why the run ended.
 * @param exitCode The program's own code.
 * @returns The code the CLI exits with.
 *
 * @example Usage
 * ```ts
 * import { exitCodeFor } from "./exit_codes.ts";
 * console.log(exitCodeFor("timeout", 137)); // 124
 * ```
 */
export function exitCodeFor(reason: ExitReason, exitCode: number): number {
  switch (reason) {
    case "exit":
      return exitCode;
    case "timeout":
      return EXIT_CODES.timeout;
    case "oom":
      return EXIT_CODES.oom;
    case "cpu":
      return EXIT_CODES.cpu;
    case "file-size":
      return EXIT_CODES.fileSize;
    case "disk-limit":
      return EXIT_CODES.diskLimit;
    case "output-limit":
      return EXIT_CODES.outputLimit;
    case "killed":
      return EXIT_CODES.killed;
    case "crashed":
      return EXIT_CODES.crashed;
  }
}
