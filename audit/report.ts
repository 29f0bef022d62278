/**
 * The permission audit of one run: what the program tried (grouped by kind),
 * what was refused and why, the minimal Deno flags that would let the same
 * run pass under plain `deno run`, and the matching airlock policy snippet.
 * Built from a `RunResult`'s audit trail; rendered by
 * `render_text.ts` and `render_html.ts`.
 *
 * @module
 */

import type { EgressEvent } from "../injector/audit.ts";
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
  EgressEvent,
  OtherAuditEvent,
  PermissionEvent,
  PermissionKind,
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
  run: { exitCode: number; reason: string; durationMs: number };
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
  /** The minimal flags for plain `deno run` (e.g. `--allow-net=api.github.com:443`). */
  minimalFlags: string[];
  /** A complete `deno run …` command line with those flags (every part
   * shell-quoted). */
  denoCommand: string;
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
 * assert.deepEqual(report.minimalFlags, ["--allow-read=/work/a.txt"]);
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
      const existing = egressSeen.get(key);
      if (existing) {
        existing.count++;
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
  const minimalFlags = flagsFor(entries);
  return {
    program: options.program,
    generatedAt: new Date().toISOString(),
    learn: options.learn,
    run: {
      exitCode: result.exitCode,
      reason: result.reason,
      durationMs: result.durationMs,
    },
    events,
    entries,
    summary,
    ...(unrecorded.length > 0 ? { unrecorded } : {}),
    minimalFlags,
    // Every part quoted: values come from the program (a path it chose could
    // carry shell syntax into a command people paste).
    denoCommand: [
      "deno",
      "run",
      ...minimalFlags.map(quote),
      quote(options.program),
    ]
      .join(" "),
    policySnippet: policyFor(entries),
    flagNotes:
      minimalFlags.length > 0 && entries.some((e) => e.decision === "deny")
        ? [
          "These flags grant everything the program tried, denied attempts included: drop what it should not have.",
        ]
        : [],
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

/** Collapse many paths under one directory into the directory. */
const COLLAPSE_AT = 8;

function flagsFor(entries: readonly ReportEntry[]): string[] {
  const wanted = (kind: ReportKind, map: (e: ReportEntry) => string | null) => {
    const values = entries.filter((e) => e.kind === kind).map(map)
      .filter((v): v is string => v !== null && v !== "(any)");
    return [...new Set(values)];
  };
  const flags: string[] = [];
  const add = (flag: string, values: string[], bare: boolean) => {
    if (values.length > 0) flags.push(`--allow-${flag}=${values.join(",")}`);
    else if (bare) flags.push(`--allow-${flag}`);
  };
  const anyOf = (kind: ReportKind) =>
    entries.some((e) => e.kind === kind && e.value === "(any)");
  add("read", collapse(wanted("read", (e) => e.hostValue ?? e.value)), false);
  add("write", collapse(wanted("write", (e) => e.hostValue ?? e.value)), false);
  const net = new Set([
    ...wanted("net", (e) => e.value),
    ...wanted("egress", (e) => e.value),
  ]);
  // The proxy itself is an artefact of the sandbox, not something to grant.
  net.delete("127.0.0.1:3128");
  add("net", [...net], false);
  add("env", wanted("env", (e) => e.value), anyOf("env"));
  add("run", wanted("run", (e) => e.value), false);
  add("sys", wanted("sys", (e) => e.value), anyOf("sys"));
  add("ffi", wanted("ffi", (e) => e.hostValue ?? e.value), false);
  add("import", wanted("import", (e) => e.value), false);
  return flags;
}

function collapse(paths: string[]): string[] {
  const byDir = new Map<string, string[]>();
  for (const path of paths) {
    const dir = path.includes("/")
      ? path.slice(0, path.lastIndexOf("/")) || "/"
      : ".";
    byDir.set(dir, [...(byDir.get(dir) ?? []), path]);
  }
  return [...byDir.entries()].flatMap(([dir, list]) =>
    list.length >= COLLAPSE_AT ? [dir] : list
  );
}

function policyFor(entries: readonly ReportEntry[]): Record<string, unknown> {
  const hosts = new Set<string>();
  for (const e of entries) {
    if (
      (e.kind === "net" || e.kind === "egress") && e.value !== "(any)" &&
      e.value !== "127.0.0.1:3128"
    ) {
      const [host, port] = splitHostPort(e.value);
      hosts.add(port === "443" || port === "80" ? host : `${host}:${port}`);
    }
  }
  const inputs = new Set<string>();
  for (const e of entries) {
    if (e.kind === "read" && e.hostValue && !e.value.startsWith("/scratch")) {
      inputs.add(e.hostValue);
    }
  }
  const snippet: Record<string, unknown> = {};
  if (hosts.size > 0) snippet.network = { allow: [...hosts] };
  if (inputs.size > 0) snippet.inputs = collapse([...inputs]);
  if (entries.some((e) => e.kind === "write")) snippet.scratch = true;
  return snippet;
}

function splitHostPort(value: string): [string, string] {
  const at = value.lastIndexOf(":");
  return at === -1 ? [value, "443"] : [value.slice(0, at), value.slice(at + 1)];
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
