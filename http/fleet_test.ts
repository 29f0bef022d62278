/**
 * What a fleet needs of one node, over real HTTP on 127.0.0.1 with real
 * sandboxes: ids that name the node, a clear answer for another node's
 * sandbox, readiness (a probe sandbox, the node ceiling, draining), the
 * drain itself, and the metrics with their access rule. The multi-node run
 * behind HAProxy is tests/cluster_test.ts.
 */

import assert from "node:assert/strict";
import { type AppOptions, createApp } from "./app.ts";
import { AirlockApiError, AirlockClient } from "./client.ts";
import { nodeOfSandboxId, resolveNodeName } from "./node.ts";
import { parseConnectTo } from "../injector/resolver.ts";

const TOKEN = "token-a-0123456789abcdef";
const METRICS_TOKEN = "metrics-0123456789abcdef";

function serve(options: Partial<AppOptions> = {}) {
  const app = createApp({
    tokens: new Map([[TOKEN, { name: "alice" }]]),
    node: "node-a",
    ...options,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    app.app.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    url,
    app,
    client: (token: string | null = TOKEN) =>
      new AirlockClient({ baseUrl: url, token }),
    async close() {
      await app.shutdown();
      await server.shutdown();
    },
  };
}

async function apiError(call: Promise<unknown>): Promise<AirlockApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof AirlockApiError, String(error));
    return error;
  }
  assert.fail("expected the call to fail");
}

/** Polls `check` until it is true, failing after `ms`. */
async function until(what: string, check: () => boolean, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("resolveNodeName() takes the setting, then AIRLOCK_NODE_NAME, POD_NAME, the host name; refuses a name that is not a DNS label", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(
    resolveNodeName({ configured: "a1", env: env({ POD_NAME: "p" }) }),
    "a1",
  );
  assert.equal(
    resolveNodeName({ env: env({ AIRLOCK_NODE_NAME: "n", POD_NAME: "p" }) }),
    "n",
  );
  assert.equal(
    resolveNodeName({ env: env({ POD_NAME: "airlock-3" }) }),
    "airlock-3",
  );
  assert.equal(
    resolveNodeName({ env: env({}), hostname: () => "Build-7.example.com" }),
    "build-7",
  );
  assert.equal(
    resolveNodeName({ env: env({}), hostname: () => "under_score" }),
    "node",
  );
  // A name reaches router host names and URLs: nothing but a DNS label.
  for (const bad of ["A", "-a", "a-", "a.b", "a/b", "a b", "x".repeat(64)]) {
    assert.throws(
      () => resolveNodeName({ configured: bad, env: env({}) }),
      TypeError,
      bad,
    );
  }
});

Deno.test("nodeOfSandboxId() reads the node from an id, and nothing from what is not one", () => {
  assert.equal(nodeOfSandboxId("sbx-airlock-0-0123456789ab"), "airlock-0");
  assert.equal(nodeOfSandboxId("sbx-0123456789ab"), null);
  assert.equal(nodeOfSandboxId("sbx-a.b-0123456789ab"), null);
  assert.equal(nodeOfSandboxId("sbx-a-0123456789ab/x"), null);
  assert.equal(nodeOfSandboxId("sbx-a-0123456789AB"), null);
});

Deno.test("a node's sandbox ids name it; another node's id is a 421 wrong_node, an unknown id of its own a 404", async () => {
  const server = serve();
  try {
    const client = server.client();
    const { id } = await client.createSandbox();
    assert.match(id, /^sbx-node-a-[0-9a-f]{12}$/);
    assert.equal(nodeOfSandboxId(id), "node-a");
    const other = await apiError(
      client.run("sbx-node-b-0123456789ab", { code: "1" }),
    );
    assert.equal(other.status, 421);
    assert.equal(other.code, "wrong_node");
    assert.match(other.message, /node 'node-b'/);
    const mine = await apiError(
      client.run("sbx-node-a-0123456789ab", { code: "1" }),
    );
    assert.equal(mine.status, 404);
    assert.equal(mine.code, "not_found");
  } finally {
    await server.close();
  }
});

Deno.test("GET /ready runs a probe sandbox and says ready; at the node ceiling it says not ready and creation is 503 node_full", async () => {
  const server = serve({ maxNodeSandboxes: 1 });
  try {
    const anonymous = server.client(null);
    const ready = await anonymous.ready();
    assert.equal(ready.ready, true, JSON.stringify(ready));
    assert.equal(ready.node, "node-a");
    assert.deepEqual(Object.keys(ready.checks).sort(), [
      "capacity",
      "draining",
      "injector",
      "sandbox",
    ]);
    assert.equal(ready.checks.sandbox?.ok, true);
    const client = server.client();
    await client.createSandbox();
    const full = await anonymous.ready();
    assert.equal(full.ready, false);
    assert.equal(full.checks.capacity?.ok, false);
    // Attack: an anonymous caller counting a node's tenants' sandboxes
    // through /ready (it needs no token): the capacity check has no count.
    for (const report of [ready, full]) {
      assert.doesNotMatch(report.checks.capacity?.detail ?? "", /\d/);
    }
    const refused = await apiError(client.createSandbox());
    assert.equal(refused.status, 503);
    assert.equal(refused.code, "node_full");
    const metrics = await client.metrics(); // loopback client
    assert.match(
      metrics,
      /^airlock_rejections_total\{ceiling="node_sandboxes"\} 1$/m,
    );
    assert.match(metrics, /^airlock_ready 0$/m);
  } finally {
    await server.close();
  }
});

Deno.test("drain(): a live run finishes; new sandboxes and runs get 503 draining; /ready says draining; then every sandbox is closed", async () => {
  const server = serve();
  try {
    const client = server.client();
    const { id } = await client.createSandbox({ policy: { scratch: true } });
    // The run waits for a file the test writes once the drain has begun.
    const live = client.run(id, {
      code:
        `while (true) { try { Deno.statSync("go"); break; } catch { await new Promise((r) => setTimeout(r, 10)); } } console.log("finished");`,
    });
    await until(
      "the run is live",
      () => server.app.runUsage("alice").running === 1,
    );
    const drained = server.app.drain(60_000);
    const sandbox = await apiError(client.createSandbox());
    assert.equal(sandbox.status, 503);
    assert.equal(sandbox.code, "draining");
    const run = await apiError(client.run(id, { code: "1" }));
    assert.equal(run.code, "draining");
    const ready = await server.client(null).ready();
    assert.equal(ready.ready, false);
    assert.equal(ready.checks.draining?.ok, false);
    // The sandbox's files still work while it drains.
    const sandboxEntry = server.app.sandboxes.get(id)!;
    await Deno.writeTextFile(`${sandboxEntry.sandbox.scratchPath}/go`, "");
    const result = await live;
    assert.equal(result.reason, "exit");
    assert.equal(result.stdout, "finished\n");
    assert.equal(await drained, true);
    assert.equal(server.app.sandboxes.size, 0);
    assert.ok(sandboxEntry.sandbox.closed);
  } finally {
    await server.close();
  }
});

Deno.test("drain() past its deadline kills the runs still live and says so", async () => {
  const server = serve();
  try {
    const client = server.client();
    const { id } = await client.createSandbox();
    // Caught at once: the answer may come while drain() is still awaited
    // (a rejection with no handler yet fails the whole file).
    const live = client.run(id, {
      code: "await new Promise((r) => setTimeout(r, 60_000));",
    }).catch((error) => error);
    await until(
      "the run is live",
      () => server.app.runUsage("alice").running === 1,
    );
    assert.equal(await server.app.drain(50), false);
    const result = await live;
    // Killed by the close, or refused as deleted: never left hanging.
    if (result instanceof AirlockApiError) {
      assert.equal(result.code, "not_found");
    } else assert.equal(result.reason, "killed");
  } finally {
    await server.close();
  }
});

Deno.test("GET /metrics counts sandboxes, runs by outcome, durations, the injector's decisions and rejections; only the metrics token reads it from afar", async () => {
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("ok"),
  );
  const server = serve({
    metrics: { token: METRICS_TOKEN },
    sandboxDefaults: {
      connectTo: [
        parseConnectTo(`api.example.test:80:127.0.0.1:${upstream.addr.port}`),
      ],
    },
  });
  try {
    const client = server.client();
    const { id } = await client.createSandbox({
      policy: {
        network: {
          allow: {
            "api.example.test:80": [{
              match: { path: { startsWith: "/blocked" } },
              response: { statusCode: 403, body: "no" },
            }],
          },
        },
      },
    });
    const ok = await client.run(id, {
      code:
        `console.log((await fetch("http://api.example.test/")).status); console.log((await fetch("http://api.example.test/blocked")).status);`,
    });
    assert.equal(ok.stdout, "200\n403\n", ok.stderr);
    const failed = await client.run(id, { code: "Deno.exit(3)" });
    assert.equal(failed.exitCode, 3);
    const text = await server.client(METRICS_TOKEN).metrics();
    assert.match(text, /^airlock_sandboxes_alive 1$/m);
    assert.match(text, /^airlock_sandboxes_created_total 1$/m);
    assert.match(text, /^airlock_runs_started_total 2$/m);
    assert.match(text, /^airlock_runs_finished_total\{outcome="success"\} 1$/m);
    assert.match(text, /^airlock_runs_finished_total\{outcome="failure"\} 1$/m);
    assert.match(text, /^airlock_run_duration_seconds_count 2$/m);
    assert.match(
      text,
      /^airlock_run_duration_seconds_bucket\{le="\+Inf"\} 2$/m,
    );
    assert.match(
      text,
      /^airlock_injector_requests_total\{kind="request",decision="allow"\} 1$/m,
    );
    assert.match(
      text,
      /^airlock_injector_requests_total\{kind="request",decision="respond"\} 1$/m,
    );
    assert.match(text, /^airlock_node_info\{node="node-a",/m);
    // Nothing that names a tenant, a sandbox or a host.
    assert.doesNotMatch(text, /alice|sbx-|example\.test/);

    // From another machine: the metrics token reads, a tenant's does not.
    const from = {
      remoteAddr: { transport: "tcp", hostname: "10.1.2.3", port: 5 },
    };
    const ask = (token: string) =>
      server.app.app.fetch(
        new Request("http://10.0.0.9/metrics", {
          headers: { authorization: `Bearer ${token}` },
        }),
        from,
      );
    const tenant = await ask(TOKEN);
    assert.equal(tenant.status, 401);
    await tenant.body?.cancel();
    const reader = await ask(METRICS_TOKEN);
    assert.equal(reader.status, 200);
    assert.match(
      reader.headers.get("content-type") ?? "",
      /^text\/plain; version=0\.0\.4/,
    );
    await reader.body?.cancel();
  } finally {
    await server.close();
    await upstream.shutdown();
  }
});
