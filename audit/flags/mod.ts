/**
 * A static audit of the Deno permissions a project grants: finds every
 * `deno run|serve|test|compile|install|bench|eval|repl` command (deno.json
 * tasks, package.json scripts, shebang lines, shell scripts, Makefiles, CI
 * YAML, Dockerfiles with their ENTRYPOINT and CMD on Deno images, Procfiles,
 * Markdown code blocks), parses its permission flags the way Deno 2.9
 * does, and rates each grant critical to info with a one-line why and a
 * fix written as the project's own command. A recorded run (an
 * `AuditReport` from `airlock audit --json`, see audit/report.ts) turns
 * the fix into the exact flags that run used.
 *
 * The pipeline, one module each:
 * - `walk.ts`, `exclude.ts`: the project's files (links inside it not
 *   followed; dependencies, docs archives, changelogs and `--exclude` globs
 *   skipped; big and binary files skipped);
 * - `extract.ts`: the deno commands in each file, by the file's kind (over
 *   the tokeniser in `shell.ts`, deno in command position per `launch.ts`,
 *   Dockerfiles per `docker.ts`, each command a `site.ts` site that can be
 *   written back with a flag changed);
 * - `parse.ts`: each command's permission flags, as Deno 2.9 reads them;
 * - `permission_sets.ts`: the grants a `-P` set stands for;
 * - `rate.ts`: each grant's severity and why;
 * - `source.ts`: what the script a command runs shows (does it listen,
 *   which hosts, variables, files it names); `remote.ts`: whether a
 *   script fetched at run time is pinned;
 * - `fix.ts`: the fix, as the project's command with the flag replaced;
 * - `rules.ts`: the rules about a whole command (below);
 * - `trail.ts`: the exact flags a recorded run used, as the fix;
 * - `model.ts`: the types they share, and the order of severities.
 *
 * This module joins them ({@linkcode auditText}, {@linkcode auditProject}).
 * The rules about a whole command: `deno eval` runs with every permission
 * whatever its flags, `--deny-*` included (checked against Deno 2.9.6), so
 * it is rated by its code (literal and harmless is info, built by the
 * shell at run time is critical); a server's unlisted `--allow-net` is
 * fixed with its listening address; a script fetched at run time without
 * a version pin or lockfile entry is a finding of its own; a `-P` set that
 * is not found and a flag Deno rejects are findings too; a missing
 * `--no-prompt` is one only where a person could answer a prompt (Deno
 * prompts only when stdin and stderr are terminals: never in CI or a
 * container).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { auditText } from "./mod.ts";
 * const findings = auditText("deno run --allow-read=~/.ssh main.ts\n", "run.sh");
 * assert.deepEqual(findings.map((f) => `${f.severity} ${f.flag}`), [
 *   "high --allow-read=~/.ssh",
 * ]);
 * assert.equal(findings[0]?.id, "allow-read");
 * ```
 *
 * @module
 */

import {
  basename,
  dirname,
  isAbsolute,
  join,
  relative,
  resolve,
} from "node:path";
import { parseJsonc } from "../../harness/_jsonc.ts";
import { isRecord } from "./_json.ts";
import { excludeFilter } from "./exclude.ts";
import { findDenoCommands } from "./extract.ts";
import { type Finding, sortFindings } from "./model.ts";
import { type PermissionSets, permissionSetsOf } from "./permission_sets.ts";
import { rateSite, type RuleContext } from "./rules.ts";
import type { CommandSite } from "./site.ts";
import type { Trail } from "./trail.ts";
import { projectFiles, readBesideSync, readText } from "./walk.ts";

export { atOrAbove, SEVERITIES, sortFindings } from "./model.ts";
export type {
  Deny,
  Finding,
  FindingId,
  Grant,
  PermissionKind,
  Severity,
} from "./model.ts";
export { findDenoCommands } from "./extract.ts";
export type { CommandSite, Context } from "./extract.ts";
export { excludeFilter } from "./exclude.ts";
export type { Exclude, ExcludeOptions } from "./exclude.ts";
export { permissionSetsOf } from "./permission_sets.ts";
export type { PermissionSets } from "./permission_sets.ts";
export { parseTrail } from "./trail.ts";
export type { Trail, TrailEntry } from "./trail.ts";
export { parseDenoCommand } from "./parse.ts";
export type { ParsedDenoCommand, Subcommand } from "./parse.ts";

/**
 * The rest of the project, for a command's script and lockfile: the
 * audited directory, this file, and the texts of the project's files.
 */
export interface ProjectFiles {
  /** The audited directory (absolute). */
  root: string;
  /** The audited file's absolute path. */
  file: string;
  /** A project file's text by absolute path, or null (missing, skipped). */
  read(path: string): string | null;
}

/** Options for {@linkcode auditText}. */
export interface AuditTextOptions {
  /** Recorded runs to take exact flags from. */
  trails?: readonly Trail[];
  /** The permission sets `-P` refers to (default: the text's own, for a deno.json). */
  permissionSets?: PermissionSets | null;
  /** The project around the file, to read the scripts commands run. */
  project?: ProjectFiles;
}

/**
 * Audits one file's text.
 *
 * @param text The file's text.
 * @param path Its path as it should appear in findings (its name decides how
 * it is read).
 * @param options Trails, permission sets, and the project around it.
 * @returns The findings, in file order.
 *
 * @example Usage
 * ```ts
 * import { auditText } from "./mod.ts";
 * const [finding] = auditText('{ "tasks": { "dev": "deno run -A --no-prompt main.ts" } }', "deno.json");
 * console.log(finding?.id, finding?.severity, finding?.flag); // allow-all critical -A
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
  const project = options.project;
  const context: RuleContext = {
    file: path,
    sets,
    trails: options.trails ?? [],
    text,
    script: (spec, site) => project ? scriptText(project, spec, site) : null,
    locked: (spec, site) =>
      project !== undefined && site.context !== "docs" &&
      lockPins(project, spec),
  };
  return findDenoCommands(text, path).flatMap((site) =>
    rateSite(site, context)
  );
}

/** The folders a command in `project.file` may run relative to. */
function folders(project: ProjectFiles, site: CommandSite): string[] {
  const out: string[] = [];
  // deno.json tasks run in the config's folder; other commands are tried
  // from their file's folder up to the audited directory.
  for (let dir = dirname(project.file);; dir = dirname(dir)) {
    out.push(dir);
    if (site.context === "task" || dir === project.root) break;
    if (!dir.startsWith(`${project.root}/`)) break;
  }
  return out;
}

/** A local script's text, found relative to where the command runs. */
function scriptText(
  project: ProjectFiles,
  spec: string,
  site: CommandSite,
): string | null {
  const path = spec.replace(/^file:\/\//, "");
  // An absolute path in a container (`/app/main.ts`) is tried as relative
  // paths, dropping leading folders.
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  const candidates = isAbsolute(path)
    ? parts.map((_, k) => parts.slice(k).join("/"))
    : [path];
  for (const dir of folders(project, site)) {
    for (const candidate of candidates) {
      const text = project.read(resolve(dir, candidate));
      if (text !== null) return text;
    }
  }
  return null;
}

/**
 * Whether the nearest deno.lock (not switched off by `"lock": false`)
 * holds this remote specifier, so Deno checks what it fetches.
 */
function lockPins(project: ProjectFiles, spec: string): boolean {
  for (let dir = dirname(project.file);; dir = dirname(dir)) {
    for (const config of ["deno.json", "deno.jsonc"]) {
      const text = project.read(join(dir, config));
      if (text === null) continue;
      try {
        const json = parseJsonc(text);
        if (isRecord(json) && json.lock === false) return false;
      } catch {
        // An unreadable config: look at the lockfile alone.
      }
    }
    const lock = project.read(join(dir, "deno.lock"));
    if (lock !== null) {
      try {
        const json: unknown = JSON.parse(lock);
        if (!isRecord(json)) return false;
        const keys = [json.remote, json.specifiers].flatMap((section) =>
          isRecord(section) ? Object.keys(section) : []
        );
        const base = spec.match(/^((?:npm|jsr):\/?(?:@[^/]+\/)?[^/]+)/)?.[1];
        return keys.includes(spec) ||
          (base !== undefined && keys.includes(base));
      } catch {
        return false;
      }
    }
    if (dir === project.root || !dir.startsWith(`${project.root}/`)) {
      return false;
    }
  }
}

/** Options for {@linkcode auditProject}. */
export interface AuditPathOptions {
  /** Recorded runs to take exact flags from. */
  trails?: readonly Trail[];
  /** Globs to skip, relative to the audited path (see exclude.ts). */
  exclude?: readonly string[];
  /** Apply the default exclusions (dependencies, docs archives, changelogs). */
  defaultExcludes?: boolean;
  /** Directory finding paths are relative to (default: the audited path). */
  relativeTo?: string;
}

/** The findings of a project, and what the walk skipped. */
export interface ProjectAudit {
  /** The findings, most severe first, then by file and line. */
  findings: Finding[];
  /** Skipped paths (relative to the audited path) and the rule for each. */
  skipped: { path: string; rule: string }[];
}

/**
 * Audits a directory (walked without following symlinks, skipping what
 * the exclusions name) or one file, and says what it skipped.
 *
 * @param path The directory or file.
 * @param options Trails, exclusions, and what paths are relative to.
 * @returns The findings and the skipped paths.
 *
 * @example Usage
 * ```ts ignore
 * import { auditProject } from "./mod.ts";
 * const { findings, skipped } = await auditProject(".", { exclude: ["tests/fixtures"] });
 * for (const f of findings) console.log(f.id, f.severity, `${f.file}:${f.line}`);
 * console.log(skipped.length, "paths skipped");
 * ```
 */
export async function auditProject(
  path: string,
  options: AuditPathOptions = {},
): Promise<ProjectAudit> {
  const root = resolve(path);
  const isDirectory = (await Deno.stat(root)).isDirectory;
  const top = isDirectory ? root : dirname(root);
  const base = resolve(options.relativeTo ?? top);
  const exclude = excludeFilter(
    (options.exclude ?? []).map((e) =>
      isAbsolute(e) ? relative(root, e) || "." : e
    ),
    { defaults: options.defaultExcludes ?? true },
  );
  const walked = await projectFiles(root, exclude);
  const texts = new Map<string, string>();
  for (const file of walked.files) {
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
      if (dir === top || !dir.startsWith(`${top}/`)) return null;
    }
  };
  // One file audited: the scripts its commands run are still read from
  // beside it (as the walk would have), so its fixes are the same.
  const beside = new Map<string, string | null>();
  const read = (file: string): string | null => {
    const text = texts.get(file);
    if (text !== undefined || isDirectory) return text ?? null;
    if (!beside.has(file)) beside.set(file, readBesideSync(top, file, exclude));
    return beside.get(file)!;
  };
  const findings = [...texts].flatMap(([file, text]) =>
    auditText(text, relative(base, file) || basename(file), {
      trails: options.trails ?? [],
      permissionSets: setsFor(file),
      project: { root: top, file, read },
    })
  );
  return { findings: sortFindings(findings), skipped: walked.skipped };
}

/**
 * Audits a directory or one file: {@linkcode auditProject}'s findings.
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
  return (await auditProject(path, options)).findings;
}
