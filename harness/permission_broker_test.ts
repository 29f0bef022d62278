import assert from "node:assert/strict";
import {
  type BrokerOptions,
  MAX_LINE,
  startPermissionBroker,
} from "./permission_broker.ts";
import { RunAuditLog } from "./_audit_bounds.ts";
import type {
  AuditEvent,
  AuditOverflowEvent,
  PermissionEvent,
} from "./run_result.ts";

const grants = {
  read: ["/inputs/data", "/scratch"],
  write: ["/scratch"],
  net: ["api.example.com:443"],
  env: ["PLACEHOLDER"],
  cwd: "/scratch",
};

async function brokerWithClient(
  options: Partial<BrokerOptions> = {},
) {
  const dir = await Deno.makeTempDir();
  const events: AuditEvent[] = [];
  const broker = await startPermissionBroker({
    socketPath: `${dir}/broker.sock`,
    grants,
    sandboxId: "s",
    runId: "s-r1",
    ownerUid: null,
    onEvent: (event) => events.push(event),
    ...options,
  });
  const conn = await Deno.connect({
    transport: "unix",
    path: broker.socketPath,
  });
  const lines = conn.readable.pipeThrough(new TextDecoderStream())
    .getReader();
  let pending = "";
  const encoder = new TextEncoder();
  return {
    events,
    conn,
    async send(text: string): Promise<void> {
      const bytes = encoder.encode(text);
      for (let at = 0; at < bytes.length;) {
        at += await conn.write(bytes.subarray(at));
      }
    },
    /** The next reply line, parsed; null when the broker closed. */
    async reply(): Promise<
      { id: number; result: string; reason: string } | null
    > {
      while (!pending.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) return null;
        pending += value;
      }
      const at = pending.indexOf("\n");
      const line = pending.slice(0, at);
      pending = pending.slice(at + 1);
      return JSON.parse(line);
    },
    async [Symbol.asyncDispose]() {
      try {
        conn.close();
      } catch {
        // closed by the broker
      }
      await broker.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function check(id: number, permission: string, value: string | null): string {
  return JSON.stringify({
    v: 1,
    pid: 2,
    id,
    datetime: "2026-01-01T00:00:00Z",
    permission,
    value,
  }) + "\n";
}

const permissions = (events: readonly AuditEvent[]) =>
  events.filter((e): e is PermissionEvent => e.source === "broker");

Deno.test("broker denies a multi-megabyte check, records it cut with its length, and keeps answering", async () => {
  await using client = await brokerWithClient();
  const value = `/scratch/${"a".repeat(5 * 1024 * 1024)}`;
  await client.send(check(7, "read", value));
  const reply = await client.reply();
  assert.equal(reply?.id, 7);
  assert.equal(reply?.result, "deny");
  assert.match(reply!.reason, /over the 65536 a permission check may have/);
  // The run goes on: the next check on the same connection is answered.
  await client.send(check(8, "read", "/scratch/ok.txt"));
  assert.deepEqual(
    { ...await client.reply(), reason: "" },
    { id: 8, result: "allow", reason: "" },
  );
  const [huge, ok] = permissions(client.events);
  assert.equal(huge?.permission, "read");
  assert.equal(huge?.decision, "deny");
  assert.equal(huge?.value, value.slice(0, 1024));
  assert.equal(huge?.valueLength, value.length);
  assert.equal(ok?.value, "/scratch/ok.txt");
});

Deno.test("broker records a value past 1,024 characters cut, and decides on the whole value", async () => {
  await using client = await brokerWithClient();
  const value = `/scratch/${"é".repeat(5_000)}`;
  await client.send(check(1, "read", value));
  assert.equal((await client.reply())?.result, "allow");
  await client.send(check(2, "read", value));
  await client.reply();
  const [event] = permissions(client.events);
  assert.equal(event?.value, value.slice(0, 1024));
  assert.equal(event?.valueLength, value.length);
  assert.equal(event?.count, 2);
  assert.equal(permissions(client.events).length, 1);
});

Deno.test("broker keeps a run's records within its bound and counts the rest per kind and decision", async () => {
  const events: AuditEvent[] = [];
  const log = new RunAuditLog((e) => events.push(e), {
    sandboxId: "s",
    runId: "s-r1",
  }, { runRecords: 5, runBytes: 1024 * 1024 });
  await using client = await brokerWithClient({ log });
  let id = 0;
  for (let i = 0; i < 20; i++) {
    await client.send(check(++id, "read", `/scratch/file-${i}`));
    assert.equal((await client.reply())?.result, "allow");
  }
  for (let i = 0; i < 3; i++) {
    await client.send(check(++id, "read", `/etc/secret-${i}`));
    assert.equal((await client.reply())?.result, "deny");
  }
  // A value already recorded still counts on its own record.
  await client.send(check(++id, "read", "/scratch/file-0"));
  await client.reply();
  const kept = permissions(events);
  assert.equal(kept.length, 5);
  assert.equal(kept[0]?.count, 2);
  const summaries = events.filter((e): e is AuditOverflowEvent =>
    e.source === "harness" && e.kind === "audit-overflow"
  );
  assert.deepEqual(
    summaries.map((s) => `${s.of} ${s.decision} ${s.count}`),
    ["read allow 15", "read deny 3"],
  );
  assert.match(summaries[0]!.reason, /a run keeps at most 5 records/);
  // The latest attempt of each kind is still named.
  assert.deepEqual(
    summaries.map((s) => s.lastValue),
    ["/scratch/file-19", "/etc/secret-2"],
  );
  // Nothing recorded for the client but what the sink saw.
  assert.equal(client.events.length, 0);
});

Deno.test("broker resolves a relative path against the process's current directory", async () => {
  const asked: number[] = [];
  await using client = await brokerWithClient({
    processCwd: (pid) => {
      asked.push(pid);
      return pid === 2 ? "/inputs/data" : null;
    },
  });
  await client.send(check(1, "read", "creds.txt"));
  assert.equal((await client.reply())?.result, "allow");
  await client.send(check(2, "write", "../data/x"));
  assert.equal((await client.reply())?.result, "deny");
  assert.deepEqual(
    permissions(client.events).map((e) => `${e.permission} ${e.value}`),
    ["read /inputs/data/creds.txt", "write /inputs/data/x"],
  );
  assert.deepEqual(asked, [2, 2]);
});

Deno.test("broker refuses a relative path climbing above '/' from the process's directory, never re-resolving it from the starting one", async () => {
  await using client = await brokerWithClient({
    grants: { ...grants, cwd: "/scratch/deep" },
    processCwd: () => "/",
  });
  // Attack: the kernel opens /etc/passwd; resolved from the starting
  // directory instead it would pass as /scratch/etc/passwd.
  await client.send(check(1, "read", "../etc/passwd"));
  assert.equal((await client.reply())?.result, "deny");
  // Control: a relative name inside a grant is allowed from there.
  await client.send(check(2, "read", "scratch/a.txt"));
  assert.equal((await client.reply())?.result, "allow");
  assert.deepEqual(
    permissions(client.events).map((e) => `${e.decision} ${e.value}`),
    ["deny /../etc/passwd", "allow /scratch/a.txt"],
  );
});

Deno.test("broker denies a relative path when it cannot tell the process's directory", async () => {
  await using client = await brokerWithClient({ processCwd: () => null });
  await client.send(check(1, "read", "a.txt"));
  const reply = await client.reply();
  assert.equal(reply?.result, "deny");
  assert.match(reply!.reason, /cannot tell which directory it is relative to/);
  // Absolute paths do not need it.
  await client.send(check(2, "read", "/scratch/a.txt"));
  assert.equal((await client.reply())?.result, "allow");
});

Deno.test("broker records a request that is not JSON, then ends the connection (Deno fails closed)", async () => {
  await using client = await brokerWithClient();
  await client.send("not json\n");
  assert.equal(await client.reply(), null);
  const [event] = permissions(client.events);
  assert.equal(event?.permission, "unknown");
  assert.equal(event?.decision, "deny");
  assert.equal(event?.value, "not json");
});

Deno.test("broker ends a connection whose replies pile up unread", async () => {
  await using client = await brokerWithClient();
  // Deno waits for each answer; a writer that never reads is not Deno.
  const burst = check(1, "read", "/scratch/a").repeat(2_000);
  let closed = false;
  for (let i = 0; i < 200 && !closed; i++) {
    await client.send(burst).catch(() => closed = true);
  }
  assert.ok(closed, "the broker closed the connection");
  // One record, counted: the flood cost no memory per request.
  assert.equal(permissions(client.events).length, 1);
});

Deno.test("MAX_LINE holds the longest check a real path can make", () => {
  // PATH_MAX bytes, each escaped by JSON as \u00XX.
  assert.ok(check(1, "read", "\u0001".repeat(4096)).length < MAX_LINE);
});

Deno.test("PermissionBroker.close() empties its records (the run's log has them)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const broker = await startPermissionBroker({
      socketPath: `${dir}/broker.sock`,
      grants,
      sandboxId: "s",
      runId: "s-r1",
      ownerUid: null,
    });
    const conn = await Deno.connect({
      transport: "unix",
      path: broker.socketPath,
    });
    await conn.write(new TextEncoder().encode(check(1, "read", "/scratch/a")));
    await conn.read(new Uint8Array(512));
    assert.equal(broker.events.length, 1);
    conn.close();
    await broker.close();
    assert.equal(broker.events.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
