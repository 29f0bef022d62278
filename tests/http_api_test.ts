/**
 * The HTTP API end to end, through the client over real HTTP on 127.0.0.1:
 * runs and streams in real sandboxes, a client that hangs up mid-run, files,
 * network updates, shutdown, and `deno task serve` as a subprocess.
 */

import assert from "node:assert/strict";
import { type AppOptions, createApp } from "../http/app.ts";
import {
  AirlockApiError,
  AirlockClient,
  type RunStreamEvent,
} from "../http/client.ts";
import { RunResultSchema, RunStatusSchema } from "../http/schemas.ts";
import {
  anyAlive,
  bwrapProcesses,
  pollUntil,
  processesMentioning,
  removeWhenUnmounted,
  startedRun,
} from "./kits/sandbox_processes.ts";
import { startUpstreams } from "./kits/upstreams.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SERVE = `${ROOT}http/serve.ts`;
const TOKEN = "e2e-token-0123456789abcdef";
const FOREVER =
  `console.log("started"); while (true) { await new Promise((r) => setTimeout(r, 50)); }`;

/** A parent directory for workspaces that the sandbox uids can traverse. */
async function workspaceParent(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "airlock-http-test-" });
  await Deno.chmod(dir, 0o755);
  return dir;
}

function serve(tmpDir: string, options: Partial<AppOptions> = {}) {
  const api = createApp({
    tokens: new Map([[TOKEN, { name: "e2e", maxSandboxes: 4 }]]),
    sandboxDefaults: { tmpDir },
    ...options,
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    api.app.fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  const client = new AirlockClient({ baseUrl: url, token: TOKEN });
  return {
    api,
    client,
    url,
    async close() {
      await api.shutdown();
      await server.shutdown();
    },
  };
}

/** The workspace directory of a sandbox created with scratch. */
function workspaceOf(api: ReturnType<typeof createApp>, id: string): string {
  const scratch = api.sandboxes.get(id)?.sandbox.scratchPath ?? "";
  assert.ok(scratch.endsWith("/box/scratch"), scratch);
  return scratch.slice(0, -"/box/scratch".length);
}

function text(event: RunStreamEvent): string {
  return "data" in event ? new TextDecoder().decode(event.data) : "";
}

Deno.test("HTTP API: create, files, run, network update, audit and delete", async () => {
  const parent = await workspaceParent();
  const { api, client, close } = serve(parent);
  try {
    const created = await client.createSandbox({
      name: "e2e",
      policy: { scratch: true, limits: { timeoutMs: 20_000 } },
      secrets: { API_TOKEN: "s3cr3t-api-token-value" },
    });
    assert.equal(created.policy.scratch, true);
    assert.equal(created.policy.limits.timeoutMs, 20_000);
    const root = workspaceOf(api, created.id);

    await client.writeFile(created.id, "in/data.txt", "21");
    const result = await client.run(created.id, {
      files: {
        "main.ts":
          `import { double } from "./lib.ts"; const n = Number(await Deno.readTextFile("in/data.txt")); await Deno.writeTextFile("out.txt", String(double(n))); console.log(Deno.args.join(","), await new Response(Deno.stdin.readable).text());`,
        "lib.ts": "export const double = (n: number) => n * 2;",
      },
      entry: "main.ts",
      args: ["a", "b"],
      stdin: "from stdin",
    });
    RunResultSchema.parse(result);
    assert.equal(result.reason, "exit", result.stderr);
    assert.equal(result.stdout, "a,b from stdin\n");
    assert.equal(await client.readTextFile(created.id, "out.txt"), "42");
    assert.deepEqual(
      (await client.listFiles(created.id)).map((e) => e.name),
      ["in", "out.txt"],
    );
    await client.removeFile(created.id, "in", { recursive: true });
    const gone = await client.readFile(created.id, "in/data.txt").catch((
      e,
    ) => e);
    assert.ok(gone instanceof AirlockApiError && gone.status === 404);

    const network = await client.updateNetworkPolicy(created.id, {
      allow: {
        "api.example.test": [{
          transform: [{
            headers: { authorization: "Bearer ${secret:API_TOKEN}" },
          }],
        }],
      },
    });
    assert.deepEqual(network, await client.getNetworkPolicy(created.id));
    const shown = JSON.stringify(network);
    assert.ok(shown.includes("<redacted>"), shown);
    assert.ok(!shown.includes("s3cr3t"), shown);

    const denied = await client.run(created.id, {
      code:
        `const r = await fetch("https://blocked.example.test/").catch((e) => e.name); console.log(String(r));`,
    });
    assert.equal(denied.reason, "exit", denied.stderr);
    const trail = await client.getAudit(created.id);
    assert.ok(
      trail.some((e) =>
        e.runId === denied.runId &&
        JSON.stringify(e).includes("blocked.example.test")
      ),
      JSON.stringify(trail),
    );

    const timedOut = await client.run(created.id, {
      code: FOREVER,
      timeoutMs: 500,
    });
    assert.equal(timedOut.reason, "timeout");

    assert.equal((await client.listSandboxes())[0]?.running, false);
    await client.deleteSandbox(created.id);
    assert.deepEqual(await client.listSandboxes(), []);
    assert.throws(() => Deno.statSync(root), Deno.errors.NotFound);
    const after = await client.getAudit(created.id).catch((e) => e);
    assert.ok(after instanceof AirlockApiError && after.code === "not_found");
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: a stream delivers output, audit events while the run is live, then the status", async () => {
  const parent = await workspaceParent();
  const { client, close } = serve(parent);
  try {
    const { id } = await client.createSandbox();
    const events: RunStreamEvent[] = [];
    for await (
      const event of client.runStream(id, {
        code:
          `console.log("out"); console.error("err"); await fetch("https://blocked.example.test/").catch(() => {}); Deno.exit(3);`,
      })
    ) {
      events.push(event);
    }
    const last = events.at(-1);
    assert.equal(last?.type, "status");
    const status = RunStatusSchema.parse(
      last?.type === "status" ? last.status : null,
    );
    assert.equal(status.exitCode, 3);
    assert.equal(status.reason, "exit");
    const output = (type: string) =>
      events.filter((e) => e.type === type).map(text).join("");
    assert.equal(output("stdout"), "out\n");
    assert.equal(output("stderr"), "err\n");
    const audits = events.filter((e) => e.type === "audit");
    assert.ok(
      audits.some((e) => JSON.stringify(e).includes("blocked.example.test")),
    );
    assert.equal(events.filter((e) => e.type === "status").length, 1);

    // As it happens: the audit event arrives while the program still runs
    // (it never ends by itself); leaving the loop then kills it.
    let live = false;
    for await (
      const event of client.runStream(id, {
        code:
          `await fetch("https://live.example.test/").catch(() => {}); ${FOREVER}`,
        timeoutMs: 15_000,
      })
    ) {
      assert.notEqual(event.type, "status");
      if (
        event.type === "audit" &&
        JSON.stringify(event.event).includes("live.example.test")
      ) {
        // Still running: the event was not held back until the end.
        live = (await client.listSandboxes())[0]?.running === true;
        break;
      }
    }
    assert.ok(live);
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: warm: false keeps no process for an idle sandbox; the default keeps one", async () => {
  const parent = await workspaceParent();
  const { api, client, close } = serve(parent);
  try {
    const cold = await client.createSandbox({
      policy: { scratch: true },
      warm: false,
    });
    const warm = await client.createSandbox({ policy: { scratch: true } });
    for (const { id } of [cold, warm]) {
      const result = await client.run(id, { code: "console.log('ran')" });
      assert.equal(result.stdout, "ran\n");
    }
    // The default sandbox's next process comes up; the other never does.
    assert.ok(
      await pollUntil(() =>
        bwrapProcesses(workspaceOf(api, warm.id)).length > 0
      ),
    );
    assert.deepEqual(bwrapProcesses(workspaceOf(api, cold.id)), []);
    const again = await client.run(cold.id, { code: "console.log('again')" });
    assert.equal(again.stdout, "again\n");
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: a client that disconnects mid-stream leaves no sandbox process", async () => {
  const parent = await workspaceParent();
  const { api, client, close } = serve(parent);
  try {
    const { id } = await client.createSandbox({ policy: { scratch: true } });
    const root = workspaceOf(api, id);
    const controller = new AbortController();
    const stream = client.runStream(id, { code: FOREVER }, {
      signal: controller.signal,
    });
    const first = await stream.next();
    assert.equal(first.value && text(first.value), "started\n");
    // The run's own host processes (a control: they exist now).
    const run = await startedRun(root);
    assert.ok(anyAlive(run.pids));
    // A live program could swap files for symlinks: no file access now.
    const busy = await client.writeFile(id, "x.txt", "x").catch((e) => e);
    assert.ok(busy instanceof AirlockApiError && busy.code === "sandbox_busy");
    controller.abort();
    await stream.next().catch(() => {});
    assert.ok(
      await pollUntil(() => !anyAlive(run.pids)),
      `still running: ${run.pids.join(", ")}`,
    );
    assert.ok(await pollUntil(() => !api.sandboxes.get(id)?.sandbox.running));
    // The sandbox itself lives on.
    const again = await client.run(id, { code: "console.log('again')" });
    assert.equal(again.stdout, "again\n");
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: a client that disconnects from a plain run leaves no sandbox process", async () => {
  const parent = await workspaceParent();
  const { api, client, close } = serve(parent);
  try {
    const { id } = await client.createSandbox({ policy: { scratch: true } });
    const root = workspaceOf(api, id);
    const controller = new AbortController();
    const call = client.run(id, { code: FOREVER }, {
      signal: controller.signal,
    }).catch((error) => error);
    const run = await startedRun(root);
    controller.abort();
    assert.equal((await call).name, "AbortError");
    assert.ok(
      await pollUntil(() => !anyAlive(run.pids)),
      `still running: ${run.pids.join(", ")}`,
    );
    assert.ok(await pollUntil(() => !api.sandboxes.get(id)?.sandbox.running));
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: shutdown() kills every run and removes every workspace", async () => {
  const parent = await workspaceParent();
  const { api, client, close } = serve(parent);
  try {
    const one = await client.createSandbox({ policy: { scratch: true } });
    await client.createSandbox({ policy: { scratch: true } });
    await client.writeFile(one.id, "keep.txt", "x");
    assert.equal([...Deno.readDirSync(parent)].length, 2);
    const stream = client.runStream(one.id, { code: FOREVER });
    assert.equal((await stream.next()).value?.type, "stdout");
    await api.shutdown();
    const rest: RunStreamEvent[] = [];
    for await (const event of stream) rest.push(event);
    const last = rest.at(-1);
    assert.equal(last?.type === "status" && last.status.reason, "killed");
    assert.deepEqual([...Deno.readDirSync(parent)], []);
    assert.ok(await pollUntil(() => processesMentioning(parent).length === 0));
    const refused = await client.createSandbox().catch((e) => e);
    assert.ok(refused instanceof AirlockApiError);
    assert.equal(refused.code, "shutting_down");
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

function serveCommand(args: string[], env: Record<string, string>) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, SERVE, ...args],
    cwd: ROOT,
    env: {
      NO_COLOR: "1",
      DENO_NO_UPDATE_CHECK: "1",
      AIRLOCK_API_TOKENS: "",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

/** Runs serve.ts to its end; one that starts serving is killed after 30 s. */
async function serveOutput(args: string[]) {
  const child = serveCommand(args, {}).spawn();
  const guard = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    const out = await child.output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
  } finally {
    clearTimeout(guard);
  }
}

Deno.test("deno task serve refuses a non-loopback address without a token (exit 125)", async () => {
  const open = await serveOutput(["--host", "0.0.0.0", "--port", "0"]);
  assert.equal(open.code, 125, open.stderr);
  assert.match(
    open.stderr,
    /Refusing to listen on '0\.0\.0\.0' without a token/,
  );
  const short = await serveOutput(["--token", "short", "--port", "0"]);
  assert.equal(short.code, 125, short.stderr);
  assert.match(short.stderr, /at least 16/);
});

Deno.test("deno task serve: SIGTERM closes every sandbox, removes its files and exits 0", async () => {
  const parent = await workspaceParent();
  const child = serveCommand(["--port", "0", "--token-env", "E2E_TOKEN"], {
    E2E_TOKEN: TOKEN,
    TMPDIR: parent,
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let printed = "";
    while (!printed.includes("\n")) {
      const { done, value } = await lines.read();
      if (done) break;
      printed += value;
    }
    const url = printed.match(/listening on (http:\/\/\S+)/)?.[1];
    assert.ok(url, printed);
    // The first readiness probe (a sandbox of its own, in the same
    // directory) has ended once /ready answers.
    await (await fetch(new URL("ready", url))).body?.cancel();
    const client = new AirlockClient({ baseUrl: url, token: TOKEN });
    const { id } = await client.createSandbox({ policy: { scratch: true } });
    await client.writeFile(id, "data.txt", "x");
    const stream = client.runStream(id, { code: FOREVER });
    assert.equal((await stream.next()).value?.type, "stdout");
    assert.equal([...Deno.readDirSync(parent)].length, 1);

    child.kill("SIGTERM");
    for await (const _ of stream) { /* ends when the server kills the run */ }
    const status = await child.status;
    assert.equal(status.code, 0);
    assert.deepEqual([...Deno.readDirSync(parent)], []);
    assert.ok(await pollUntil(() => processesMentioning(parent).length === 0));
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await lines.cancel();
    await child.stderr.cancel();
    await child.status;
    await removeWhenUnmounted(parent);
  }
});

Deno.test("HTTP API: shutdown waits for a readiness probe in flight; its sandbox's files are gone when it returns", async () => {
  const parent = await workspaceParent();
  const { api, close } = serve(parent);
  try {
    api.readiness.warm();
    // The probe's sandbox exists: shut down while it runs.
    assert.ok(await pollUntil(() => Deno.readDirSync(parent).some(() => true)));
    await close();
    assert.deepEqual([...Deno.readDirSync(parent)], []);
    const after = await api.readiness.check();
    assert.equal(after.ready, false);
    assert.equal(after.checks.draining?.ok, false);
    assert.deepEqual([...Deno.readDirSync(parent)], [], "no probe after close");
  } finally {
    await close();
    await removeWhenUnmounted(parent);
  }
});

Deno.test("HTTP API: npm packages are refused unless the operator allows them (400 npm_not_allowed)", async () => {
  const parent = await workspaceParent();
  const policy = { npm: { allow: ["ms@^2.1.0"] } };
  const closed = serve(parent);
  try {
    const error = await closed.client.createSandbox({ policy })
      .catch((e) => e);
    assert.ok(error instanceof AirlockApiError, String(error));
    assert.equal(error.status, 400);
    assert.equal(error.code, "npm_not_allowed");
    assert.deepEqual(error.issues.map((i) => i.path), ["policy.npm.allow"]);
    assert.match(error.message, /server config 'clients\.npm'/);
    assert.equal(closed.api.sandboxes.size, 0);
  } finally {
    await closed.close();
  }
  // Control: the same policy on a server whose operator allows npm.
  const open = serve(parent, { clients: { npm: true } });
  try {
    const created = await open.client.createSandbox({ policy });
    assert.deepEqual(created.policy.npm.allow, ["ms@^2.1.0"]);
  } finally {
    await open.close();
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("HTTP API: limits a client leaves out get the server's defaults; its default policy applies when none is given", async () => {
  const parent = await workspaceParent();
  const { client, close } = serve(parent, {
    ceilings: { limits: { memoryMb: 512 }, defaults: { timeoutMs: 7_000 } },
    sandboxDefaults: { tmpDir: parent, policy: { scratch: true } },
  });
  try {
    const own = await client.createSandbox({
      policy: { limits: { cpuSeconds: 5 } },
    });
    assert.equal(own.policy.limits.timeoutMs, 7_000);
    assert.equal(own.policy.limits.cpuSeconds, 5);
    assert.equal(own.policy.scratch, false);
    const byDefault = await client.createSandbox();
    assert.equal(byDefault.policy.scratch, true);
    assert.equal(byDefault.policy.limits.timeoutMs, 7_000);
    const over = await client.createSandbox({
      policy: { limits: { memoryMb: 1024 } },
    }).catch((e) => e);
    assert.equal(over.code, "over_ceiling");
    assert.match(over.message, /ceiling of 512 MiB/);
    // A run within the ceilings runs, with the server's default timeout.
    const result = await client.run(byDefault.id, { code: "console.log(2)" });
    assert.equal(result.stdout, "2\n");
    assert.equal(result.limits.timeoutMs, 7_000);
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});

/** Starts serve.ts with `args`; resolves once it listens. */
async function startServe(args: string[], env: Record<string, string>) {
  const child = serveCommand(args, env).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let printed = "";
  while (!printed.includes("\n")) {
    const { done, value } = await lines.read();
    if (done) break;
    printed += value;
  }
  const url = printed.match(/listening on (http:\/\/\S+?)\/? /)?.[1];
  return {
    url,
    printed,
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await lines.cancel().catch(() => {});
      await child.stderr.cancel().catch(() => {});
      return await child.status;
    },
  };
}

Deno.test("deno task serve --config: the operator's mappings and CAs reach a local HTTPS upstream; clients can set neither and see neither", async () => {
  await using upstreams = await startUpstreams(["api.example.test"]);
  const parent = await workspaceParent();
  const config = `${parent}/server.jsonc`;
  try {
    await Deno.writeTextFile(`${parent}/tokens`, `ops ${TOKEN}\n`, {
      mode: 0o600,
    });
    await Deno.writeTextFile(
      config,
      `{
        // the operator's upstream: clients may not point anywhere themselves
        "tokenFile": "tokens",
        "upstream": {
          "connectTo": ${JSON.stringify(upstreams.connectTo)},
          "caCerts": [${JSON.stringify(upstreams.caFile)}],
        },
        "ceilings": { "runsPerToken": 1 },
      }`,
    );
    const check = await serveOutput(["--config", config, "--check"]);
    assert.equal(check.code, 0, check.stderr);
    const server = await startServe(
      ["--config", config, "--port", "0"],
      { TMPDIR: parent },
    );
    try {
      assert.ok(server.url, server.printed);
      assert.match(server.printed, /\(1 token\)/);
      const client = new AirlockClient({ baseUrl: server.url, token: TOKEN });
      const created = await client.createSandbox({
        policy: { network: { allow: ["api.example.test"] } },
      });
      assert.deepEqual(created.policy.upstream, { connectTo: [], caCerts: [] });
      const result = await client.run(created.id, {
        code:
          `const r = await fetch("https://api.example.test/hello"); console.log(r.status, (await r.json()).path);`,
      });
      assert.equal(result.stdout, "200 /hello\n", result.stderr);
      assert.equal(upstreams.get("api.example.test").seen.length, 1);
      const own = await client.createSandbox({
        policy: { upstream: { connectTo: upstreams.connectTo } },
      }).catch((e) => e);
      assert.equal(own.code, "invalid_policy");
      assert.match(own.issues[0]?.message ?? "", /operator sets mappings/);
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test("deno task serve --config: a bad config is refused with every problem by path (exit 125)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "airlock-serve-config-" });
  try {
    await Deno.writeTextFile(
      `${dir}/bad.jsonc`,
      `{ "listen": { "port": -1 }, "ceilings": { "limits": { "tmpMb": 99999 } }, "clients": { "everything": true } }`,
    );
    const bad = await serveOutput(["--config", `${dir}/bad.jsonc`]);
    assert.equal(bad.code, 125, bad.stderr);
    assert.match(
      bad.stderr,
      /Cannot use server config '.*bad\.jsonc': 3 problems/,
    );
    for (const path of ["listen.port", "ceilings.limits.tmpMb", "clients"]) {
      assert.match(bad.stderr, new RegExp(`- ${path.replace(/\./g, "\\.")}: `));
    }
    const missing = await serveOutput(["--config", `${dir}/none.jsonc`]);
    assert.equal(missing.code, 125);
    assert.match(missing.stderr, /cannot read the file/);
    const help = await serveOutput(["--help"]);
    assert.equal(help.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HTTP API: a client that goes away gives up its place in the queue, and an unread answer gives back its slot and spool", async () => {
  const parent = await workspaceParent();
  const { api, client, url, close } = serve(parent, {
    ceilings: { runsPerToken: 1, queuedRunsPerToken: 1 },
  });
  try {
    const { id } = await client.createSandbox({
      policy: { limits: { outputBytes: 16 * 1024 * 1024 } },
    });
    const live = client.runStream(id, { code: FOREVER });
    assert.equal((await live.next()).value?.type, "stdout");
    const controller = new AbortController();
    const waiting = client.run(id, { code: "1" }, {
      signal: controller.signal,
    }).catch((e) => e);
    assert.ok(await pollUntil(() => api.runUsage("e2e").queued === 1));
    controller.abort();
    assert.equal((await waiting).name, "AbortError");
    assert.ok(await pollUntil(() => api.runUsage("e2e").queued === 0));
    await live.return();
    assert.ok(await pollUntil(() => api.runUsage("e2e").running === 0));

    // 15 MiB of output (more than loopback's socket buffers hold), spooled
    // past 256 KiB. Only the head is read.
    const response = await fetch(
      `${url}/sandboxes/${id}/runs`,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKEN}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          code:
            `for (let i = 0; i < 15; i++) await Deno.stdout.write(new Uint8Array(1024 * 1024).fill(65));`,
        }),
      },
    );
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    assert.match(
      new TextDecoder().decode((await reader.read()).value),
      /^\{"sandboxId"/,
    );
    const spools = () =>
      [...Deno.readDirSync(parent)]
        .filter((e) => e.name.startsWith("airlock-spool-"))
        .flatMap((e) => [...Deno.readDirSync(`${parent}/${e.name}`)]);
    assert.equal(spools().length, 1);
    assert.equal(api.runUsage("e2e").running, 1);
    await reader.cancel();
    assert.ok(await pollUntil(() => api.runUsage("e2e").running === 0));
    assert.ok(await pollUntil(() => spools().length === 0));
    const after = await client.run(id, { code: "console.log('next')" });
    assert.equal(after.stdout, "next\n");
  } finally {
    await close();
    await Deno.remove(parent, { recursive: true });
  }
});
