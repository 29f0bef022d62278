import assert from "node:assert/strict";
import type { AuditReport } from "../report.ts";
import { auditText } from "./mod.ts";
import { parseTrail, type Trail } from "./trail.ts";

/** A recorded run of agent.ts: what it read, reached and was refused. */
function report(learn: boolean): AuditReport {
  const entry = (
    kind: AuditReport["entries"][number]["kind"],
    value: string,
    decision: "allow" | "deny",
  ) => ({
    kind,
    value,
    hostValue: null,
    decision,
    reason: "test",
    count: 1,
    time: "2025-06-12T09:41:07.000Z",
  });
  return {
    program: "agent.ts",
    generatedAt: "2025-06-12T09:41:09.000Z",
    learn,
    run: { exitCode: 0, reason: "exit", durationMs: 10 },
    events: [],
    entries: [
      {
        ...entry("read", "/inputs/in.csv", "allow"),
        hostValue: "./data/in.csv",
      },
      entry("read", "/etc/hosts", "allow"),
      entry("read", "/root/.ssh/id_rsa", "deny"),
      entry("egress", "api.example.com:443", "allow"),
      entry("egress", "pastebin.com:443", "deny"),
    ],
    summary: {},
    minimalFlags: [
      "--allow-read=./data/in.csv,/etc/hosts,/root/.ssh/id_rsa",
      "--allow-net=api.example.com:443,pastebin.com:443",
    ],
    denoCommand: "deno run ... agent.ts",
    flagNotes: [],
    policySnippet: {},
  };
}

Deno.test("auditText() with a trail proposes the flags the run used, never refused or risky values", () => {
  const text = JSON.stringify(
    {
      tasks: {
        a: "deno run --allow-read --allow-net --allow-env --no-prompt ./agent.ts",
        b: "deno run -A --no-prompt agent.ts",
        c: "deno run --allow-net --no-prompt other.ts",
      },
    },
    null,
    2,
  );
  const trails = parseTrail(report(false), "trail.json");
  // Every AuditReport is a Trail: a change to the report's shape breaks this.
  const typed: Trail = report(false);
  assert.equal(typed.program, trails[0]!.program);
  const fix = (line: number, flag: string) =>
    auditText(text, "deno.json", { trails }).find((f) =>
      f.line === line && f.flag === flag
    )?.suggestion;
  assert.equal(
    fix(3, "--allow-read"),
    "the recorded run of agent.ts used: --allow-read=./data/in.csv; not proposed (refused in the run, or risky): /etc/hosts, /root/.ssh/id_rsa",
  );
  assert.equal(
    fix(3, "--allow-net"),
    "the recorded run of agent.ts used: --allow-net=api.example.com:443; not proposed (refused in the run, or risky): pastebin.com:443",
  );
  assert.equal(
    fix(3, "--allow-env"),
    "the recorded run of agent.ts used no env: delete --allow-env",
  );
  assert.match(
    fix(4, "-A")!,
    /needed only: --allow-read=\.\/data\/in\.csv --allow-net=api\.example\.com:443;/,
  );
  // Another program's command keeps the generic advice.
  assert.equal(
    fix(5, "--allow-net"),
    "list the hosts: --allow-net=api.example.com",
  );
  // In a learn run nothing was refused, but the risky values stay out.
  const learned = auditText(text, "deno.json", {
    trails: parseTrail(report(true), "t"),
  })
    .find((f) => f.line === 3 && f.flag === "--allow-net")?.suggestion;
  assert.equal(
    learned,
    "the recorded run of agent.ts used: --allow-net=api.example.com:443,pastebin.com:443",
  );
});

Deno.test("parseTrail() accepts a report or an array of them and rejects anything else", () => {
  assert.equal(parseTrail([report(false), report(true)], "t").length, 2);
  const bads: unknown[] = [
    null,
    42,
    {},
    { program: "a.ts", entries: [] },
    [{ ...report(false), minimalFlags: [1] }],
    { ...report(false), entries: [{ kind: "read", value: 1 }] },
  ];
  for (const bad of bads) {
    assert.throws(
      () => parseTrail(bad, "bad.json"),
      (e: Error) => e instanceof TypeError && /'bad\.json'/.test(e.message),
    );
  }
});
