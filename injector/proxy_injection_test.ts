/**
 * Header injection through the injector: transforms replace sandbox-set
 * headers, rule matching (path, methods, query, headers), transform order,
 * local `response` rules, the cleartext refusal, placeholder secrets, Range
 * stripping, and what the audit trail records (never a secret).
 */

import assert from "node:assert/strict";
import type { EgressEvent } from "./audit.ts";
import { compileEgressPolicy } from "./egress_policy.ts";
import { Injector } from "./injector.ts";
import type { NetworkPolicyInput } from "./network_policy.ts";
import {
  connectUnix,
  fixedResolver,
  HttpConn,
  nodeStream,
  openTunnel,
  proxyFetch,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  type TestProxy,
  type UpstreamServer,
} from "../tests/kits/injector.ts";

const SECRET = "sk-test-5f3a9c2e7b1d4680";
const OTHER_SECRET = "gh-real-0a1b2c3d4e5f6789";

interface Env extends AsyncDisposable {
  proxy: TestProxy;
  /** TLS upstream for api.example.test:443. */
  api: UpstreamServer;
  /** TLS upstream for other.example.test:443. */
  other: UpstreamServer;
  /** Plain upstream for every other name and port (port 80 requests). */
  plain: UpstreamServer;
}

async function setup(
  network: NetworkPolicyInput,
  extra: {
    secrets?: Record<string, { hosts: string[]; value: string }>;
    runId?: string;
  } = {},
): Promise<Env> {
  const pki = await sharedTestPki();
  const api = startUpstream({ tls: pki });
  const other = startUpstream({ tls: pki });
  const plain = startUpstream();
  const proxy = await startProxy({
    network,
    secretValues: { API_TOKEN: SECRET, GH: OTHER_SECRET },
    connectTo: [
      `api.example.test:443:127.0.0.1:${api.port}`,
      `other.example.test:443:127.0.0.1:${other.port}`,
      `::127.0.0.1:${plain.port}`,
    ],
    caCerts: [pki.caPem],
    ...(extra.secrets ? { secrets: extra.secrets } : {}),
    ...(extra.runId ? { runId: extra.runId } : {}),
  });
  return {
    proxy,
    api,
    other,
    plain,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await Promise.all([api.close(), other.close(), plain.close()]);
    },
  };
}

const BEARER = {
  "api.example.test": [{
    transform: [{ headers: { Authorization: "Bearer ${secret:API_TOKEN}" } }],
  }],
  "other.example.test": [],
};

Deno.test("injector transform overwrites every sandbox-set header of that name, in any letter case", async () => {
  await using env = await setup({ allow: BEARER });
  const response = await proxyFetch(env.proxy, "https://api.example.test/me", {
    headers: [
      ["AUTHORIZATION", "mine"],
      ["authorization", "also-mine"],
      ["X-Keep", "kept"],
      ["aUtHoRiZaTiOn", "third"],
    ],
  });
  assert.equal(response.status, 200);
  assert.equal(env.api.requests.length, 1);
  const seen = env.api.requests[0]!;
  const auth = seen.headers.filter(([n]) =>
    n.toLowerCase() === "authorization"
  );
  assert.deepEqual(auth, [["Authorization", `Bearer ${SECRET}`]]);
  assert.equal(seen.get("x-keep"), "kept");
  assert.doesNotMatch(seen.rawHead, /mine|third/);
});

Deno.test("injector injects only toward the host whose entry carries the rule", async () => {
  await using env = await setup({ allow: BEARER });
  const response = await proxyFetch(
    env.proxy,
    "https://other.example.test/x",
    { headers: [["Authorization", "sandbox-own"]] },
  );
  assert.equal(response.status, 200);
  assert.equal(env.other.requests[0]!.get("authorization"), "sandbox-own");
  assert.equal(env.api.requests.length, 0);
});

Deno.test("injector rule matching by path: exact, startsWith and regex (query not part of the path)", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [
        {
          match: { path: { exact: "/exact" } },
          transform: [{ headers: { "X-Exact": "yes" } }],
        },
        {
          match: { path: { startsWith: "/v1/" } },
          transform: [{ headers: { "X-Prefix": "yes" } }],
        },
        {
          match: { path: { regex: "^/items/[0-9]+$" } },
          transform: [{ headers: { "X-Regex": "yes" } }],
        },
      ],
    },
  });
  const cases: [string, string[]][] = [
    ["/exact", ["x-exact"]],
    ["/exact?q=1", ["x-exact"]],
    ["/exact/more", []],
    ["/Exact", []],
    ["/v1/users", ["x-prefix"]],
    ["/v1", []],
    ["/v2/v1/", []],
    ["/items/42", ["x-regex"]],
    ["/items/42?x=/items/1", ["x-regex"]],
    ["/items/abc", []],
  ];
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    for (const [target] of cases) {
      const response = await conn.request({
        target,
        headers: [["Host", "api.example.test"]],
      });
      assert.equal(response.status, 200, target);
    }
  } finally {
    conn.close();
  }
  const injectedNames = (i: number) =>
    env.api.requests[i]!.headers.map(([n]) => n.toLowerCase()).filter((n) =>
      n.startsWith("x-")
    );
  cases.forEach(([target, expected], i) => {
    assert.equal(env.api.requests[i]!.target, target);
    assert.deepEqual(injectedNames(i), expected, target);
  });
});

Deno.test("injector rule matching by method (case-insensitive), query and headers", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [
        {
          match: { methods: ["post", "PUT"] },
          transform: [{ headers: { "X-Write": "yes" } }],
        },
        {
          match: { query: [{ key: "mode", value: "admin" }, { key: "flag" }] },
          transform: [{ headers: { "X-Query": "yes" } }],
        },
        {
          match: { headers: [{ key: "X-Tenant", value: "acme" }] },
          transform: [{ headers: { "X-Header": "yes" } }],
        },
        {
          match: { headers: [{ key: "x-present" }] },
          transform: [{ headers: { "X-Present-Seen": "yes" } }],
        },
      ],
    },
  });
  const cases: {
    method?: string;
    target: string;
    headers?: [string, string][];
    expect: string[];
  }[] = [
    { target: "/", expect: [] },
    { method: "POST", target: "/", expect: ["x-write"] },
    { method: "put", target: "/", expect: ["x-write"] },
    { method: "DELETE", target: "/", expect: [] },
    { target: "/?mode=admin&flag", expect: ["x-query"] },
    { target: "/?flag=0&mode=user&mode=admin", expect: ["x-query"] },
    { target: "/?mode=admin", expect: [] },
    { target: "/?mode=user&flag=1", expect: [] },
    { target: "/", headers: [["x-TENANT", "acme"]], expect: ["x-header"] },
    { target: "/", headers: [["X-Tenant", "other"]], expect: [] },
    {
      target: "/",
      headers: [["X-Present", ""]],
      expect: ["x-present-seen"],
    },
    {
      method: "POST",
      target: "/?mode=admin&flag=",
      headers: [["X-Tenant", "acme"]],
      expect: ["x-write", "x-query", "x-header"],
    },
  ];
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    for (const c of cases) {
      const response = await conn.request({
        target: c.target,
        ...(c.method ? { method: c.method } : {}),
        headers: [["Host", "api.example.test"], ...(c.headers ?? [])],
      });
      assert.equal(response.status, 200, JSON.stringify(c));
    }
  } finally {
    conn.close();
  }
  cases.forEach((c, i) => {
    const names = env.api.requests[i]!.headers.map(([n]) => n.toLowerCase())
      .filter((n) =>
        ["x-write", "x-query", "x-header", "x-present-seen"].includes(n)
      );
    assert.deepEqual(names, c.expect, JSON.stringify(c));
  });
});

Deno.test("injector applies every matching transform in order; later ones win per header", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [
        {
          transform: [
            { headers: { "X-A": "a1", "X-B": "b1" } },
            { headers: { "x-b": "b2" } },
          ],
        },
        {
          match: { path: { startsWith: "/never" } },
          transform: [{ headers: { "X-A": "never" } }],
        },
        { transform: [{ headers: { "X-C": "c3", "x-a": "a4" } }] },
      ],
    },
  });
  const response = await proxyFetch(env.proxy, "https://api.example.test/", {
    headers: [["X-A", "sandbox"], ["X-B", "sandbox"]],
  });
  assert.equal(response.status, 200);
  const seen = env.api.requests[0]!;
  const pick = (name: string) =>
    seen.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
  assert.deepEqual(pick("x-a"), ["a4"]);
  assert.deepEqual(pick("x-b"), ["b2"]);
  assert.deepEqual(pick("x-c"), ["c3"]);
  const event = await env.proxy.waitForEvent((e) => e.kind === "request");
  assert.deepEqual([...event.injected].sort(), ["x-a", "x-b", "x-c"]);
});

Deno.test("injector response rule answers locally: the upstream sees nothing, the connection stays usable", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [
        { transform: [{ headers: { "X-Before": "yes" } }] },
        {
          match: { methods: ["DELETE", "POST"], path: { startsWith: "/v1/" } },
          response: {
            statusCode: 403,
            body: "deletes are not allowed",
            contentType: "text/plain",
            headers: { "X-Local": "1", "Content-Length": "999" },
          },
        },
        {
          match: { methods: ["POST"] },
          response: { statusCode: 500, body: "second response rule" },
        },
      ],
    },
  });
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const local = await conn.request({
      method: "POST",
      target: "/v1/things",
      headers: [["Host", "api.example.test"]],
      body: "a body that must be drained",
    });
    assert.equal(local.status, 403);
    assert.equal(local.text, "deletes are not allowed");
    assert.equal(local.get("content-type"), "text/plain");
    assert.equal(local.get("x-local"), "1");
    assert.deepEqual(local.getAll("content-length"), ["23"]);
    const del = await conn.request({
      method: "DELETE",
      target: "/v1/x",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(del.status, 403);
    const forwarded = await conn.request({
      target: "/v1/things",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(forwarded.status, 200);
  } finally {
    conn.close();
  }
  assert.deepEqual(
    env.api.requests.map((r) => `${r.method} ${r.target}`),
    ["GET /v1/things"],
  );
  const responded = env.proxy.events.filter((e) => e.decision === "respond");
  assert.equal(responded.length, 2);
  assert.equal(responded[0]!.rule, "api.example.test#1");
  assert.equal(responded[0]!.status, 403);
});

Deno.test("injector refuses injection over plain http with 403 cleartext-credentials", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [{
        transform: [{
          headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
        }],
      }],
      "literal.example.test": [{
        transform: [{ headers: { "X-Api-Key": "pasted-literal-key" } }],
      }],
    },
  });
  for (const host of ["api.example.test", "literal.example.test"]) {
    const response = await proxyFetch(env.proxy, `http://${host}/x`);
    assert.equal(response.status, 403, host);
    assert.equal(response.get("x-airlock-error"), "cleartext-credentials");
    assert.match(response.text, new RegExp(host.replaceAll(".", "\\.")));
    assert.doesNotMatch(response.text, new RegExp(SECRET));
  }
  assert.equal(env.plain.connections, 0);
  const event = await env.proxy.waitForEvent((e) => e.status === 403);
  assert.equal(event.decision, "deny");
  assert.equal(event.rule, "api.example.test#0");
});

Deno.test("injector refuses injection into plain HTTP inside a CONNECT tunnel (not TLS)", async () => {
  await using env = await setup({ allow: BEARER });
  const tunnel = await openTunnel(env.proxy.path, "api.example.test:443");
  assert.equal(tunnel.status, 200);
  tunnel.socket.resume();
  const conn = new HttpConn(nodeStream(tunnel.socket));
  try {
    const response = await conn.request({
      target: "/",
      headers: [["Host", "api.example.test:443"]],
    });
    assert.equal(response.status, 403);
    assert.equal(response.get("x-airlock-error"), "cleartext-credentials");
  } finally {
    conn.close();
  }
  assert.equal(env.api.connections, 0);
});

Deno.test("injector injects over plain http when the rule says allowInsecure: true", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [{
        allowInsecure: true,
        transform: [{
          headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
        }],
      }],
    },
  });
  const response = await proxyFetch(env.proxy, "http://api.example.test/x", {
    headers: [["authorization", "mine"]],
  });
  assert.equal(response.status, 200);
  assert.deepEqual(
    env.plain.requests[0]!.headers.filter(([n]) =>
      n.toLowerCase() === "authorization"
    ),
    [["Authorization", `Bearer ${SECRET}`]],
  );
  // The echo guard still applies.
  assert.doesNotMatch(response.text, new RegExp(SECRET));
});

Deno.test("injector: a transform whose match does not apply does not block plain http", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [{
        match: { path: { startsWith: "/private/" } },
        transform: [{
          headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
        }],
      }],
    },
  });
  assert.equal(
    (await proxyFetch(env.proxy, "http://api.example.test/public")).status,
    200,
  );
  assert.equal(
    (await proxyFetch(env.proxy, "http://api.example.test/private/x")).status,
    403,
  );
  assert.equal(env.plain.requests.length, 1);
});

// ---- placeholders -------------------------------------------------------------------

const PLACEHOLDER_SECRETS = {
  GH_TOKEN: { hosts: ["api.example.test"], value: "${secret:GH}" },
};

Deno.test("placeholder: the token is replaced by the real value toward a listed host over TLS", async () => {
  await using env = await setup({
    allow: ["api.example.test", "other.example.test"],
  }, { secrets: PLACEHOLDER_SECRETS });
  const token = env.proxy.placeholderEnv.GH_TOKEN!;
  assert.match(token, /^airlock-placeholder-GH_TOKEN-[0-9a-f]{32}$/);
  const response = await proxyFetch(env.proxy, "https://api.example.test/x", {
    headers: [
      ["Authorization", `token ${token}`],
      ["X-Twice", `${token},${token}`],
    ],
    body: `body keeps ${token}`,
    method: "POST",
  });
  assert.equal(response.status, 200);
  const seen = env.api.requests[0]!;
  assert.equal(seen.get("authorization"), `token ${OTHER_SECRET}`);
  assert.equal(seen.get("x-twice"), `${OTHER_SECRET},${OTHER_SECRET}`);
  assert.doesNotMatch(seen.rawHead, /airlock-placeholder/);
  // Headers only: the body goes out as the program wrote it.
  assert.equal(new TextDecoder().decode(seen.body), `body keeps ${token}`);
  // The echo of the real value is redacted on the way back.
  assert.doesNotMatch(response.text, new RegExp(OTHER_SECRET));
  assert.match(response.text, /\[airlock:redacted\]/);
  const event = await env.proxy.waitForEvent((e) => e.kind === "request");
  assert.deepEqual(event.placeholders, ["GH_TOKEN"]);
  assert.deepEqual(event.injected, []);
});

Deno.test("placeholder: toward another allowed host the token goes out unchanged", async () => {
  await using env = await setup({
    allow: ["api.example.test", "other.example.test"],
  }, { secrets: PLACEHOLDER_SECRETS });
  const token = env.proxy.placeholderEnv.GH_TOKEN!;
  const response = await proxyFetch(
    env.proxy,
    "https://other.example.test/x",
    { headers: [["Authorization", `token ${token}`]] },
  );
  assert.equal(response.status, 200);
  assert.equal(env.other.requests[0]!.get("authorization"), `token ${token}`);
  assert.doesNotMatch(env.other.requests[0]!.rawHead, new RegExp(OTHER_SECRET));
  const event = await env.proxy.waitForEvent((e) => e.kind === "request");
  assert.deepEqual(event.placeholders, []);
});

Deno.test("placeholder: over plain http, even toward a listed host, the token goes out unchanged", async () => {
  await using env = await setup({
    allow: ["api.example.test"],
  }, { secrets: PLACEHOLDER_SECRETS });
  const token = env.proxy.placeholderEnv.GH_TOKEN!;
  const response = await proxyFetch(env.proxy, "http://api.example.test/x", {
    headers: [["Authorization", `token ${token}`]],
  });
  assert.equal(response.status, 200);
  assert.equal(env.plain.requests[0]!.get("authorization"), `token ${token}`);
});

Deno.test("placeholder: a transform-injected header is never rewritten by placeholder substitution", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [{
        transform: [{ headers: { "X-Fixed": "literal-value-123" } }],
      }],
    },
  }, { secrets: PLACEHOLDER_SECRETS });
  const token = env.proxy.placeholderEnv.GH_TOKEN!;
  await proxyFetch(env.proxy, "https://api.example.test/", {
    headers: [["X-Fixed", token], ["X-Other", token]],
  });
  const seen = env.api.requests[0]!;
  assert.equal(seen.get("x-fixed"), "literal-value-123");
  assert.equal(seen.get("x-other"), OTHER_SECRET);
});

// ---- Range and Accept-Encoding on credentialed requests ---------------------------------

Deno.test("injector strips Range and If-Range on credentialed requests and asks only for scannable codings", async () => {
  await using env = await setup({ allow: BEARER });
  const headers: [string, string][] = [
    ["Range", "bytes=0-10"],
    ["If-Range", '"etag"'],
    ["Accept-Encoding", "zstd, identity"],
  ];
  await proxyFetch(env.proxy, "https://api.example.test/r", { headers });
  const credentialed = env.api.requests[0]!;
  assert.equal(credentialed.get("range"), undefined);
  assert.equal(credentialed.get("if-range"), undefined);
  assert.equal(credentialed.get("accept-encoding"), "gzip, deflate, br");
  // Without a credential, the request is left alone.
  await proxyFetch(env.proxy, "https://other.example.test/r", { headers });
  const plain = env.other.requests[0]!;
  assert.equal(plain.get("range"), "bytes=0-10");
  assert.equal(plain.get("if-range"), '"etag"');
  assert.equal(plain.get("accept-encoding"), "zstd, identity");
});

Deno.test("injector strips hop-by-hop headers and proxy credentials before forwarding", async () => {
  await using env = await setup({ allow: ["other.example.test"] });
  await proxyFetch(env.proxy, "https://other.example.test/", {
    headers: [
      ["Proxy-Authorization", "Basic c2FuZGJveA=="],
      ["Connection", "X-Hop, keep-alive"],
      ["X-Hop", "1"],
      ["Keep-Alive", "timeout=5"],
      ["TE", "trailers"],
      ["X-End", "kept"],
    ],
  });
  const seen = env.other.requests[0]!;
  for (const name of ["proxy-authorization", "x-hop", "keep-alive", "te"]) {
    assert.equal(seen.get(name), undefined, name);
  }
  assert.equal(seen.get("x-end"), "kept");
});

// ---- audit ------------------------------------------------------------------------

const EVENT_FIELDS = [
  "time",
  "source",
  "kind",
  "sandboxId",
  "method",
  "scheme",
  "host",
  "port",
  "path",
  "decision",
  "rule",
  "injected",
  "placeholders",
  "status",
  "bytesOut",
  "bytesIn",
  "durationMs",
];

function checkEventShape(event: EgressEvent): void {
  const text = JSON.stringify(event);
  for (const field of EVENT_FIELDS) {
    assert.ok(field in event, `${field} missing in ${text}`);
  }
  assert.equal(event.source, "injector");
  assert.ok(!Number.isNaN(Date.parse(event.time)), text);
  assert.match(event.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(
    ["connect", "request", "websocket", "secret-echo"].includes(event.kind),
  );
  assert.ok(["http", "https", "ws", "wss"].includes(event.scheme), text);
  assert.ok(
    ["allow", "deny", "respond", "error"].includes(event.decision),
    text,
  );
  assert.equal(typeof event.port, "number");
  assert.ok(Array.isArray(event.injected) && Array.isArray(event.placeholders));
  assert.ok(event.status === null || typeof event.status === "number");
  assert.ok(event.bytesIn >= 0 && event.bytesOut >= 0 && event.durationMs >= 0);
  assert.equal(typeof event.rule, "string");
}

Deno.test("audit: every event has the documented fields, redacted query values, header names only, and never a secret", async () => {
  await using env = await setup({
    allow: {
      ...BEARER,
      "api.example.test": [
        ...BEARER["api.example.test"],
        {
          match: { methods: ["DELETE"] },
          response: { statusCode: 403, body: "no" },
        },
      ],
    },
  }, { secrets: PLACEHOLDER_SECRETS, runId: "run-7" });
  const token = env.proxy.placeholderEnv.GH_TOKEN!;
  const q = `/v1/search?token=${SECRET}&q=hello%20world&flag&empty=`;
  const ok = await proxyFetch(env.proxy, `https://api.example.test${q}`, {
    method: "POST",
    body: "twelve bytes",
    headers: [["X-Gh", token]],
  });
  assert.equal(ok.status, 200);
  await proxyFetch(env.proxy, "https://api.example.test/x", {
    method: "DELETE",
  });
  await proxyFetch(env.proxy, "https://evil.example.test/");
  await proxyFetch(env.proxy, `http://api.example.test/?k=${SECRET}`);
  await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
  await env.proxy.waitForEvent((e) => e.decision === "respond");
  await env.proxy.waitForEvent((e) =>
    e.rule === "api.example.test#0" && e.scheme === "http"
  );
  const events = env.proxy.events;
  for (const event of events) {
    checkEventShape(event);
    assert.equal(event.runId, "run-7");
    assert.equal(event.sandboxId, "sandbox-test");
    const json = JSON.stringify(event);
    assert.ok(!json.includes(SECRET), json);
    assert.ok(!json.includes(OTHER_SECRET), json);
    assert.ok(!json.includes("hello"), json);
  }
  const request = events.find((e) =>
    e.kind === "request" && e.method === "POST"
  )!;
  assert.equal(
    request.path,
    "/v1/search?token=<redacted>&q=<redacted>&flag&empty=<redacted>",
  );
  assert.deepEqual(request.injected, ["authorization"]);
  assert.deepEqual(request.placeholders, ["GH_TOKEN"]);
  assert.equal(request.decision, "allow");
  assert.equal(request.rule, "api.example.test");
  assert.equal(request.scheme, "https");
  assert.equal(request.host, "api.example.test");
  assert.equal(request.port, 443);
  assert.equal(request.status, 200);
  assert.equal(request.bytesOut, 12);
  assert.ok(request.bytesIn > 0);
  const kinds = new Set(events.map((e) => e.kind));
  assert.ok(kinds.has("connect") && kinds.has("request"));
  assert.ok(kinds.has("secret-echo"));
  const echo = events.find((e) => e.kind === "secret-echo")!;
  assert.ok((echo.redactions ?? 0) >= 1);
  assert.equal(echo.path, request.path);
  const cleartext = events.find((e) => e.scheme === "http")!;
  assert.equal(cleartext.path, "/?k=<redacted>");
  assert.equal(cleartext.decision, "deny");
});

Deno.test("audit: a throwing audit sink does not take the proxy down", async () => {
  await using upstream = startUpstream();
  await using injector = await Injector.create({
    resolver: fixedResolver({}),
  });
  const { active } = await compileEgressPolicy({
    network: { allow: ["api.example.test"] },
    secrets: {},
    upstream: {
      connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
      caCerts: [],
    },
  }, { sources: {}, resolver: injector.resolver });
  const dir = await Deno.makeTempDir();
  try {
    await injector.bind({
      socketPath: `${dir}/s.sock`,
      sandboxId: "t",
      policy: () => active,
      audit: () => {
        throw new Error("sink down");
      },
    });
    for (let i = 0; i < 2; i++) {
      const conn = await connectUnix(`${dir}/s.sock`);
      try {
        const response = await conn.request({
          target: "http://api.example.test/",
          headers: [["Host", "api.example.test"]],
        });
        assert.equal(response.status, 200);
      } finally {
        conn.close();
      }
    }
  } finally {
    await injector.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("injector matches rules on the normalised path: dot-segments cannot dodge a response rule or borrow a prefix's credentials", async () => {
  await using env = await setup({
    allow: {
      "api.example.test": [
        {
          match: { path: { startsWith: "/public/" } },
          transform: [{
            headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
          }],
        },
        {
          match: { path: { startsWith: "/admin/" } },
          response: { statusCode: 403, body: "admin is off limits" },
        },
      ],
    },
  });
  const targets = [
    "/public/../admin/delete",
    "/public/%2e%2e/admin/delete",
    "/public/../private/data",
    "/public/%2E%2E/private/data",
    "/public/./../private/data",
  ];
  const statuses: number[] = [];
  for (const target of targets) {
    const conn = await proxyTls(env.proxy, "api.example.test");
    try {
      const response = await conn.request({
        target,
        headers: [["Host", "api.example.test"]],
      });
      statuses.push(response.status);
    } finally {
      conn.close();
    }
  }
  // What an upstream that normalises the path (most do) would serve.
  const normalised = (target: string) => new URL(target, "https://x").pathname;
  for (const seen of env.api.requests) {
    const path = normalised(seen.target);
    assert.ok(
      !path.startsWith("/admin/"),
      `${seen.target} reached the upstream past the /admin/ response rule`,
    );
    if (seen.get("authorization") !== undefined) {
      assert.ok(
        path.startsWith("/public/"),
        `${seen.target} (= ${path}) got the /public/ credential`,
      );
    }
  }
  assert.equal(statuses.length, targets.length);
});
