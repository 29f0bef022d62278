/**
 * The permission audit as one self-contained HTML page: how the run ended
 * (and whether the report is therefore partial), summary cards per kind,
 * what was refused and not granted, the minimal `deno run` flags with their
 * warnings and the airlock policy, the program's output (bounded), and a
 * timeline of every audit event (requests with the headers the injector
 * added) with client-side filters per kind. No network fetches, no
 * external fonts: the file can be mailed or attached to a ticket.
 *
 * Every value comes from the audited program, which is untrusted. Each
 * interpolated string goes through {@linkcode escapeHtml} (a file named
 * `<script>alert(1)</script>` renders as text), and the page's CSP allows
 * only its own inline script by hash: a missed escape could neither run an
 * injected `<script>` or `onerror=` handler nor load anything.
 *
 * @module
 */

import {
  type AuditReport,
  type BoundedOutput,
  REPORT_KINDS,
  type ReportKind,
} from "./report.ts";
import type { AuditEvent } from "../harness/run_result.ts";
import { printable } from "./render_text.ts";
import { STYLE } from "./_html_style.ts";

/**
 * Escapes text for HTML element content and quoted attribute values.
 *
 * @param value Any string.
 * @returns The string with `&`, `<`, `>`, `"` and `'` as character references.
 *
 * @example Usage
 * ```ts
 * import { escapeHtml } from "./render_html.ts";
 * console.log(escapeHtml("<script>alert(1)</script>"));
 * // "&lt;script&gt;alert(1)&lt;/script&gt;"
 * ```
 */
export function escapeHtml(value: string): string {
  return value
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

/**
 * Renders a permission audit report as one self-contained HTML page.
 *
 * Open with `?hide=read,net` to start with those kinds filtered out of the
 * timeline.
 *
 * @param report The report (from `buildAuditReport`).
 * @returns A complete HTML document.
 *
 * @example Usage
 * ```ts
 * import { renderAuditHtml } from "./render_html.ts";
 * const html = renderAuditHtml({
 *   program: "agent.ts",
 *   generatedAt: "2025-06-12T09:41:09.220Z",
 *   learn: false,
 *   run: {
 *     exitCode: 0,
 *     reason: "exit",
 *     durationMs: 120,
 *     completed: true,
 *     summary: "The program ran to its end (exit code 0, 0.12 s).",
 *   },
 *   events: [],
 *   entries: [],
 *   summary: {},
 *   minimalFlags: [],
 *   denoCommand: "deno run agent.ts",
 *   workingDirectory: "/work",
 *   refused: [],
 *   callouts: [],
 *   flagNotes: [],
 *   policySnippet: {},
 * });
 * console.log(html.startsWith("<!doctype html>")); // true
 * ```
 */
export function renderAuditHtml(report: AuditReport): string {
  const title = `airlock audit: ${report.program}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${text(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<header>
<h1>Permission audit <span class="program">${text(report.program)}</span></h1>
${facts(report)}
<p class="outcome${report.run.completed ? "" : " partial"}" id="outcome">${
    text(report.run.summary)
  }</p>
</header>
<main>
<section aria-labelledby="summary-title">
<h2 id="summary-title">Summary</h2>
<div class="cards">
${REPORT_KINDS.map((kind) => card(kind, report)).join("\n")}
</div>
</section>
<section aria-labelledby="refused-title">
<h2 id="refused-title">Refused, not granted (${report.refused.length})</h2>
${refused(report)}
</section>
<div class="grants">
<section aria-labelledby="flags-title">
<h2 id="flags-title">Minimal flags for plain <code>deno run</code></h2>
${flagNotes(report)}
<p class="from">from <code>${text(report.workingDirectory)}</code>:</p>
<pre id="deno-command">${block(report.denoCommand)}</pre>
</section>
<section aria-labelledby="policy-title">
<h2 id="policy-title">airlock policy</h2>
<pre id="policy">${
    block(
      Object.keys(report.policySnippet).length === 0
        ? "{}"
        : JSON.stringify(report.policySnippet, null, 2),
    )
  }</pre>
</section>
</div>
<section aria-labelledby="output-title">
<h2 id="output-title">Program output</h2>
${output(report)}
</section>
<section aria-labelledby="timeline-title">
<h2 id="timeline-title">Timeline</h2>
${filters(report.events)}
<table id="timeline">
<thead><tr><th class="time">Time</th><th class="kind">Kind</th><th>Value</th><th class="decision">Decision</th><th>Reason / rule</th><th class="num">Count / status</th></tr></thead>
<tbody>
${timeline(report)}
</tbody>
</table>
</section>
</main>
<footer>Generated ${text(report.generatedAt)} by airlock.</footer>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** Filters the timeline by kind; reads `?hide=a,b` for the starting state.
 * Static: no report data, so its hash below never changes with a report. */
const SCRIPT = `
(() => {
  const boxes = [...document.querySelectorAll("input[data-filter]")];
  const rows = [...document.querySelectorAll("#timeline tbody tr")];
  const shown = document.getElementById("shown");
  const hide = new Set((new URLSearchParams(location.search).get("hide") || "")
    .split(",").map((s) => s.trim()).filter(Boolean));
  for (const box of boxes) box.checked = !hide.has(box.dataset.filter);
  const apply = () => {
    const off = new Set(boxes.filter((b) => !b.checked).map((b) => b.dataset.filter));
    // The attribute mirrors the state, so a DOM dump shows it too.
    for (const box of boxes) box.toggleAttribute("checked", box.checked);
    let count = 0;
    for (const row of rows) {
      row.hidden = off.has(row.dataset.kind);
      if (!row.hidden) count++;
    }
    shown.textContent = count + " of " + rows.length + " events shown";
  };
  for (const box of boxes) box.addEventListener("change", apply);
  apply();
})();
`;

/** SHA-256 of {@linkcode SCRIPT} (base64). `render_html_test.ts`
 * recomputes it, and the browser test fails if the script is blocked. */
const SCRIPT_HASH = "sha256-DQljgZfn+9Wk7kfGYEHwhXwDpIIRGZoKuUFpMMjsA2o=";

/** Nothing loads: no fetches, images, fonts, frames or form posts; only
 * this page's own script (by hash, so an injected `<script>` or inline
 * event handler would not run). */
const CSP = [
  "default-src 'none'",
  "style-src 'unsafe-inline'",
  `script-src '${SCRIPT_HASH}'`,
  "base-uri 'none'",
  "form-action 'none'",
].join("; ");

/** Text for element content or a quoted attribute: control and bidi
 * characters made visible, then HTML-escaped. */
function text(value: string): string {
  return escapeHtml(printable(value));
}

/** Like {@linkcode text}, keeping line breaks (for `<pre>`). */
function block(value: string): string {
  return value.split("\n").map(text).join("\n");
}

function facts(report: AuditReport): string {
  const { run } = report;
  let allowed = 0;
  let denied = 0;
  for (const slot of Object.values(report.summary)) {
    allowed += slot?.allowed ?? 0;
    denied += slot?.denied ?? 0;
  }
  const ended = run.reason === "exit"
    ? `exit code ${run.exitCode}`
    : `${run.reason} (exit code ${run.exitCode})`;
  const items = [
    `<li>mode <b>${report.learn ? "learn" : "enforce"}</b></li>`,
    `<li class="${run.completed ? "good" : "bad"}">run <b>${
      text(run.completed ? ended : `incomplete: ${ended}`)
    }</b></li>`,
    ...(report.mirror
      ? [`<li>directory <b>${
        text(
          `a writable throwaway copy of ${report.mirror.path} (${report.mirror.files} entries)`,
        )
      }</b></li>`]
      : []),
    `<li>duration <b>${(run.durationMs / 1000).toFixed(2)} s</b></li>`,
    `<li class="good"><b>${allowed}</b> allowed</li>`,
    `<li class="${denied > 0 ? "bad" : ""}"><b>${denied}</b> denied</li>`,
  ];
  return `<ul class="facts">${items.join("")}</ul>`;
}

function card(kind: ReportKind, report: AuditReport): string {
  const slot = report.summary[kind];
  if (!slot || slot.allowed + slot.denied === 0) {
    return `<div class="card empty" data-kind="${kind}"><h3>${kind}</h3><span class="none">not attempted</span></div>`;
  }
  const total = slot.allowed + slot.denied;
  const pct = (n: number) => `${((n / total) * 100).toFixed(1)}%`;
  return `<div class="card${
    slot.denied > 0 ? " has-denied" : ""
  }" data-kind="${kind}"><h3>${kind}</h3><div class="counts"><span class="ok"><span class="n">${slot.allowed}</span><span class="label">allowed</span></span><span class="no"><span class="n">${slot.denied}</span><span class="label">denied</span></span></div><div class="bar"><i class="a" style="width:${
    pct(slot.allowed)
  }"></i><i class="d" style="width:${pct(slot.denied)}"></i></div></div>`;
}

function flagNotes(report: AuditReport): string {
  return [
    ...report.flagNotes.map((note) => `<p class="note">${text(note)}</p>`),
    ...report.callouts.map((c) =>
      `<p class="callout">⚠ <code>${text(`${c.kind} ${c.value}`)}</code>: ${
        text(c.why)
      }</p>`
    ),
  ].join("\n");
}

function refused(report: AuditReport): string {
  if (report.refused.length === 0) {
    return `<p class="from">nothing was refused or left out</p>`;
  }
  const items = report.refused.map((t) => {
    const times = t.count > 1 ? ` ×${t.count}` : "";
    const tag = t.sensitive
      ? `<span class="tag">sensitive: ${text(t.sensitive)}</span>`
      : "";
    const why = t.cause === "refused"
      ? `refused in the run: ${t.reason}`
      : `left out: ${t.reason}`;
    return `<li><code>${text(`${t.kind} ${t.value}`)}</code>${
      text(times)
    }${tag}<span class="why">${text(why)}</span></li>`;
  });
  return `<ul class="refused" id="refused">${items.join("")}</ul>`;
}

function output(report: AuditReport): string {
  if (!report.output) return `<p class="from">(not recorded)</p>`;
  const stream = (name: string, o: BoundedOutput) => {
    const note = o.length === 0
      ? " (empty)"
      : o.omitted > 0
      ? ` (${o.length} characters; ${o.omitted} left out of the middle)`
      : "";
    return `<p class="stream">${name}${text(note)}</p>${
      o.length === 0
        ? ""
        : `<pre class="output" id="${name}">${block(o.text)}</pre>`
    }`;
  };
  return stream("stdout", report.output.stdout) +
    stream("stderr", report.output.stderr);
}

/** The timeline group of an event, as used by the filters. */
function groupOf(event: AuditEvent): string {
  if (event.source === "broker") return event.permission;
  if (event.source === "injector") return "egress";
  return "harness";
}

function filters(events: readonly AuditEvent[]): string {
  const counts = new Map<string, number>();
  for (const event of events) {
    const group = groupOf(event);
    counts.set(group, (counts.get(group) ?? 0) + 1);
  }
  const order = [...REPORT_KINDS, "harness"];
  const groups = [...counts.keys()].sort((a, b) =>
    (order.indexOf(a) + 1 || order.length + 1) -
    (order.indexOf(b) + 1 || order.length + 1)
  );
  const boxes = groups.map((group) =>
    `<label><input type="checkbox" checked data-filter="${text(group)}">${
      text(group)
    } <span class="count">${counts.get(group)}</span></label>`
  );
  return `<div class="filters" role="group" aria-label="Show kinds">${
    boxes.join("")
  }<span id="shown">${events.length} of ${events.length} events shown</span></div>`;
}

function timeline(report: AuditReport): string {
  // Broker events and entries are one-to-one; the entry adds the host path.
  const hostValues = new Map<string, string>();
  for (const entry of report.entries) {
    if (entry.hostValue !== null && entry.hostValue !== entry.value) {
      hostValues.set(
        key(entry.kind, entry.value, entry.decision),
        entry.hostValue,
      );
    }
  }
  return report.events.map((event) => row(event, hostValues)).join("\n");
}

function key(kind: string, value: string, decision: string): string {
  return `${kind}\0${value}\0${decision}`;
}

function row(event: AuditEvent, hostValues: Map<string, string>): string {
  const group = groupOf(event);
  let kindCell: string;
  let value: string;
  let decision: string;
  let reason: string;
  let num: string;
  let state: "allowed" | "denied" | "info";
  if (event.source === "broker") {
    const shown = event.value ?? "(any)";
    const host = hostValues.get(key(event.permission, shown, event.decision));
    kindCell = text(event.permission);
    value = text(shown) +
      (host === undefined ? "" : `<span class="sub">host ${text(host)}</span>`);
    decision = event.decision;
    state = event.decision === "deny" ? "denied" : "allowed";
    reason = text(event.reason);
    num = `×${event.count}`;
  } else if (event.source === "injector") {
    const target = `${event.host}:${event.port}`;
    kindCell = `egress<span class="sub">${text(event.kind)}</span>`;
    value = text(target) +
      (event.kind === "connect"
        ? ""
        : `<span class="sub">${text(`${event.method} ${event.path}`)}</span>`);
    decision = event.decision;
    state = event.decision === "deny" || event.decision === "error"
      ? "denied"
      : "allowed";
    const why = event.kind === "secret-echo"
      ? `redacted ${
        event.redactions ?? 0
      } secret occurrence(s) from the response`
      : event.reason;
    const injected = event.injected?.length
      ? `<span class="sub injected">injected ${
        text(event.injected.join(", "))
      }</span>`
      : "";
    reason = `<span class="mono">${text(event.rule)}</span>${injected}${
      why ? `<span class="sub">${text(why)}</span>` : ""
    }`;
    num = event.status === null ? "–" : String(event.status);
  } else {
    const { time: _t, source: _s, kind, ...fields } = event;
    kindCell = `harness<span class="sub">${text(kind)}</span>`;
    value = text(JSON.stringify(fields));
    decision = "info";
    state = "info";
    reason = "";
    num = "–";
  }
  return `<tr class="${state}" data-kind="${
    text(group)
  }"><td class="time" title="${text(event.time)}">${
    text(clock(event.time))
  }</td><td class="kind">${kindCell}</td><td class="value">${value}</td><td class="decision"><span class="badge">${
    text(decision)
  }</span></td><td class="reason">${reason}</td><td class="num">${
    text(num)
  }</td></tr>`;
}

/** `2025-06-12T09:41:07.123Z` → `09:41:07.123` (the full time is in the
 * cell's title). */
function clock(iso: string): string {
  const match = /T(\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(iso);
  return match ? match[1]! : iso;
}
