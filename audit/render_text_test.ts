import assert from "node:assert/strict";
import type { AuditReport, ReportEntry } from "./report.ts";
import { printable, renderAuditText } from "./render_text.ts";

const fixture: AuditReport = JSON.parse(
  await Deno.readTextFile(
    new URL("../tests/fixtures/audit_report.json", import.meta.url),
  ),
);

// deno-lint-ignore no-control-regex -- the renderer's colour codes
const ANSI = /\x1b\[[0-9;]*m/g;

function entry(fields: Partial<ReportEntry>): ReportEntry {
  return {
    kind: "read",
    value: "/inputs/a.txt",
    hostValue: null,
    decision: "allow",
    reason: "under a granted read path",
    count: 1,
    time: "2025-06-12T09:41:07.123Z",
    ...fields,
  };
}

function report(entries: ReportEntry[], fields: Partial<AuditReport> = {}) {
  const summary: AuditReport["summary"] = {};
  for (const e of entries) {
    const slot = summary[e.kind] ??= { allowed: 0, denied: 0 };
    if (e.decision === "allow") slot.allowed += e.count;
    else slot.denied += e.count;
  }
  return {
    program: "agent.ts",
    generatedAt: "2025-06-12T09:41:09.220Z",
    learn: false,
    run: {
      exitCode: 0,
      reason: "exit",
      durationMs: 1200,
      completed: true,
      summary: "The program ran to its end.",
    },
    events: [],
    entries,
    summary,
    minimalFlags: [],
    denoCommand: "deno run agent.ts",
    workingDirectory: "/work",
    refused: [],
    callouts: [],
    flagNotes: [],
    policySnippet: {},
    ...fields,
  } satisfies AuditReport;
}

/** The lines of one section: from its title to the next blank line. */
function section(text: string, title: string): string[] {
  const lines = text.split("\n");
  const start = lines.findIndex((line) => line.startsWith(title));
  assert.notEqual(start, -1, `no section '${title}'`);
  const end = lines.indexOf("", start);
  return lines.slice(start, end === -1 ? undefined : end);
}

Deno.test("renderAuditText() shows the header, a table per attempted kind, refusals, flags and policy", () => {
  const text = renderAuditText(fixture, { color: false });
  assert.match(text, /^airlock permission audit: agent\.ts\n/);
  assert.match(text, /mode {6}enforce/);
  assert.match(text, /run {7}INCOMPLETE: exited with code 1 after 1\.83 s/);
  // How the run ended, in a sentence, right under the header.
  assert.match(
    text,
    /\n\n {2}The program failed: it exited with code 1 after 1\.83 s\. The result is\s+partial/,
  );
  for (const kind of ["read", "write", "net", "env", "run", "sys", "ffi"]) {
    const slot = fixture.summary[kind as "read"]!;
    assert.ok(
      text.includes(
        `\n${kind}: ${slot.allowed} allowed, ${slot.denied} denied\n`,
      ),
      `no table for ${kind}`,
    );
  }
  assert.match(text, /\nimport: 0 allowed, 1 denied\n/);
  assert.match(text, /\negress: 2 allowed, 2 denied\n/);
  assert.match(text, /\nRefused, not granted \(14\)\n/);
  const flags = section(text, "Minimal flags for plain deno run");
  assert.ok(flags.includes(`  ${fixture.denoCommand}`));
  assert.ok(flags.includes("  from /work/agent:"));
  const policy = section(text, "airlock policy").slice(1).join("\n");
  assert.equal(
    policy,
    JSON.stringify(fixture.policySnippet, null, 2).replace(/^/gm, "  "),
  );
});

Deno.test("renderAuditText() lists every refused target with its reason, sensitive ones tagged", () => {
  const text = renderAuditText(fixture, { color: false, width: 200 });
  const refused = section(text, "Refused, not granted").join("\n");
  assert.ok(fixture.refused.length > 0);
  for (const t of fixture.refused) {
    assert.ok(refused.includes(`✗ ${t.kind} ${t.value}`), t.value);
    assert.ok(refused.includes(t.reason), t.reason);
  }
  assert.match(refused, /id_ed25519\n.*\[sensitive: SSH keys/);
  assert.match(
    refused,
    /169\.254\.169\.254:80\n.*\[sensitive: a cloud metadata/,
  );
  // Nothing refused is in the proposed flag of its kind.
  for (const t of fixture.refused) {
    const flag = fixture.minimalFlags.find((f) =>
      f.startsWith(`--allow-${t.kind}`)
    );
    assert.ok(!flag?.split(/[=,]/).includes(t.value), `${t.kind} ${t.value}`);
  }
});

Deno.test("renderAuditText() shows each request with the header names the injector added", () => {
  const text = renderAuditText(fixture, { color: false, width: 200 });
  const requests = section(text, "Requests").join("\n");
  assert.match(
    requests,
    /✓ GET https:\/\/api\.github\.com:443\/repos\/denoland\/deno\/issues\S* → 200 {2}injected: authorization/,
  );
  assert.match(requests, /✗ CONNECT pastebin\.com:443 → 403/);
  // The egress table names them too.
  assert.match(section(text, "egress:").join("\n"), /injected authorization/);
});

Deno.test("renderAuditText() shows the program's output, escaped, and says when it was cut", () => {
  const text = renderAuditText(fixture, { color: false, width: 200 });
  const out = section(text, "Program output").join("\n");
  assert.ok(out.includes("│ fetched 2 repositories"));
  // The program's ESC and bidi override are shown, never sent raw.
  assert.ok(out.includes("│ \\x1b[2Jinjected\\u202eescape"));
  const cutShort = renderAuditText(
    report([], {
      output: {
        stdout: {
          text: "a\n… 10 characters left out …\nb",
          length: 30,
          omitted: 10,
        },
        stderr: { text: "", length: 0, omitted: 0 },
      },
    }),
  );
  assert.match(
    cutShort,
    /stdout \(30 characters; 10 left out of the middle\):/,
  );
  assert.match(cutShort, /stderr: \(empty\)/);
});

Deno.test("renderAuditText() puts each callout beside the proposed flags", () => {
  const text = renderAuditText(
    report([], {
      callouts: [{
        kind: "run",
        value: "sh",
        why: "a subprocess runs outside Deno's permission checks",
      }],
      denoCommand: "deno run --allow-run=sh agent.ts",
    }),
    { color: false },
  );
  const flags = section(text, "Minimal flags").join("\n");
  assert.match(flags, /⚠ run sh: a subprocess runs outside/);
});

Deno.test("renderAuditText() shows counts and the host value only when it differs", () => {
  const text = renderAuditText(
    report([
      entry({ value: "/inputs/a.txt", hostValue: "./data/a.txt", count: 7 }),
      entry({ kind: "env", value: "HOME", hostValue: "HOME" }),
    ]),
  );
  assert.match(text, /\/inputs\/a\.txt {2}\.\/data\/a\.txt +allow +7 {2}under/);
  assert.match(text, /HOME +allow +1/);
  assert.doesNotMatch(section(text, "env:").join("\n"), /host value/);
});

Deno.test("renderAuditText() writes no ANSI codes when color is false", () => {
  assert.ok(!renderAuditText(fixture, { color: false }).includes("\x1b"));
  assert.ok(!renderAuditText(fixture).includes("\x1b"));
});

Deno.test("renderAuditText() colours denied red, allowed green and headers bold when color is true", () => {
  const text = renderAuditText(fixture, { color: true });
  assert.ok(text.includes("\x1b[1mairlock permission audit: agent.ts\x1b[22m"));
  assert.ok(text.includes("\x1b[1mRefused, not granted (14)\x1b[22m"));
  assert.ok(text.includes("\x1b[31mdeny    \x1b[39m"));
  assert.ok(text.includes("\x1b[32mallow   \x1b[39m"));
  assert.ok(text.includes(`\x1b[31m✗\x1b[39m read /etc/passwd`));
  assert.ok(text.includes("\x1b[31mINCOMPLETE: exited with code 1"));
  // Without the codes it is the same report.
  assert.equal(
    text.replace(ANSI, ""),
    renderAuditText(fixture, { color: false }),
  );
});

Deno.test("renderAuditText() cuts long values to the width with '…' but never the command or policy", () => {
  const long = `/scratch/${
    "very-long-directory-name/".repeat(6)
  }final-file.json`;
  const text = renderAuditText(
    report([entry({ kind: "write", value: long, reason: "x ".repeat(80) })], {
      denoCommand: `deno run --allow-write=${long} agent.ts`,
      minimalFlags: [`--allow-write=${long}`],
      policySnippet: { inputs: [long] },
    }),
    { width: 60 },
  );
  const lines = text.split("\n");
  const command = lines.findIndex((l) => l.includes("deno run --allow-write"));
  const policy = lines.indexOf("airlock policy");
  for (const [i, line] of lines.entries()) {
    if (i === command || i > policy) continue;
    assert.ok([...line].length <= 60, `too wide: ${line}`);
  }
  const row = lines.find((l) => l.includes("allow") && l.includes("…"));
  assert.ok(row, "no cut row");
  assert.match(row, /^ {2}\/scratch\/v.*….*file\.json +allow/);
  assert.ok(lines[command]!.includes(long));
  assert.ok(text.includes(`"${long}"`));
});

Deno.test("renderAuditText() fits the fixture's tables in the default width of 100", () => {
  const text = renderAuditText(fixture);
  const policy = text.indexOf("\nMinimal flags");
  for (const line of text.slice(0, policy).split("\n")) {
    assert.ok([...line].length <= 100, `too wide: ${line}`);
  }
  assert.ok(text.includes("…"));
});

Deno.test("renderAuditText() shows control and bidi characters from the program as escapes, never raw", () => {
  // A file name carrying "clear screen" and a right-to-left override: raw,
  // it would wipe the report or display a different name than the real one.
  const value = "/scratch/\x1b[2J\x1b[Hok\u202etxt.exe\x9b31m";
  const text = renderAuditText(
    report([entry({ value, decision: "deny", reason: `no '${value}'` })], {
      program: "a\x07.ts",
    }),
    { color: true, width: 200 },
  );
  assert.ok(text.includes("/scratch/\\x1b[2J\\x1b[Hok\\u202etxt.exe\\x9b31m"));
  assert.ok(text.includes("a\\x07.ts"));
  // Apart from the renderer's own colours, nothing is left to escape.
  for (const line of text.replace(ANSI, "").split("\n")) {
    assert.equal(printable(line), line);
  }
});

Deno.test("renderAuditText() says so when nothing was attempted, denied or needs granting", () => {
  const text = renderAuditText(report([]), { color: false });
  assert.ok(
    text.includes(
      "Not attempted: read, write, net, env, run, sys, ffi, import, egress",
    ),
  );
  assert.ok(
    text.includes(
      "Refused, not granted (0)\n  nothing was refused or left out",
    ),
  );
  assert.ok(text.includes("Requests (0)\n"));
  assert.ok(text.includes("airlock policy\n  (nothing to grant)\n"));
  assert.ok(text.includes("  deno run agent.ts\n"));
});

Deno.test("renderAuditText() names learn mode and an exit that was not the program's own", () => {
  const text = renderAuditText(
    report([], {
      learn: true,
      run: {
        exitCode: 137,
        reason: "timeout",
        durationMs: 30000,
        completed: false,
        summary: "The program was cut short: the time limit ended it.",
      },
    }),
  );
  assert.match(text, /mode {6}learn/);
  assert.match(
    text,
    /INCOMPLETE: ended by timeout \(exit code 137\) after 30\.00 s/,
  );
  assert.match(text, /cut short: the time limit ended it/);
});

Deno.test("renderAuditText() prints each flag note under the minimal flags", () => {
  const note =
    "These flags grant everything the program tried, denied attempts included: drop what it should not have.";
  const text = renderAuditText(
    report([entry({ decision: "deny" })], {
      minimalFlags: ["--allow-read=./a.txt"],
      flagNotes: [note],
    }),
    { color: false },
  );
  assert.ok(
    section(text, "Minimal flags for plain deno run").join(" ").includes(
      "denied attempts included",
    ),
  );
  assert.ok(
    !renderAuditText(
      report([entry({})], {
        minimalFlags: ["--allow-read=./a.txt"],
      }),
      { color: false },
    ).includes("denied attempts included"),
  );
});

Deno.test("renderAuditText() rejects a width below 40", () => {
  assert.throws(
    () => renderAuditText(fixture, { width: 10 }),
    new RangeError(
      "Cannot render the audit report as 'width' must be an integer of at least 40: current value is 10",
    ),
  );
});

Deno.test("printable() escapes C0, C1, DEL and bidi controls and keeps other text", () => {
  assert.equal(
    printable("a\tb\n\x7f\x85\u2066é✓"),
    "a\\x09b\\x0a\\x7f\\x85\\u2066é✓",
  );
  assert.equal(printable("/inputs/data.csv"), "/inputs/data.csv");
});
