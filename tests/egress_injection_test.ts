/**
 * Credential injection from inside real sandboxes: the injector's header
 * replaces whatever the program sent under that name (any letter case), the
 * upstream gets exactly the injected value, echoes of it come back to the
 * program only as the redaction marker (fetch, node:https, gzip bodies,
 * response headers), and placeholder secrets are swapped for their real
 * value only toward their own hosts. The secret must appear in no byte the
 * program can produce: stdout, stderr, or files it writes to /scratch.
 */

import assert from "node:assert/strict";
import { PolicyError, Sandbox } from "../mod.ts";
import {
  assertNoBytes,
  assertReached,
  type Attempt,
  egressEvents,
  fetchExpr,
  filesUnder,
  lastJson,
  MARKER,
  randomSecret,
  RAW_PROXY_PRELUDE,
  type SeenRequest,
  startUpstreams,
  statusOf,
  tryEach,
  upstreamPolicy,
  type Upstreams,
} from "./kits/upstreams.ts";

const LIMITS = { timeoutMs: 60_000 };

/** A sandbox injecting `Authorization: Bearer <secret>` toward api.example.test. */
async function injectingSandbox(
  ups: Upstreams,
  secret: string,
  extra: Record<string, unknown[]> = {},
): Promise<Sandbox> {
  return await Sandbox.create({
    policy: {
      limits: LIMITS,
      scratch: true,
      network: {
        allow: {
          "api.example.test": [{
            transform: [{
              headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
            }],
          }],
          // deno-lint-ignore no-explicit-any
          ...extra as any,
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { API_TOKEN: secret },
  });
}

/** Authorization headers of a request, each header line separately. */
function authorizations(request: SeenRequest | undefined): string[] {
  assert.ok(request, "the upstream saw the request");
  return request.headers.filter(([n]) => n === "authorization").map(([, v]) =>
    v
  );
}

/** Asserts the secret is in no byte of the run's output nor its scratch files. */
async function assertNowhere(
  secret: string,
  result: { stdoutBytes: Uint8Array; stderrBytes: Uint8Array },
  scratch: string | null,
): Promise<void> {
  assertNoBytes(result.stdoutBytes, secret, "stdout");
  assertNoBytes(result.stderrBytes, secret, "stderr");
  // Nor a long tail of it.
  const bare = secret.slice(secret.indexOf("-") + 1);
  assertNoBytes(result.stdoutBytes, bare, "stdout (token part)");
  assertNoBytes(result.stderrBytes, bare, "stderr (token part)");
  if (scratch) {
    for (const file of await filesUnder(scratch)) {
      assertNoBytes(file.bytes, secret, file.path);
      assertNoBytes(file.bytes, bare, file.path);
    }
  }
}

Deno.test("injection replaces the Authorization the program set, in any letter case: the upstream sees exactly the injected value", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await injectingSandbox(ups, secret, {
    "api.example.test": [{
      transform: [{
        headers: {
          Authorization: "Bearer ${secret:API_TOKEN}",
          "X-API-KEY": "${secret:API_TOKEN}",
        },
      }],
    }],
  });
  const raw = (lines: string) =>
    `rawProxy("GET /raw HTTP/1.1\\r\\nHost: api.example.test\\r\\n${lines}Connection: close\\r\\n\\r\\n", { connect: "api.example.test:443", tls: "api.example.test" })`;
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "Authorization": fetchExpr("https://api.example.test/1", {
        headers: { Authorization: "Bearer program-1", "x-api-key": "p1" },
      }),
      "AUTHORIZATION": fetchExpr("https://api.example.test/2", {
        headers: { AUTHORIZATION: "program-2", "X-Api-Key": "p2" },
      }),
      "lower": fetchExpr("https://api.example.test/3", {
        headers: { authorization: "Basic cHJvZ3JhbTozCg==" },
      }),
      // Three separate header lines, each spelled differently, plus
      // duplicates of the second injected header: none may survive.
      "raw duplicates": raw(
        "Authorization: Bearer raw-a\\r\\nAUTHORIZATION: raw-b\\r\\nauthorization: raw-c\\r\\nx-api-key: raw-d\\r\\nX-Api-Key: raw-e\\r\\n",
      ),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of ["Authorization", "AUTHORIZATION", "lower"]) {
    assertReached(out[name], name);
  }
  const rawOut = out["raw duplicates"];
  assert.ok(rawOut?.ok, JSON.stringify(rawOut));
  const response = (rawOut.value as { response: string }).response;
  assert.equal(statusOf(response), 200, response);
  const api = ups.get("api.example.test");
  assert.deepEqual(api.seen.map((s) => s.path), ["/1", "/2", "/3", "/raw"]);
  for (const request of api.seen) {
    assert.deepEqual(authorizations(request), [`Bearer ${secret}`]);
    assert.deepEqual(
      request.headers.filter(([n]) => n === "x-api-key"),
      [["x-api-key", secret]],
    );
    assert.ok(
      !JSON.stringify(request.headers).includes("program-") &&
        !JSON.stringify(request.headers).includes("raw-"),
      `a program-set value survived: ${JSON.stringify(request.headers)}`,
    );
  }
  const injected = egressEvents(result.audit).filter((e) =>
    e.kind === "request"
  );
  assert.equal(injected.length, 4);
  for (const e of injected) {
    assert.deepEqual(e.injected.sort(), ["authorization", "x-api-key"]);
  }
  await assertNowhere(secret, result, sandbox.scratchPath);
  assert.ok(!JSON.stringify(sandbox.auditTrail).includes(secret));
});

/** A program that posts to `url` with `client`, prints what it got and saves it. */
function echoProgram(client: "fetch" | "node:https", url: string): string {
  const request = client === "fetch"
    ? `const r = await fetch(${JSON.stringify(url)}, {
         method: "POST",
         headers: { authorization: "program-value", "content-type": "text/plain" },
         body: "body-from-the-program",
       });
       const body = await r.text();
       const headers = Object.fromEntries(r.headers);
       const status = r.status;`
    : `import https from "node:https";
       const { status, headers, body } = await new Promise((resolve, reject) => {
         const req = https.request(${JSON.stringify(url)}, {
           method: "POST",
           headers: { authorization: "program-value", "content-type": "text/plain" },
         }, (res) => {
           let body = "";
           res.setEncoding("utf8");
           res.on("data", (c) => body += c);
           res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
           res.on("error", reject);
         });
         req.on("error", reject);
         req.end("body-from-the-program");
       });`;
  return `${request}
    console.log(body);
    console.error(body);
    console.error(JSON.stringify(headers));
    await Deno.writeTextFile("/scratch/echo-body.txt", body);
    await Deno.writeTextFile("/scratch/echo-headers.json", JSON.stringify(headers));
    await Deno.mkdir("/scratch/nested", { recursive: true });
    await Deno.writeFile("/scratch/nested/raw.bin", new TextEncoder().encode(body));
    console.log(JSON.stringify({ status, headers, body }));`;
}

async function assertEchoRedacted(
  client: "fetch" | "node:https",
  path: string,
): Promise<void> {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await injectingSandbox(ups, secret);
  const result = await sandbox.run({
    code: echoProgram(client, `https://api.example.test${path}`),
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const got = lastJson<
    { status: number; headers: Record<string, string>; body: string }
  >(result);
  assert.equal(got.status, 200);
  // The upstream got the real credential and the program's body.
  const api = ups.get("api.example.test");
  assert.equal(api.seen.length, 1);
  assert.deepEqual(authorizations(api.seen[0]), [`Bearer ${secret}`]);
  assert.equal(api.seen[0]!.body, "body-from-the-program");
  // The program got the echo, with the marker where the secret was.
  const echo = JSON.parse(got.body) as {
    headers: [string, string][];
    body: string;
  };
  assert.equal(echo.body, "body-from-the-program");
  assert.deepEqual(
    echo.headers.filter(([n]) => n === "authorization"),
    [["authorization", MARKER]],
  );
  assert.equal(got.headers["x-echo-authorization"], MARKER);
  assert.ok(result.stdout.includes(MARKER));
  const files = await filesUnder(sandbox.scratchPath!);
  assert.deepEqual(
    files.map((f) => f.path.slice(sandbox.scratchPath!.length)).sort(),
    ["/echo-body.txt", "/echo-headers.json", "/nested/raw.bin"],
  );
  for (const file of files) {
    assert.ok(
      new TextDecoder().decode(file.bytes).includes(MARKER),
      `${file.path} holds the marker`,
    );
  }
  await assertNowhere(secret, result, sandbox.scratchPath);
  const echoes = egressEvents(result.audit).filter((e) =>
    e.kind === "secret-echo"
  );
  assert.equal(echoes.length, 1, JSON.stringify(result.audit));
  assert.ok((echoes[0]!.redactions ?? 0) >= 2, "body and header redacted");
  assert.ok(!JSON.stringify(result.audit).includes(secret));
}

Deno.test("echo (fetch): the program's stdout, stderr and scratch files hold the marker and no byte of the secret", async () => {
  await assertEchoRedacted("fetch", "/echo");
});

Deno.test("echo (node:https via NODE_USE_ENV_PROXY): the program sees only the marker", async () => {
  await assertEchoRedacted("node:https", "/echo");
});

Deno.test("echo (gzip-compressed body): decoded and redacted before the program sees it", async () => {
  await assertEchoRedacted("fetch", "/gzip-echo");
});

Deno.test("echo (node:https, gzip-compressed body): decoded and redacted", async () => {
  await assertEchoRedacted("node:https", "/gzip-echo");
});

Deno.test("echo guard: an upstream that quotes the token without its 'Bearer ' prefix is redacted too", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const token = randomSecret("tok");
  await using sandbox = await injectingSandbox(ups, token);
  const result = await sandbox.run({
    code: `const r = await fetch("https://api.example.test/bare-token");
      const body = await r.text();
      console.log(body);
      await Deno.writeTextFile("/scratch/page.txt", body);
      console.log(JSON.stringify({ status: r.status, body }));`,
  });
  const got = lastJson<{ status: number; body: string }>(result);
  assert.equal(got.status, 401);
  assert.deepEqual(authorizations(ups.get("api.example.test").seen[0]), [
    `Bearer ${token}`,
  ]);
  // The secret is API_TOKEN's value; "Bearer " is only the policy's framing.
  assert.equal(
    got.body,
    `token ${MARKER} is not valid for this endpoint\n`,
    "the bare token reached the program",
  );
  assertNoBytes(result.stdoutBytes, token, "stdout");
  for (const file of await filesUnder(sandbox.scratchPath!)) {
    assertNoBytes(file.bytes, token, file.path);
  }
});

Deno.test("injection over plain http is refused with 403 unless the rule sets allowInsecure", async () => {
  await using ups = await startUpstreams([
    { name: "api.example.test", tls: false },
    { name: "insecure.example.test", tls: false },
  ]);
  const secret = randomSecret();
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "api.example.test": [{
            transform: [{ headers: { authorization: "${secret:T}" } }],
          }],
          "insecure.example.test": [{
            transform: [{ headers: { authorization: "${secret:T}" } }],
            allowInsecure: true,
          }],
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { T: secret },
  });
  const result = await sandbox.run({
    code: tryEach({
      strict: fetchExpr("http://api.example.test/"),
      insecure: fetchExpr("http://insecure.example.test/"),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.ok(out.strict?.ok, JSON.stringify(out.strict));
  const strict = out.strict.value as { status: number; airlockError: string };
  assert.equal(strict.status, 403);
  assert.equal(strict.airlockError, "cleartext-credentials");
  assert.deepEqual(ups.get("api.example.test").seen, []);
  assertReached(out.insecure, "allowInsecure");
  assert.deepEqual(authorizations(ups.get("insecure.example.test").seen[0]), [
    secret,
  ]);
  const denied = egressEvents(result.audit).find((e) =>
    e.host === "api.example.test"
  );
  assert.equal(denied?.decision, "deny");
  assert.equal(denied?.status, 403);
  assertNoBytes(result.stdoutBytes, secret, "stdout");
});

Deno.test("rules select by path and method: only matching requests get the header, a response rule answers locally", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "api.example.test": [
            {
              match: { path: { startsWith: "/v1/" } },
              transform: [{ headers: { "x-scope": "v1" } }],
            },
            {
              match: { methods: ["POST"] },
              transform: [{ headers: { "x-scope": "post" } }],
            },
            {
              match: { path: { exact: "/blocked" } },
              response: { statusCode: 451, body: "not here" },
            },
          ],
        },
      },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: tryEach({
      "GET /v1/a": fetchExpr("https://api.example.test/v1/a"),
      "POST /v1/b": fetchExpr("https://api.example.test/v1/b", {
        method: "POST",
        body: "x",
      }),
      "GET /other": fetchExpr("https://api.example.test/other"),
      "GET /blocked": fetchExpr("https://api.example.test/blocked"),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of ["GET /v1/a", "POST /v1/b", "GET /other"]) {
    assertReached(out[name], name);
  }
  assert.ok(out["GET /blocked"]?.ok);
  assert.deepEqual(
    (out["GET /blocked"].value as { status: number; body: string }).status,
    451,
  );
  const api = ups.get("api.example.test");
  assert.deepEqual(api.seen.map((s) => s.path), ["/v1/a", "/v1/b", "/other"]);
  assert.equal(api.header(0, "x-scope"), "v1");
  // Later matching transforms win per header.
  assert.equal(api.header(1, "x-scope"), "post");
  assert.equal(api.header(2, "x-scope"), null);
  const responded = egressEvents(result.audit).find((e) =>
    e.decision === "respond"
  );
  assert.equal(responded?.rule, "api.example.test#2");
  assert.equal(responded?.status, 451);
});

Deno.test("placeholder: the program reads an opaque stand-in; its listed host gets the real value, another allowed host the stand-in", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "other.example.test",
  ]);
  const real = randomSecret("ghp");
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      scratch: true,
      network: { allow: ["api.example.test", "other.example.test"] },
      secrets: {
        GH_TOKEN: { hosts: ["api.example.test"], value: "${secret:GH}" },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { GH: real },
  });
  const result = await sandbox.run({
    code: `const token = Deno.env.get("GH_TOKEN");
      const send = async (host) => {
        const r = await fetch("https://" + host + "/echo?t=" + token, {
          method: "POST",
          headers: { authorization: "token " + token, "x-token": token },
          body: "body:" + token,
        });
        return { status: r.status, body: await r.text() };
      };
      const api = await send("api.example.test");
      const other = await send("other.example.test");
      let home;
      try { home = Deno.env.get("HOME") ?? null; } catch (e) { home = e.name; }
      await Deno.writeTextFile("/scratch/out.json", JSON.stringify({ api, other }));
      console.log(JSON.stringify({ token, api, other, home }));`,
  });
  assert.equal(result.exitCode, 0, result.stderr);
  const got = lastJson<{
    token: string;
    api: { status: number; body: string };
    other: { status: number; body: string };
    home: string | null;
  }>(result);
  assert.match(got.token, /^airlock-placeholder-GH_TOKEN-[0-9a-f]{32}$/);
  // The sandbox's own HOME (its scratch), never the harness's.
  assert.equal(got.home, "/scratch");
  const api = ups.get("api.example.test").seen[0];
  const other = ups.get("other.example.test").seen[0];
  assert.ok(api && other);
  // Swapped in headers toward the listed host...
  assert.deepEqual(authorizations(api), [`token ${real}`]);
  assert.deepEqual(api.headers.filter(([n]) => n === "x-token"), [[
    "x-token",
    real,
  ]]);
  // ...never in the URL or the body...
  assert.equal(api.path, `/echo?t=${got.token}`);
  assert.equal(api.body, `body:${got.token}`);
  // ...and never toward another host, even an allowed one.
  assert.deepEqual(authorizations(other), [`token ${got.token}`]);
  assert.ok(!JSON.stringify(other).includes(real));
  // The listed host's echo comes back redacted.
  assert.equal(got.api.status, 200);
  const apiEcho = JSON.parse(got.api.body) as { headers: [string, string][] };
  assert.deepEqual(
    apiEcho.headers.filter(([n]) => n === "authorization"),
    [["authorization", `token ${MARKER}`]],
  );
  assertNoBytes(result.stdoutBytes, real, "stdout");
  assertNoBytes(result.stderrBytes, real, "stderr");
  for (const file of await filesUnder(sandbox.scratchPath!)) {
    assertNoBytes(file.bytes, real, file.path);
  }
  const requests = egressEvents(result.audit).filter((e) =>
    e.kind === "request"
  );
  assert.deepEqual(
    requests.map((e) => [e.host, e.placeholders]),
    [["api.example.test", ["GH_TOKEN"]], ["other.example.test", []]],
  );
  assert.ok(!JSON.stringify(result.audit).includes(real));
});

Deno.test("placeholder: never swapped over plain http, even toward its own host", async () => {
  await using ups = await startUpstreams([
    { name: "api.example.test", tls: false },
  ]);
  const real = randomSecret("ghp");
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["api.example.test"] },
      secrets: {
        GH_TOKEN: { hosts: ["api.example.test"], value: "${secret:GH}" },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { GH: real },
  });
  const result = await sandbox.run({
    code: `const token = Deno.env.get("GH_TOKEN");
      const r = await fetch("http://api.example.test/plain", { headers: { authorization: "token " + token } });
      console.log(JSON.stringify({ token, status: r.status, body: await r.text() }));`,
  });
  const got = lastJson<{ token: string; status: number }>(result);
  assert.equal(got.status, 200, result.stderr);
  const seen = ups.get("api.example.test").seen;
  assert.equal(seen.length, 1);
  assert.deepEqual(authorizations(seen[0]), [`token ${got.token}`]);
  assert.ok(!JSON.stringify(seen).includes(real));
});

Deno.test("the policy read back and the audit trail never show an injected value", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const secret = randomSecret();
  await using sandbox = await injectingSandbox(ups, secret);
  const result = await sandbox.run({
    code: tryEach({ f: fetchExpr("https://api.example.test/?token=abc") }),
  });
  assertReached(lastJson<Record<string, Attempt>>(result).f, "fetch");
  const shown = JSON.stringify(sandbox.networkPolicy);
  assert.ok(!shown.includes(secret), shown);
  assert.match(shown, /<redacted>/);
  const trail = JSON.stringify(sandbox.auditTrail);
  assert.ok(!trail.includes(secret));
  const request = egressEvents(sandbox.auditTrail).find((e) =>
    e.kind === "request"
  );
  assert.equal(request?.path, "/?token=<redacted>");
  assert.deepEqual(request?.injected, ["authorization"]);
});

Deno.test("echo guard: a secret echoed in the response's reason phrase does not reach the program", async () => {
  await using ups = await startUpstreams([]);
  const secret = randomSecret();
  // An API whose error status line quotes the credential it rejected.
  await ups.addRaw("api.example.test", (head) => {
    const auth = head.match(/\r\nauthorization: *([^\r]*)/i)?.[1] ?? "";
    return `HTTP/1.1 401 Token ${auth} expired\r\nContent-Length: 2\r\nConnection: close\r\n\r\nno`;
  });
  await using sandbox = await injectingSandbox(ups, secret);
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + `
      import https from "node:https";
      const node = await new Promise((resolve, reject) => {
        https.get("https://api.example.test/node", (res) => {
          res.resume();
          res.on("end", () => resolve({ status: res.statusCode, reason: res.statusMessage }));
        }).on("error", reject);
      });
      const raw = await rawProxy(
        "GET /raw HTTP/1.1\\r\\nHost: api.example.test\\r\\n\\r\\n",
        { connect: "api.example.test:443", tls: "api.example.test" },
      );
      console.log(JSON.stringify({ node, statusLine: raw.response.split("\\r\\n")[0] }));`,
  });
  const got = lastJson<
    { node: { status: number; reason: string }; statusLine: string }
  >(result);
  const api = ups.get("api.example.test");
  assert.equal(api.seen.length, 2);
  assert.equal(api.header(0, "authorization"), `Bearer ${secret}`);
  assert.equal(got.node.status, 401);
  assert.ok(
    !got.node.reason.includes(secret),
    `node:https statusMessage: ${got.node.reason}`,
  );
  assert.ok(
    !got.statusLine.includes(secret),
    `raw status line: ${got.statusLine}`,
  );
  assertNoBytes(result.stdoutBytes, secret, "stdout");
  assertNoBytes(result.stderrBytes, secret, "stderr");
});

Deno.test("a secret shorter than 8 characters is refused even when the header adds a prefix (the echo guard could not recognise it)", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  let sandbox: Sandbox | undefined;
  let error: unknown;
  try {
    sandbox = await injectingSandbox(ups, "abc1234");
  } catch (e) {
    error = e;
  } finally {
    await sandbox?.close();
  }
  assert.ok(error instanceof PolicyError, `accepted: ${error}`);
  assert.match(error.message, /at least 8/);
});
