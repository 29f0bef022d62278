import assert from "node:assert/strict";
import {
  AUDIT_BOUNDS,
  auditEventBytes,
  AuditTrail,
  boundedValue,
  RunAuditLog,
} from "./_audit_bounds.ts";
import type {
  AuditEvent,
  AuditOverflowEvent,
  EgressEvent,
  PermissionEvent,
} from "./run_result.ts";

function permission(value: string, decision: "allow" | "deny" = "allow") {
  const time = new Date().toISOString();
  return {
    time,
    source: "broker",
    kind: "permission",
    sandboxId: "s",
    runId: "s-r1",
    permission: "read",
    value,
    decision,
    reason: "r",
    count: 1,
    firstTime: time,
    lastTime: time,
  } satisfies PermissionEvent;
}

Deno.test("boundedValue() keeps short values whole and cuts long ones with their length", () => {
  assert.deepEqual(boundedValue("/a"), { value: "/a" });
  const long = "x".repeat(AUDIT_BOUNDS.valueChars + 5);
  assert.deepEqual(boundedValue(long), {
    value: long.slice(0, AUDIT_BOUNDS.valueChars),
    valueLength: long.length,
  });
});

Deno.test("auditEventBytes() grows with the strings a record holds", () => {
  const small = auditEventBytes(permission("/a"));
  const large = auditEventBytes(permission(`/a${"a".repeat(1000)}`));
  assert.equal(large - small, 2 * 1000);
});

Deno.test("RunAuditLog keeps records until its byte bound, then counts them", () => {
  const seen: AuditEvent[] = [];
  const one = auditEventBytes(permission("/scratch/0000"));
  const log = new RunAuditLog((e) => seen.push(e), {
    sandboxId: "s",
    runId: "s-r1",
  }, { runRecords: 1_000, runBytes: one * 3 });
  const kept = Array.from(
    { length: 10 },
    (_, i) => log.record(permission(`/scratch/${String(i).padStart(4, "0")}`)),
  );
  assert.deepEqual(kept, [true, true, true, ...Array(7).fill(false)]);
  const summary = seen.at(-1) as AuditOverflowEvent;
  assert.equal(seen.length, 4);
  assert.equal(summary.kind, "audit-overflow");
  assert.equal(summary.count, 7);
  assert.equal(summary.of, "read");
});

Deno.test("AuditTrail retains at most its record bound, oldest dropped first", () => {
  const trail = new AuditTrail({ trailRecords: 100, trailBytes: 1e9 });
  for (let i = 0; i < 1_000; i++) trail.push(permission(`/scratch/${i}`));
  assert.ok(trail.events.length <= 100);
  assert.ok(trail.events.length >= 90);
  assert.equal(
    (trail.events.at(-1) as PermissionEvent).value,
    "/scratch/999",
  );
});

Deno.test("AuditTrail retains at most its byte bound", () => {
  const bound = 64 * 1024;
  const trail = new AuditTrail({ trailRecords: 1e9, trailBytes: bound });
  for (let i = 0; i < 1_000; i++) {
    trail.push(permission(`/scratch/${i}/${"a".repeat(900)}`));
    assert.ok(trail.bytes <= bound, `${trail.bytes}`);
  }
  const sum = trail.events.reduce((n, e) => n + auditEventBytes(e), 0);
  assert.equal(trail.bytes, sum);
  assert.ok(trail.events.length > 10);
});

Deno.test("RunAuditLog.close() lets go of its sink: nothing outliving the run reaches the sandbox", () => {
  const seen: AuditEvent[] = [];
  const log = new RunAuditLog((e) => seen.push(e), {
    sandboxId: "s",
    runId: "s-r1",
  }, { runRecords: 1, runBytes: 1e9 });
  assert.equal(log.record(permission("/a")), true);
  log.close();
  assert.equal(log.record(permission("/b")), false);
  log.count("read", "allow", new Date().toISOString());
  assert.equal(seen.length, 1);
});

function egress(kind: EgressEvent["kind"], host: string): EgressEvent {
  return {
    time: new Date().toISOString(),
    source: "injector",
    kind,
    sandboxId: "s",
    runId: "s-r1",
    method: "GET",
    scheme: "https",
    host,
    port: 443,
    path: "/",
    decision: "allow",
    rule: "r#0",
    injected: [],
    placeholders: [],
    status: 200,
    bytesOut: 0,
    bytesIn: 0,
    durationMs: 1,
  };
}

Deno.test("RunAuditLog keeps an echo-guard redaction apart from plain requests past its bound", () => {
  const seen: AuditEvent[] = [];
  const log = new RunAuditLog((e) => seen.push(e), {
    sandboxId: "s",
    runId: "s-r1",
  }, { runRecords: 1, runBytes: 1e9 });
  log.record(egress("request", "a.example"));
  for (let i = 0; i < 5; i++) log.record(egress("request", `h${i}.example`));
  log.record(egress("secret-echo", "echo.example"));
  const summaries = seen.filter((e): e is AuditOverflowEvent =>
    e.source === "harness"
  );
  assert.deepEqual(
    summaries.map((s) => [s.egressKind, s.count, s.lastValue]),
    [["request", 5, "h4.example:443"], ["secret-echo", 1, "echo.example:443"]],
  );
});
