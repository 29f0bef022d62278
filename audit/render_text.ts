/**
 * The permission audit as terminal text: a header saying how the run ended
 * (and when the report is therefore partial), a table per kind, each
 * request with the headers the injector added, the program's output
 * (bounded), what was refused and not granted, the minimal `deno run` flags
 * with their warnings, and the matching airlock policy. Colour (ANSI) only
 * when asked for.
 *
 * Every value in a report comes from the audited program, which is
 * untrusted: control characters (an ESC starting a terminal sequence that
 * clears the screen or rewrites earlier lines) and bidirectional overrides
 * (text that displays in a different order than it reads, "Trojan Source")
 * are shown as visible escapes, never passed to the terminal.
 *
 * @module
 */

import {
  type AuditReport,
  type BoundedOutput,
  egressEvents,
  REPORT_KINDS,
  type ReportEntry,
  type ReportKind,
} from "./report.ts";
import { cut, cutMiddle, fit, length, pad, wrap } from "./_text_layout.ts";

/** Options for {@linkcode renderAuditText}. */
export interface RenderAuditTextOptions {
  /** Use ANSI colour and bold (default false). The CLI passes
   * `Deno.stdout.isTerminal() && !Deno.noColor`. */
  color?: boolean;
  /** Maximum line width of the tables and notes (default 100). The command
   * line and the policy snippet are never cut, so they stay copyable. */
  width?: number;
}

const MIN_WIDTH = 40;
const INDENT = "  ";
const GAP = "  ";

/**
 * Renders a permission audit report for a terminal.
 *
 * @param report The report (from `buildAuditReport`).
 * @param options Colour and width.
 * @returns The report as lines of text, ending with a newline.
 *
 * @example Usage
 * ```ts
 * import { renderAuditText } from "./render_text.ts";
 * const text = renderAuditText({
 *   program: "agent.ts",
 *   generatedAt: "2025-06-12T09:41:09.220Z",
 *   learn: false,
 *   run: {
 *     exitCode: 1,
 *     reason: "exit",
 *     durationMs: 1834,
 *     completed: false,
 *     summary: "The program failed: it exited with code 1 after 1.83 s.",
 *   },
 *   events: [],
 *   entries: [{
 *     kind: "read",
 *     value: "/etc/passwd",
 *     hostValue: null,
 *     decision: "deny",
 *     reason: "read access to '/etc/passwd' is not granted",
 *     count: 1,
 *     time: "2025-06-12T09:41:07.123Z",
 *   }],
 *   summary: { read: { allowed: 0, denied: 1 } },
 *   minimalFlags: [],
 *   denoCommand: "deno run agent.ts",
 *   workingDirectory: "/work",
 *   refused: [{
 *     kind: "read",
 *     value: "/etc/passwd",
 *     cause: "refused",
 *     reason: "read access to '/etc/passwd' is not granted",
 *     count: 1,
 *   }],
 *   callouts: [],
 *   flagNotes: [],
 *   policySnippet: {},
 * }, { color: false, width: 80 });
 * console.log(text);
 * ```
 */
export function renderAuditText(
  report: AuditReport,
  options: RenderAuditTextOptions = {},
): string {
  const width = options.width ?? 100;
  if (!Number.isInteger(width) || width < MIN_WIDTH) {
    throw new RangeError(
      `Cannot render the audit report as 'width' must be an integer of at least ${MIN_WIDTH}: current value is ${width}`,
    );
  }
  const style = styles(options.color ?? false);
  const out: string[] = [];
  out.push(...header(report, style, width), "");
  const absent: ReportKind[] = [];
  for (const kind of REPORT_KINDS) {
    const entries = report.entries.filter((e) => e.kind === kind);
    if (
      entries.length === 0 && !report.unrecorded?.some((u) => u.kind === kind)
    ) {
      absent.push(kind);
      continue;
    }
    out.push(...table(kind, entries, report, style, width), "");
  }
  if (absent.length > 0) {
    out.push(style.dim(`Not attempted: ${absent.join(", ")}`), "");
  }
  out.push(...requests(report, style, width), "");
  out.push(...output(report, style, width), "");
  out.push(...refused(report, style, width), "");
  out.push(...flags(report, style, width), "");
  out.push(style.bold("airlock policy"));
  if (Object.keys(report.policySnippet).length === 0) {
    out.push(`${INDENT}${style.dim("(nothing to grant)")}`);
  } else {
    const json = JSON.stringify(report.policySnippet, null, 2);
    out.push(...json.split("\n").map((line) => INDENT + printable(line)));
  }
  return out.join("\n") + "\n";
}

/**
 * Makes a value from the audited program safe to print: C0/C1 control
 * characters, DEL and bidirectional formatting characters become visible
 * escapes (`\x1b`, `\u202e`).
 *
 * @param value Any string.
 * @returns The string with every such character escaped.
 *
 * @example Usage
 * ```ts
 * import { printable } from "./render_text.ts";
 * console.log(printable("/tmp/\x1b[2Jx")); // "/tmp/\x1b[2Jx" with the ESC shown as text
 * ```
 */
export function printable(value: string): string {
  return value.replace(UNPRINTABLE, (ch) => {
    const code = ch.charCodeAt(0);
    return code <= 0xff
      ? `\\x${code.toString(16).padStart(2, "0")}`
      : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** C0 and C1 controls, DEL, and the bidi marks, embeddings, overrides and
 * isolates. C1 includes U+009B, a one-character CSI: as dangerous as ESC [. */
const UNPRINTABLE =
  // deno-lint-ignore no-control-regex -- matching them is the point
  /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

interface Style {
  bold(text: string): string;
  dim(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
}

function styles(color: boolean): Style {
  const wrap = (open: number, close: number) => (text: string) =>
    color ? `\x1b[${open}m${text}\x1b[${close}m` : text;
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    red: wrap(31, 39),
    green: wrap(32, 39),
    yellow: wrap(33, 39),
  };
}

function header(report: AuditReport, style: Style, width: number): string[] {
  const { run } = report;
  const seconds = `${(run.durationMs / 1000).toFixed(2)} s`;
  const ended = run.reason === "exit"
    ? `exited with code ${run.exitCode} after ${seconds}`
    : `ended by ${
      printable(run.reason)
    } (exit code ${run.exitCode}) after ${seconds}`;
  let allowed = 0;
  let deniedCount = 0;
  for (const slot of Object.values(report.summary)) {
    allowed += slot?.allowed ?? 0;
    deniedCount += slot?.denied ?? 0;
  }
  const mode = report.learn
    ? "learn: attempts were allowed and recorded"
    : "enforce: denied attempts failed inside the program";
  const rows: [string, string][] = [
    ["mode", cut(mode, width - 12)],
    [
      "run",
      run.completed
        ? cut(ended, width - 12)
        : style.red(cut(`INCOMPLETE: ${ended}`, width - 12)),
    ],
    ["generated", cut(printable(report.generatedAt), width - 12)],
    [
      "attempts",
      `${style.green(`${allowed} allowed`)}, ${
        deniedCount > 0
          ? style.red(`${deniedCount} denied`)
          : `${deniedCount} denied`
      }`,
    ],
  ];
  if (report.mirror) {
    const m = report.mirror;
    const readOnly = m.readOnly.length > 0
      ? `; ${m.readOnly.join(", ")} read-only`
      : "";
    const problems = m.problems.length > 0
      ? `; ${m.problems.length} not copied`
      : "";
    rows.push([
      "directory",
      cut(
        `a writable throwaway copy of ${
          printable(m.path)
        } (${m.files} entries, ${m.bytes} bytes${readOnly}${problems})`,
        width - 12,
      ),
    ]);
  }
  const paint = run.completed ? (t: string) => t : style.yellow;
  return [
    style.bold(
      cut(`airlock permission audit: ${printable(report.program)}`, width),
    ),
    ...rows.map(([label, text]) => `${INDENT}${label.padEnd(10)}${text}`),
    "",
    ...wrap(printable(run.summary), width - INDENT.length).map((line) =>
      INDENT + paint(line)
    ),
    ...(report.mirror?.problems ?? []).slice(0, 5).map((p) =>
      INDENT + style.dim(cut(`not copied: ${printable(p)}`, width - 2))
    ),
  ];
}

function table(
  kind: ReportKind,
  entries: readonly ReportEntry[],
  report: AuditReport,
  style: Style,
  width: number,
): string[] {
  const slot = report.summary[kind] ?? { allowed: 0, denied: 0 };
  const title = `${kind}: ${slot.allowed} allowed, ${slot.denied} denied`;
  const withHost = entries.some((e) => shownHost(e) !== null);
  const rows = entries.map((e) => ({
    value: printable(e.value),
    host: printable(shownHost(e) ?? ""),
    decision: e.decision,
    count: String(e.count),
    reason: printable(
      e.injected && e.injected.length > 0
        ? `injected ${e.injected.join(", ")}; ${e.reason}`
        : e.reason,
    ),
  }));
  const countWidth = Math.max(5, ...rows.map((r) => r.count.length));
  const decisionWidth = 8;
  const flexible = withHost ? 3 : 2;
  const fixed = INDENT.length + decisionWidth + countWidth +
    GAP.length * (flexible + 1);
  const natural = [
    Math.max(5, ...rows.map((r) => length(r.value))),
    ...(withHost ? [Math.max(10, ...rows.map((r) => length(r.host)))] : []),
    Math.max(6, ...rows.map((r) => length(r.reason))),
  ];
  const widths = fit(natural, width - fixed, 8);
  const valueWidth = widths[0]!;
  const hostWidth = withHost ? widths[1]! : 0;
  const reasonWidth = widths[widths.length - 1]!;
  const line = (
    value: string,
    host: string,
    decision: string,
    count: string,
    reason: string,
  ) =>
    [
      INDENT,
      value,
      GAP,
      ...(withHost ? [host, GAP] : []),
      decision,
      GAP,
      count,
      GAP,
      reason,
    ].join("").trimEnd();
  const out = [
    style.bold(title),
    style.dim(line(
      pad("value", valueWidth),
      pad("host value", hostWidth),
      pad("decision", decisionWidth),
      "count".padStart(countWidth),
      "reason",
    )),
  ];
  for (const row of rows) {
    const paint = row.decision === "deny" ? style.red : style.green;
    out.push(line(
      pad(cutMiddle(row.value, valueWidth), valueWidth),
      pad(cutMiddle(row.host, hostWidth), hostWidth),
      paint(pad(row.decision, decisionWidth)),
      row.count.padStart(countWidth),
      cut(row.reason, reasonWidth),
    ));
  }
  for (const more of report.unrecorded ?? []) {
    if (more.kind !== kind) continue;
    const latest = more.lastValue === undefined
      ? ""
      : `; the latest: ${cutMiddle(printable(more.lastValue), 60)}`;
    out.push(style.dim(
      `${INDENT}… and ${more.count} more ${
        more.decision === "deny" ? "denied" : "allowed"
      }, counted but not recorded one by one (the run's audit bound)${latest}`,
    ));
  }
  return out;
}

/** The host value when it says something the sandbox value does not. */
function shownHost(entry: ReportEntry): string | null {
  return entry.hostValue !== null && entry.hostValue !== entry.value
    ? entry.hostValue
    : null;
}

/** Most requests listed one by one. */
const MAX_REQUESTS = 50;

function requests(report: AuditReport, style: Style, width: number): string[] {
  const list = egressEvents(report.events).filter((e) =>
    e.kind !== "secret-echo" &&
    !(e.kind === "connect" && e.decision === "allow")
  );
  const out = [style.bold(`Requests (${list.length})`)];
  if (list.length === 0) {
    out.push(`${INDENT}${style.dim("no request went through the injector")}`);
    return out;
  }
  for (const e of list.slice(0, MAX_REQUESTS)) {
    const refused = e.decision === "deny" || e.decision === "error";
    const mark = refused ? style.red("✗") : style.green("✓");
    const target = e.kind === "connect"
      ? `CONNECT ${e.host}:${e.port}`
      : `${e.method} ${e.scheme}://${e.host}:${e.port}${e.path}`;
    const status = e.status === null ? "no answer" : String(e.status);
    const injected = e.injected.length > 0
      ? `  injected: ${e.injected.join(", ")}`
      : "";
    const room = width - INDENT.length - 2 - length(status) - 3 -
      length(injected);
    out.push(
      `${INDENT}${mark} ${
        cutMiddle(printable(target), Math.max(room, 16))
      } → ${status}${style.yellow(printable(injected))}`,
    );
    if (refused && e.reason) {
      for (const part of wrap(printable(e.reason), width - 6)) {
        out.push(style.dim(`${INDENT}    ${part}`));
      }
    }
  }
  if (list.length > MAX_REQUESTS) {
    out.push(style.dim(`${INDENT}… and ${list.length - MAX_REQUESTS} more`));
  }
  return out;
}

function output(report: AuditReport, style: Style, width: number): string[] {
  const out = [style.bold("Program output")];
  if (!report.output) {
    out.push(`${INDENT}${style.dim("(not recorded)")}`);
    return out;
  }
  const stream = (name: string, o: BoundedOutput) => {
    if (o.length === 0) {
      out.push(`${INDENT}${name}: ${style.dim("(empty)")}`);
      return;
    }
    const note = o.omitted > 0
      ? ` (${o.length} characters; ${o.omitted} left out of the middle)`
      : "";
    out.push(`${INDENT}${name}${style.dim(note)}:`);
    for (const line of o.text.replace(/\n$/, "").split("\n")) {
      out.push(`${INDENT}${style.dim("│")} ${cut(printable(line), width - 4)}`);
    }
  };
  stream("stdout", report.output.stdout);
  stream("stderr", report.output.stderr);
  return out;
}

function refused(report: AuditReport, style: Style, width: number): string[] {
  const list = report.refused;
  const out = [style.bold(`Refused, not granted (${list.length})`)];
  if (list.length === 0) {
    out.push(`${INDENT}${style.dim("nothing was refused or left out")}`);
    return out;
  }
  const indent = `${INDENT}    `;
  for (const target of list) {
    const times = target.count > 1 ? ` ×${target.count}` : "";
    const head = `${target.kind} `;
    const tag = target.sensitive ? `  [sensitive: ${target.sensitive}]` : "";
    const room = width - INDENT.length - 2 - head.length - times.length;
    out.push(
      `${INDENT}${style.red("✗")} ${head}${
        cutMiddle(printable(target.value), Math.max(room, 8))
      }${style.dim(times)}`,
    );
    const why = target.cause === "refused"
      ? `refused in the run: ${target.reason}${tag}`
      : `left out: ${target.reason}`;
    for (const part of wrap(printable(why), width - indent.length)) {
      out.push(style.dim(indent + part));
    }
  }
  return out;
}

function flags(report: AuditReport, style: Style, width: number): string[] {
  const out = [style.bold("Minimal flags for plain deno run")];
  for (const note of report.flagNotes) {
    for (const part of wrap(printable(note), width - INDENT.length)) {
      out.push(INDENT + style.yellow(part));
    }
  }
  for (const c of report.callouts) {
    const text = `⚠ ${c.kind} ${c.value}: ${c.why}`;
    for (const part of wrap(printable(text), width - INDENT.length)) {
      out.push(INDENT + style.yellow(part));
    }
  }
  out.push(
    style.dim(
      `${INDENT}from ${
        cutMiddle(printable(report.workingDirectory), width - 8)
      }:`,
    ),
  );
  out.push(INDENT + printable(report.denoCommand));
  return out;
}
