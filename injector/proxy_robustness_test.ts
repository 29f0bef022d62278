/**
 * Invariant 5: malformed or hostile input from a sandbox is handled per
 * connection and never throws out of the injector. While abusive
 * connections are open, a normal request on another connection to the same
 * binding succeeds. Large bodies stream through without being buffered.
 *
 * An unhandled rejection anywhere fails the test that caused it (Deno's
 * test runner reports it), so "never throws" is checked by every test here.
 */

import assert from "node:assert/strict";
import {
  collectGarbage,
  connectUnix,
  type HttpConn,
  openTunnel,
  patternBody,
  proxyFetch,
  proxyTls,
  responseFramingOf,
  type RssSample,
  sampleRss,
  sha256,
  sharedTestPki,
  sleep,
  startProxy,
  startUpstream,
  type TestProxy,
  type UpstreamHandler,
  type UpstreamServer,
  waitFor,
} from "../tests/kits/injector.ts";

const MB = 1024 * 1024;

/**
 * Upstream routes: `/big?size=N` streams N pattern bytes (Content-Length),
 * `/upload` hashes the request body as it streams, anything else echoes.
 */
function routes(
  sentHashes: string[],
  uploads: number[] = [],
): UpstreamHandler {
  return async (request, respond) => {
    const url = new URL(request.target, "http://x");
    if (url.pathname === "/big") {
      const size = Number(url.searchParams.get("size"));
      const hash = sha256();
      try {
        await respond.write(
          `HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`,
        );
        for await (const chunk of patternBody(size)) {
          hash.update(chunk);
          await respond.write(chunk);
        }
        sentHashes.push(hash.hex());
      } catch {
        respond.close();
      }
      return;
    }
    if (url.pathname === "/upload") {
      const hash = sha256();
      let length = 0;
      for await (const chunk of request.bodyChunks()) {
        hash.update(chunk);
        length += chunk.length;
      }
      uploads.push(length);
      await respond.send(
        200,
        [["Content-Type", "application/json"]],
        JSON.stringify({ sha256: hash.hex(), length }),
      );
      return;
    }
    await respond.send(200, [["Content-Type", "text/plain"]], "normal");
  };
}

interface Env extends AsyncDisposable {
  proxy: TestProxy;
  upstream: UpstreamServer;
  /** SHA-256 of each completed /big download, as sent. */
  sentHashes: string[];
  /** Body length of each completed /upload. */
  uploads: number[];
}

async function setup(): Promise<Env> {
  const sentHashes: string[] = [];
  const uploads: number[] = [];
  const upstream = startUpstream({ handler: routes(sentHashes, uploads) });
  const proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    connectTo: [`api.example.test:80:127.0.0.1:${upstream.port}`],
  });
  return {
    proxy,
    upstream,
    sentHashes,
    uploads,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await upstream.close();
    },
  };
}

/** A normal request on its own connection: must succeed. */
async function normalRequest(proxy: TestProxy): Promise<void> {
  const response = await proxyFetch(proxy, "http://api.example.test/normal");
  assert.equal(response.status, 200);
  assert.equal(response.text, "normal");
}

Deno.test("robustness: random bytes on one connection do not disturb another", async () => {
  await using env = await setup();
  const junk = await connectUnix(env.proxy.path);
  try {
    const bytes = new Uint8Array(64 * 1024);
    for (let i = 0; i < bytes.length; i += 65536) {
      crypto.getRandomValues(bytes.subarray(i, i + 65536));
    }
    await junk.send(bytes).catch(() => {});
    await normalRequest(env.proxy);
    // The injector answers (or just closes) and the junk connection ends.
    await junk.readToEnd();
  } finally {
    junk.close();
  }
  await normalRequest(env.proxy);
  assert.equal(env.upstream.requests.length, 2);
});

Deno.test("robustness: binary junk after CONNECT (a bogus ClientHello) ends only that tunnel", async () => {
  await using env = await setup();
  const tunnel = await openTunnel(env.proxy.path, "api.example.test:443");
  assert.equal(tunnel.status, 200);
  const closed = new Promise<void>((resolve) => {
    tunnel.socket.once("close", () => resolve());
    tunnel.socket.resume();
  });
  tunnel.socket.write(
    new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0xff, 0xfe]),
  );
  await closed;
  await normalRequest(env.proxy);
});

Deno.test("robustness: a half request then close, and a close right after CONNECT, are harmless", async () => {
  await using env = await setup();
  for (
    const half of [
      "GET http://api.example.test/ HTTP/1.1\r\nHost: api.exa",
      "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 100\r\n\r\nonly-part",
      "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
      "CONNECT api.example.test:443 HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n",
      "G",
    ]
  ) {
    const conn = await connectUnix(env.proxy.path);
    await conn.send(half);
    conn.close();
  }
  await normalRequest(env.proxy);
  await normalRequest(env.proxy);
  // A truncated body never becomes a complete upstream request, and the
  // upstream connection that carried it is never reused.
  assert.deepEqual(env.uploads, []);
  const tainted = env.upstream.requests.filter((r) => r.target === "/upload")
    .map((r) => r.connection);
  const normal = env.upstream.requests.filter((r) => r.target === "/normal");
  assert.equal(normal.length, 2);
  for (const r of normal) assert.ok(!tainted.includes(r.connection));
});

Deno.test("robustness: a slow sender (1 byte / 100 ms) is served correctly and blocks no one", async () => {
  await using env = await setup();
  const slow = await connectUnix(env.proxy.path);
  try {
    const request =
      "GET http://api.example.test/slow HTTP/1.1\r\nHost: api.example.test\r\n\r\n";
    for (const byte of request.slice(0, 8)) {
      await slow.send(byte);
      await normalRequest(env.proxy);
      await sleep(100);
    }
    await slow.send(request.slice(8));
    const response = await slow.response();
    assert.equal(response.status, 200);
  } finally {
    slow.close();
  }
  assert.ok(env.upstream.requests.some((r) => r.target === "/slow"));
});

Deno.test("robustness: a client that never reads its (large) response blocks no one", async () => {
  await using env = await setup();
  const stuck = await connectUnix(env.proxy.path);
  try {
    await stuck.send(
      `GET http://api.example.test/big?size=${
        64 * MB
      } HTTP/1.1\r\nHost: api.example.test\r\n\r\n`,
    );
    // Wait until the upstream is serving it, then check others are served.
    await waitFor(
      () => env.upstream.requests.some((r) => r.target.startsWith("/big")),
      "the big download to start",
    );
    for (let i = 0; i < 3; i++) await normalRequest(env.proxy);
  } finally {
    stuck.close();
  }
  await normalRequest(env.proxy);
});

Deno.test("robustness: 200 concurrent connections are all served", async () => {
  await using env = await setup();
  const results = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const response = await proxyFetch(
        env.proxy,
        `http://api.example.test/c${i}`,
      );
      return response.status;
    }),
  );
  assert.deepEqual(results, Array(200).fill(200));
  assert.equal(env.upstream.requests.length, 200);
});

Deno.test("robustness: everything at once (junk, half requests, a stalled upload, a non-reader, 200 idle connections) while a normal request succeeds", async () => {
  await using env = await setup();
  const open: HttpConn[] = [];
  try {
    for (let i = 0; i < 200; i++) open.push(await connectUnix(env.proxy.path));
    const junk = open[0]!;
    await junk.send(crypto.getRandomValues(new Uint8Array(4096))).catch(
      () => {},
    );
    await open[1]!.send("GET http://api.example.test/ HTTP/1.1\r\nHo");
    await open[2]!.send("G");
    await open[3]!.send(
      `GET http://api.example.test/big?size=${
        32 * MB
      } HTTP/1.1\r\nHost: api.example.test\r\n\r\n`,
    );
    await open[4]!.send(
      "POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 1000000\r\n\r\nabc",
    );
    await normalRequest(env.proxy);
    await Promise.all(
      Array.from({ length: 20 }, () => normalRequest(env.proxy)),
    );
  } finally {
    for (const conn of open) conn.close();
  }
  await normalRequest(env.proxy);
});

Deno.test("robustness: pipelined requests are answered in order", async () => {
  await using env = await setup();
  const conn = await connectUnix(env.proxy.path);
  try {
    const one = (path: string) =>
      `GET http://api.example.test${path} HTTP/1.1\r\nHost: api.example.test\r\n\r\n`;
    await conn.send(one("/p1") + one("/p2") + one("/p3"));
    for (let i = 0; i < 3; i++) {
      const response = await conn.response();
      assert.equal(response.status, 200);
    }
  } finally {
    conn.close();
  }
  assert.deepEqual(
    env.upstream.requests.map((r) => r.target),
    ["/p1", "/p2", "/p3"],
  );
});

Deno.test("robustness: closing the binding tears down open connections, and a closed injector refuses to bind", async () => {
  await using env = await setup();
  const idle = await connectUnix(env.proxy.path);
  const ended = idle.readToEnd();
  await env.proxy.binding.close();
  assert.equal(await ended, "");
  idle.close();
  await assert.rejects(() => connectUnix(env.proxy.path));
  await env.proxy.injector.close();
  await assert.rejects(
    () =>
      env.proxy.injector.bind({
        socketPath: `${env.proxy.path}.2`,
        sandboxId: "x",
        policy: () => env.proxy.active,
        audit: () => {},
      }),
    /closed injector/,
  );
});

// ---- large transfers -------------------------------------------------------------

/**
 * RSS sampling for the large transfers: every 50 ms, from a collected heap.
 * Dead chunk buffers are collected once 16 MB of them pile up (see
 * {@linkcode sampleRss}): without that, V8's lazy collection of external
 * memory alone makes a first 100 MB upload through the injector grow RSS by
 * 52-74 MB here, with nothing retained. A buffered body stays live: it
 * shows in `retained` in full (RSS alone can miss it when the allocator
 * reuses pages the process already had).
 */
function startSampling() {
  collectGarbage();
  return sampleRss(50, { collectAbove: 16 * MB });
}

/** RSS growth and retained live memory both stay below 64 MB. */
function assertBounded(rss: RssSample): void {
  const growth = rss.peak - rss.before;
  const figures = `RSS grew by ${(growth / MB).toFixed(1)} MB (before ${
    (rss.before / MB).toFixed(1)
  } MB, peak ${(rss.peak / MB).toFixed(1)} MB); live memory grew by ${
    (rss.retained / MB).toFixed(1)
  } MB`;
  assert.ok(growth < 64 * MB, figures);
  assert.ok(rss.retained < 64 * MB, figures);
}

/** Streams `size` pattern bytes up; returns the client-side hash and the upstream's answer. */
async function upload(
  proxy: TestProxy,
  size: number,
): Promise<{ sent: string; received: { sha256: string; length: number } }> {
  const conn = await connectUnix(proxy.path);
  try {
    await conn.send(
      `POST http://api.example.test/upload HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: ${size}\r\n\r\n`,
    );
    const hash = sha256();
    for await (const chunk of patternBody(size)) {
      hash.update(chunk);
      await conn.send(chunk);
    }
    const response = await conn.response("POST");
    assert.equal(response.status, 200);
    return { sent: hash.hex(), received: JSON.parse(response.text) };
  } finally {
    conn.close();
  }
}

/** Downloads `size` bytes, hashing as they stream; returns hash and length. */
async function download(
  conn: HttpConn,
  target: string,
): Promise<{ sha256: string; length: number }> {
  await conn.send(
    `GET ${target} HTTP/1.1\r\nHost: api.example.test\r\n\r\n`,
  );
  const head = await conn.reader.readHead();
  assert.ok(head);
  assert.equal(head.startLine[1], "200");
  const hash = sha256();
  let length = 0;
  for await (
    const chunk of conn.reader.body(
      responseFramingOf(200, head.headers, "GET"),
    )
  ) {
    hash.update(chunk);
    length += chunk.length;
  }
  return { sha256: hash.hex(), length };
}

Deno.test("large transfer: a 100 MB upload arrives intact (SHA-256) and the harness RSS grows by less than 64 MB", async () => {
  await using env = await setup();
  await upload(env.proxy, MB); // warm-up
  const sampler = startSampling();
  let rss;
  let result;
  try {
    result = await upload(env.proxy, 100 * MB);
  } finally {
    rss = sampler.stop();
  }
  assert.equal(result.received.length, 100 * MB);
  assert.equal(result.received.sha256, result.sent);
  assertBounded(rss);
});

Deno.test("large transfer: a 100 MB download arrives intact (SHA-256) and the harness RSS grows by less than 64 MB", async () => {
  await using env = await setup();
  const warm = await connectUnix(env.proxy.path);
  try {
    await download(warm, `http://api.example.test/big?size=${MB}`); // warm-up
  } finally {
    warm.close();
  }
  const sampler = startSampling();
  let rss;
  let got;
  const conn = await connectUnix(env.proxy.path);
  try {
    got = await download(conn, `http://api.example.test/big?size=${100 * MB}`);
  } finally {
    rss = sampler.stop();
    conn.close();
  }
  assert.equal(got.length, 100 * MB);
  assert.equal(got.sha256, env.sentHashes.at(-1));
  assertBounded(rss);
});

Deno.test("large transfer: a 100 MB download over TLS through the echo guard arrives intact with bounded RSS", async () => {
  const pki = await sharedTestPki();
  const sentHashes: string[] = [];
  await using upstream = startUpstream({
    tls: pki,
    handler: routes(sentHashes),
  });
  await using proxy = await startProxy({
    network: {
      allow: {
        "api.example.test": [{
          transform: [{
            headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
          }],
        }],
      },
    },
    secretValues: { API_TOKEN: "sk-large-0123456789abcdef" },
    connectTo: [`api.example.test:443:127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const conn = await proxyTls(proxy, "api.example.test");
  try {
    await download(conn, `/big?size=${MB}`); // warm-up
    const sampler = startSampling();
    let rss;
    let got;
    try {
      got = await download(conn, `/big?size=${100 * MB}`);
    } finally {
      rss = sampler.stop();
    }
    assert.equal(got.length, 100 * MB);
    assert.equal(got.sha256, sentHashes.at(-1));
    assertBounded(rss);
  } finally {
    conn.close();
  }
});
