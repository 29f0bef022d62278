/**
 * `airlock audit-flags [options] [path]` (`deno task audit:flags` in a
 * checkout): finds every Deno permission grant
 * in a project (deno.json tasks, package.json scripts, shebangs, shell
 * scripts, Makefiles, CI YAML, Dockerfiles, Markdown code blocks), rates its
 * risk, and exits 1 when a finding reaches `--fail-on`, so CI can gate on it.
 * Nothing is run: the project is only read.
 *
 * @module
 */

import { parseCommandLine, UsageError } from "./_args.ts";
import { EXIT_CODES } from "./exit_codes.ts";
import {
  atOrAbove,
  auditProject,
  type Finding,
  parseTrail,
  SEVERITIES,
  type Severity,
  type Trail,
} from "../audit/flags/mod.ts";

/**
 * Exit codes of `audit-flags`. A gate's codes, as linters have them, not the
 * 117-127 of `airlock run`: nothing runs here, and CI scripts test for 1.
 */
export const AUDIT_FLAGS_EXIT = {
  /** No finding at or above --fail-on. */
  ok: 0,
  /** At least one finding at or above --fail-on. */
  findings: 1,
  /** Bad command line, or a path or trail file that cannot be read (as
   * every airlock command: see exit_codes.ts). */
  usage: EXIT_CODES.usage,
} as const;

const HELP =
  `airlock audit-flags: find every Deno permission grant in a project and rate its risk

Usage:
  airlock audit-flags [options] [path]

  path   a directory (default: the current directory) or one file.
         Directories are walked without following symlinks.

What is read (nothing is run):
  deno.json / deno.jsonc tasks (and their "permissions" sets, for -P),
  package.json scripts, the #! line of every text file, and deno commands in
  shell scripts, Makefiles, YAML (CI workflows, compose files), Dockerfiles,
  Procfiles and Markdown code blocks (a dockerfile block as a Dockerfile, a
  json block's tasks as tasks). Deno counts only in command position: after
  env, sudo, exec, timeout, gosu, tini, npx..., in sh -c, and as the image of
  'docker run denoland/deno ...'; 'adduser deno', 'USER deno' are no
  commands. Dockerfiles are read per build stage: on a denoland/deno image
  the entrypoint is deno, so CMD ["run", "--allow-net", "main.ts"] is
  'deno run --allow-net main.ts'; ENTRYPOINT and CMD are joined, and a stage
  FROM an earlier one inherits them. Only run, serve, test, bench, compile,
  install -g, eval and repl grant permissions; 'deno task' lines are not
  followed. The script a command runs is read when it is in the project: a
  server (Deno.serve, app.listen, Fresh, 'deno serve') gets its listening
  address as the --allow-net fix, and the literal hosts, variables and paths
  its code names become the list. Fixes quote the project's own command.

Options:
  --fail-on SEVERITY     exit 1 when a finding is at or above SEVERITY: critical,
                         high (default), medium, low, info, or none (never fail)
  --exclude GLOB         skip matching files and directories (repeatable). Like
                         .gitignore: a pattern with no slash matches a name at
                         any depth (docs), one with a slash is anchored to path
                         (docs/old, examples/**/*.md); * ? ** {a,b} [abc]; a
                         trailing / matches directories only
  --no-default-excludes  also read what is skipped by default: node_modules,
                         vendor, .git, .hg, .svn, and Markdown under docs
                         archive folders (old, archive, archived, deprecated,
                         legacy, versioned_docs) and changelogs (CHANGELOG,
                         CHANGES, HISTORY, NEWS, RELEASES...)
  --trail FILE           a recorded run: the JSON of 'airlock audit --json
                         <program>'. Findings for commands that run that
                         program suggest the exact flags it used, leaving out
                         what it was refused and what this audit rates risky
                         (repeatable)
  --json                 print the findings as a JSON array of { id, file,
                         line, command, flag, severity, message, suggestion }
                         on stdout; what was skipped and the verdict go to
                         stderr
  --no-color             no colours (also off with NO_COLOR, or when not a
                         terminal)
  -h, --help             show this help

Findings (id):
  allow-all, allow-read, allow-write, allow-net, allow-env, allow-sys,
  allow-run, allow-ffi, allow-import, allow-scripts, allow-hrtime
                    a granting flag, rated by what it reaches
  deno-eval         deno eval, which runs with every permission whatever its
                    flags: rated by its code
  remote-unpinned   a script fetched at run time (https:, jsr:, npm:) with no
                    version pin or lockfile entry
  no-prompt         a missing --no-prompt where a person runs the command in
                    a terminal (tasks, #! lines). Deno prompts only when stdin
                    and stderr are terminals, so CI lines, Dockerfiles and
                    containers are not reported
  permission-set-missing, bad-flag
                    a -P set not found, a flag Deno rejects

Severities:
  critical  -A/--allow-all, --allow-run of an interpreter or of anything,
            --allow-ffi, deno eval of code built at run time ($VAR, $(...))
  high      unlisted --allow-read/-write/-net/-env, --allow-run of listed
            programs, --allow-scripts; reading ~/.ssh, ~/.aws, ~/.config,
            .env, /etc, /proc, $HOME; writing over code, config or the home
            directory; the cloud metadata address; an unpinned remote script
            given broad grants; deno eval of literal code that spawns or
            imports
  medium    unlisted --allow-sys or --allow-import, secret-looking
            --allow-env names, read of the whole project, flags Deno rejects,
            deno eval of literal code that reads, writes or fetches, an
            unpinned remote script given narrow grants
  low       listed grants, a missing --no-prompt, an unpinned remote script
            given no grants
  info      localhost-only net, --allow-hrtime (a no-op), grants a deny
            cancels, deno eval of literal code that calls no gated API

Exit codes (for CI gates):
  ${AUDIT_FLAGS_EXIT.ok}  no finding at or above --fail-on
  ${AUDIT_FLAGS_EXIT.findings}  at least one finding at or above --fail-on
  ${AUDIT_FLAGS_EXIT.usage}  bad usage, or a path or trail file that cannot be read

Examples:
  airlock audit-flags
  airlock audit-flags --fail-on critical --exclude tests/fixtures .
  airlock audit-flags --exclude 'examples/**/*.md' --exclude legacy/ .
  airlock audit-flags --json --fail-on none . > flags.json
  airlock audit --learn --json agent.ts > trail.json
  airlock audit-flags --trail trail.json
`;

/** Parsed command line. */
interface CliArgs {
  path: string;
  failOn: Severity | "none";
  trails: string[];
  exclude: string[];
  defaultExcludes: boolean;
  json: boolean;
  noColor: boolean;
}

function parseCli(argv: string[]): CliArgs | "help" {
  const { values, positionals } = parseCommandLine(argv, {
    "fail-on": { type: "string", default: "high" },
    trail: { type: "string", multiple: true, default: [] },
    exclude: { type: "string", multiple: true, default: [] },
    "no-default-excludes": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    "no-color": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  }, "airlock audit-flags");
  if (values.help) return "help";
  if (positionals.length > 1) {
    throw new UsageError(
      `Cannot audit more than one path: got '${
        positionals.join("', '")
      }'; run once per path, or audit their common directory`,
    );
  }
  const failOn = values["fail-on"];
  if (failOn !== "none" && !SEVERITIES.includes(failOn as Severity)) {
    throw new UsageError(
      `Cannot use '--fail-on ${failOn}': use one of ${
        [...SEVERITIES].reverse().join(", ")
      }, none`,
    );
  }
  return {
    path: positionals[0] ?? ".",
    failOn: failOn as Severity | "none",
    trails: values.trail,
    exclude: values.exclude,
    defaultExcludes: !values["no-default-excludes"],
    json: values.json,
    noColor: values["no-color"],
  };
}

async function readTrails(files: readonly string[]): Promise<Trail[]> {
  const trails: Trail[] = [];
  for (const file of files) {
    let json: unknown;
    try {
      json = JSON.parse(await Deno.readTextFile(file));
    } catch (error) {
      throw new UsageError(
        `Cannot read trail '${file}': ${(error as Error).message}`,
      );
    }
    try {
      trails.push(...parseTrail(json, file));
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  return trails;
}

/** Options for {@linkcode renderFindings}. */
export interface RenderOptions {
  /** ANSI colours (the CLI: a terminal, no NO_COLOR, no --no-color). */
  color: boolean;
  /** The --fail-on threshold, for the summary line. */
  failOn: Severity | "none";
  /** Paths the walk skipped, and why, for a closing line. */
  skipped?: readonly { path: string; rule: string }[];
}

const COLORS: Record<Severity, string> = {
  critical: "1;31",
  high: "31",
  medium: "33",
  low: "36",
  info: "2",
};
const COMMAND_WIDTH = 72;

/**
 * Renders findings as a table for a terminal: one row per finding (severity,
 * file:line, flag, command), then its why and fix, then a summary.
 *
 * Every value comes from the audited files, which may be hostile: control
 * characters (an ESC that rewrites earlier lines of a CI log, hiding a
 * finding) and bidirectional overrides (text that displays in another order
 * than it reads) are shown as visible escapes, never passed to the terminal.
 *
 * @param findings The findings, in the order to show.
 * @param options Colour and threshold.
 * @returns The text, ending with a newline.
 *
 * @example Usage
 * ```ts
 * import { renderFindings } from "./audit_flags.ts";
 * console.log(renderFindings([], { color: false, failOn: "high" })); // "No Deno permission grants found.\n"
 * ```
 */
export function renderFindings(
  findings: readonly Finding[],
  options: RenderOptions,
): string {
  const skipped = skippedLine(options.skipped ?? []);
  if (findings.length === 0) {
    return `No Deno permission grants found.\n${skipped}`;
  }
  const paint = (severity: Severity, text: string) =>
    options.color ? `\x1b[${COLORS[severity]}m${text}\x1b[0m` : text;
  const rows = findings.map((f) => ({
    severity: f.severity,
    id: f.id,
    location: visible(`${f.file}:${f.line}`),
    flag: visible(f.flag),
    command: truncate(visible(f.command), COMMAND_WIDTH),
    why: visible(f.message),
    fix: visible(f.suggestion),
  }));
  const width = (key: "id" | "location" | "flag", cap: number) =>
    Math.min(cap, Math.max(key.length, ...rows.map((r) => r[key].length)));
  const idWidth = width("id", 22);
  const locationWidth = width("location", 48);
  const flagWidth = width("flag", 32);
  const indent = " ".repeat(10);
  const lines = [
    `${"SEVERITY".padEnd(10)}${"ID".padEnd(idWidth + 2)}${
      "LOCATION".padEnd(locationWidth + 2)
    }${"FLAG".padEnd(flagWidth + 2)}COMMAND`,
  ];
  for (const row of rows) {
    lines.push(
      paint(row.severity, row.severity) +
        " ".repeat(10 - row.severity.length) +
        `${row.id.padEnd(idWidth)}  ${row.location.padEnd(locationWidth)}  ${
          row.flag.padEnd(flagWidth)
        }  ${row.command}`,
      `${indent}why: ${row.why}`,
      `${indent}fix: ${row.fix}`,
    );
  }
  // What was skipped comes before the verdict, which is the last line.
  return `${lines.join("\n")}\n\n${skipped}${
    summaryLine(findings, options.failOn)
  }\n`;
}

/** The counts per severity and the gate's verdict, as one line. */
function summaryLine(
  findings: readonly Finding[],
  failOn: Severity | "none",
): string {
  const counts = [...SEVERITIES].reverse()
    .map((s) => `${findings.filter((f) => f.severity === s).length} ${s}`);
  const failing = failOn === "none"
    ? 0
    : findings.filter((f) => atOrAbove(f.severity, failOn)).length;
  return `${findings.length} finding(s): ${counts.join(", ")}.` +
    (failOn === "none"
      ? " --fail-on none: never fails."
      : failing > 0
      ? ` ${failing} at or above --fail-on ${failOn}: failing (exit code 1).`
      : ` None at or above --fail-on ${failOn}.`);
}

/**
 * One line naming what the walk skipped, so an exclusion never hides a
 * finding silently; "" when nothing was.
 */
function skippedLine(
  skipped: readonly { path: string; rule: string }[],
): string {
  if (skipped.length === 0) return "";
  const shown = skipped.slice(0, 6).map((s) =>
    `${visible(s.path)} (${visible(s.rule)})`
  );
  const more = skipped.length > 6 ? `, and ${skipped.length - 6} more` : "";
  const defaults = skipped.some((s) => s.rule.startsWith("default:"))
    ? " --no-default-excludes reads the default ones."
    : "";
  return `Skipped ${skipped.length} path(s): ${
    shown.join(", ")
  }${more}.${defaults}\n`;
}

/** Control characters and bidi controls as visible `\u{..}` escapes. */
function visible(text: string): string {
  return text.replace(
    // deno-lint-ignore no-control-regex -- matching control characters is the point
    /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u{${c.charCodeAt(0).toString(16)}}`,
  );
}

/** Cuts the middle, keeping the start (subcommand, flags) and the script. */
function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  const tail = Math.floor((max - 1) * 0.4);
  return `${text.slice(0, max - 1 - tail)}…${text.slice(-tail)}`;
}

/**
 * Runs the CLI.
 *
 * @param argv Command-line arguments.
 * @returns The exit code (see {@linkcode AUDIT_FLAGS_EXIT}).
 */
export async function main(argv: string[]): Promise<number> {
  try {
    const args = parseCli(argv);
    if (args === "help") {
      console.log(HELP);
      return AUDIT_FLAGS_EXIT.ok;
    }
    const trails = await readTrails(args.trails);
    let findings: Finding[];
    let skipped: { path: string; rule: string }[];
    try {
      ({ findings, skipped } = await auditProject(args.path, {
        trails,
        exclude: args.exclude,
        defaultExcludes: args.defaultExcludes,
        relativeTo: Deno.cwd(),
      }));
    } catch (error) {
      // An unreadable directory would hide its grants: stop, do not pass.
      throw new UsageError(
        `Cannot audit '${args.path}': ${(error as Error).message}`,
      );
    }
    if (args.json) {
      console.log(JSON.stringify(findings, null, 2));
      // stdout stays pure JSON; the CI log still says why the gate failed
      // and what was skipped.
      console.error(
        `${skippedLine(skipped)}${summaryLine(findings, args.failOn)}`,
      );
    } else {
      const color = !args.noColor && !Deno.noColor && Deno.stdout.isTerminal();
      const text = renderFindings(findings, {
        color,
        failOn: args.failOn,
        skipped,
      });
      console.log(text.replace(/\n$/, ""));
    }
    const failOn = args.failOn;
    const fails = failOn !== "none" &&
      findings.some((f) => atOrAbove(f.severity, failOn));
    return fails ? AUDIT_FLAGS_EXIT.findings : AUDIT_FLAGS_EXIT.ok;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`airlock: ${error.message}\nRun with --help for usage.`);
    return AUDIT_FLAGS_EXIT.usage;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
