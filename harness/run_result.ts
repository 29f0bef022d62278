/**
 * What a sandboxed run hands back.
 *
 * @module
 */

import type { ExitReason } from "../runtime/exit_reason.ts";
import type { EgressEvent } from "../injector/audit.ts";
import type { ResourceLimits } from "../runtime/limits.ts";

export type { ExitReason };

/** One entry of a run's audit trail: an egress request, or another record. */
export type AuditEvent = EgressEvent | OtherAuditEvent;

export type { EgressEvent };

/** An audit record from the permission broker or the harness. */
export interface OtherAuditEvent {
  /** ISO time of the event. */
  time: string;
  /** Which part recorded it. */
  source: "broker" | "harness";
  /** What kind of event. */
  kind: string;
  /** Event fields (never a secret value). */
  [field: string]: unknown;
}

/** How a run ended, without its output. */
export interface RunStatus {
  /** The sandbox the run belonged to. */
  sandboxId: string;
  /** This run. */
  runId: string;
  /** The program's exit code, or 128 + signal number. */
  exitCode: number;
  /** The signal that ended it, e.g. "SIGKILL", or null. */
  signal: string | null;
  /** Why it ended. */
  reason: ExitReason;
  /** `reason === "exit" && exitCode === 0`. */
  success: boolean;
  /** Whether stdout or stderr was cut at the output cap. */
  truncated: boolean;
  /** Wall-clock duration from launch to exit. */
  durationMs: number;
  /** ISO time the run started. */
  startedAt: string;
  /** The limits the run had. */
  limits: ResourceLimits;
  /** Audit trail of the run, in time order. */
  audit: AuditEvent[];
}

/** A finished run with its output. */
export interface RunResult extends RunStatus {
  /** stdout decoded as UTF-8 (invalid sequences replaced). */
  stdout: string;
  /** stderr decoded as UTF-8 (invalid sequences replaced). */
  stderr: string;
  /** stdout exactly as written. */
  stdoutBytes: Uint8Array;
  /** stderr exactly as written. */
  stderrBytes: Uint8Array;
}

/**
 * A JSON-friendly copy of a result (drops the byte arrays).
 *
 * @param result A run result.
 * @returns The same fields without `stdoutBytes`/`stderrBytes`.
 *
 * @example Usage
 * ```ts ignore
 * import { runResultToJson } from "./run_result.ts";
 * console.log(JSON.stringify(runResultToJson(result)));
 * ```
 */
export function runResultToJson(
  result: RunResult,
): Omit<RunResult, "stdoutBytes" | "stderrBytes"> {
  const { stdoutBytes: _o, stderrBytes: _e, ...rest } = result;
  return rest;
}
