/**
 * The permission audit of one run: how the run ended (and whether the
 * report is therefore partial), what the program tried (grouped by kind),
 * each request with the headers the injector added, the program's output
 * (bounded), what was refused and why, the minimal Deno flags that let the
 * same run pass under plain `deno run` (`proposal.ts`: never a refused or
 * sensitive target), and the matching airlock policy snippet. Built from a
 * `RunResult`; rendered by `render_text.ts` and `render_html.ts`.
 *
 * @module
 */

import type { EgressEvent } from "../injector/audit.ts";
import { type Callout, propose, type RefusedTarget } from "./proposal.ts";
import {
  type BoundedOutput,
  boundOutput,
  type MirrorInfo,
  mirrorInfo,
  OUTPUT_CHARS,
  type RunOutcome,
  runOutcome,
} from "./outcome.ts";
import type { PolicyInForce, SnippetRule } from "./policy_snippet.ts";
import type {
  AuditEvent,
  AuditOverflowEvent,
  OtherAuditEvent,
  PermissionEvent,
  PermissionKind,
} from "../harness/run_result.ts";

export type {
  AuditEvent,
  AuditOverflowEvent,
  BoundedOutput,
  Callout,
  EgressEvent,
  MirrorInfo,
  OtherAuditEvent,
  PermissionEvent,
  PermissionKind,
  PolicyInForce,
  RefusedTarget,
  RunOutcome,
  SnippetRule,
};

/** Kinds shown in a report: Deno's permission kinds plus egress requests. */
export type ReportKind = PermissionKind | "egress";

/**
 * Every kind, in the order reports show them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { REPORT_KINDS } from "./report.ts";
 * assert.equal(REPORT_KINDS.at(-1), "egress");
 * ```
 */
export const REPORT_KINDS: readonly ReportKind[] = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
  "egress",
];

/** One row of the report: a distinct thing the program tried. */
export interface ReportEntry {
  /** What kind of access. */
  kind: ReportKind;
  /** The path, host:port, variable, command (sandbox terms), or "(any)". */
  value: string;
  /** The host-side equivalent of `value`, when it maps (inputs, mirror). */
  hostValue: string | null;
  /** Allowed or denied. */
  decision: "allow" | "deny";
  /** Why. */
  reason: string;
  /** How many times. */
  count: number;
  /** First time seen. */
  time: string;
  /** Egress entries: the header names the injector added (never values). */
  injected?: string[];
}

/** Everything a report shows. */
export interface AuditReport {
  /** The program audited (file name, or "-"). */
  program: string;
  /** When the report was made. */
  generatedAt: string;
  /** Whether this was a learn-mode run (allow-and-record). */
  learn: boolean;
  /** How the run ended. */
  run: RunOutcome;
  /** The program's output, bounded (absent when not given). */
  output?: { stdout: BoundedOutput; stderr: BoundedOutput };
  /** Learn mode: the writable copy of the user's directory. */
  mirror?: MirrorInfo;
  /** The run's audit trail, in time order. */
  events: AuditEvent[];
  /** Distinct attempts, in time order. */
  entries: ReportEntry[];
  /** Allowed/denied counts per kind (unrecorded attempts included). */
  summary: Partial<Record<ReportKind, { allowed: number; denied: number }>>;
  /**
   * Attempts past the run's audit bound, counted per kind and decision but
   * not recorded one by one (so not in `entries`): "and N more like this".
   */
  unrecorded?: {
    kind: ReportKind;
    decision: "allow" | "deny";
    count: number;
    /** The latest such attempt's value, when known. */
    lastValue?: string;
  }[];
  /**
   * The minimal flags for plain `deno run` (e.g.
   * `--allow-net=api.github.com:443`): what the run used, never a refused
   * or sensitive target (those are in `refused`).
   */
  minimalFlags: string[];
  /** A complete `deno run …` command line with those flags (every part
   * shell-quoted). */
  denoCommand: string;
  /** The directory to run `denoCommand` from (relative flags start there). */
  workingDirectory: string;
  /** Refused, not granted: targets the proposal leaves out, and why. */
  refused: RefusedTarget[];
  /** Proposed grants that need a second look. */
  callouts: Callout[];
  /** What a reader of the flags must know before using them. */
  flagNotes: string[];
  /** An airlock policy granting the same (JSON-compatible). */
  policySnippet: Record<string, unknown>;
}

/** How sandbox paths map back to the host (inputs, scratch, learn mirror). */
export interface PathMapping {
  /** Sandbox path prefix. */
  sandbox: string;
  /** Host path prefix it comes from. */
  host: string;
}

/** Options for {@linkcode buildAuditReport}. */
export interface ReportOptions {
  /** The program's name for the report and the deno command. */
  program: string;
  /** Learn mode? */
  learn: boolean;
  /** Sandbox-to-host path mappings. */
  paths: readonly PathMapping[];
  /** Host directory paths are shown relative to (default: cwd). */
  relativeTo?: string;
  /** The policy in force (an airlock `Policy`): its rules, injections
   * included, go into the snippet. */
  policy?: PolicyInForce;
  /** Characters kept of each output stream (default 8,192). */
  outputChars?: number;
}

/**
 * The parts of a finished run a report is built from: every `RunResult`
 * (harness/run_result.ts) is one.
 */
export interface ReportedRun {
  /** The run's audit trail (any order: the report sorts it by time). */
  audit: readonly AuditEvent[];
  /** The program's exit code, or 128 + signal number. */
  exitCode: number;
  /** Why the run ended (a `RunResult`'s `ExitReason`). */
  reason: string;
  /** Wall-clock duration from launch to exit. */
  durationMs: number;
  /** The program's stdout, when the report should show it. */
  stdout?: string;
  /** The program's stderr, when the report should show it. */
  stderr?: string;
}

/**
 * Builds the report of a finished run.
 *
 * @param result The run (its `audit` trail is the input).
 * @param options Program name, mode and path mappings.
 * @returns The report.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { buildAuditReport } from "./report.ts";
 * const report = buildAuditReport({
 *   exitCode: 1,
 *   reason: "exit",
 *   durationMs: 40,
 *   audit: [{
 *     time: "2026-01-01T00:00:00.000Z", source: "broker", kind: "permission",
 *     sandboxId: "s", runId: "r", permission: "read", value: "/work/a.txt",
 *     decision: "deny", reason: "not granted", count: 1,
 *     firstTime: "2026-01-01T00:00:00.000Z", lastTime: "2026-01-01T00:00:00.000Z",
 *   }],
 * }, { program: "agent.ts", learn: false, paths: [] });
 * // Refused in an enforcing run: never proposed, listed instead.
 * assert.deepEqual(report.minimalFlags, []);
 * assert.equal(report.refused[0]?.value, "/work/a.txt");
 * assert.equal(report.run.completed, false);
 * ```
 */
export function buildAuditReport(
  result: ReportedRun,
  options: ReportOptions,
): AuditReport {
  const events = [...result.audit].sort((a, b) => a.time.localeCompare(b.time));
  const relativeTo = options.relativeTo ?? Deno.cwd();
  const entries: ReportEntry[] = [];
  const egressSeen = new Map<string, ReportEntry>();
  const unrecorded: NonNullable<AuditReport["unrecorded"]> = [];
  let mirror: MirrorInfo | undefined;
  for (const event of events) {
    if (event.source === "harness" && event.kind === "audit-overflow") {
      const over = event as AuditOverflowEvent;
      unrecorded.push({
        kind: over.of,
        decision: over.decision === "deny" || over.decision === "error"
          ? "deny"
          : "allow",
        count: over.count,
        ...(over.lastValue !== undefined ? { lastValue: over.lastValue } : {}),
      });
    } else if (event.source === "harness" && event.kind === "learn-mirror") {
      mirror = mirrorInfo(event);
    } else if (event.source === "broker") {
      const value = event.value ?? "(any)";
      entries.push({
        kind: event.permission,
        value,
        hostValue: isPathKind(event.permission)
          ? toHost(value, options.paths, relativeTo)
          : null,
        decision: event.decision,
        reason: event.reason,
        count: event.count,
        time: event.time,
      });
    } else if (
      event.source === "injector" && event.kind !== "secret-echo" &&
      // An allowed tunnel is represented by the requests made inside it.
      !(event.kind === "connect" && event.decision === "allow")
    ) {
      // Requests inside a tunnel repeat its host: one entry per host:port
      // and decision, counting requests.
      const value = `${event.host}:${event.port}`;
      const decision = event.decision === "deny" || event.decision === "error"
        ? "deny"
        : "allow";
      const key = `${value}\0${decision}`;
      const injected = event.injected ?? [];
      const existing = egressSeen.get(key);
      if (existing) {
        existing.count++;
        for (const name of injected) {
          if (!existing.injected!.includes(name)) existing.injected!.push(name);
        }
        continue;
      }
      const entry: ReportEntry = {
        kind: "egress",
        value,
        hostValue: null,
        decision,
        reason: event.reason ??
          `${event.method} ${event.scheme}://${value}${event.path} (${event.rule})`,
        count: 1,
        time: event.time,
        injected: [...injected],
      };
      egressSeen.set(key, entry);
      entries.push(entry);
    }
  }
  const summary: AuditReport["summary"] = {};
  for (const entry of [...entries, ...unrecorded]) {
    const slot = summary[entry.kind] ??= { allowed: 0, denied: 0 };
    if (entry.decision === "allow") slot.allowed += entry.count;
    else slot.denied += entry.count;
  }
  const proposal = propose(entries, {
    learn: options.learn,
    ...(options.policy ? { policy: options.policy } : {}),
  });
  const run = runOutcome(result, {
    learn: options.learn,
    spawned: entries.some((e) => e.kind === "run" && e.value !== "(any)"),
  });
  const flagNotes = [...proposal.notes];
  if (!run.completed) {
    flagNotes.unshift(
      "The run did not complete: these flags cover only what the program tried before it stopped.",
    );
  }
  if (proposal.refused.length > 0) {
    const n = proposal.refused.length;
    flagNotes.push(
      `${n} target${
        n === 1 ? " is" : "s are"
      } left out (see "Refused, not granted"): where the program tries one under these flags, Deno refuses it (NotCapable). Grant one by hand only if the program must have it.`,
    );
  }
  if (unrecorded.length > 0) {
    flagNotes.push(
      "Some attempts were counted but not recorded one by one (the run's audit bound): the flags cannot name them.",
    );
  }
  const chars = options.outputChars ?? OUTPUT_CHARS;
  return {
    program: options.program,
    generatedAt: new Date().toISOString(),
    learn: options.learn,
    run,
    ...(result.stdout !== undefined || result.stderr !== undefined
      ? {
        output: {
          stdout: boundOutput(result.stdout ?? "", chars),
          stderr: boundOutput(result.stderr ?? "", chars),
        },
      }
      : {}),
    ...(mirror ? { mirror } : {}),
    events,
    entries,
    summary,
    ...(unrecorded.length > 0 ? { unrecorded } : {}),
    minimalFlags: proposal.minimalFlags,
    // Every part quoted: values come from the program (a path it chose could
    // carry shell syntax into a command people paste).
    denoCommand: [
      "deno",
      "run",
      ...proposal.minimalFlags.map(quote),
      quote(options.program),
    ].join(" "),
    workingDirectory: relativeTo,
    refused: proposal.refused,
    callouts: proposal.callouts,
    policySnippet: proposal.policySnippet,
    flagNotes,
  };
}

function isPathKind(kind: string): boolean {
  return kind === "read" || kind === "write" || kind === "ffi";
}

function toHost(
  value: string,
  paths: readonly PathMapping[],
  relativeTo: string,
): string | null {
  if (!value.startsWith("/")) return value;
  const match = paths
    .filter((m) => value === m.sandbox || value.startsWith(`${m.sandbox}/`))
    .sort((a, b) => b.sandbox.length - a.sandbox.length)[0];
  if (!match) return null;
  const host = match.host + value.slice(match.sandbox.length);
  if (host === relativeTo) return ".";
  return host.startsWith(`${relativeTo}/`)
    ? `./${host.slice(relativeTo.length + 1)}`
    : host;
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg)
    ? arg
    : `'${arg.replaceAll("'", "'\\''")}'`;
}

/**
 * The egress events of a trail (helper for renderers).
 *
 * @param events A trail.
 * @returns Only the injector's events.
 *
 * @example Usage
 * ```ts
 * import { egressEvents } from "./report.ts";
 * console.log(egressEvents([]).length); // 0
 * ```
 */
export function egressEvents(events: readonly AuditEvent[]): EgressEvent[] {
  return events.filter((e): e is EgressEvent => e.source === "injector");
}

/**
 * The permission events of a trail (helper for renderers).
 *
 * @param events A trail.
 * @returns Only the broker's events.
 *
 * @example Usage
 * ```ts
 * import { permissionEvents } from "./report.ts";
 * console.log(permissionEvents([]).length); // 0
 * ```
 */
export function permissionEvents(
  events: readonly AuditEvent[],
): PermissionEvent[] {
  return events.filter((e): e is PermissionEvent => e.source === "broker");
}
