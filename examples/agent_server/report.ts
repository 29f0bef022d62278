/**
 * What the `run_code` tool answers: a run's outcome as JSON for a model,
 * with output bounded and the audit trail cut down to what a model (or a
 * reviewer) needs: every network request with its decision, and every
 * permission Deno refused.
 *
 * @module
 */

import type { AuditEvent, RunResult } from "../../mod.ts";

/** One network request the injector decided on. */
export interface EgressSummary {
  /**
   * `request`; `connect` for a tunnel refused before any request;
   * `websocket`; `secret-echo` when the response echoed an injected secret
   * and airlock redacted it.
   */
  kind: string;
  /** HTTP method (CONNECT for a tunnel refused before any request). */
  method: string;
  /** `scheme://host[:port]/path`, query values redacted by airlock. */
  url: string;
  /** allow, deny, respond (answered by a policy rule) or error. */
  decision: string;
  /** Status the program got, when there was one. */
  status: number | null;
  /** Names of headers the injector set (never values). */
  injected: string[];
  /** Why, for refusals and errors. */
  reason?: string;
}

/** One permission Deno refused (aggregated by what was asked). */
export interface DenialSummary {
  /** read, write, net, env, run, sys, ffi or import. */
  permission: string;
  /** The path, host:port or variable asked for. */
  value: string | null;
  /** What the program was told. */
  reason: string;
  /** How many times. */
  count: number;
}

/** The audit trail of one run, summarised. */
export interface AuditSummary {
  /** Network requests, in order. */
  egress: EgressSummary[];
  /** Refused permissions, in order. */
  denied: DenialSummary[];
  /** Entries left out beyond the limit. */
  omitted: number;
}

/** The `run_code` tool's answer. */
export interface RunCodeReport {
  /** The conversation the run belonged to. */
  conversationId: string;
  /** Its sandbox. */
  sandboxId: string;
  /** This run. */
  runId: string;
  /** The program's exit code (or 128 + signal). */
  exitCode: number;
  /** exit, timeout, oom, cpu, file-size, disk-limit, output-limit, killed or crashed. */
  reason: string;
  /** Exited by itself with code 0. */
  success: boolean;
  /** Wall-clock duration. */
  durationMs: number;
  /** stdout, at most `maxChars` characters. */
  stdout: string;
  /** stderr, at most `maxChars` characters. */
  stderr: string;
  /** Whether output was cut (by the sandbox's output cap or here). */
  truncated: boolean;
  /** What the run tried beyond its own memory. */
  audit: AuditSummary;
}

/**
 * Builds the tool's answer for one run.
 *
 * @param conversationId The conversation.
 * @param result The run's result.
 * @param maxChars Characters kept of stdout and of stderr each.
 * @param maxAuditEntries Audit entries kept.
 * @returns The JSON-ready report.
 */
export function reportRun(
  conversationId: string,
  result: RunResult,
  maxChars: number,
  maxAuditEntries = 50,
): RunCodeReport {
  const stdout = clip(result.stdout, maxChars);
  const stderr = clip(result.stderr, maxChars);
  return {
    conversationId,
    sandboxId: result.sandboxId,
    runId: result.runId,
    exitCode: result.exitCode,
    reason: result.reason,
    success: result.success,
    durationMs: result.durationMs,
    stdout: stdout.text,
    stderr: stderr.text,
    truncated: result.truncated || stdout.clipped || stderr.clipped,
    audit: summarizeAudit(result.audit, maxAuditEntries),
  };
}

/**
 * Keeps egress events and refused permissions (allowed reads and writes of
 * the program's own files are noise to a model), at most `max` in all.
 *
 * @param events A run's audit trail.
 * @param max Most entries kept.
 * @returns The summary.
 */
export function summarizeAudit(
  events: readonly AuditEvent[],
  max: number,
): AuditSummary {
  const summary: AuditSummary = { egress: [], denied: [], omitted: 0 };
  for (const event of events) {
    const kept = summary.egress.length + summary.denied.length;
    if (event.source === "injector") {
      // A tunnel that was allowed is followed by its requests: skip it.
      if (event.kind === "connect" && event.decision === "allow") continue;
      if (kept >= max) {
        summary.omitted++;
        continue;
      }
      const defaultPort = event.scheme === "https" || event.scheme === "wss"
        ? 443
        : 80;
      const port = event.port === defaultPort ? "" : `:${event.port}`;
      summary.egress.push({
        kind: event.kind,
        method: event.method,
        url: `${event.scheme}://${event.host}${port}${
          event.kind === "connect" ? "" : event.path
        }`,
        decision: event.decision,
        status: event.status,
        injected: event.injected,
        ...(event.reason ? { reason: event.reason } : {}),
      });
    } else if (event.source === "broker" && event.decision === "deny") {
      if (kept >= max) {
        summary.omitted++;
        continue;
      }
      summary.denied.push({
        permission: event.permission,
        value: event.value,
        reason: event.reason,
        count: event.count,
      });
    }
  }
  return summary;
}

function clip(text: string, max: number): { text: string; clipped: boolean } {
  if (text.length <= max) return { text, clipped: false };
  return {
    text: `${text.slice(0, max)}\n[... ${text.length - max} more characters]`,
    clipped: true,
  };
}
