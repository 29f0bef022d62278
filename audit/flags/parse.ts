/**
 * Parses the words of one `deno ...` command line the way Deno 2.9 does,
 * keeping what matters for permissions: the subcommand, the script, every
 * granting and denying flag as written, `--no-prompt`, `-P` and the flags
 * Deno would reject.
 *
 * Every rule below was checked against Deno 2.9.6 by experiment:
 * - a bare `--allow-read /etc x.ts` grants ALL reads and runs `/etc` as the
 *   script: lists need `=`;
 * - short flags combine (`-RN` is `-R -N`), and the rest of a cluster that
 *   is not a known flag is the value (`-R/tmp` is `--allow-read=/tmp`);
 * - flags after the script belong to the script (`deno run x.ts -A` grants
 *   nothing), except for `deno test` and `deno bench`.
 *
 * @module
 */

import {
  type Deny,
  type Grant,
  LIST_KINDS,
  type PermissionKind,
} from "./model.ts";

/** Deno subcommands whose flags grant permissions. */
export type Subcommand =
  | "run"
  | "serve"
  | "test"
  | "compile"
  | "install"
  | "bench"
  | "eval"
  | "repl";

/** What {@linkcode parseDenoCommand} understood of one command line. */
export interface ParsedDenoCommand {
  /** The subcommand (`deno x.ts` is `run`, `deno -A` alone is `repl`). */
  subcommand: Subcommand;
  /** The script (first positional; `deno eval`'s code), or null. */
  script: string | null;
  /** Index of the script in the words given, or null. */
  scriptAt: number | null;
  /** The words after the script (its own arguments). */
  scriptArgs: string[];
  /** Index of the first word after the subcommand (where flags start). */
  flagsAt: number;
  /** Values of options that take one (`--port 8080` is `{ port: "8080" }`). */
  options: Record<string, string>;
  /** `--lock` or `--frozen`: remote code is checked against a lockfile. */
  lock: boolean;
  /** Granting flags, in order. */
  grants: Grant[];
  /** Deny flags, in order. */
  denies: Deny[];
  /** `--no-prompt` given. */
  noPrompt: boolean;
  /** `-P`/`--permission-set`: the set's name ("default" when bare). */
  permissionSet: { name: string; flag: string } | null;
  /** `deno install -g`: grants are baked into an installed command. */
  global: boolean;
  /** Flags Deno rejects or this parser does not know. */
  problems: { flag: string; message: string }[];
  /** A bare list flag whose intended list Deno took as the script. */
  misplacedValue: { flag: string; word: string } | null;
}

const SUBCOMMANDS: Record<string, Subcommand> = {
  run: "run",
  serve: "serve",
  test: "test",
  compile: "compile",
  install: "install",
  i: "install",
  bench: "bench",
  eval: "eval",
  repl: "repl",
};

const SHORT_ALLOW: Record<string, PermissionKind> = {
  R: "read",
  W: "write",
  N: "net",
  E: "env",
  S: "sys",
  I: "import",
};
/**
 * Short flags without a value, and those whose value is the rest of the
 * cluster or the next word, per subcommand (from `deno <sub> --help`).
 * Which letters a subcommand knows matters: `-Nfoo.com` is
 * `--allow-net=foo.com` for `run` but `-N -f -o o.com` for `install`.
 */
const SHORT_PLAIN: Record<Subcommand, string> = {
  run: "AqhV",
  serve: "AqhV",
  test: "AqhVu",
  bench: "AqhV",
  compile: "AqhV",
  install: "AqhVgfDOe",
  eval: "AqhVp",
  repl: "AqhV",
};
const SHORT_VALUE: Record<Subcommand, string> = {
  run: "cL",
  serve: "cL",
  test: "cL",
  bench: "cL",
  compile: "cLo",
  install: "cLn",
  eval: "cL",
  repl: "cL",
};
/** Short flags with an optional `=` value (`-r`, `-P`, and the allows). */
const SHORT_OPTIONAL = new Set(["r", "P", ...Object.keys(SHORT_ALLOW)]);
/** Long flags that take the next word as their value (from `deno * --help`). */
const LONG_VALUE = new Set(
  ("app-name arch cert conditions config coverage-threshold engine eval " +
    "eval-file exclude ext filter host icon import-map include " +
    "inspect-publish-uid junit-path location log-level min-dep-age name " +
    "node-modules-linker os output port preload related repeats reporter " +
    "require retry root seed shard target").split(" "),
);
const SCRIPT_LIKE = /\.(?:[mc]?[jt]sx?)$|^(?:https?|npm|jsr):/;

/**
 * Parses the words after `deno` as Deno 2.9 does, keeping what matters for
 * permissions.
 *
 * @param args The words after `deno` (already unquoted).
 * @returns The parse, or null when the command grants nothing by
 * construction (`deno task`, `deno fmt`, `deno --version`, bare `deno`).
 *
 * @example Usage
 * ```ts
 * import { parseDenoCommand } from "./mod.ts";
 * const parsed = parseDenoCommand(["run", "-RN=api.example.com", "main.ts"]);
 * console.log(parsed?.grants.map((g) => `${g.kind}:${g.values}`));
 * // [ "read:null", "net:api.example.com" ]
 * ```
 */
export function parseDenoCommand(
  args: readonly string[],
): ParsedDenoCommand | null {
  let i = 0;
  // Global flags may come before the subcommand (`deno -q run x.ts`).
  while (i < args.length) {
    const a = args[i]!;
    if (a === "-q" || a === "--quiet" || /^--(log-level=|unstable)/.test(a)) {
      i++;
    } else if (a === "-L" || a === "--log-level") i += 2;
    else break;
  }
  const first = args[i];
  if (first === undefined) return null;
  const named = Object.hasOwn(SUBCOMMANDS, first) ? SUBCOMMANDS[first] : null;
  if (!named && !first.startsWith("-") && !SCRIPT_LIKE.test(first)) return null;
  const subcommand: Subcommand = named ?? "run";
  if (named) i++;
  const parsed: ParsedDenoCommand = {
    subcommand,
    script: null,
    scriptAt: null,
    scriptArgs: [],
    flagsAt: i,
    options: {},
    lock: false,
    grants: [],
    denies: [],
    noPrompt: false,
    permissionSet: null,
    global: false,
    problems: [],
    misplacedValue: null,
  };
  // For these, the first positional ends Deno's flags: the rest are the
  // script's own arguments.
  const stopsAtScript = subcommand !== "test" && subcommand !== "bench" &&
    subcommand !== "repl";
  let bareListFlag: string | null = null;
  for (; i < args.length; i++) {
    const a = args[i]!;
    const previousBare = bareListFlag;
    bareListFlag = null;
    if (a === "--") break;
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq === -1 ? a.slice(2) : a.slice(2, eq);
      const value = eq === -1 ? null : a.slice(eq + 1);
      const grants = parsed.grants.length;
      if (longFlag(parsed, name, value, a)) {
        if (parsed.grants.length > grants) parsed.grants.at(-1)!.at = i;
        if (value === null && /^allow-(?!all$|hrtime$)/.test(name)) {
          bareListFlag = parsed.grants.at(-1)?.flag ?? null;
        }
      } else if (LONG_VALUE.has(name)) {
        const given = value ?? args[i + 1];
        if (given !== undefined) parsed.options[name] = given;
        if (value === null) i++;
      } else if (name === "lock" || (name === "frozen" && value !== "false")) {
        parsed.lock = true;
      }
    } else if (a.startsWith("-") && a.length > 1) {
      const result = shortCluster(parsed, a, i);
      if (result === "next") i++;
      else if (result === "bare" && !a.endsWith("P")) {
        bareListFlag = parsed.grants.at(-1)?.flag ?? null;
      }
    } else {
      if (subcommand === "repl") continue;
      if (parsed.script === null) {
        parsed.script = a;
        parsed.scriptAt = i;
        if (previousBare && stopsAtScript && !SCRIPT_LIKE.test(a)) {
          parsed.misplacedValue = { flag: previousBare, word: a };
        }
      }
      if (stopsAtScript) {
        parsed.scriptArgs = args.slice(i + 1);
        break;
      }
    }
  }
  if (!named) {
    const flagged = parsed.grants.length > 0 || parsed.denies.length > 0 ||
      parsed.permissionSet !== null || parsed.problems.length > 0;
    if (parsed.script === null && !flagged) return null;
    if (parsed.script === null) parsed.subcommand = "repl";
  }
  if (subcommand === "install" && !parsed.global) {
    // A local install only fetches dependencies; only lifecycle scripts run.
    parsed.grants = parsed.grants.filter((g) => g.kind === "scripts");
  }
  return parsed;
}

/** Handles one `--name[=value]`; true when it is a permission flag. */
function longFlag(
  parsed: ParsedDenoCommand,
  name: string,
  value: string | null,
  written: string,
): boolean {
  const list = value === null ? null : splitList(value);
  const match = name.match(/^(allow|deny)-(.+)$/);
  if (match && list?.length === 0) {
    problem(parsed, written, `Deno rejects the empty list in '${written}'`);
    return true;
  }
  if (name === "no-prompt") parsed.noPrompt = true;
  else if (name === "global") parsed.global = true;
  else if (name === "permission-set") {
    parsed.permissionSet = { name: value || "default", flag: written };
  } else if (name === "allow-all") {
    if (value !== null) problem(parsed, written, "--allow-all takes no value");
    else parsed.grants.push({ kind: "all", values: null, flag: written });
  } else if (name === "allow-hrtime" || name === "deny-hrtime") {
    parsed.grants.push({ kind: "hrtime", values: null, flag: written });
  } else if (name === "allow-scripts") {
    parsed.grants.push({ kind: "scripts", values: list, flag: written });
  } else if (match && LIST_KINDS.includes(match[2] as PermissionKind)) {
    const kind = match[2] as PermissionKind;
    if (match[1] === "allow") {
      parsed.grants.push({ kind, values: list, flag: written });
    } else parsed.denies.push({ kind, values: list, flag: written });
  } else if (match) {
    problem(parsed, written, `Deno rejects '--${name}' (no such permission)`);
  } else return false;
  return true;
}

/**
 * Handles `-X...`: "next" when the next word is its value, "bare" when it
 * ends with a list flag without a value.
 */
function shortCluster(
  parsed: ParsedDenoCommand,
  word: string,
  at: number,
): "next" | "bare" | "done" {
  for (let j = 1; j < word.length; j++) {
    const c = word[j]!;
    const rest = word.slice(j + 1);
    const shown = (value: string | null) => {
      const flag = value === null ? `-${c}` : `-${c}=${value}`;
      return flag === word ? flag : `${flag} (in ${word})`;
    };
    if (SHORT_OPTIONAL.has(c)) {
      // Deno (clap): `-R=x` and `-Rx` give the value x unless the rest
      // starts with another known short flag (`-RN` is `-R -N`).
      let value: string | null = null;
      if (rest.startsWith("=")) value = rest.slice(1);
      else if (rest !== "" && !isKnownShort(parsed.subcommand, rest[0]!)) {
        value = rest;
      }
      if (value === "" && c !== "r") {
        problem(parsed, word, `Deno rejects the empty list in '${word}'`);
        return "done";
      }
      if (c === "P") {
        parsed.permissionSet = { name: value || "default", flag: shown(value) };
      } else if (c !== "r") {
        parsed.grants.push({
          kind: SHORT_ALLOW[c]!,
          values: value === null ? null : splitList(value),
          flag: shown(value),
          at,
          span: [j, value === null ? j + 1 : word.length],
        });
      }
      if (value !== null) return "done";
      if (rest === "") return c === "r" ? "done" : "bare";
    } else if (c === "A") {
      parsed.grants.push({
        kind: "all",
        values: null,
        flag: shown(null),
        at,
        span: [j, j + 1],
      });
    } else if (c === "g" && parsed.subcommand === "install") {
      parsed.global = true;
    } else if (SHORT_VALUE[parsed.subcommand].includes(c)) {
      return rest === "" ? "next" : "done";
    } else if (!SHORT_PLAIN[parsed.subcommand].includes(c)) {
      problem(parsed, word, `Deno rejects '-${c}' in '${word}'`);
      return "done";
    }
  }
  return "done";
}

function isKnownShort(subcommand: Subcommand, c: string): boolean {
  return SHORT_PLAIN[subcommand].includes(c) ||
    SHORT_VALUE[subcommand].includes(c) || SHORT_OPTIONAL.has(c);
}

function problem(parsed: ParsedDenoCommand, flag: string, message: string) {
  parsed.problems.push({ flag, message });
}

/**
 * Splits a flag's list (`a, b,,c`) into its entries, trimmed, empty ones
 * dropped, as Deno reads `--allow-read=a,b`.
 *
 * @param value The text after `=`.
 * @returns The entries.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { splitList } from "./parse.ts";
 * assert.deepEqual(splitList("a, b,,c"), ["a", "b", "c"]);
 * ```
 */
export function splitList(value: string): string[] {
  return value.split(",").map((v) => v.trim()).filter((v) => v !== "");
}
