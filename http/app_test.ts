/**
 * The HTTP API's contract over real HTTP on 127.0.0.1: authentication and
 * ownership, limits, error answers, and the OpenAPI document checked against
 * the routes. End-to-end runs are in tests/http_api_test.ts.
 */

import assert from "node:assert/strict";
import { type AppOptions, createApp } from "./app.ts";
import { AirlockApiError, AirlockClient } from "./client.ts";
import {
  CreatedSandboxSchema,
  DirListingSchema,
  ErrorBodySchema,
  NetworkViewSchema,
  RunResultSchema,
  SandboxListSchema,
} from "./schemas.ts";

const TOKEN_A = "token-a-0123456789abcdef";
const TOKEN_B = "token-b-0123456789abcdef";

interface TestServer {
  url: string;
  client(token?: string | null): AirlockClient;
  app: ReturnType<typeof createApp>;
  close(): Promise<void>;
}

function serve(options: Partial<AppOptions> = {}): TestServer {
  const app = createApp({
    tokens: new Map([
      [TOKEN_A, { name: "alice", maxSandboxes: 2 }],
      [TOKEN_B, { name: "bob", maxSandboxes: 2 }],
    ]),
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
    client: (token = TOKEN_A) => new AirlockClient({ baseUrl: url, token }),
    async close() {
      await app.shutdown();
      await server.shutdown();
    },
  };
}

/** The error a call threw, which must be an AirlockApiError. */
async function apiError(call: Promise<unknown>): Promise<AirlockApiError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof AirlockApiError, String(error));
    return error;
  }
  assert.fail("expected the call to fail");
}

/** A raw request; returns status and parsed JSON (or text) body. */
async function raw(
  url: string,
  init: RequestInit & { token?: string } = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  const response = await fetch(url, { ...init, headers });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: response.status, body, headers: response.headers };
}

function errorCode(body: unknown): string {
  return ErrorBodySchema.parse(body).error.code;
}

const EXPECTED_ROUTES = [
  "GET /health",
  "GET /ready",
  "GET /metrics",
  "GET /version",
  "GET /openapi.json",
  "POST /sandboxes",
  "GET /sandboxes",
  "DELETE /sandboxes/{id}",
  "POST /sandboxes/{id}/runs",
  "POST /sandboxes/{id}/runs/stream",
  "GET /sandboxes/{id}/network",
  "PUT /sandboxes/{id}/network",
  "GET /sandboxes/{id}/audit",
  "GET /sandboxes/{id}/files/{path}",
  "PUT /sandboxes/{id}/files/{path}",
  "DELETE /sandboxes/{id}/files/{path}",
];

type Operation = {
  operationId: string;
  security?: unknown[];
  requestBody?: { content: Record<string, { schema: { $ref?: string } }> };
  responses: Record<string, unknown>;
};

function operations(doc: Record<string, unknown>) {
  const paths = doc.paths as Record<string, Record<string, Operation>>;
  return Object.entries(paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({ method, path, op }))
  );
}

Deno.test("health, version and openapi.json answer without a token", async () => {
  const server = serve();
  try {
    const anonymous = server.client(null);
    assert.deepEqual(await anonymous.health(), { ok: true });
    const version = await anonymous.version();
    assert.equal(version.deno, Deno.version.deno);
    assert.match(version.airlock, /^\d+\.\d+\.\d+/);
    assert.equal((await anonymous.openApi()).openapi, "3.1.0");
  } finally {
    await server.close();
  }
});

Deno.test("every authenticated route answers 401 without a token or with a wrong one", async () => {
  const server = serve();
  try {
    const doc = await server.client().openApi();
    const authenticated = operations(doc).filter(({ op }) => !op.security);
    assert.ok(authenticated.length >= 10);
    for (const { method, path } of authenticated) {
      const url = server.url +
        path.replace("{id}", "sbx-000000000000").replace("{path}", "a.txt");
      for (const token of [undefined, "wrong-token-0123456789"]) {
        const answer = await raw(url, {
          method: method.toUpperCase(),
          ...(token ? { token } : {}),
        });
        assert.equal(answer.status, 401, `${method} ${path} token=${token}`);
        assert.equal(errorCode(answer.body), "unauthorized");
        assert.match(answer.headers.get("www-authenticate") ?? "", /^Bearer/);
      }
    }
    // A token that differs only in its last character is just as wrong.
    const nearMiss = TOKEN_A.slice(0, -1) + "0";
    const error = await apiError(server.client(nearMiss).listSandboxes());
    assert.equal(error.status, 401);
  } finally {
    await server.close();
  }
});

Deno.test("a sandbox is invisible to other tokens: 404 on every route", async () => {
  const server = serve();
  try {
    const alice = server.client(TOKEN_A);
    const bob = server.client(TOKEN_B);
    const { id } = await alice.createSandbox({ policy: { scratch: true } });
    assert.deepEqual(await bob.listSandboxes(), []);
    const calls: [string, () => Promise<unknown>][] = [
      ["run", () => bob.run(id, { code: "1" })],
      ["stream", () => bob.runStream(id, { code: "1" }).next()],
      ["network", () => bob.getNetworkPolicy(id)],
      ["update", () => bob.updateNetworkPolicy(id, "allow-all")],
      ["audit", () => bob.getAudit(id)],
      ["read", () => bob.readFile(id, "x")],
      ["write", () => bob.writeFile(id, "x", "bob was here")],
      ["list", () => bob.listFiles(id)],
      ["remove", () => bob.removeFile(id, "x")],
      ["delete", () => bob.deleteSandbox(id)],
    ];
    for (const [name, call] of calls) {
      const error = await apiError(call());
      assert.equal(error.status, 404, name);
      assert.equal(error.code, "not_found", name);
    }
    // Still alice's, untouched.
    assert.deepEqual((await alice.listSandboxes()).map((s) => s.id), [id]);
    assert.deepEqual(await alice.listFiles(id), []);
    assert.equal(await alice.getNetworkPolicy(id), "deny-all");
  } finally {
    await server.close();
  }
});

Deno.test("each token has its own sandbox limit: 429 too_many_sandboxes", async () => {
  const server = serve();
  try {
    const alice = server.client(TOKEN_A);
    const first = await alice.createSandbox({ name: "one" });
    await alice.createSandbox({ name: "two" });
    const error = await apiError(alice.createSandbox({ name: "three" }));
    assert.equal(error.status, 429);
    assert.equal(error.code, "too_many_sandboxes");
    assert.match(error.message, /delete one/);
    // Another token is not affected; deleting frees a slot.
    await server.client(TOKEN_B).createSandbox();
    await alice.deleteSandbox(first.id);
    await alice.createSandbox({ name: "three" });
    const names = (await alice.listSandboxes()).map((s) => s.name).sort();
    assert.deepEqual(names, ["three", "two"]);
  } finally {
    await server.close();
  }
});

Deno.test("bodies over the limit get 413 body_too_large and the server keeps serving", async () => {
  const server = serve({ maxBodyBytes: 1024 });
  try {
    const big = JSON.stringify({ name: "x".repeat(4096) });
    const sized = await raw(`${server.url}/sandboxes`, {
      method: "POST",
      token: TOKEN_A,
      headers: { "content-type": "application/json" },
      body: big,
    });
    assert.equal(sized.status, 413);
    assert.equal(errorCode(sized.body), "body_too_large");
    // Chunked, without Content-Length: cut off while streaming.
    const chunked = await raw(`${server.url}/sandboxes`, {
      method: "POST",
      token: TOKEN_A,
      headers: { "content-type": "application/json" },
      body: ReadableStream.from([new TextEncoder().encode(big)]),
    });
    assert.equal(chunked.status, 413);
    assert.equal(errorCode(chunked.body), "body_too_large");
    const file = await raw(`${server.url}/sandboxes/sbx-x/files/a`, {
      method: "PUT",
      token: TOKEN_A,
      body: new Uint8Array(2048),
    });
    assert.equal(file.status, 413);
    const created = await server.client().createSandbox({ name: "small" });
    assert.equal(created.name, "small");
  } finally {
    await server.close();
  }
});

Deno.test("bad bodies get 400/415/422 with clear codes and the server keeps serving", async () => {
  const server = serve();
  try {
    const post = (path: string, body: string, type = "application/json") =>
      raw(`${server.url}${path}`, {
        method: "POST",
        token: TOKEN_A,
        headers: { "content-type": type },
        body,
      });
    const malformed = await post("/sandboxes", '{"policy": {');
    assert.equal(malformed.status, 400);
    assert.equal(errorCode(malformed.body), "invalid_json");
    const form = await post("/sandboxes", "name=x", "text/plain");
    assert.equal(form.status, 415);
    assert.equal(errorCode(form.body), "unsupported_media_type");

    const alice = server.client();
    const shape = await apiError(alice.createSandbox({ name: 7 } as never));
    assert.equal(shape.code, "invalid_request");
    assert.deepEqual(shape.issues.map((i) => i.path), ["name"]);
    const policy = await apiError(alice.createSandbox({
      policy: { limits: { memoryMb: 1 }, network: { allow: ["*"] } },
    }));
    assert.equal(policy.status, 400);
    assert.equal(policy.code, "invalid_policy");
    const paths = policy.issues.map((i) => i.path);
    assert.ok(paths.includes("policy.limits.memoryMb"), paths.join());
    assert.ok(paths.some((p) => p.startsWith("policy.network.allow")));

    const { id } = await alice.createSandbox();
    const noProgram = await apiError(alice.run(id, {}));
    assert.equal(noProgram.code, "invalid_request");
    assert.match(noProgram.issues[0]?.message ?? "", /either 'code'/);
    const bundle = await apiError(
      alice.run(id, { code: "import x from 'npm:left-pad'; x(" }),
    );
    assert.equal(bundle.status, 422);
    assert.equal(bundle.code, "bundle_error");
    assert.ok(bundle.problems.length > 0);
    const network = await apiError(
      alice.updateNetworkPolicy(id, { allow: ["*.com"] }),
    );
    assert.equal(network.code, "invalid_policy");
    assert.ok(network.issues[0]?.path.startsWith("network.allow"));
    const unknown = await raw(`${server.url}/nope`, { token: TOKEN_A });
    assert.equal(unknown.status, 404);
    assert.equal(errorCode(unknown.body), "not_found");

    const result = await alice.run(id, { code: "console.log('still here')" });
    assert.equal(result.stdout, "still here\n");
  } finally {
    await server.close();
  }
});

Deno.test("a client policy cannot reach the server's files, environment or networks", async () => {
  const server = serve();
  try {
    const alice = server.client();
    const cases: [unknown, string][] = [
      [{ inputs: ["/etc/passwd"] }, "policy.inputs"],
      [
        { upstream: { connectTo: ["a.test:443:127.0.0.1:22"] } },
        "policy.upstream.connectTo",
      ],
      [
        { upstream: { caCerts: ["/etc/ssl/private/key.pem"] } },
        "policy.upstream.caCerts",
      ],
      [
        { network: { allow: ["a.test"], subnets: { allow: ["10.0.0.0/8"] } } },
        "policy.network.subnets.allow",
      ],
    ];
    for (const [policy, path] of cases) {
      const error = await apiError(alice.createSandbox({ policy } as never));
      assert.equal(error.code, "invalid_policy", path);
      assert.deepEqual(error.issues.map((i) => i.path), [path]);
    }
    // ${env:NAME} would copy the server's environment into a request to a
    // host the client chose: it stays unresolved.
    assert.ok(Deno.env.get("PATH"));
    const env = await apiError(alice.createSandbox({
      policy: {
        network: {
          allow: {
            "collector.example.test": [{
              transform: [{ headers: { "x-leak": "${env:PATH}" } }],
            }],
          },
        },
      },
    }));
    assert.equal(env.code, "invalid_policy");
    assert.match(env.issues[0]?.message ?? "", /env:PATH/);
    const { id } = await alice.createSandbox();
    const update = await apiError(
      alice.updateNetworkPolicy(id, {
        allow: ["a.test"],
        subnets: { allow: ["192.168.0.0/16"] },
      }),
    );
    assert.deepEqual(update.issues.map((i) => i.path), [
      "network.subnets.allow",
    ]);
    assert.equal(server.app.sandboxes.size, 1);
  } finally {
    await server.close();
  }
});

Deno.test("without tokens only loopback names and origins are answered", async () => {
  const server = serve({ tokens: null });
  try {
    const client = server.client(null);
    const { id } = await client.createSandbox();
    assert.equal((await client.listSandboxes())[0]?.id, id);
    const port = new URL(server.url).port;
    // A DNS-rebinding page reaches 127.0.0.1 under its own host name.
    const rebound = await rawHttp(port, "evil.example", null);
    assert.match(rebound, /^HTTP\/1\.1 401/);
    assert.match(rebound, /Host 'evil\.example' is not loopback/);
    const crossSite = await rawHttp(port, "127.0.0.1", "https://evil.example");
    assert.match(crossSite, /^HTTP\/1\.1 401/);
    const local = await rawHttp(port, "localhost", null);
    assert.match(local, /^HTTP\/1\.1 200/);
  } finally {
    await server.close();
  }
});

/** GET /sandboxes over a raw socket, with any Host and Origin. */
async function rawHttp(
  port: string,
  host: string,
  origin: string | null,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: +port });
  try {
    const request = `GET /sandboxes HTTP/1.1\r\nHost: ${host}:${port}\r\n` +
      (origin ? `Origin: ${origin}\r\n` : "") + "Connection: close\r\n\r\n";
    await conn.write(new TextEncoder().encode(request));
    return await new Response(conn.readable).text();
  } catch (error) {
    conn.close();
    throw error;
  }
}

Deno.test("/openapi.json lists every route, each one exists, and its request schemas are the ones enforced", async () => {
  const server = serve();
  try {
    const alice = server.client();
    const doc = await alice.openApi();
    const ops = operations(doc);
    assert.deepEqual(
      ops.map(({ method, path }) => `${method.toUpperCase()} ${path}`).sort(),
      [...EXPECTED_ROUTES].sort(),
    );
    const { id } = await alice.createSandbox({ policy: { scratch: true } });
    const samples: Record<string, { json?: unknown; bytes?: string }> = {
      createSandbox: { json: { name: "sample" } },
      run: { json: { code: "console.log(1)" } },
      runStream: { json: { code: "console.log(1)" } },
      updateNetworkPolicy: { json: { network: "deny-all" } },
      writeFile: { bytes: "hello" },
    };
    // Writes before reads, removals and the sandbox's deletion last.
    const order = [
      "writeFile",
      "readFile",
      "removeFile",
      "deleteSandbox",
    ];
    const rank = (op: string) => order.indexOf(op);
    const sorted = [...ops].sort((a, b) =>
      rank(a.op.operationId) - rank(b.op.operationId)
    );
    for (const { method, path, op } of sorted) {
      const url = server.url +
        path.replace("{id}", id).replace("{path}", "dir/sample.txt");
      const sample = samples[op.operationId];
      assert.equal(
        op.requestBody !== undefined,
        sample !== undefined,
        `${op.operationId}: request body documented iff the route takes one`,
      );
      const answer = await raw(url, {
        method: method.toUpperCase(),
        token: TOKEN_A,
        ...(sample?.json !== undefined
          ? {
            headers: { "content-type": "application/json" },
            body: JSON.stringify(sample.json),
          }
          : sample?.bytes !== undefined
          ? { body: sample.bytes }
          : {}),
      });
      const documented = Object.keys(op.responses).filter((s) =>
        s !== "default"
      );
      assert.deepEqual(
        [String(answer.status)],
        documented,
        `${op.operationId}: ${JSON.stringify(answer.body)}`,
      );
    }

    // Each JSON request schema is what the route enforces: every documented
    // property is checked, required ones are required, others are refused.
    const { id: probe } = await alice.createSandbox();
    const schemas = (doc.components as { schemas: Record<string, Schema> })
      .schemas;
    for (const { method, path, op } of ops) {
      const ref = op.requestBody?.content["application/json"]?.schema.$ref;
      if (!ref) continue;
      const schema = schemas[ref.split("/").at(-1)!]!;
      const url = server.url + path.replace("{id}", probe);
      const send = (body: unknown) =>
        raw(url, {
          method: method.toUpperCase(),
          token: TOKEN_A,
          headers: { "content-type": "application/json" },
          body: JSON.stringify(body),
        });
      const valid = samples[op.operationId]!.json as Record<string, unknown>;
      for (const property of Object.keys(schema.properties)) {
        const answer = await send({ ...valid, [property]: [1] });
        assert.equal(answer.status, 400, `${op.operationId}.${property}`);
        const { error } = ErrorBodySchema.parse(answer.body);
        assert.ok(
          error.issues?.some((i) => i.path.split(".")[0] === property),
          `${op.operationId}.${property}: ${JSON.stringify(error)}`,
        );
      }
      for (const property of schema.required ?? []) {
        const { [property]: _omitted, ...rest } = valid;
        const answer = await send(rest);
        assert.equal(
          answer.status,
          400,
          `${op.operationId} without ${property}`,
        );
      }
      assert.equal(schema.additionalProperties, false);
      const extra = await send({ ...valid, undocumented: true });
      assert.equal(extra.status, 400, `${op.operationId} + undocumented`);
      assert.equal(errorCode(extra.body), "invalid_request");
    }
  } finally {
    await server.close();
  }
});

interface Schema {
  properties: Record<string, unknown>;
  required?: string[];
  additionalProperties?: unknown;
}

Deno.test("answers match the documented response schemas", async () => {
  const server = serve();
  try {
    const alice = server.client();
    const created = await alice.createSandbox({
      name: "shapes",
      secrets: { TOKEN: "s3cr3t-value-123" },
      policy: {
        scratch: true,
        network: {
          allow: {
            "api.example.test": [{
              transform: [{
                headers: { authorization: "Bearer ${secret:TOKEN}" },
              }],
            }],
          },
        },
      },
    });
    CreatedSandboxSchema.parse(created);
    assert.ok(!JSON.stringify(created).includes("s3cr3t"));
    SandboxListSchema.parse({ sandboxes: await alice.listSandboxes() });
    NetworkViewSchema.parse({
      network: await alice.getNetworkPolicy(created.id),
    });
    await alice.writeFile(created.id, "d/a.txt", "A");
    DirListingSchema.parse({
      path: "/scratch/d",
      entries: await alice.listFiles(created.id, "d"),
    });
    RunResultSchema.parse(
      await alice.run(created.id, { code: "console.log('ok')" }),
    );
  } finally {
    await server.close();
  }
});
