/**
 * The vocabulary of the flag audit: how bad a finding is (and the order of
 * severities), what a finding holds, and the grants and denies a command
 * line is made of. Every other module of `audit/flags/` speaks these types.
 *
 * @module
 */

import type { PermissionKind } from "../../harness/run_result.ts";

/**
 * A Deno permission kind: the same eight kinds the harness's permission
 * broker is asked about, each of which takes a list (`--allow-read=a,b`).
 */
export type { PermissionKind };

/** How bad a grant is, from `info` (nothing to fix) to `critical`. */
export type Severity = "critical" | "high" | "medium" | "low" | "info";

/**
 * Severities from least to most severe: a severity's index is its rank.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { SEVERITIES } from "./mod.ts";
 * assert.ok(SEVERITIES.indexOf("critical") > SEVERITIES.indexOf("high"));
 * ```
 */
export const SEVERITIES: readonly Severity[] = [
  "info",
  "low",
  "medium",
  "high",
  "critical",
];

/**
 * What a finding is about, stable across releases so CI can filter on it:
 * `allow-<kind>` for a granting flag (`allow-all` for `-A`, `allow-net`,
 * `allow-read`...), `deno-eval` for `deno eval`, `remote-unpinned` for a
 * script fetched at run time without a version pin or lockfile entry,
 * `no-prompt` for a missing `--no-prompt`, `permission-set-missing` for a
 * `-P` set the audit did not find, `bad-flag` for a flag Deno rejects.
 */
export type FindingId =
  | `allow-${PermissionKind | "all" | "hrtime" | "scripts"}`
  | "deno-eval"
  | "remote-unpinned"
  | "no-prompt"
  | "permission-set-missing"
  | "bad-flag";

/** One risky grant (or missing safeguard) at one place in the project. */
export interface Finding {
  /** What the finding is about (see {@linkcode FindingId}). */
  id: FindingId;
  /** The file, relative to the audited directory (or `relativeTo`). */
  file: string;
  /** 1-based line of the command (the task's key in deno.json). */
  line: number;
  /** The deno command as written, from `deno` on. */
  command: string;
  /** The flag this is about, as written (`-A`, `--allow-read=~/.ssh`). */
  flag: string;
  /** How bad it is. */
  severity: Severity;
  /** One line: what the grant lets the program do. */
  message: string;
  /** One line: the fix, as the project's own command where it can be derived. */
  suggestion: string;
}

/** One granting flag; `values` null means "everything of this kind". */
export interface Grant {
  /** The permission, or `all` (-A), `hrtime`, `scripts` (npm lifecycle). */
  kind: PermissionKind | "all" | "hrtime" | "scripts";
  /** The list, or null for all. */
  values: string[] | null;
  /** The flag as written. */
  flag: string;
  /** Index of its word in the parsed words (absent for a `-P` set's grants). */
  at?: number;
  /** For a short flag in a cluster (`-RN`): its characters in that word. */
  span?: [number, number];
}

/** One `--deny-*` flag; `values` null denies the whole kind. */
export interface Deny {
  /** The permission denied. */
  kind: PermissionKind;
  /** The list, or null for all. */
  values: string[] | null;
  /** The flag as written. */
  flag: string;
}

/**
 * The permission kinds that take a list, in the order `deno run --help`
 * lists them.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { LIST_KINDS } from "./model.ts";
 * assert.ok(LIST_KINDS.includes("net"));
 * ```
 */
export const LIST_KINDS: readonly PermissionKind[] = [
  "read",
  "write",
  "net",
  "env",
  "sys",
  "run",
  "ffi",
  "import",
];

/**
 * Sorts findings most severe first, then by file and line.
 *
 * @param findings The findings.
 * @returns A sorted copy.
 *
 * @example Usage
 * ```ts
 * import { sortFindings } from "./mod.ts";
 * const f = { id: "allow-all", file: "a", line: 1, command: "", flag: "", message: "", suggestion: "" } as const;
 * console.log(sortFindings([{ ...f, severity: "low" }, { ...f, severity: "critical" }]).map((x) => x.severity));
 * // [ "critical", "low" ]
 * ```
 */
export function sortFindings(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) =>
    SEVERITIES.indexOf(b.severity) - SEVERITIES.indexOf(a.severity) ||
    a.file.localeCompare(b.file) || a.line - b.line
  );
}

/**
 * Whether `severity` is at or above `threshold`.
 *
 * @param severity A finding's severity.
 * @param threshold The bar.
 * @returns True when it reaches the bar.
 *
 * @example Usage
 * ```ts
 * import { atOrAbove } from "./mod.ts";
 * console.log(atOrAbove("critical", "high"), atOrAbove("low", "high")); // true false
 * ```
 */
export function atOrAbove(severity: Severity, threshold: Severity): boolean {
  return SEVERITIES.indexOf(severity) >= SEVERITIES.indexOf(threshold);
}
