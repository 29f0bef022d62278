import assert from "node:assert/strict";
import type { AuditReport } from "../report.ts";
import { auditText } from "./mod.ts";
import { parseTrail, type Trail, trailSuggestion } from "./trail.ts";

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
    run: {
      exitCode: 0,
      reason: "exit",
      durationMs: 10,
      completed: true,
      summary: "The program exited with code 0.",
    },
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
    workingDirectory: ".",
    refused: [],
    callouts: [],
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
    // /etc/hosts was allowed and needed: kept, with why it is risky;
    // the refused key stays out.
    "the recorded run of agent.ts used: --allow-read=./data/in.csv,/etc/hosts; not proposed (refused in the run, or sensitive): /root/.ssh/id_rsa; kept though risky, as the run needed them (check each): /etc/hosts (reads /etc/hosts: system configuration)",
  );
  assert.equal(
    fix(3, "--allow-net"),
    "the recorded run of agent.ts used: --allow-net=api.example.com:443; not proposed (refused in the run, or sensitive): pastebin.com:443",
  );
  assert.equal(
    fix(3, "--allow-env"),
    "the recorded run of agent.ts used no env: delete --allow-env",
  );
  assert.match(
    fix(4, "-A")!,
    /needed only: --allow-read=\.\/data\/in\.csv,\/etc\/hosts --allow-net=api\.example\.com:443;/,
  );
  // Another program's command gets the advice derived from its own command.
  assert.equal(
    fix(5, "--allow-net"),
    "list the hosts other.ts reaches: deno run --allow-net=<hosts it reaches> --no-prompt other.ts",
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

Deno.test("trailSuggestion() keeps a needed risky grant runnable and says why, but never a sensitive one", () => {
  const learned: Trail = {
    program: "weather.ts",
    learn: true,
    entries: [
      {
        kind: "env",
        value: "WEATHER_TOKEN",
        hostValue: null,
        decision: "allow",
      },
      {
        kind: "read",
        value: "/root/.ssh/id_rsa",
        hostValue: null,
        decision: "allow",
      },
      {
        kind: "net",
        value: "169.254.169.254:80",
        hostValue: null,
        decision: "allow",
      },
    ],
    // An older report could list a learned key read among the flags.
    minimalFlags: [
      "--allow-env=WEATHER_TOKEN",
      "--allow-read=/root/.ssh/id_rsa",
      "--allow-net=api.weather.example:443,169.254.169.254:80",
    ],
  };
  const fix = trailSuggestion(
    { kind: "all", values: null, flag: "-A" },
    learned,
  );
  // The variable the program needs stays in the proposed flags.
  assert.match(fix, /needed only: --allow-env=WEATHER_TOKEN /);
  assert.match(fix, /kept though risky.*: env WEATHER_TOKEN \(/);
  // A key and the metadata service are never proposed.
  assert.match(fix, /--allow-net=api\.weather\.example:443(;| )/);
  assert.doesNotMatch(fix, /--allow-read=/);
  assert.match(
    fix,
    /not proposed \(refused in the run, or sensitive\): read \/root\/\.ssh\/id_rsa, net 169\.254\.169\.254:80/,
  );
});
