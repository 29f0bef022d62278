/**
 * A static audit of the Deno permissions a project grants: finds every
 * `deno run|serve|test|compile|install|bench|eval|repl` command (deno.json
 * tasks, package.json scripts, shebang lines, shell scripts, Makefiles, CI
 * YAML, Dockerfiles, Procfiles, Markdown code blocks), parses its permission
 * flags the way Deno 2.9 does, and rates each grant critical to info with a
 * one-line why and a narrower flag to use instead. A recorded run (an
 * `AuditReport` from `deno task audit --json`, see audit/report.ts) turns the advice into
 * the exact flags that run used.
 *
 * Why one file over the ~400-line guide: the task that added `audit:flags`
 * fixed the file set. The sections follow the pipeline (walk, extract,
 * tokenise, parse, rate, suggest); each is a candidate for a `_` file.
 *
 * Every flag rule below was checked against Deno 2.9.6 by experiment:
 * - a bare `--allow-read /etc x.ts` grants ALL reads and runs `/etc` as the
 *   script: lists need `=`;
 * - short flags combine (`-RN` is `-R -N`), and the rest of a cluster that
 *   is not a known flag is the value (`-R/tmp` is `--allow-read=/tmp`);
 * - flags after the script belong to the script (`deno run x.ts -A` grants
 *   nothing), except for `deno test` and `deno bench`;
 * - `deno eval` runs with every permission whatever the flags, `--deny-*`
 *   included;
 * - deny beats allow; `--allow-hrtime` is a no-op with a warning.
 *
 * @module
 */

import { basename, dirname, join, relative, resolve } from "node:path";

import {
  type Finding,
  type Grant,
  LIST_KINDS,
  type PermissionKind,
  SEVERITIES,
  sortFindings,
} from "./model.ts";

import { parseDenoCommand, splitList } from "./parse.ts";

import { isRecord } from "./_json.ts";
import { type CommandSite, findDenoCommands } from "./extract.ts";
import { rateGrant, rateList, type Rating } from "./rate.ts";
import {
  expandSet,
  type PermissionSets,
  permissionSetsOf,
} from "./permission_sets.ts";
export { atOrAbove, SEVERITIES, sortFindings } from "./model.ts";
export type {
  Deny,
  Finding,
  Grant,
  PermissionKind,
  Severity,
} from "./model.ts";
export { findDenoCommands } from "./extract.ts";
export type { CommandSite, Context } from "./extract.ts";
export { permissionSetsOf } from "./permission_sets.ts";
export type { PermissionSets } from "./permission_sets.ts";
export { parseDenoCommand } from "./parse.ts";
export type { ParsedDenoCommand, Subcommand } from "./parse.ts";

// ── Recorded runs (--trail) ─────────────────────────────────────────────

/**
 * The parts of an `AuditReport` (audit/report.ts) the flag audit
 * uses; every AuditReport is one (the tests hold that at compile time).
 */
export interface Trail {
  /** The program the run audited, as given to `deno task audit`. */
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
 * as `deno task audit --json` prints.
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
        `Cannot use '${name}' as a trail: expected the JSON of 'deno task audit --json <program>' (an object with 'program', 'entries' and 'minimalFlags')`,
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

function trailFor(
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
 * an enforcing run) and values this audit rates high are left out, so the
 * proposal never grants what a prompt injection went for.
 */
function observedFlags(
  trail: Trail,
): Map<PermissionKind, { flag: string; leftOut: string[] }> {
  const out = new Map<PermissionKind, { flag: string; leftOut: string[] }>();
  for (const flag of trail.minimalFlags) {
    const m = flag.match(/^--allow-([a-z]+)(?:=(.*))?$/);
    if (!m || !LIST_KINDS.includes(m[1] as PermissionKind)) continue;
    const kind = m[1] as PermissionKind;
    if (m[2] === undefined) {
      out.set(kind, { flag, leftOut: [] });
      continue;
    }
    const keep: string[] = [];
    const leftOut: string[] = [];
    for (const value of splitList(m[2])) {
      const tried = trail.entries.filter((e) =>
        (e.kind === kind || (kind === "net" && e.kind === "egress")) &&
        [e.value, e.hostValue].some((v) =>
          v === value || v?.startsWith(`${value}/`)
        )
      );
      const refused = !trail.learn && tried.length > 0 &&
        tried.every((e) => e.decision === "deny");
      const risky = ["read", "write", "net", "env"].includes(kind) &&
        SEVERITIES.indexOf(rateList(kind, [value]).severity) >=
          SEVERITIES.indexOf(kind === "env" ? "medium" : "high");
      if (refused || risky) leftOut.push(value);
      else keep.push(value);
    }
    if (keep.length > 0) {
      out.set(kind, { flag: `--allow-${kind}=${keep.join(",")}`, leftOut });
    } else out.set(kind, { flag: "", leftOut });
  }
  return out;
}

function trailSuggestion(grant: Grant, trail: Trail): string {
  const observed = [...observedFlags(trail)];
  const run = `the recorded run of ${trail.program}`;
  const notProposed = (values: string[]) =>
    values.length > 0
      ? `; not proposed (refused in the run, or risky): ${values.join(", ")}`
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
  return (flags.length > 0
    ? `${run} ${grant.kind === "all" ? "needed only" : "used"}: ${
      flags.join(" ")
    }`
    : `${run} needs no ${
      grant.kind === "all" ? "permission" : grant.kind
    } grant`) +
    notProposed(leftOut);
}

// ── Putting it together ─────────────────────────────────────────────────

/** Options for {@linkcode auditText}. */
export interface AuditTextOptions {
  /** Recorded runs to take exact flags from. */
  trails?: readonly Trail[];
  /** The permission sets `-P` refers to (default: the text's own, for a deno.json). */
  permissionSets?: PermissionSets | null;
}

/**
 * Audits one file's text.
 *
 * @param text The file's text.
 * @param path Its path as it should appear in findings (its name decides how
 * it is read).
 * @param options Trails and permission sets.
 * @returns The findings, in file order.
 *
 * @example Usage
 * ```ts
 * import { auditText } from "./mod.ts";
 * const [finding] = auditText('{ "tasks": { "dev": "deno run -A --no-prompt main.ts" } }', "deno.json");
 * console.log(finding?.severity, finding?.flag); // critical -A
 * ```
 */
export function auditText(
  text: string,
  path: string,
  options: AuditTextOptions = {},
): Finding[] {
  const sets = options.permissionSets !== undefined
    ? options.permissionSets
    : /^deno\.jsonc?$/.test(basename(path))
    ? permissionSetsOf(text)
    : null;
  return findDenoCommands(text, path).flatMap((site) =>
    rateSite(site, path, sets, options.trails ?? [])
  );
}

function rateSite(
  site: CommandSite,
  file: string,
  sets: PermissionSets | null,
  trails: readonly Trail[],
): Finding[] {
  const parsed = parseDenoCommand(site.words.slice(1));
  if (!parsed) return [];
  const command = site.words.map(quoteWord).join(" ");
  const findings: Finding[] = [];
  const add = (flag: string, rated: Rating) =>
    findings.push({ file, line: site.line, command, flag, ...rated });
  if (parsed.subcommand === "eval") {
    add("deno eval", {
      severity: "critical",
      message:
        "deno eval runs with every permission, whatever its flags (--deny-* included)",
      suggestion:
        "put the code in a file and run it with deno run and narrow flags",
    });
    return findings;
  }
  let grants = parsed.grants;
  let denies = parsed.denies;
  if (parsed.permissionSet) {
    const expanded = expandSet(parsed, sets);
    if (expanded) {
      grants = [...grants, ...expanded.grants];
      denies = [...denies, ...expanded.denies];
    } else {
      add(parsed.permissionSet.flag, {
        severity: "medium",
        message:
          `loads permission set '${parsed.permissionSet.name}' from a config file this audit did not find`,
        suggestion:
          "write the flags on the command line, or check the set in deno.json 'permissions' by hand",
      });
    }
  }
  const trail = trailFor(parsed.script, trails);
  for (const grant of grants) {
    const rated = rateGrant(grant, denies);
    if (parsed.misplacedValue?.flag === grant.flag) {
      const word = parsed.misplacedValue.word;
      rated.message +=
        `; '${word}' after it is not its list but the script Deno runs`;
      rated.suggestion =
        `write the list with '=': --allow-${grant.kind}=${word}`;
    }
    const observed = trail ? trailSuggestion(grant, trail) : "";
    add(grant.flag, observed ? { ...rated, suggestion: observed } : rated);
  }
  for (const { flag, message } of parsed.problems) {
    add(flag, {
      severity: "medium",
      message:
        `cannot audit: ${message}, so the command fails or means something else`,
      suggestion: "fix the flag (see `deno run --help`)",
    });
  }
  const prompts = ["run", "serve", "test", "bench"].includes(parsed.subcommand);
  const all = grants.some((g) => g.kind === "all");
  if (
    prompts && !all && !parsed.noPrompt && !site.noPromptEnv &&
    site.context !== "script" && site.context !== "docs"
  ) {
    add("(no --no-prompt)", {
      severity: "low",
      message:
        `no --no-prompt in a ${site.context} command: a missing grant becomes a prompt that blocks or is auto-answered`,
      suggestion: "add --no-prompt so a missing grant fails fast",
    });
  }
  return findings;
}

function quoteWord(word: string): string {
  return /^[\w@%+=:,./~$*{}-]+$/.test(word)
    ? word
    : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Options for {@linkcode auditPath}. */
export interface AuditPathOptions {
  /** Recorded runs to take exact flags from. */
  trails?: readonly Trail[];
  /** Files or directories to skip, relative to the audited path. */
  exclude?: readonly string[];
  /** Directory finding paths are relative to (default: the audited path). */
  relativeTo?: string;
}

/** Directories never walked: dependencies and VCS data, not the project's commands. */
const SKIP_DIRS = new Set(["node_modules", ".git", "vendor"]);
/** Larger files are data, not scripts. */
const MAX_FILE_BYTES = 1024 * 1024;

/**
 * Audits a directory (walked, skipping node_modules, .git and vendor, and
 * not following symlinks) or one file.
 *
 * @param path The directory or file.
 * @param options Trails, exclusions, and what paths are relative to.
 * @returns The findings, most severe first, then by file and line.
 *
 * @example Usage
 * ```ts ignore
 * import { auditPath } from "./mod.ts";
 * for (const f of await auditPath(".")) console.log(f.severity, `${f.file}:${f.line}`, f.flag);
 * ```
 */
export async function auditPath(
  path: string,
  options: AuditPathOptions = {},
): Promise<Finding[]> {
  const root = resolve(path);
  const base = resolve(
    options.relativeTo ??
      ((await Deno.stat(root)).isDirectory ? root : dirname(root)),
  );
  const excluded = (options.exclude ?? []).map((e) => resolve(root, e));
  const files: string[] = [];
  await walk(root, excluded, files, true);
  const texts = new Map<string, string>();
  for (const file of files) {
    const text = await readText(file);
    if (text !== null) texts.set(file, text);
  }
  const setsByDir = new Map<string, PermissionSets | null>();
  for (const [file, text] of texts) {
    // Deno reads deno.json before deno.jsonc, and the walk is sorted.
    if (
      /^deno\.jsonc?$/.test(basename(file)) && !setsByDir.has(dirname(file))
    ) {
      setsByDir.set(dirname(file), permissionSetsOf(text));
    }
  }
  // The nearest config at or above the file, up to the audited path.
  const setsFor = (file: string): PermissionSets | null => {
    for (let dir = dirname(file);; dir = dirname(dir)) {
      const sets = setsByDir.get(dir);
      if (sets) return sets;
      if (dir === root || !dir.startsWith(`${root}/`)) return null;
    }
  };
  const findings = [...texts].flatMap(([file, text]) =>
    auditText(text, relative(base, file) || basename(file), {
      trails: options.trails ?? [],
      permissionSets: setsFor(file),
    })
  );
  return sortFindings(findings);
}

async function walk(
  path: string,
  excluded: readonly string[],
  out: string[],
  top = false,
): Promise<void> {
  if (excluded.some((e) => path === e || path.startsWith(`${e}/`))) return;
  // The path given is followed; symlinks inside it are not (a link to / or
  // to a loop would walk forever, and its files are not the project's).
  const info = top ? await Deno.stat(path) : await Deno.lstat(path);
  if (info.isFile) {
    out.push(path);
    return;
  }
  if (!info.isDirectory) return;
  const names: string[] = [];
  for await (const entry of Deno.readDir(path)) {
    if (!(entry.isDirectory && SKIP_DIRS.has(entry.name))) {
      names.push(entry.name);
    }
  }
  for (const name of names.sort()) await walk(join(path, name), excluded, out);
}

/** The file's text, or null for big or binary files. */
async function readText(file: string): Promise<string | null> {
  const info = await Deno.stat(file);
  if (info.size > MAX_FILE_BYTES) return null;
  const bytes = await Deno.readFile(file);
  if (bytes.subarray(0, 8000).includes(0)) return null;
  return new TextDecoder().decode(bytes);
}
