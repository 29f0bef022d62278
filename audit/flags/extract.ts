/**
 * Finds the deno commands in a project's files, by file name: deno.json
 * tasks, package.json scripts, the `#!` line of any file, and the lines of
 * shell scripts, Makefiles, CI YAML, Dockerfiles (see `docker.ts`),
 * Procfiles and Markdown code blocks (by the block's language: a
 * `dockerfile` block is read as a Dockerfile, a `json` block's tasks as
 * tasks). Each command comes with its line and the kind of place it sits
 * in, which decides whether a prompt can be answered there. Deno counts
 * only in command position (see `launch.ts`).
 *
 * @module
 */

import { basename } from "node:path";
import { parseJsonc } from "../../harness/_jsonc.ts";
import { isRecord } from "./_json.ts";
import { dockerfileSites } from "./docker.ts";
import { logicalLines } from "./shell.ts";
import {
  type CommandSite,
  type Context,
  execSegment,
  shellSegment,
  sitesFromShell,
  sitesFromWords,
} from "./site.ts";

export type { CommandSite, Context } from "./site.ts";

/**
 * Paths whose scripts run in CI, with no terminal: workflow folders and
 * the `ci/` folders next to them.
 */
const CI_PATH =
  /(?:^|\/)(?:\.github|\.gitlab|\.circleci|\.buildkite|\.woodpecker|\.ci|ci)\//;
const TS_BLOCK = /^(?:[mc]?[jt]sx?|typescript|javascript)$/;

/**
 * Finds the deno commands in one file's text, by the file's name: tasks of
 * deno.json/deno.jsonc, scripts of package.json, the shebang line of any
 * file, and lines of shell scripts, Makefiles, YAML, Dockerfiles, Procfiles
 * and Markdown code blocks.
 *
 * @param text The file's text.
 * @param path The file's path (its name decides how it is read; a path
 * under `.github/` or `ci/` marks scripts as CI).
 * @returns The commands, in file order.
 *
 * @example Usage
 * ```ts
 * import { findDenoCommands } from "./mod.ts";
 * const sites = findDenoCommands("build:\n\tdeno fmt && deno run -A x.ts\n", "Makefile");
 * console.log(sites.map((s) => `${s.line}: ${s.words.join(" ")}`)); // [ "2: deno run -A x.ts" ]
 * ```
 */
export function findDenoCommands(text: string, path: string): CommandSite[] {
  const name = basename(path);
  const lower = name.toLowerCase();
  const lines = text.replaceAll("\r\n", "\n").split("\n");
  const sites: CommandSite[] = [];
  if (lines[0]?.startsWith("#!") && /deno/.test(lines[0])) {
    sites.push(...sitesFromShell(lines[0].slice(2), 1, "shebang", (ws) => {
      const segment = shellSegment(ws);
      return { ...segment, render: (w) => `#!${segment.render(w)}` };
    }));
  }
  if (name === "deno.json" || name === "deno.jsonc") {
    return [...sites, ...fromJsonScripts(text, "tasks", 1, "task")];
  }
  if (name === "package.json") {
    return [...sites, ...fromJsonScripts(text, "scripts", 1, "task")];
  }
  const ci = CI_PATH.test(path.replaceAll("\\", "/"));
  if (
    /^(?:docker|container)file(?:\..*)?$|\.(?:docker|container)file$/.test(
      lower,
    )
  ) {
    return [...sites, ...dockerfileSites(lines, 1, "docker")];
  }
  if (/\.(?:md|markdown|mdx)$/.test(lower)) {
    return [...sites, ...markdownSites(lines)];
  }
  let context: Context | null = null;
  if (/\.(?:sh|bash|zsh|ksh)$/.test(lower)) context = ci ? "ci" : "script";
  else if (/^(?:gnu)?makefile$|\.mk$/.test(lower)) context = "task";
  else if (/\.ya?ml$/.test(lower)) context = "ci";
  else if (lower === "procfile") context = "task";
  else if (
    !name.includes(".") && /^#!.*\b(?:ba|z|da|k)?sh\b/.test(lines[0] ?? "")
  ) {
    context = ci ? "ci" : "script";
  }
  if (context === null) return sites;
  const value = /\.ya?ml$/.test(lower)
    ? yamlValue
    : lower === "procfile"
    ? (text: string) => text.replace(/^[\w-]+:\s*/, "") // `web: deno serve`
    : null;
  return [...sites, ...lineSites(lines, 1, context, value)];
}

/** Commands of shell-like lines (scripts, Makefile recipes, YAML values). */
function lineSites(
  lines: readonly string[],
  firstLine: number,
  context: Context,
  value: ((text: string) => string) | null,
): CommandSite[] {
  const sites: CommandSite[] = [];
  for (const { text: raw, line: at } of logicalLines(lines)) {
    const line = firstLine + at - 1;
    if (line === 1 && raw.startsWith("#!")) continue;
    let text = raw;
    if (context === "task" && text.startsWith("\t")) {
      text = text.replace(/^\t[@+-]*/, ""); // make's silent/ignore prefixes
    }
    if (value) text = value(text);
    if (context === "docs") text = text.replace(/^\s*[$%]\s+/, "");
    const exec = execArray(text);
    sites.push(
      ...(exec
        ? sitesFromWords(
          exec.words.map((t) => ({ text: t, literal: true })),
          line,
          context,
          (ws) => execSegment(exec.before, ws),
        )
        : sitesFromShell(text, line, context)),
    );
  }
  return sites;
}

/**
 * The command in a YAML line: the value after `- key:` (unquoted), with
 * GitHub's `${{ expr }}` kept as one word; "" for a block scalar's header.
 */
function yamlValue(text: string): string {
  const joined = text.replace(
    /\$\{\{\s*(.*?)\s*\}\}/g,
    (_, expr: string) => `\${{${expr.replace(/\s+/g, "")}}}`,
  );
  const m = joined.match(/^\s*(?:-\s+)*(?:[\w.$/-]+:(?:\s+|$))(.*)$/);
  const value = m ? m[1]! : joined;
  if (/^[|>][-+]?\d*\s*(?:#.*)?$/.test(value)) return "";
  const quoted = value.match(/^(["'])(.*)\1\s*$/);
  if (!quoted) return value;
  return quoted[1] === "'"
    ? quoted[2]!.replaceAll("''", "'")
    : quoted[2]!.replace(/\\(["\\])/g, "$1");
}

/** An exec-form array (`command: ["deno", "run", ...]`), or null. */
function execArray(text: string): { before: string; words: string[] } | null {
  const m = text.match(
    /^(.*?)(\[\s*"(?:[^"\\]|\\.)*"(?:\s*,\s*"(?:[^"\\]|\\.)*")*\s*\])\s*$/,
  );
  if (!m) return null;
  try {
    const words: unknown = JSON.parse(m[2]!);
    return Array.isArray(words) && words.every((w) => typeof w === "string")
      ? { before: m[1]!.trim(), words }
      : null;
  } catch {
    return null;
  }
}

/**
 * Commands in Markdown code blocks, by the block's language: Dockerfile
 * blocks as Dockerfiles, JSON blocks' tasks, TypeScript blocks' shebang
 * only, anything else as shell lines (a `$ ` prompt dropped).
 */
function markdownSites(lines: readonly string[]): CommandSite[] {
  const sites: CommandSite[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i]!.match(/^\s*(`{3,}|~{3,})\s*([^\s`]*)/);
    if (!open) continue;
    const fence = open[1]!;
    const lang = open[2]!.toLowerCase().replace(/^\{?\.?/, "");
    const start = i + 1;
    let end = start;
    while (
      end < lines.length &&
      !new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).test(lines[end]!)
    ) end++;
    const block = lines.slice(start, end);
    const firstLine = start + 1;
    if (/^(?:docker(?:file)?|containerfile)$/.test(lang)) {
      sites.push(...dockerfileSites(block, firstLine, "docs"));
    } else if (/^json[c5]?$/.test(lang)) {
      const text = block.join("\n");
      sites.push(...fromJsonScripts(text, "tasks", firstLine, "docs"));
      sites.push(...fromJsonScripts(text, "scripts", firstLine, "docs"));
    } else if (TS_BLOCK.test(lang)) {
      const first = block[0] ?? "";
      if (first.startsWith("#!") && /deno/.test(first)) {
        sites.push(...sitesFromShell(first.slice(2), firstLine, "docs"));
      }
    } else {
      sites.push(
        ...lineSites(
          block,
          firstLine,
          "docs",
          /^ya?ml$/.test(lang) ? yamlValue : null,
        ),
      );
    }
    i = end;
  }
  return sites;
}

/** Commands of deno.json `tasks` or package.json `scripts`, at their key's line. */
function fromJsonScripts(
  text: string,
  key: "tasks" | "scripts",
  firstLine: number,
  context: Context,
): CommandSite[] {
  let json: unknown;
  try {
    json = parseJsonc(text);
  } catch {
    if (context === "docs") return [];
    // Unparseable config: read it line by line rather than skip it.
    return logicalLines(text.split("\n")).flatMap(({ text, line }) =>
      [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].flatMap((m) =>
        sitesFromShell(
          m[1]!.replace(/\\(.)/g, "$1"),
          firstLine + line - 1,
          context,
        )
      )
    );
  }
  const scripts = isRecord(json) && isRecord(json[key]) ? json[key] : {};
  let from = Math.max(0, text.indexOf(`"${key}"`));
  const sites: CommandSite[] = [];
  for (const [name, value] of Object.entries(scripts)) {
    const command = typeof value === "string"
      ? value
      : isRecord(value) && typeof value.command === "string"
      ? value.command
      : null;
    if (command === null) continue;
    // The key's line: the next `"name":` after the previous task's key.
    const keyPattern = new RegExp(
      `${escapeRegExp(JSON.stringify(name))}\\s*:`,
      "g",
    );
    keyPattern.lastIndex = from;
    from = keyPattern.exec(text)?.index ?? from;
    const line = firstLine + text.slice(0, from).split("\n").length - 1;
    sites.push(...sitesFromShell(command, line, context));
  }
  return sites;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
