/**
 * The injector's decisions and refusals, driven over its unix socket without
 * a sandbox: allowlist matching via CONNECT and absolute-form, "decide on the
 * CONNECT target" (Host / SNI / absolute-form mismatches), request-smuggling
 * shapes and the address guard.
 */

import assert from "node:assert/strict";
import { withNetworkPolicy } from "./egress_policy.ts";
import {
  connectUnix,
  fixedResolver,
  HttpConn,
  nodeStream,
  openTlsTunnel,
  openTunnel,
  proxyFetch,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  type TestProxy,
} from "../tests/kits/injector.ts";

/** Status of a CONNECT to `authority` (the tunnel is dropped at once). */
async function connectStatus(
  proxy: TestProxy,
  authority: string,
): Promise<number> {
  const tunnel = await openTunnel(proxy.path, authority);
  tunnel.socket.destroy();
  return tunnel.status;
}

/** Status of an absolute-form GET of `url`. */
async function getStatus(proxy: TestProxy, url: string): Promise<number> {
  return (await proxyFetch(proxy, url)).status;
}

/** A plain upstream every name and port is mapped to. */
function catchAll(port: number): string[] {
  return [`::127.0.0.1:${port}`];
}

// ---- allowlist decisions ------------------------------------------------------

Deno.test("injector allows an exact host and refuses others, via CONNECT and absolute-form", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  assert.equal(await connectStatus(proxy, "api.example.test:443"), 200);
  assert.equal(await connectStatus(proxy, "API.Example.Test.:443"), 200);
  assert.equal(await connectStatus(proxy, "other.example.test:443"), 403);
  assert.equal(await connectStatus(proxy, "x.api.example.test:443"), 403);
  assert.equal(await getStatus(proxy, "http://api.example.test/a"), 200);
  assert.equal(await getStatus(proxy, "http://other.example.test/b"), 403);
  assert.deepEqual(upstream.requests.map((r) => r.target), ["/a"]);
});

Deno.test("injector wildcard matches subdomains at any depth but never the apex", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["*.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  for (const host of ["a.example.test", "a.b.c.example.test"]) {
    assert.equal(await connectStatus(proxy, `${host}:443`), 200, host);
    assert.equal(await getStatus(proxy, `http://${host}/`), 200, host);
  }
  for (const host of ["example.test", "badexample.test", "example.test.evil"]) {
    assert.equal(await connectStatus(proxy, `${host}:443`), 403, host);
    assert.equal(await getStatus(proxy, `http://${host}/`), 403, host);
  }
  assert.deepEqual(
    upstream.requests.map((r) => r.get("host")),
    ["a.example.test", "a.b.c.example.test"],
  );
});

Deno.test("injector pattern without a port allows 443 and 80 only; with a port, only that port", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test", "alt.example.test:8443"] },
    connectTo: catchAll(upstream.port),
  });
  assert.equal(await connectStatus(proxy, "api.example.test:443"), 200);
  assert.equal(await connectStatus(proxy, "api.example.test:80"), 200);
  assert.equal(await connectStatus(proxy, "api.example.test:8443"), 403);
  assert.equal(await connectStatus(proxy, "api.example.test:22"), 403);
  assert.equal(await connectStatus(proxy, "alt.example.test:8443"), 200);
  assert.equal(await connectStatus(proxy, "alt.example.test:443"), 403);
  assert.equal(await connectStatus(proxy, "alt.example.test:80"), 403);
  assert.equal(await getStatus(proxy, "http://api.example.test/"), 200);
  assert.equal(await getStatus(proxy, "http://api.example.test:443/"), 200);
  assert.equal(await getStatus(proxy, "http://api.example.test:8080/"), 403);
  assert.equal(await getStatus(proxy, "http://alt.example.test:8443/"), 200);
  assert.equal(await getStatus(proxy, "http://alt.example.test/"), 403);
  assert.equal(upstream.requests.length, 3);
});

Deno.test("injector: exact beats wildcard and the longest wildcard wins, whatever the order (absolute-form)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: {
      allow: {
        "*.example.test": [{ response: { statusCode: 201, body: "wild" } }],
        "*.api.example.test": [{
          response: { statusCode: 202, body: "longer" },
        }],
        "api.example.test": [{ response: { statusCode: 203, body: "exact" } }],
      },
    },
    connectTo: catchAll(upstream.port),
  });
  const cases: [string, number, string][] = [
    ["http://api.example.test/", 203, "exact"],
    ["http://v1.api.example.test/", 202, "longer"],
    ["http://a.b.api.example.test/", 202, "longer"],
    ["http://www.example.test/", 201, "wild"],
  ];
  for (const [url, status, body] of cases) {
    const response = await proxyFetch(proxy, url);
    assert.equal(response.status, status, url);
    assert.equal(response.text, body, url);
  }
  assert.equal(upstream.requests.length, 0);
});

Deno.test("injector: exact beats wildcard and the longest wildcard wins (CONNECT, audited rule)", async () => {
  await using proxy = await startProxy({
    network: {
      allow: ["*.example.test", "*.api.example.test", "api.example.test"],
    },
  });
  const cases: [string, string][] = [
    ["api.example.test", "api.example.test"],
    ["v1.api.example.test", "*.api.example.test"],
    ["www.example.test", "*.example.test"],
  ];
  for (const [host] of cases) {
    assert.equal(await connectStatus(proxy, `${host}:443`), 200);
  }
  const rules = proxy.events.filter((e) => e.kind === "connect").map((
    e,
  ) => [e.host, e.rule]);
  assert.deepEqual(rules, cases);
});

Deno.test("injector never merges entries: an exact entry without rules gets nothing from a matching wildcard", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: {
      allow: {
        "*.example.test": [{ response: { statusCode: 201, body: "wild" } }],
        "api.example.test": [],
      },
    },
    connectTo: catchAll(upstream.port),
  });
  const response = await proxyFetch(proxy, "http://api.example.test/x");
  assert.equal(response.status, 200);
  assert.equal(JSON.parse(response.text).target, "/x");
});

Deno.test("injector deny-all refuses every CONNECT and request with 403 blocked-by-policy", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: "deny-all",
    connectTo: catchAll(upstream.port),
  });
  const tunnel = await openTunnel(proxy.path, "api.example.test:443");
  tunnel.socket.destroy();
  assert.equal(tunnel.status, 403);
  assert.equal(tunnel.response.get("x-airlock-error"), "blocked-by-policy");
  assert.match(tunnel.response.text, /api\.example\.test:443/);
  assert.match(tunnel.response.text, /denies all egress/);
  const response = await proxyFetch(proxy, "http://api.example.test/");
  assert.equal(response.status, 403);
  assert.equal(response.get("x-airlock-error"), "blocked-by-policy");
  assert.equal(upstream.connections, 0);
  assert.ok(proxy.events.every((e) => e.decision === "deny"));
  assert.equal(proxy.events.length, 2);
});

Deno.test("injector allow-all allows any host and port (CONNECT and absolute-form)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: "allow-all",
    connectTo: catchAll(upstream.port),
  });
  assert.equal(await connectStatus(proxy, "anything.example.test:443"), 200);
  assert.equal(await connectStatus(proxy, "random.invalid:8443"), 200);
  assert.equal(await getStatus(proxy, "http://elsewhere.example.test/"), 200);
  assert.equal(await getStatus(proxy, "http://x.test:8080/"), 200);
  assert.equal(upstream.requests.length, 2);
});

Deno.test("injector answers a disallowed CONNECT with 403, X-Airlock-Error, a body naming host and reason, and a deny audit event", async () => {
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    runId: "run-1",
  });
  const tunnel = await openTunnel(proxy.path, "evil.example.test:443");
  const rest = await new Promise<boolean>((resolve) => {
    tunnel.socket.once("close", () => resolve(true));
    tunnel.socket.resume();
  });
  assert.ok(rest, "the refused connection is closed");
  assert.equal(tunnel.status, 403);
  assert.equal(tunnel.response.get("x-airlock-error"), "blocked-by-policy");
  assert.equal(tunnel.response.get("connection"), "close");
  assert.match(tunnel.response.text, /^airlock: /);
  assert.match(tunnel.response.text, /'evil\.example\.test:443'/);
  assert.match(tunnel.response.text, /not in the allowlist/);
  assert.equal(tunnel.response.text.trim().split("\n").length, 1);
  const event = await proxy.waitForEvent((e) => e.kind === "connect");
  assert.equal(event.decision, "deny");
  assert.equal(event.method, "CONNECT");
  assert.equal(event.host, "evil.example.test");
  assert.equal(event.port, 443);
  assert.equal(event.status, 403);
  assert.equal(event.rule, "not-in-allowlist");
  assert.equal(event.sandboxId, "sandbox-test");
  assert.equal(event.runId, "run-1");
  assert.match(event.reason ?? "", /not in the allowlist/);
});

Deno.test("injector refuses a CONNECT target that is not host:port with 400", async () => {
  await using proxy = await startProxy({ network: "allow-all" });
  for (
    const target of [
      "api.example.test",
      "api.example.test:0",
      "api.example.test:99999",
      "http://api.example.test/",
    ]
  ) {
    assert.equal(await connectStatus(proxy, target), 400, target);
  }
});

Deno.test("injector re-reads the policy at every request (live update applies to the next request)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  const conn = await connectUnix(proxy.path);
  try {
    const first = await conn.request({
      target: "http://api.example.test/1",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(first.status, 200);
    proxy.active = withNetworkPolicy(proxy.active, "deny-all", {});
    const second = await conn.request({
      target: "http://api.example.test/2",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(second.status, 403);
  } finally {
    conn.close();
  }
  assert.deepEqual(upstream.requests.map((r) => r.target), ["/1"]);
});

// ---- decide on the CONNECT target ----------------------------------------------

async function twoTlsUpstreams() {
  const pki = await sharedTestPki();
  const a = startUpstream({ tls: pki });
  const b = startUpstream({ tls: pki });
  const proxy = await startProxy({
    network: { allow: ["api.example.test", "other.example.test"] },
    connectTo: [
      `api.example.test:443:127.0.0.1:${a.port}`,
      `other.example.test:443:127.0.0.1:${b.port}`,
    ],
    caCerts: [pki.caPem],
  });
  return {
    a,
    b,
    proxy,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await a.close();
      await b.close();
    },
  };
}

Deno.test("injector refuses a Host header naming another host inside a CONNECT tunnel with 421; the upstream is the CONNECT target", async () => {
  await using env = await twoTlsUpstreams();
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const misdirected = await conn.request({
      target: "/steal",
      headers: [["Host", "other.example.test"]],
    });
    assert.equal(misdirected.status, 421);
    assert.equal(misdirected.get("x-airlock-error"), "misdirected");
    assert.match(misdirected.text, /other\.example\.test/);
    // The tunnel still serves its own host.
    const ok = await conn.request({
      target: "/mine",
      headers: [["Host", "api.example.test:443"]],
    });
    assert.equal(ok.status, 200);
  } finally {
    conn.close();
  }
  assert.deepEqual(env.a.requests.map((r) => r.target), ["/mine"]);
  assert.equal(env.b.requests.length, 0);
  assert.equal(env.b.connections, 0);
  const refused = await env.proxy.waitForEvent((e) => e.status === 421);
  assert.equal(refused.decision, "deny");
  assert.equal(refused.host, "api.example.test");
});

Deno.test("injector refuses TLS SNI naming another host than the CONNECT target with 421 (domain fronting)", async () => {
  await using env = await twoTlsUpstreams();
  for (const servername of ["other.example.test", "evil.example"]) {
    const conn = await openTlsTunnel(
      env.proxy.path,
      "api.example.test",
      443,
      { servername, rejectUnauthorized: false },
    );
    try {
      for (const host of [servername, "api.example.test"]) {
        const response = await conn.request({
          target: "/",
          headers: [["Host", host]],
        });
        assert.equal(response.status, 421, `${servername} / Host ${host}`);
        assert.equal(response.get("x-airlock-error"), "misdirected");
        assert.match(response.text, /server name/);
      }
    } finally {
      conn.close();
    }
  }
  assert.equal(env.a.requests.length, 0);
  assert.equal(env.b.requests.length, 0);
  assert.equal(env.b.connections, 0);
});

Deno.test("injector refuses an absolute-form target naming another host inside a tunnel with 421", async () => {
  await using env = await twoTlsUpstreams();
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const response = await conn.request({
      target: "https://other.example.test/x",
      headers: [["Host", "other.example.test"]],
    });
    assert.equal(response.status, 421);
    const port = await conn.request({
      target: "https://api.example.test:8443/x",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(port.status, 421);
    const same = await conn.request({
      target: "https://api.example.test/same",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(same.status, 200);
  } finally {
    conn.close();
  }
  assert.deepEqual(env.a.requests.map((r) => r.target), ["/same"]);
  assert.equal(env.b.requests.length, 0);
});

Deno.test("injector refuses a Host header naming another host in plain HTTP inside a CONNECT tunnel with 421", async () => {
  await using a = startUpstream();
  await using b = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test", "other.example.test"] },
    connectTo: [
      `api.example.test:443:127.0.0.1:${a.port}`,
      `other.example.test:443:127.0.0.1:${b.port}`,
    ],
  });
  const tunnel = await openTunnel(proxy.path, "api.example.test:443");
  assert.equal(tunnel.status, 200);
  tunnel.socket.resume();
  const conn = new HttpConn(nodeStream(tunnel.socket));
  try {
    const response = await conn.request({
      target: "/",
      headers: [["Host", "other.example.test"]],
    });
    assert.equal(response.status, 421);
    const ok = await conn.request({
      target: "/ok",
      headers: [["Host", "api.example.test:443"]],
    });
    assert.equal(ok.status, 200);
  } finally {
    conn.close();
  }
  assert.deepEqual(a.requests.map((r) => r.target), ["/ok"]);
  assert.equal(b.connections, 0);
});

Deno.test("injector refuses an absolute-form request whose Host header disagrees with the URL (400)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test", "other.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  const cases: [string | null, string][] = [
    ["other.example.test", "another allowed host"],
    ["api.example.test:8080", "another port"],
    [null, "no Host at all"],
  ];
  for (const [host, why] of cases) {
    const response = await proxyFetch(proxy, "http://api.example.test/x", {
      host,
    });
    assert.equal(response.status, 400, why);
    assert.equal(response.get("x-airlock-error"), "bad-request", why);
  }
  // Equivalent spellings are the same authority.
  const same = await proxyFetch(proxy, "http://api.example.test/x", {
    host: "API.example.test.:80",
  });
  assert.equal(same.status, 200);
  assert.equal(upstream.requests.length, 1);
});

// ---- request smuggling and malformed requests ------------------------------------

const SMUGGLING: [string, string, number][] = [
  [
    "Content-Length with Transfer-Encoding (request smuggling)",
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    400,
  ],
  [
    "Transfer-Encoding with Content-Length (request smuggling)",
    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    400,
  ],
  [
    "duplicate Content-Length with different values",
    "Content-Length: 5\r\nContent-Length: 6\r\n",
    400,
  ],
  [
    "duplicate Content-Length with equal values",
    "Content-Length: 5\r\nContent-Length: 5\r\n",
    400,
  ],
  ["Content-Length list", "Content-Length: 5, 5\r\n", 400],
  ["signed Content-Length", "Content-Length: +5\r\n", 400],
  ["hex Content-Length", "Content-Length: 0x5\r\n", 400],
  ["negative Content-Length", "Content-Length: -1\r\n", 400],
  ["empty Content-Length", "Content-Length: \r\n", 400],
  ["obs-fold (space)", "X-A: one\r\n two\r\n", 400],
  ["obs-fold (tab)", "X-A: one\r\n\ttwo\r\n", 400],
  ["CR in a header value", "X-A: a\rb\r\n", 400],
  ["NUL in a header value", "X-A: a\0b\r\n", 400],
  ["NUL in a header name", "X-\0A: b\r\n", 400],
  ["CR in a header name", "X-\rA: b\r\n", 400],
  ["space before the colon", "X-A : b\r\n", 400],
  ["bare LF inside the head", "X-A: b\nX-B: c\r\n", 400],
  ["two Host headers", "Host: api.example.test\r\n", 400],
  ["Transfer-Encoding other than chunked", "Transfer-Encoding: gzip\r\n", 501],
  [
    "chunked not last / listed twice",
    "Transfer-Encoding: chunked, chunked\r\n",
    501,
  ],
];

for (const [name, extra, status] of SMUGGLING) {
  Deno.test(`injector refuses ${name} with ${status} and forwards nothing`, async () => {
    await using upstream = startUpstream();
    await using proxy = await startProxy({
      network: { allow: ["api.example.test"] },
      connectTo: catchAll(upstream.port),
    });
    const conn = await connectUnix(proxy.path);
    try {
      await conn.send(
        "POST http://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n" +
          extra + "\r\nhello",
      );
      const response = await conn.response();
      assert.equal(response.status, status);
      assert.equal(response.get("x-airlock-error"), "bad-request");
      assert.match(response.text, /^airlock: /);
      // The stream is unsynchronised: the connection is closed.
      assert.equal(response.get("connection"), "close");
      assert.equal(await conn.readToEnd(), "");
    } finally {
      conn.close();
    }
    assert.equal(upstream.connections, 0);
  });
}

const MALFORMED: [string, string, number, RegExp | null][] = [
  [
    "bare LF line endings",
    "GET http://api.example.test/ HTTP/1.1\nHost: api.example.test\n\n",
    400,
    /bare LF/,
  ],
  [
    "an HTTP/2 prior-knowledge preface",
    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    505,
    /HTTP\/2/,
  ],
  [
    "HTTP/3.0 in the request line",
    "GET http://api.example.test/ HTTP/3.0\r\nHost: api.example.test\r\n\r\n",
    505,
    null,
  ],
  [
    "a double space in the request line",
    "GET  http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
    400,
    null,
  ],
  [
    "a head larger than 64 KiB",
    "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nX-Big: " +
    "a".repeat(70_000) + "\r\n\r\n",
    431,
    null,
  ],
  [
    "more than 200 header fields",
    "GET http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\n" +
    "X-A: b\r\n".repeat(201) + "\r\n",
    431,
    null,
  ],
];

for (const [name, bytes, status, message] of MALFORMED) {
  Deno.test(`injector refuses ${name} with ${status}`, async () => {
    await using upstream = startUpstream();
    await using proxy = await startProxy({
      network: { allow: ["api.example.test"] },
      connectTo: catchAll(upstream.port),
    });
    const conn = await connectUnix(proxy.path);
    try {
      await conn.send(bytes);
      const response = await conn.response();
      assert.equal(response.status, status);
      assert.equal(response.get("x-airlock-error"), "bad-request");
      if (message) assert.match(response.text, message);
    } finally {
      conn.close();
    }
    assert.equal(upstream.connections, 0);
  });
}

Deno.test("injector refuses a huge head sent without ever ending it (431, bounded buffering)", async () => {
  await using proxy = await startProxy({ network: "allow-all" });
  const conn = await connectUnix(proxy.path);
  try {
    await conn.send(
      "GET http://api.example.test/ HTTP/1.1\r\nX-Big: ",
    );
    // Keep sending without a line end until the injector answers.
    const filler = "b".repeat(16 * 1024);
    const writes = (async () => {
      for (let i = 0; i < 16; i++) {
        try {
          await conn.send(filler);
        } catch {
          return;
        }
      }
    })();
    const response = await conn.response();
    assert.equal(response.status, 431);
    conn.close();
    await writes;
  } finally {
    conn.close();
  }
});

Deno.test("injector refuses smuggling shapes inside a TLS tunnel too", async () => {
  await using env = await twoTlsUpstreams();
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    await conn.send(
      "POST /x HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    const response = await conn.response();
    assert.equal(response.status, 400);
    assert.equal(response.get("x-airlock-error"), "bad-request");
  } finally {
    conn.close();
  }
  assert.equal(env.a.connections, 0);
});

for (const method of ["TRACE", "TRACK", "trace"]) {
  Deno.test(`injector refuses ${method} with 405 (cross-site tracing)`, async () => {
    await using upstream = startUpstream();
    await using proxy = await startProxy({
      network: { allow: ["api.example.test"] },
      connectTo: catchAll(upstream.port),
    });
    const response = await proxyFetch(proxy, "http://api.example.test/", {
      method,
    });
    assert.equal(response.status, 405);
    assert.equal(response.get("x-airlock-error"), "method-not-allowed");
    assert.equal(upstream.connections, 0);
    const event = await proxy.waitForEvent((e) => e.kind === "request");
    assert.equal(event.decision, "deny");
    assert.equal(event.status, 405);
  });
}

Deno.test("injector refuses TRACE inside a TLS tunnel with 405", async () => {
  await using env = await twoTlsUpstreams();
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const response = await conn.request({
      method: "TRACE",
      target: "/",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(response.status, 405);
  } finally {
    conn.close();
  }
  assert.equal(env.a.connections, 0);
});

Deno.test("injector refuses an https:// absolute-form request with 400 (use CONNECT)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  const conn = await connectUnix(proxy.path);
  try {
    const response = await conn.request({
      target: "https://api.example.test/x",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(response.status, 400);
    assert.equal(response.get("x-airlock-error"), "bad-request");
    assert.match(response.text, /CONNECT/);
  } finally {
    conn.close();
  }
  assert.equal(upstream.connections, 0);
});

Deno.test("injector refuses origin-form requests outside a tunnel with 400", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: "allow-all",
    connectTo: catchAll(upstream.port),
  });
  const conn = await connectUnix(proxy.path);
  try {
    const response = await conn.request({
      target: "/x",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(response.status, 400);
    assert.match(response.text, /absolute-form/);
  } finally {
    conn.close();
  }
  assert.equal(upstream.connections, 0);
});

Deno.test("injector refuses userinfo in the request URL with 400", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: catchAll(upstream.port),
  });
  for (
    const target of [
      "http://user:pass@api.example.test/",
      "http://user@api.example.test/",
      "http://evil.example.test@api.example.test/",
    ]
  ) {
    const conn = await connectUnix(proxy.path);
    try {
      const response = await conn.request({
        target,
        headers: [["Host", "api.example.test"]],
      });
      assert.equal(response.status, 400, target);
      assert.match(response.text, /credentials/, target);
    } finally {
      conn.close();
    }
  }
  assert.equal(upstream.connections, 0);
});

// ---- address guard -------------------------------------------------------------------

Deno.test("address guard: an allowed name resolving to 127.0.0.1 (no connectTo) gets 403 blocked-address and nothing is dialled", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: [`internal.example.test:${upstream.port}`] },
    resolver: fixedResolver({ "internal.example.test": ["127.0.0.1"] }),
  });
  const response = await proxyFetch(
    proxy,
    `http://internal.example.test:${upstream.port}/`,
  );
  assert.equal(response.status, 403);
  assert.equal(response.get("x-airlock-error"), "blocked-address");
  assert.match(response.text, /internal\.example\.test/);
  assert.match(response.text, /loopback/);
  assert.equal(upstream.connections, 0);
  const event = await proxy.waitForEvent((e) => e.kind === "request");
  assert.equal(event.decision, "deny");
  assert.equal(event.status, 403);
});

Deno.test("address guard applies inside CONNECT tunnels too (TLS request after the 200)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: [`internal.example.test:${upstream.port}`] },
    resolver: fixedResolver({ "internal.example.test": ["127.0.0.1"] }),
  });
  const conn = await proxyTls(proxy, "internal.example.test", upstream.port);
  try {
    const response = await conn.request({
      target: "/",
      headers: [["Host", `internal.example.test:${upstream.port}`]],
    });
    assert.equal(response.status, 403);
    assert.equal(response.get("x-airlock-error"), "blocked-address");
  } finally {
    conn.close();
  }
  assert.equal(upstream.connections, 0);
});

for (
  const [address, reason] of [
    ["169.254.169.254", /metadata/],
    ["::ffff:127.0.0.1", /loopback/],
    ["::ffff:7f00:1", /loopback/],
    ["::1", /loopback/],
    ["10.0.0.1", /private/],
    ["0.0.0.0", /./],
  ] as const
) {
  Deno.test(`address guard refuses a name resolving to ${address}`, async () => {
    await using proxy = await startProxy({
      network: { allow: ["internal.example.test"] },
      resolver: fixedResolver({ "internal.example.test": [address] }),
    });
    const response = await proxyFetch(proxy, "http://internal.example.test/");
    assert.equal(response.status, 403);
    assert.equal(response.get("x-airlock-error"), "blocked-address");
    assert.match(response.text, reason);
  });
}

Deno.test("address guard: connectTo mappings bypass the guard (intended: operator's choice)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["internal.example.test"] },
    resolver: fixedResolver({ "internal.example.test": ["127.0.0.1"] }),
    connectTo: [`internal.example.test:80:127.0.0.1:${upstream.port}`],
  });
  const response = await proxyFetch(proxy, "http://internal.example.test/ok");
  assert.equal(response.status, 200);
  assert.deepEqual(upstream.requests.map((r) => r.target), ["/ok"]);
});

Deno.test("address guard refuses an IP-literal target allowed by an exact pattern (127.0.0.1, also spelled as a number)", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: [`127.0.0.1:${upstream.port}`] },
  });
  const direct = await proxyFetch(proxy, `http://127.0.0.1:${upstream.port}/`);
  assert.equal(direct.status, 403);
  assert.equal(direct.get("x-airlock-error"), "blocked-address");
  // CONNECT is allowed by the pattern; the request inside is not dialled.
  for (const host of ["127.0.0.1", "2130706433", "0x7f.1"]) {
    const tunnel = await openTunnel(proxy.path, `${host}:${upstream.port}`);
    assert.equal(tunnel.status, 200, host);
    tunnel.socket.resume();
    const conn = new HttpConn(nodeStream(tunnel.socket));
    try {
      const response = await conn.request({
        target: "/",
        headers: [["Host", `127.0.0.1:${upstream.port}`]],
      });
      assert.equal(response.status, 403, host);
      assert.equal(response.get("x-airlock-error"), "blocked-address", host);
    } finally {
      conn.close();
    }
  }
  assert.equal(upstream.connections, 0);
});

Deno.test("address guard: an unresolvable allowed name gets 502, not a crash", async () => {
  await using proxy = await startProxy({
    network: { allow: ["nowhere.example.test"] },
  });
  const response = await proxyFetch(proxy, "http://nowhere.example.test/");
  assert.equal(response.status, 502);
  assert.equal(response.get("x-airlock-error"), "upstream-error");
});
