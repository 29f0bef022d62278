/**
 * Recorded runs (`--trail`): reads the JSON of `airlock audit --json
 * <program>` and turns the generic advice for a command that runs that
 * program into the exact flags the run used. What the run was refused, and
 * sensitive targets (keys, credentials, cron, cloud metadata), are never
 * proposed: a prompt injection's attempt stays out of the flags. A grant
 * the run needed that this audit rates risky stays in, named with why, so
 * the proposed command still runs.
 *
 * @module
 */

import { basename } from "node:path";
import { isRecord } from "./_json.ts";
import {
  type Grant,
  LIST_KINDS,
  type PermissionKind,
  SEVERITIES,
} from "./model.ts";
import { splitList } from "./parse.ts";
import { rateList } from "./rate.ts";
import { sensitiveEnv, sensitiveHost, sensitivePath } from "../sensitive.ts";

/**
 * The parts of an `AuditReport` (audit/report.ts) the flag audit
 * uses; every AuditReport is one (the tests hold that at compile time).
 */
export interface Trail {
  /** The program the run audited, as given to `airlock audit`. */
  program: string;
  /** A learn-mode run allows everything, so nothing in it was refused. */
  learn: boolean;
  /** The distinct attempts of the run. */
  entries: readonly TrailEntry[];
  /** The minimal `deno run` flags for the run (refused attempts included). */
  minimalFlags: readonly string[];
}

/** One distinct attempt of a recorded run (an AuditReport's `ReportEntry`). */
export interface TrailEntry {
  /** A permission kind, or "egress" for a request through the injector. */
  kind: string;
  /** Sandbox-side value: path, host:port, variable, command. */
  value: string;
  /** Host-side path, when it maps. */
  hostValue: string | null;
  /** The run's decision. */
  decision: "allow" | "deny";
}

/**
 * Checks that a parsed JSON value is an audit report (or an array of them),
 * as `airlock audit --json` prints.
 *
 * @param value The parsed JSON.
 * @param name The file name, for the error message.
 * @returns The reports.
 * @throws {TypeError} When it is not a report.
 *
 * @example Usage
 * ```ts
 * import { parseTrail } from "./mod.ts";
 * const [trail] = parseTrail({ program: "a.ts", learn: false, entries: [], minimalFlags: [] }, "t.json");
 * console.log(trail?.program); // "a.ts"
 * ```
 */
export function parseTrail(value: unknown, name: string): Trail[] {
  const reports = Array.isArray(value) ? value : [value];
  for (const report of reports) {
    const ok = isRecord(report) && typeof report.program === "string" &&
      Array.isArray(report.entries) && report.entries.every(isEntry) &&
      Array.isArray(report.minimalFlags) &&
      report.minimalFlags.every((f) => typeof f === "string");
    if (!ok) {
      throw new TypeError(
        `Cannot use '${name}' as a trail: expected the JSON of 'airlock audit --json <program>' (an object with 'program', 'entries' and 'minimalFlags')`,
      );
    }
  }
  return reports as Trail[];
}

function isEntry(entry: unknown): boolean {
  return isRecord(entry) && typeof entry.kind === "string" &&
    typeof entry.value === "string" &&
    (entry.hostValue === null || typeof entry.hostValue === "string") &&
    (entry.decision === "allow" || entry.decision === "deny");
}

/**
 * The recorded run of a command's script, matched by path (`./a.ts`,
 * `src/a.ts` and `a.ts` match each other) or else by file name.
 *
 * @param script The command's script, or null.
 * @param trails The recorded runs.
 * @returns The first matching run, or null.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { trailFor } from "./trail.ts";
 * const trail = { program: "agent.ts", learn: false, entries: [], minimalFlags: [] };
 * assert.equal(trailFor("./src/agent.ts", [trail]), trail);
 * assert.equal(trailFor("other.ts", [trail]), null);
 * ```
 */
export function trailFor(
  script: string | null,
  trails: readonly Trail[],
): Trail | null {
  if (script === null) return null;
  const norm = (p: string) => p.replace(/^\.\//, "");
  const s = norm(script);
  return trails.find((t) => {
    const p = norm(t.program);
    return p === s || s.endsWith(`/${p}`) || p.endsWith(`/${s}`) ||
      basename(p) === basename(s);
  }) ?? null;
}

/**
 * The flags a recorded run used, per kind: values the run was refused (in
 * an enforcing run) and sensitive targets (keys, credentials, cron, cloud
 * metadata: `../sensitive.ts`) are left out, so the proposal never grants
 * what a prompt injection went for. Other values this audit rates risky
 * stay in the flag, named with why: dropping a grant the run needed would
 * leave a command that fails.
 */
function observedFlags(
  trail: Trail,
): Map<PermissionKind, { flag: string; leftOut: string[]; risky: string[] }> {
  const out = new Map<
    PermissionKind,
    { flag: string; leftOut: string[]; risky: string[] }
  >();
  for (const flag of trail.minimalFlags) {
    const m = flag.match(/^--allow-([a-z]+)(?:=(.*))?$/);
    if (!m || !LIST_KINDS.includes(m[1] as PermissionKind)) continue;
    const kind = m[1] as PermissionKind;
    if (m[2] === undefined) {
      out.set(kind, { flag, leftOut: [], risky: [] });
      continue;
    }
    const keep: string[] = [];
    const leftOut: string[] = [];
    const risky: string[] = [];
    for (const value of splitList(m[2])) {
      const tried = trail.entries.filter((e) =>
        (e.kind === kind || (kind === "net" && e.kind === "egress")) &&
        [e.value, e.hostValue].some((v) =>
          v === value || v?.startsWith(`${value}/`)
        )
      );
      const refused = !trail.learn && tried.length > 0 &&
        tried.every((e) => e.decision === "deny");
      // A prompt injection's target stays out even when a learning run
      // (which allows everything) recorded it.
      if (refused || withheld(kind, value)) {
        leftOut.push(value);
        continue;
      }
      keep.push(value);
      const rating = ["read", "write", "net", "env"].includes(kind)
        ? rateList(kind, [value])
        : null;
      if (
        rating &&
        SEVERITIES.indexOf(rating.severity) >=
          SEVERITIES.indexOf(kind === "env" ? "medium" : "high")
      ) risky.push(`${value} (${rating.message})`);
    }
    out.set(kind, {
      flag: keep.length > 0 ? `--allow-${kind}=${keep.join(",")}` : "",
      leftOut,
      risky,
    });
  }
  return out;
}

/**
 * The exact flags a recorded run used, as the fix for one grant: values the
 * run was refused and values this audit rates risky are named but never
 * proposed.
 *
 * @param grant The granting flag being rated.
 * @param trail The recorded run of the command's script.
 * @returns The suggestion, or "" when the trail says nothing about that
 * kind of grant (`--allow-scripts`, `--allow-hrtime`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { trailSuggestion } from "./trail.ts";
 * const trail = {
 *   program: "agent.ts",
 *   learn: false,
 *   entries: [],
 *   minimalFlags: ["--allow-net=api.example.com:443"],
 * };
 * assert.equal(
 *   trailSuggestion({ kind: "all", values: null, flag: "-A" }, trail),
 *   "the recorded run of agent.ts needed only: --allow-net=api.example.com:443",
 * );
 * ```
 */
export function trailSuggestion(grant: Grant, trail: Trail): string {
  const observed = [...observedFlags(trail)];
  const run = `the recorded run of ${trail.program}`;
  const notProposed = (values: string[]) =>
    values.length > 0
      ? `; not proposed (refused in the run, or sensitive): ${
        values.join(", ")
      }`
      : "";
  const keptRisky = (values: string[]) =>
    values.length > 0
      ? `; kept though risky, as the run needed them (check each): ${
        values.join("; ")
      }`
      : "";
  const pick = grant.kind === "all"
    ? observed
    : observed.filter(([kind]) => kind === grant.kind);
  if (
    grant.kind !== "all" && !LIST_KINDS.includes(grant.kind as PermissionKind)
  ) {
    return "";
  }
  if (pick.length === 0) {
    return `${run} used no ${
      grant.kind === "all" ? "permission" : grant.kind
    }: delete ${grant.flag}`;
  }
  const flags = pick.map(([, o]) => o.flag).filter((f) => f !== "");
  const leftOut = pick.flatMap(([kind, o]) =>
    o.leftOut.map((v) => grant.kind === "all" ? `${kind} ${v}` : v)
  );
  const risky = pick.flatMap(([kind, o]) =>
    o.risky.map((v) => grant.kind === "all" ? `${kind} ${v}` : v)
  );
  return (flags.length > 0
    ? `${run} ${grant.kind === "all" ? "needed only" : "used"}: ${
      flags.join(" ")
    }`
    : `${run} needs no ${
      grant.kind === "all" ? "permission" : grant.kind
    } grant`) +
    notProposed(leftOut) + keptRisky(risky);
}

/** A sensitive target: never proposed, whatever the run recorded. */
function withheld(kind: PermissionKind, value: string): boolean {
  const sensitivity = kind === "read" || kind === "write"
    ? sensitivePath(value)
    : kind === "net"
    ? sensitiveHost(value)
    : kind === "env"
    ? sensitiveEnv(value)
    : null;
  return sensitivity?.action === "withhold";
}
