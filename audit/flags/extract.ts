/**
 * Finds the deno commands in a project's files, by file name: deno.json
 * tasks, package.json scripts, the `#!` line of any file, and the lines of
 * shell scripts, Makefiles, CI YAML, Dockerfiles (shell and exec form),
 * Procfiles and Markdown code blocks. Each command comes with its line and
 * the kind of place it sits in, which decides whether a prompt can be
 * answered there.
 *
 * @module
 */

import { basename } from "node:path";
import { parseJsonc } from "../../harness/_jsonc.ts";
import { isRecord } from "./_json.ts";
import { logicalLines, shellCommands } from "./shell.ts";

/** Where a command sits; prompts cannot be answered in all but `script`/`docs`. */
export type Context = "task" | "ci" | "docker" | "shebang" | "script" | "docs";

/** One deno command found in a file. */
export interface CommandSite {
  /** 1-based line. */
  line: number;
  /** What kind of place it is in. */
  context: Context;
  /** The words from `deno` on. */
  words: string[];
  /** `DENO_NO_PROMPT=...` set in front of it. */
  noPromptEnv: boolean;
}

const DENO_WORD = /^(?:\S*\/)?deno(?:\.exe)?(?:@[\w.^~<>=-]+)?$/;
const SHELLS = /^(?:ba|z|da|k|fi|c|tc)?sh$/;

/**
 * Finds the deno commands in one file's text, by the file's name: tasks of
 * deno.json/deno.jsonc, scripts of package.json, the shebang line of any
 * file, and lines of shell scripts, Makefiles, YAML, Dockerfiles, Procfiles
 * and Markdown code blocks.
 *
 * @param text The file's text.
 * @param path The file's path (its name decides how it is read).
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
    sites.push(...fromShell(lines[0].slice(2), 1, "shebang"));
  }
  if (name === "deno.json" || name === "deno.jsonc") {
    return [...sites, ...fromJsonScripts(text, "tasks")];
  }
  if (name === "package.json") {
    return [...sites, ...fromJsonScripts(text, "scripts")];
  }
  let context: Context | null = null;
  if (/\.(?:sh|bash|zsh|ksh)$/.test(lower)) context = "script";
  else if (/^(?:gnu)?makefile$|\.mk$/.test(lower)) context = "task";
  else if (/\.ya?ml$/.test(lower)) context = "ci";
  else if (/^(?:docker|container)file|\.dockerfile$/.test(lower)) {
    context = "docker";
  } else if (lower === "procfile") context = "task";
  else if (/\.(?:md|markdown|mdx)$/.test(lower)) context = "docs";
  else if (
    !name.includes(".") && /^#!.*\b(?:ba|z|da|k)?sh\b/.test(lines[0] ?? "")
  ) {
    context = "script";
  }
  if (context === null) return sites;
  let fenced = context !== "docs";
  for (const { text: raw, line } of logicalLines(lines)) {
    if (line === 1 && raw.startsWith("#!")) continue;
    if (context === "docs" && /^\s*(?:```|~~~)/.test(raw)) {
      fenced = !fenced;
      continue;
    }
    if (!fenced) continue;
    let text = raw;
    if (context === "task" && text.startsWith("\t")) {
      text = text.replace(/^\t[@+-]*/, ""); // make's silent/ignore prefixes
    }
    if (context === "ci") text = unquoteYamlScalar(text);
    const exec = execForm(text);
    sites.push(
      ...(exec
        ? fromWords(exec, line, context)
        : fromShell(text, line, context)),
    );
  }
  return sites;
}

/** `key: "deno run ..."` → `deno run ...` (a quoted YAML scalar is one string). */
function unquoteYamlScalar(text: string): string {
  const m = text.match(/^\s*(?:-\s+)*(?:[\w.$-]+:\s+)?(["'])(.*)\1\s*$/);
  if (!m) return text;
  return m[1] === "'"
    ? m[2]!.replaceAll("''", "'")
    : m[2]!.replace(/\\(["\\])/g, "$1");
}

/** An exec-form array (`CMD ["deno", "run", ...]`) naming deno, or null. */
function execForm(text: string): string[] | null {
  const m = text.match(
    /\[\s*"(?:[^"\\]|\\.)*"(?:\s*,\s*"(?:[^"\\]|\\.)*")*\s*\]/,
  );
  if (!m || !m[0].includes("deno")) return null;
  try {
    const words: unknown = JSON.parse(m[0]);
    return Array.isArray(words) && words.every((w) => typeof w === "string")
      ? words
      : null;
  } catch {
    return null;
  }
}

function fromShell(
  text: string,
  line: number,
  context: Context,
): CommandSite[] {
  return shellCommands(text).flatMap((words) =>
    fromWords(words, line, context)
  );
}

/** The deno command in one simple command, looking inside `sh -c '...'`. */
function fromWords(
  words: string[],
  line: number,
  context: Context,
): CommandSite[] {
  const at = words.findIndex((w) => DENO_WORD.test(w));
  if (at > 0 && /^(?:echo|printf)$/.test(words[0]!)) return [];
  const dashC = words.findIndex((w, k) =>
    /^-[a-z]*c$/.test(w) &&
    words.slice(0, k).some((s) => SHELLS.test(basename(s)))
  );
  if (dashC !== -1 && (at === -1 || dashC < at) && words[dashC + 1]) {
    return fromShell(words[dashC + 1]!, line, context);
  }
  if (at === -1) return [];
  const noPromptEnv = words.slice(0, at).some((w) =>
    /^DENO_NO_PROMPT=./.test(w)
  );
  return [{ line, context, words: words.slice(at), noPromptEnv }];
}

/** Commands of deno.json `tasks` or package.json `scripts`, at their key's line. */
function fromJsonScripts(
  text: string,
  key: "tasks" | "scripts",
): CommandSite[] {
  let json: unknown;
  try {
    json = parseJsonc(text);
  } catch {
    // Unparseable config: read it line by line rather than skip it.
    return logicalLines(text.split("\n")).flatMap(({ text, line }) =>
      [...text.matchAll(/"((?:[^"\\]|\\.)*)"/g)].flatMap((m) =>
        fromShell(m[1]!.replace(/\\(.)/g, "$1"), line, "task")
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
    const line = text.slice(0, from).split("\n").length;
    sites.push(...fromShell(command, line, "task"));
  }
  return sites;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
