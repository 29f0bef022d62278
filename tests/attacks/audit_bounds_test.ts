/**
 * Audit bounds: what one program can make the harness hold. Every
 * permission check and request is a record in harness memory; the program
 * chooses how many distinct ones it makes and how long each value is. Each
 * case runs a real sandbox and asserts on the records themselves (counts,
 * lengths, estimated bytes: deterministic, unlike heap readings; the
 * measured heap cost is `bench/audit_memory.ts`'s), that nothing was
 * dropped silently ("and N more like this" counts every attempt), and that
 * the harness still runs programs afterwards.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../../mod.ts";
import type {
  AuditEvent,
  AuditOverflowEvent,
  PermissionEvent,
  RunResult,
} from "../../mod.ts";
import { AUDIT_BOUNDS, auditEventBytes } from "../../harness/_audit_bounds.ts";
import { buildAuditReport } from "../../audit/report.ts";
import { renderAuditText } from "../../audit/render_text.ts";

const LIMITS = { timeoutMs: 120_000 };

const permissions = (events: readonly AuditEvent[]) =>
  events.filter((e): e is PermissionEvent => e.source === "broker");
const overflows = (events: readonly AuditEvent[]) =>
  events.filter((e): e is AuditOverflowEvent =>
    e.source === "harness" && e.kind === "audit-overflow"
  );

/** The run's audit is within the per-run bound; returns its summaries. */
function assertRunBounded(result: RunResult): AuditOverflowEvent[] {
  const summaries = overflows(result.audit);
  const kept = result.audit.filter((e) => !summaries.includes(e as never));
  assert.ok(
    kept.length <= AUDIT_BOUNDS.runRecords,
    `${kept.length} records kept`,
  );
  const bytes = kept.reduce((n, e) => n + auditEventBytes(e), 0);
  assert.ok(bytes <= AUDIT_BOUNDS.runBytes, `${bytes} bytes kept`);
  for (const event of permissions(result.audit)) {
    assert.ok((event.value?.length ?? 0) <= AUDIT_BOUNDS.valueChars);
  }
  // One summary per kind and decision, at most.
  const keys = summaries.map((s) => `${s.of} ${s.decision}`);
  assert.equal(new Set(keys).size, keys.length);
  return summaries;
}

/** A trivial program still runs correctly in the same harness. */
async function assertHealthy(sandbox: Sandbox): Promise<void> {
  const after = await sandbox.run({ code: "console.log(6 * 7)" });
  assert.equal(after.stdout, "42\n", after.stderr);
  await using fresh = await Sandbox.create();
  const other = await fresh.run({ code: "console.log('bystander')" });
  assert.equal(other.stdout, "bystander\n", other.stderr);
}

Deno.test("audit: a flood of unique long paths keeps a bounded audit and counts every attempt", async () => {
  const N = 6_000;
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: LIMITS },
  });
  const result = await sandbox.run({
    code: `
      const long = "b".repeat(700);
      let made = 0;
      for (let i = 0; i < ${N}; i++) {
        // Denied: outside every grant.
        try { Deno.statSync("/etc/flood-" + i + "/" + long); } catch { made++; }
      }
      for (let i = 0; i < ${N}; i++) {
        // Allowed (then not found): under /scratch.
        try { Deno.statSync("/scratch/flood-" + i + "/" + long); } catch { made++; }
      }
      console.log(made);
    `,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(result.stdout, `${2 * N}\n`);
  const summaries = assertRunBounded(result);
  // Every attempt is either a record or counted in its summary.
  const denied = permissions(result.audit).filter((e) =>
    e.value?.startsWith("/etc/flood-")
  );
  const allowed = permissions(result.audit).filter((e) =>
    e.value?.startsWith("/scratch/flood-")
  );
  const summary = (decision: string) =>
    summaries.find((s) => s.of === "read" && s.decision === decision)
      ?.count ?? 0;
  assert.equal(denied.length + summary("deny"), N);
  assert.equal(allowed.length + summary("allow"), N);
  assert.ok(summary("deny") > 0, "control: the flood went past the bound");
  // What came last is still named: a flood cannot hide it entirely.
  assert.match(
    summaries.find((s) => s.decision === "deny")?.lastValue ?? "",
    new RegExp(`^/etc/flood-${N - 1}/b+$`),
  );
  // The report says so too.
  const report = buildAuditReport(result, {
    program: "flood.ts",
    learn: false,
    paths: [],
  });
  assert.equal(report.summary.read?.denied, N);
  assert.match(
    renderAuditText(report),
    new RegExp(
      `… and ${
        summary("deny")
      } more denied, counted but not recorded .*; the latest: /etc/flood-${
        N - 1
      }/`,
    ),
  );
  await assertHealthy(sandbox);
});

Deno.test("audit: a sandbox retains a bounded trail across runs", async () => {
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: LIMITS },
  });
  // Each run fills its own bound: together more than a sandbox keeps.
  for (let run = 0; run < 6; run++) {
    const result = await sandbox.run({
      code: `const long = "c".repeat(900);
        for (let i = 0; i < 2100; i++) {
          try { Deno.statSync("/etc/r${run}-" + i + "/" + long); } catch { /* denied */ }
        }`,
    });
    assert.equal(result.exitCode, 0, result.stderr);
  }
  const trail = sandbox.auditTrail;
  assert.ok(trail.length <= AUDIT_BOUNDS.trailRecords, `${trail.length}`);
  const bytes = trail.reduce((n, e) => n + auditEventBytes(e), 0);
  assert.ok(bytes <= AUDIT_BOUNDS.trailBytes, `${bytes}`);
  // The latest run is the one retained whole.
  const last = permissions(trail).at(-1);
  assert.match(last?.value ?? "", /^\/etc\/r5-/);
  await assertHealthy(sandbox);
});

Deno.test("audit: a multi-megabyte permission value is denied and recorded cut, and the run goes on", async () => {
  await using sandbox = await Sandbox.create({
    policy: { scratch: true, limits: LIMITS },
  });
  const length = 8 * 1024 * 1024;
  const result = await sandbox.run({
    code: `
      const huge = "/scratch/" + "a".repeat(${length - 9});
      try { Deno.statSync(huge); } catch (e) { console.log("stat:", e.name); }
      try { Deno.readTextFileSync(huge.slice(0, 40_000)); } catch (e) { console.log("read:", e.code ?? e.name); }
      try { Deno.env.get("E".repeat(3_000_000)); } catch (e) { console.log("env:", e.name); }
      try { new Deno.Command("/bin/" + "x".repeat(3_000_000)).outputSync(); } catch (e) { console.log("run:", e.name); }
      Deno.writeTextFileSync("/scratch/after.txt", "still running");
      console.log("after");
    `,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  assert.equal(
    result.stdout,
    // The 40,000-character path fits the broker's line: allowed (under
    // /scratch), then refused by the kernel (a name over 255 bytes).
    "stat: NotCapable\nread: ENAMETOOLONG\nenv: NotCapable\nrun: NotCapable\nafter\n",
  );
  assertRunBounded(result);
  const huge = permissions(result.audit).find((e) => e.valueLength === length);
  assert.ok(
    huge,
    JSON.stringify(
      permissions(result.audit).map((
        e,
      ) => [e.value?.slice(0, 30), e.valueLength]),
    ),
  );
  assert.equal(huge.permission, "read");
  assert.equal(huge.decision, "deny");
  assert.equal(huge.value, `/scratch/${"a".repeat(1024 - 9)}`);
  const cut = permissions(result.audit).find((e) => e.valueLength === 40_000);
  assert.equal(cut?.decision, "allow");
  assert.equal(cut?.value?.length, 1024);
  // Every kind of check is held to the same bound.
  for (const [kind, size] of [["env", 3_000_000], ["run", 3_000_005]]) {
    const event = permissions(result.audit).find((e) =>
      e.permission === kind && e.valueLength === size
    );
    assert.equal(event?.decision, "deny", `${kind}`);
    assert.equal(event?.value?.length, 1024);
  }
  assert.ok(
    permissions(result.audit).some((e) =>
      e.value === "/scratch/after.txt" && e.decision === "allow"
    ),
  );
  await assertHealthy(sandbox);
});
