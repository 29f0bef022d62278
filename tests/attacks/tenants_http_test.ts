/**
 * The tenants group over the HTTP API: two tokens on one server, each case
 * a tenant trying to take what the other needs (run slots, the server's
 * memory, its capacity through oversized limits) and asserting that the
 * other tenant is still served. Real server on 127.0.0.1, real sandboxes.
 *
 * No timing asserts: fairness is checked as an order (which run got the
 * freed slot), memory as the server process's peak resident size
 * (`VmHWM`), which only grows.
 */

import assert from "node:assert/strict";
import { type AppOptions, createApp } from "../../http/app.ts";
import {
  AirlockApiError,
  AirlockClient,
  type RunStreamEvent,
} from "../../http/client.ts";
import type { RunResultJson } from "../../http/types.ts";
import { pollUntil } from "../kits/sandbox_processes.ts";

const TOKEN_A = "tenant-a-token-0123456789abcdef";
const TOKEN_B = "tenant-b-token-0123456789abcdef";
const ROOT = new URL("../..", import.meta.url).pathname;
/** Prints "started", then waits until its client goes away. */
const HOLD =
  `console.log("started"); while (true) { await new Promise((r) => setTimeout(r, 50)); }`;

async function lab(options: Partial<AppOptions>) {
  const tmpDir = await Deno.makeTempDir({ prefix: "airlock-tenants-http-" });
  await Deno.chmod(tmpDir, 0o755);
  const api = createApp({
    tokens: new Map([
      [TOKEN_A, { name: "tenant-a" }],
      [TOKEN_B, { name: "tenant-b" }],
    ]),
    ...options,
    sandboxDefaults: { tmpDir },
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    api.app.fetch,
  );
  const baseUrl = `http://127.0.0.1:${server.addr.port}`;
  return {
    api,
    a: new AirlockClient({ baseUrl, token: TOKEN_A }),
    b: new AirlockClient({ baseUrl, token: TOKEN_B }),
    async [Symbol.asyncDispose]() {
      await api.shutdown();
      await server.shutdown();
      await Deno.remove(tmpDir, { recursive: true });
    },
  };
}

/** A streamed run that has printed its first line; abort() ends it. */
async function holding(client: AirlockClient, id: string) {
  const controller = new AbortController();
  const events = client.runStream(id, { code: HOLD }, {
    signal: controller.signal,
  });
  const first = await events.next();
  assert.equal((first.value as RunStreamEvent).type, "stdout");
  const drained = (async () => {
    try {
      for await (const _ of events) { /* until aborted */ }
    } catch { /* aborted */ }
  })();
  return {
    async end() {
      controller.abort();
      await drained;
    },
  };
}

async function refusal(call: Promise<unknown>): Promise<AirlockApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof AirlockApiError, String(error));
    return error;
  }
  assert.fail("expected a refusal");
}

Deno.test("tenants (HTTP): a slot freed by tenant A's burst goes to tenant B's waiting run, not to A's queue", async () => {
  // Two slots for the whole server, both held by A; A has two more runs
  // waiting. Without turns, A's queue (first in line) took every freed slot.
  await using t = await lab({
    runSlots: 2,
    ceilings: { runsPerToken: 2, queuedRunsPerToken: 8 },
  });
  const a1 = await t.a.createSandbox({ name: "a1" });
  const a2 = await t.a.createSandbox({ name: "a2" });
  const { id: bId } = await t.b.createSandbox({ name: "b" });
  const first = await holding(t.a, a1.id);
  const second = await holding(t.a, a2.id);
  const queued = [a1.id, a2.id].map((id) =>
    t.a.run(id, { code: "console.log('a')" })
  );
  const bRun = t.b.run(bId, { code: "console.log('b')" });
  // All three requests wait in the scheduler before a slot frees (on a
  // loaded machine B's request could otherwise arrive after the slot had
  // gone to A's queue, which is first come, first served, not a bug).
  assert.ok(
    await pollUntil(() =>
      t.api.runUsage("tenant-a").queued === 2 &&
      t.api.runUsage("tenant-b").queued === 1
    ),
    `queued: ${JSON.stringify(t.api.runUsage("tenant-a"))} ${
      JSON.stringify(t.api.runUsage("tenant-b"))
    }`,
  );
  // Nothing can start while A holds both slots; ending one frees one.
  await first.end();
  const b: RunResultJson = await bRun;
  assert.equal(b.stdout, "b\n");
  await second.end();
  const waited = await Promise.all(queued);
  assert.deepEqual(waited.map((r) => r.stdout), ["a\n", "a\n"]);
  // B's run started before either of A's waiting runs: the order of
  // starts is the scheduler's, whatever the machine's load.
  for (const a of waited) {
    assert.ok(
      Date.parse(a.startedAt) >= Date.parse(b.startedAt) + b.durationMs - 1,
      `A's queued run started at ${a.startedAt}, B's at ${b.startedAt}`,
    );
  }
});

Deno.test("tenants (HTTP): tenant A's burst past its cap and queue gets 429 too_many_runs; tenant B still runs", async () => {
  await using t = await lab({
    ceilings: { runsPerToken: 1, queuedRunsPerToken: 1 },
  });
  const { id: aId } = await t.a.createSandbox();
  const { id: bId } = await t.b.createSandbox();
  const live = await holding(t.a, aId);
  // One of these waits, the other is refused (whichever arrives second).
  const burst = [0, 1].map((i) =>
    t.a.run(aId, { code: `console.log(${i})` }).then(
      (result) => ({ result }),
      (error) => ({ error }),
    )
  );
  const refused = await Promise.race(
    burst.map((p) =>
      p.then((outcome) => "error" in outcome ? outcome.error : null)
    ),
  );
  assert.ok(refused instanceof AirlockApiError, String(refused));
  assert.equal(refused.status, 429);
  assert.equal(refused.code, "too_many_runs");
  assert.match(refused.message, /'tenant-a'.*1 run live.*queue holds 1/);
  // B is not behind A's queue: its own cap is untouched.
  const b = await t.b.run(bId, { code: "console.log('b')" });
  assert.equal(b.stdout, "b\n");
  await live.end();
  const outcomes = await Promise.all(burst);
  assert.equal(outcomes.filter((o) => "result" in o).length, 1);
});

Deno.test("tenants (HTTP): limits that would take the machine are refused with over_ceiling naming each ceiling", async () => {
  await using t = await lab({});
  const error = await refusal(t.a.createSandbox({
    policy: {
      limits: {
        outputBytes: 1024 ** 3,
        tmpMb: 4096,
        memoryMb: 65_536,
        processes: 4096,
      },
    },
  }));
  assert.equal(error.status, 400);
  assert.equal(error.code, "over_ceiling");
  assert.deepEqual(error.issues.map((i) => i.path).sort(), [
    "policy.limits.memoryMb",
    "policy.limits.outputBytes",
    "policy.limits.processes",
    "policy.limits.tmpMb",
  ]);
  assert.match(
    error.message,
    /tmpMb \(4096 MiB is over this server's ceiling of 256 MiB\)/,
  );
  // A run's own timeout is held to the ceiling too.
  const { id } = await t.a.createSandbox();
  const timeout = await refusal(
    t.a.run(id, { code: "1", timeoutMs: 86_400_000 }),
  );
  assert.equal(timeout.code, "over_ceiling");
  assert.deepEqual(timeout.issues.map((i) => i.path), ["timeoutMs"]);
  // Control: at the ceiling is accepted.
  const atCeiling = await t.b.createSandbox({
    policy: { limits: { tmpMb: 256, memoryMb: 1024 } },
  });
  assert.equal(atCeiling.policy.limits.tmpMb, 256);
});

/** The server process's peak resident size so far, in bytes. */
function peakRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1]);
  assert.ok(kb > 0, status);
  return kb * 1024;
}

Deno.test("tenants (HTTP): a run printing 600 MiB adds bounded memory to the server and its answer is complete", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-tenants-flood-" });
  await Deno.chmod(dir, 0o755);
  const config = `${dir}/server.jsonc`;
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      tokens: [{ name: "tenant-a", env: "FLOOD_TOKEN" }],
      ceilings: { limits: { outputBytes: 256 * 1024 * 1024 } },
      tmpDir: `${dir}/work`,
    }),
  );
  await Deno.mkdir(`${dir}/work`, { mode: 0o755 });
  await Deno.chmod(`${dir}/work`, 0o755);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}http/serve.ts`,
      "--config",
      config,
      "--port",
      "0",
    ],
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", FLOOD_TOKEN: TOKEN_A },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let printed = "";
    while (!printed.includes("\n")) {
      const { done, value } = await lines.read();
      if (done) break;
      printed += value;
    }
    const baseUrl = printed.match(/listening on (http:\/\/\S+?)\/? /)?.[1];
    assert.ok(baseUrl, printed);
    const client = new AirlockClient({ baseUrl, token: TOKEN_A });
    const { id } = await client.createSandbox({
      policy: {
        limits: { outputBytes: 256 * 1024 * 1024, timeoutMs: 120_000 },
      },
    });
    // Warm the server up (bundler, first run) before taking its baseline.
    await client.run(id, { code: "console.log(1)" });
    const before = peakRss(child.pid);
    const flood =
      `const chunk = new TextEncoder().encode("x".repeat(65535) + "\\n");
for (let i = 0; i < 9600; i++) await Deno.stdout.write(chunk);`;
    // Read raw: the client's own JSON parse of 256 MiB is not under test.
    const response = await fetch(`${baseUrl}/sandboxes/${id}/runs`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TOKEN_A}`,
        "content-type": "application/json",
      },
      body: JSON.stringify({ code: flood }),
    });
    assert.equal(response.status, 200);
    let head = "";
    let bytes = 0;
    let tail = "";
    const decoder = new TextDecoder();
    for await (const chunk of response.body!) {
      bytes += chunk.length;
      if (head.length < 4096) head += decoder.decode(chunk.subarray(0, 4096));
      tail = (tail + decoder.decode(chunk.subarray(-64))).slice(-64);
    }
    const added = peakRss(child.pid) - before;
    // The status fields come first, the output after them.
    assert.match(head, /"reason":"output-limit"/);
    assert.match(head, /"truncated":true/);
    assert.ok(bytes > 256 * 1024 * 1024, `answer of ${bytes} bytes`);
    assert.match(tail, /x\\n","stderr":""}$/);
    // The cap is 256 MiB per stream; holding it (as bytes, then as a
    // string, then as JSON) took gigabytes. The spool keeps 256 KiB; what
    // grows is V8's heap of short-lived pieces (~75 MiB measured), under
    // half of one copy of the output.
    assert.ok(
      added < 128 * 1024 * 1024,
      `the server's peak grew by ${Math.round(added / 1024 / 1024)} MiB`,
    );
    // The spool files went with the answer.
    assert.ok(
      await pollUntil(() =>
        [...Deno.readDirSync(`${dir}/work`)].every((e) =>
          !e.name.startsWith("airlock-spool-") ||
          [...Deno.readDirSync(`${dir}/work/${e.name}`)].length === 0
        )
      ),
    );
  } finally {
    child.kill("SIGTERM");
    await lines.cancel().catch(() => {});
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});
