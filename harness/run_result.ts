/**
 * What a sandboxed run hands back.
 *
 * @module
 */

import type { ExitReason } from "../runtime/exit_reason.ts";
import type { EgressEvent } from "../injector/audit.ts";
import type { ResourceLimits } from "../runtime/limits.ts";

export type { ExitReason };

/** One entry of a run's audit trail: an egress request, a permission check
 * (aggregated), a count of attempts past the run's audit bound, or another
 * record. */
export type AuditEvent =
  | EgressEvent
  | PermissionEvent
  | AuditOverflowEvent
  | OtherAuditEvent;

/** The Deno permission kinds the broker is asked about. */
export type PermissionKind =
  | "read"
  | "write"
  | "net"
  | "env"
  | "run"
  | "sys"
  | "ffi"
  | "import";

/**
 * Every permission check Deno made for one (kind, value, decision), with how
 * often and when. Recorded by the harness's permission broker.
 */
export interface PermissionEvent {
  /** ISO time of the first such check. */
  time: string;
  /** Always "broker". */
  source: "broker";
  /** Always "permission". */
  kind: "permission";
  /** The sandbox. */
  sandboxId: string;
  /** The run. */
  runId: string;
  /** What Deno asked for. */
  permission: PermissionKind;
  /**
   * The path, `host:port`, variable or command; null for "any". At most
   * 1,024 characters: a longer value is cut (see `valueLength`).
   */
  value: string | null;
  /** The value's length in characters, when `value` holds only its start. */
  valueLength?: number;
  /** The broker's answer. */
  decision: "allow" | "deny";
  /** Why (what the program sees in a NotCapable error when denied). */
  reason: string;
  /** How many identical checks were made. */
  count: number;
  /** ISO time of the first check. */
  firstTime: string;
  /** ISO time of the last check. */
  lastTime: string;
}

export type { EgressEvent };

/**
 * "And N more like this": attempts of one kind and decision that a run did
 * not record one by one, because its audit had reached its bound (records
 * or bytes kept per run). Counted, never dropped silently; one per kind and
 * decision, updated in place while the run lasts.
 */
export interface AuditOverflowEvent {
  /** ISO time of the first such attempt. */
  time: string;
  /** Always "harness". */
  source: "harness";
  /** Always "audit-overflow". */
  kind: "audit-overflow";
  /** The sandbox. */
  sandboxId: string;
  /** The run. */
  runId: string;
  /** What was attempted: a permission kind, or "egress" for requests. */
  of: PermissionKind | "egress";
  /** For egress: the injector's event kind (`secret-echo` stays apart). */
  egressKind?: EgressEvent["kind"];
  /** The decision they had (a permission's, or the injector's). */
  decision: "allow" | "deny" | "respond" | "error";
  /** How many attempts were counted here instead of recorded. */
  count: number;
  /** ISO time of the first. */
  firstTime: string;
  /** ISO time of the last. */
  lastTime: string;
  /** Why they were not recorded one by one. */
  reason: string;
  /**
   * The latest such attempt's value (path, name, `host:port`; at most 1,024
   * characters): a flood cannot hide what came after it entirely.
   */
  lastValue?: string;
}

/** An audit record from the harness itself. */
export interface OtherAuditEvent {
  /** ISO time of the event. */
  time: string;
  /** Which part recorded it. */
  source: "harness";
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
 * ```ts
 * import assert from "node:assert/strict";
 * import { run } from "./sandbox.ts";
 * import { runResultToJson } from "./run_result.ts";
 * const json = runResultToJson(await run("console.log('hi')"));
 * assert.equal(json.stdout, "hi\n");
 * assert.ok(!("stdoutBytes" in json));
 * ```
 */
export function runResultToJson(
  result: RunResult,
): Omit<RunResult, "stdoutBytes" | "stderrBytes"> {
  const { stdoutBytes: _o, stderrBytes: _e, ...rest } = result;
  return rest;
}
