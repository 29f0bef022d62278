/**
 * A static audit of the Deno permissions a project grants: finds every
 * `deno run|serve|test|compile|install|bench|eval|repl` command (deno.json
 * tasks, package.json scripts, shebang lines, shell scripts, Makefiles, CI
 * YAML, Dockerfiles, Procfiles, Markdown code blocks), parses its permission
 * flags the way Deno 2.9 does, and rates each grant critical to info with a
 * one-line why and a narrower flag to use instead. A recorded run (an
 * `AuditReport` from `deno task audit --json`, see audit/report.ts) turns
 * the advice into the exact flags that run used.
 *
 * The pipeline, one module each:
 * - `walk.ts`: the project's files (links inside it, node_modules, .git,
 *   vendor, big and binary files skipped);
 * - `extract.ts`: the deno commands in each file, by the file's kind (over
 *   the tokeniser in `shell.ts`);
 * - `parse.ts`: each command's permission flags, as Deno 2.9 reads them;
 * - `permission_sets.ts`: the grants a `-P` set stands for;
 * - `rate.ts`: each grant's severity, why, and a narrower flag;
 * - `trail.ts`: the exact flags a recorded run used, as the fix;
 * - `model.ts`: the types they share, and the order of severities.
 *
 * This module joins them ({@linkcode auditText}, {@linkcode auditPath}) and
 * holds the rules about a whole command: `deno eval` runs with every
 * permission whatever its flags, `--deny-*` included (checked against Deno
 * 2.9.6); a `-P` set that is not found, a flag Deno rejects, and a missing
 * `--no-prompt` where nobody can answer a prompt are findings too.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditText } from "./mod.ts";
 * const findings = auditText("deno run --allow-read=~/.ssh main.ts\n", "run.sh");
 * assert.deepEqual(findings.map((f) => `${f.severity} ${f.flag}`), [
 *   "high --allow-read=~/.ssh",
 * ]);
 * ```
 *
 * @module
 */

import { basename, dirname, relative, resolve } from "node:path";
import { type CommandSite, findDenoCommands } from "./extract.ts";
import { type Finding, sortFindings } from "./model.ts";
import { parseDenoCommand } from "./parse.ts";
import {
  expandSet,
  type PermissionSets,
  permissionSetsOf,
} from "./permission_sets.ts";
import { rateGrant, type Rating } from "./rate.ts";
import { type Trail, trailFor, trailSuggestion } from "./trail.ts";
import { projectFiles, readText } from "./walk.ts";

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
export { parseTrail } from "./trail.ts";
export type { Trail, TrailEntry } from "./trail.ts";
export { parseDenoCommand } from "./parse.ts";
export type { ParsedDenoCommand, Subcommand } from "./parse.ts";

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

/**
 * The findings of one command, in this order: `deno eval` (nothing else
 * matters), a `-P` set that is not found, each grant (amended for a
 * misplaced list, and given the trail's flags as the fix), each flag Deno
 * rejects, and a missing `--no-prompt`.
 */
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
  const files = await projectFiles(root, excluded);
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
