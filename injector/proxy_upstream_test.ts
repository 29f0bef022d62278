/**
 * The injector's upstream side: TLS verification against `caCerts` and the
 * requested name, keep-alive pooling (bounded per owner), and dropping
 * pooled connections the server closed. Isolation between sandboxes is in
 * pool_isolation_test.ts.
 */

import assert from "node:assert/strict";
import {
  compileEgressPolicy,
  PlaceholderSecretsSchema,
} from "./egress_policy.ts";
import { NetworkPolicySchema } from "./network_policy.ts";
import { UpstreamPool } from "./upstream.ts";
import {
  connectUnix,
  createTestPki,
  fixedResolver,
  proxyFetch,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  waitFor,
} from "../tests/kits/injector.ts";

Deno.test("upstream TLS: a certificate from a CA not in caCerts gets 502 upstream-error and is audited", async () => {
  const trusted = await sharedTestPki();
  const rogue = await createTestPki(["api.example.test"]);
  await using upstream = startUpstream({ tls: rogue });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [trusted.caPem],
  });
  const response = await proxyFetch(proxy, "https://api.example.test/x");
  assert.equal(response.status, 502);
  assert.equal(response.get("x-airlock-error"), "upstream-error");
  assert.match(response.text, /api\.example\.test/);
  assert.match(response.text, /TLS|certificate/i);
  assert.equal(upstream.requests.length, 0);
  const event = await proxy.waitForEvent((e) => e.kind === "request");
  assert.equal(event.status, 502);
  assert.notEqual(event.decision, "allow");
  assert.match(event.reason ?? "", /TLS|certificate/i);
});

Deno.test("upstream TLS: the certificate is verified against the requested name, not the mapped address", async () => {
  const pki = await createTestPki(["wrong.example.test"]);
  await using upstream = startUpstream({ tls: pki });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const response = await proxyFetch(proxy, "https://api.example.test/x");
  assert.equal(response.status, 502);
  assert.equal(upstream.requests.length, 0);
});

Deno.test("upstream TLS: with the CA in caCerts the request goes through", async () => {
  const pki = await sharedTestPki();
  await using upstream = startUpstream({ tls: pki });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const response = await proxyFetch(proxy, "https://api.example.test/x");
  assert.equal(response.status, 200);
  assert.equal(JSON.parse(response.text).target, "/x");
});

Deno.test("upstream keep-alive: sequential requests over one client connection reuse one upstream connection (TLS)", async () => {
  const pki = await sharedTestPki();
  await using upstream = startUpstream({ tls: pki });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const conn = await proxyTls(proxy, "api.example.test");
  try {
    for (const target of ["/1", "/2", "/3"]) {
      const response = await conn.request({
        target,
        headers: [["Host", "api.example.test"]],
      });
      assert.equal(response.status, 200);
    }
  } finally {
    conn.close();
  }
  // A second client connection also takes the pooled one.
  const again = await proxyFetch(proxy, "https://api.example.test/4");
  assert.equal(again.status, 200);
  assert.equal(upstream.connections, 1);
  assert.deepEqual(upstream.requests.map((r) => r.connection), [1, 1, 1, 1]);
});

Deno.test("upstream keep-alive: plain http requests reuse one upstream connection", async () => {
  await using upstream = startUpstream();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  const conn = await connectUnix(proxy.path);
  try {
    for (const target of ["/1", "/2"]) {
      const response = await conn.request({
        target: `http://api.example.test${target}`,
        headers: [["Host", "api.example.test"]],
      });
      assert.equal(response.status, 200);
    }
  } finally {
    conn.close();
  }
  assert.equal(upstream.connections, 1);
});

Deno.test("upstream keep-alive: a response with Connection: close is not reused", async () => {
  await using upstream = startUpstream({
    handler: async (_request, respond) => {
      await respond.send(200, [["Connection", "close"]], "bye");
      respond.close();
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  for (let i = 0; i < 2; i++) {
    const response = await proxyFetch(proxy, "http://api.example.test/");
    assert.equal(response.status, 200);
    assert.equal(response.text, "bye");
  }
  assert.equal(upstream.connections, 2);
});

Deno.test("upstream pool drops a connection the server closed while idle; the next request still succeeds", async () => {
  const pki = await sharedTestPki();
  let served = 0;
  await using upstream = startUpstream({
    tls: pki,
    handler: async (request, respond) => {
      served++;
      await respond.send(
        200,
        [],
        `response ${served} on ${request.connection}`,
      );
      // An idle timeout on the server: close after the response, without
      // announcing it with Connection: close.
      respond.close();
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const conn = await proxyTls(proxy, "api.example.test");
  try {
    const first = await conn.request({
      target: "/1",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(first.text, "response 1 on 1");
    // No settle: the second request may go out on the pooled connection
    // while the server's close is still on its way; a body-less GET that
    // meets a closed pooled connection before any answer is sent again on
    // a fresh one.
    const second = await conn.request({
      target: "/2",
      headers: [["Host", "api.example.test"]],
    });
    assert.equal(second.status, 200);
    assert.equal(second.text, "response 2 on 2");
  } finally {
    conn.close();
  }
  assert.equal(upstream.connections, 2);
});

Deno.test("upstream pool: a body-less GET that meets a pooled connection closing without an answer is sent again on a fresh one; a POST never is", async () => {
  const pki = await sharedTestPki();
  // Answers the first request of each connection; a later one is read (and
  // counted: the server may have acted on it) and the connection closed
  // without an answer, as a server whose idle timeout fires does.
  const perConnection = new Map<number, number>();
  const seen: string[] = [];
  await using upstream = startUpstream({
    tls: pki,
    handler: async (request, respond) => {
      const n = (perConnection.get(request.connection) ?? 0) + 1;
      perConnection.set(request.connection, n);
      seen.push(`${request.method} ${request.target}`);
      if (n === 1) return await respond.send(200, [], "fine");
      respond.close();
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const conn = await proxyTls(proxy, "api.example.test");
  try {
    const host: [string, string] = ["Host", "api.example.test"];
    assert.equal(
      (await conn.request({ target: "/a", headers: [host] })).status,
      200,
    );
    // Goes out on the pooled connection, which closes unanswered: sent again.
    const get = await conn.request({ target: "/b", headers: [host] });
    assert.equal(get.status, 200);
    const post = await conn.request({
      method: "POST",
      target: "/charge",
      headers: [host, ["Content-Length", "0"]],
    });
    // The POST went out on the connection the GET's retry opened, which
    // closes unanswered too: the program is told, and it is not repeated.
    assert.equal(post.status, 502);
  } finally {
    conn.close();
  }
  assert.deepEqual(seen, ["GET /a", "GET /b", "GET /b", "POST /charge"]);
});

Deno.test("upstream pool: an aborted download is never returned to the pool (no stale bytes for the next request)", async () => {
  const big = new Uint8Array(4 * 1024 * 1024).fill(0x61);
  await using upstream = startUpstream({
    handler: async (request, respond) => {
      if (request.target === "/big") {
        await respond.write(
          `HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n`,
        ).catch(() => {});
        await respond.write(big).catch(() => {});
        return;
      }
      await respond.send(200, [], "small");
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  const aborted = await connectUnix(proxy.path);
  await aborted.send(
    "GET http://api.example.test/big HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  );
  await aborted.reader.fill();
  aborted.close();
  await waitFor(
    () => proxy.events.some((e) => e.kind === "request"),
    "the aborted exchange to be audited",
  );
  for (let i = 0; i < 3; i++) {
    const response = await proxyFetch(proxy, "http://api.example.test/small");
    assert.equal(response.status, 200);
    assert.equal(response.text, "small");
  }
});

Deno.test("upstream: an upstream that closes without a response gives 502", async () => {
  await using upstream = startUpstream({
    handler: (_request, respond) => {
      respond.close();
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  const response = await proxyFetch(proxy, "http://api.example.test/");
  assert.equal(response.status, 502);
  assert.equal(response.get("x-airlock-error"), "upstream-error");
  const event = await proxy.waitForEvent((e) => e.kind === "request");
  assert.equal(event.decision, "error");
});

Deno.test("upstream: a malformed upstream response gives 502 without quoting upstream bytes", async () => {
  const cases = [
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "HTTP/1.1 2000 OK\r\n\r\n",
    "ICY 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\nX-Leak: upstream-bytes\n\n",
    "HTTP/1.1 200 OK\r\nX-Leak: upstream\0bytes\r\n\r\n",
  ];
  for (const raw of cases) {
    await using upstream = startUpstream({
      handler: async (_request, respond) => {
        await respond.write(raw);
        respond.close();
      },
    });
    await using proxy = await startProxy({
      network: { allow: ["api.example.test"] },
      connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
    });
    const response = await proxyFetch(proxy, "http://api.example.test/");
    assert.equal(response.status, 502, JSON.stringify(raw));
    assert.doesNotMatch(response.text, /upstream-bytes|upstream\0/);
  }
});

Deno.test("upstream: interim 1xx responses are consumed and the final response relayed", async () => {
  await using upstream = startUpstream({
    handler: async (request, respond) => {
      await request.bytes();
      await respond.write("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n");
      await respond.send(200, [], "final");
    },
  });
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  const conn = await connectUnix(proxy.path);
  try {
    await conn.send(
      "POST http://api.example.test/ HTTP/1.1\r\nHost: api.example.test\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    );
    const interim = await conn.response();
    assert.equal(interim.status, 100);
    await conn.send("body");
    const final = await conn.response();
    assert.equal(final.status, 200);
    assert.equal(final.text, "final");
  } finally {
    conn.close();
  }
  assert.equal(upstream.requests[0]!.get("expect"), undefined);
  assert.equal(new TextDecoder().decode(upstream.requests[0]!.body), "body");
});

Deno.test("UpstreamPool keeps at most 64 idle connections per owner, and none of another owner's", async () => {
  // A bare TCP server: counts what is open (the pool never writes here).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      open.add(conn);
      (async () => {
        const buf = new Uint8Array(16);
        try {
          while ((await conn.read(buf)) !== null) { /* nothing to do */ }
        } catch { /* reset */ }
        open.delete(conn);
        conn.close();
      })();
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  const { active } = await compileEgressPolicy({
    network: NetworkPolicySchema.parse({ allow: ["api.example.test"] }),
    secrets: PlaceholderSecretsSchema.parse({}),
    upstream: {
      connectTo: [`api.example.test:80:127.0.0.1:${port}`],
      caCerts: [],
    },
  }, { sources: {}, resolver: fixedResolver({}), caCerts: [] });
  const pool = new UpstreamPool();
  const target = { host: "api.example.test", port: 80, tls: false };
  const owner = {};
  try {
    // 70 distinct injections: 70 keys, one connection each.
    const taken = [];
    for (let i = 0; i < 70; i++) {
      taken.push(
        await pool.acquire(target, active.dial, {
          owner,
          injected: [["authorization", `Bearer token-${i}`]],
        }),
      );
    }
    for (const upstream of taken) pool.release(upstream, true);
    await waitFor(() => open.size === 64, "64 idle connections kept");
    // Reused only by its owner, with the same injection.
    const again = await pool.acquire(target, active.dial, {
      owner,
      injected: [["authorization", "Bearer token-0"]],
    });
    assert.equal(again.reused, true);
    pool.release(again, true);
    const stranger = await pool.acquire(target, active.dial, {
      owner: {},
      injected: [["authorization", "Bearer token-0"]],
    });
    assert.equal(stranger.reused, false);
    pool.release(stranger, false);
    pool.drop(owner);
    await waitFor(() => open.size === 0, "the owner's connections closed");
  } finally {
    pool.close();
    listener.close();
    await serving;
  }
});
