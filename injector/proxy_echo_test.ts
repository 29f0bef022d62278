/**
 * The echo guard end to end: an upstream that reflects the injected
 * credential (in headers and body, under every framing and content coding)
 * never hands it to the sandbox.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  concatBytes,
  echoJson,
  latin1Text,
  proxyFetch,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  type TestProxy,
  type UpstreamHandler,
  type UpstreamServer,
} from "../tests/kits/injector.ts";

const SECRET = "sk-echo-7d1f0b9a3c5e2468";
const MARKER = "[airlock:redacted]";
const utf8 = new TextEncoder();

type Coding = "identity" | "gzip" | "deflate" | "br" | "x-gzip";

function encode(body: Uint8Array, coding: Coding): Uint8Array {
  switch (coding) {
    case "identity":
      return body;
    case "gzip":
    case "x-gzip":
      return new Uint8Array(zlib.gzipSync(body));
    case "deflate":
      return new Uint8Array(zlib.deflateSync(body));
    case "br":
      return new Uint8Array(zlib.brotliCompressSync(body));
  }
}

/**
 * Echoes the request (JSON body, plus the Authorization value in response
 * headers) with the framing and coding named in the query: `framing` =
 * length | chunked | close, `coding` = identity | gzip | deflate | br |
 * x-gzip | zstd (zstd: the raw JSON, labelled zstd).
 */
const reflectingHandler: UpstreamHandler = async (request, respond) => {
  await request.bytes();
  const url = new URL(request.target, "http://x");
  const framing = url.searchParams.get("framing") ?? "length";
  const coding = url.searchParams.get("coding") ?? "identity";
  const auth = request.get("authorization") ?? "";
  const json = JSON.stringify({
    ...echoJson(request),
    forms: {
      base64: btoa(`user:${auth}`),
      percent: encodeURIComponent(auth),
      escaped: JSON.stringify(auth),
    },
    marker: "keep-me",
  });
  const plain = utf8.encode(json);
  const body = coding === "zstd" ? plain : encode(plain, coding as Coding);
  let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
    `X-Echo-Auth: ${auth}\r\nSet-Cookie: session=${auth}; Path=/\r\n`;
  if (coding !== "identity") head += `Content-Encoding: ${coding}\r\n`;
  if (framing === "length") {
    await respond.write(
      concatBytes([
        utf8.encode(head + `Content-Length: ${body.length}\r\n\r\n`),
        body,
      ]),
    );
    return;
  }
  if (framing === "chunked") {
    await respond.write(head + "Transfer-Encoding: chunked\r\n\r\n");
    // Small chunks: every secret occurrence crosses a chunk boundary.
    for (let at = 0; at < body.length; at += 5) {
      const piece = body.subarray(at, at + 5);
      await respond.write(
        concatBytes([
          utf8.encode(`${piece.length.toString(16)}\r\n`),
          piece,
          utf8.encode("\r\n"),
        ]),
      );
    }
    await respond.write("0\r\n\r\n");
    return;
  }
  // close-delimited
  await respond.write(head + "Connection: close\r\n\r\n");
  for (let at = 0; at < body.length; at += 7) {
    await respond.write(body.subarray(at, at + 7));
  }
  respond.close();
};

interface Env extends AsyncDisposable {
  proxy: TestProxy;
  upstream: UpstreamServer;
}

async function setup(): Promise<Env> {
  const pki = await sharedTestPki();
  const upstream = startUpstream({ tls: pki, handler: reflectingHandler });
  const proxy = await startProxy({
    network: {
      allow: {
        "api.example.test": [{
          transform: [{
            headers: { Authorization: "Bearer ${secret:API_TOKEN}" },
          }],
        }],
        "other.example.test": [],
      },
    },
    secretValues: { API_TOKEN: SECRET },
    connectTo: [`::127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  return {
    proxy,
    upstream,
    async [Symbol.asyncDispose]() {
      await proxy.close();
      await upstream.close();
    },
  };
}

/** Forms of the secret that must never reach the sandbox. */
const FORBIDDEN = [
  SECRET,
  encodeURIComponent(`Bearer ${SECRET}`),
  btoa(`user:Bearer ${SECRET}`).slice(8, -4),
];

function assertNoSecret(text: string): void {
  for (const form of FORBIDDEN) {
    assert.ok(!text.includes(form), `secret leaked as ${form}: ${text}`);
  }
}

/** The whole echoed value redacted (whether or not "Bearer " survives). */
const REDACTED_AUTH = /^(Bearer )?\[airlock:redacted\]$/;

for (const framing of ["length", "chunked", "close"]) {
  for (const coding of ["identity", "gzip", "deflate", "br", "x-gzip"]) {
    Deno.test(`echo guard redacts an echoed secret (${framing} framing, ${coding} coding) in headers and body`, async () => {
      await using env = await setup();
      const response = await proxyFetch(
        env.proxy,
        `https://api.example.test/echo?framing=${framing}&coding=${coding}`,
      );
      // The upstream really did receive (and echo) the secret.
      assert.equal(
        env.upstream.requests[0]!.get("authorization"),
        `Bearer ${SECRET}`,
      );
      assert.equal(response.status, 200);
      assertNoSecret(response.rawHead);
      assertNoSecret(response.text);
      assert.match(response.get("x-echo-auth") ?? "", REDACTED_AUTH);
      assert.match(
        response.get("set-cookie") ?? "",
        /^session=(Bearer )?\[airlock:redacted\]; Path=\/$/,
      );
      // Decoded for the guard: the body reaching the sandbox is plain.
      assert.equal(response.get("content-encoding"), undefined);
      const body = JSON.parse(response.text);
      assert.equal(body.marker, "keep-me");
      const auth = (body.headers as [string, string][]).find(([n]) =>
        n.toLowerCase() === "authorization"
      );
      assert.match(auth?.[1] ?? "", REDACTED_AUTH);
      assert.ok(body.forms.percent.includes(MARKER), body.forms.percent);
      assert.ok(body.forms.escaped.includes(MARKER), body.forms.escaped);
      assert.ok(body.forms.base64.includes(MARKER), body.forms.base64);
      const echo = await env.proxy.waitForEvent((e) =>
        e.kind === "secret-echo"
      );
      assert.ok((echo.redactions ?? 0) >= 4, JSON.stringify(echo));
      assert.equal(echo.host, "api.example.test");
      for (const event of env.proxy.events) {
        assertNoSecret(JSON.stringify(event));
      }
    });
  }
}

Deno.test("echo guard redacts over a kept-alive connection, response after response", async () => {
  await using env = await setup();
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    for (const framing of ["length", "chunked", "length"]) {
      const response = await conn.request({
        target: `/echo?framing=${framing}&coding=gzip`,
        headers: [["Host", "api.example.test"]],
      });
      assert.equal(response.status, 200);
      assertNoSecret(response.rawHead + response.text);
      assert.equal(JSON.parse(response.text).marker, "keep-me");
    }
  } finally {
    conn.close();
  }
  assert.equal(env.upstream.connections, 1);
});

Deno.test("echo guard redacts response headers of a HEAD response (no body)", async () => {
  await using env = await setup();
  const response = await proxyFetch(
    env.proxy,
    "https://api.example.test/echo",
    { method: "HEAD" },
  );
  assert.equal(response.status, 200);
  assertNoSecret(response.rawHead);
  assert.match(response.get("x-echo-auth") ?? "", REDACTED_AUTH);
  assert.equal(response.body.length, 0);
});

Deno.test("echo guard: an unknown content-encoding (zstd) on a credentialed response gives 502, never the raw bytes", async () => {
  await using env = await setup();
  const conn = await proxyTls(env.proxy, "api.example.test");
  let raw: string;
  try {
    await conn.send(
      "GET /echo?framing=length&coding=zstd HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
    );
    raw = await conn.readToEnd();
  } finally {
    conn.close();
  }
  assertNoSecret(raw);
  assert.ok(
    !raw.includes("keep-me"),
    `raw upstream bytes reached the client: ${raw}`,
  );
  assert.match(
    raw.split("\r\n")[0]!,
    /^HTTP\/1\.1 502 /,
    `the sandbox must see a 502, got: ${JSON.stringify(raw.slice(0, 300))}`,
  );
  const event = await env.proxy.waitForEvent((e) => e.decision === "error");
  assert.equal(event.status, 502);
  // Said generically: the upstream's header value is never quoted.
  assert.match(event.reason ?? "", /unsupported content-encoding/);
  assert.ok(!raw.includes("zstd"), raw);
});

Deno.test("echo guard: a response to an uncredentialed request is relayed untouched (coding kept, no redaction)", async () => {
  await using env = await setup();
  const conn = await proxyTls(env.proxy, "other.example.test");
  try {
    await conn.send(
      `GET /echo?framing=length&coding=gzip HTTP/1.1\r\nHost: other.example.test\r\nAuthorization: Bearer ${SECRET}\r\n\r\n`,
    );
    const response = await conn.response();
    assert.equal(response.status, 200);
    assert.equal(response.get("content-encoding"), "gzip");
    const plain = new TextDecoder().decode(zlib.gunzipSync(response.body));
    // The sandbox's own value is not a secret of the injector's.
    assert.ok(plain.includes(SECRET));
    assert.equal(response.get("x-echo-auth"), `Bearer ${SECRET}`);
  } finally {
    conn.close();
  }
  assert.ok(!env.proxy.events.some((e) => e.kind === "secret-echo"));
});

Deno.test("echo guard redacts a secret split across many tiny upstream writes in a large body", async () => {
  const pki = await sharedTestPki();
  const filler = "x".repeat(200_000);
  await using upstream = startUpstream({
    tls: pki,
    handler: async (request, respond) => {
      const auth = request.get("authorization") ?? "";
      const body = utf8.encode(`${filler}${auth}${filler}${auth}END`);
      await respond.write(
        `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      for (let at = 0; at < body.length; at += 65_521) {
        await respond.write(body.subarray(at, at + 65_521));
      }
    },
  });
  await using proxy = await startProxy({
    network: {
      allow: {
        "api.example.test": [{
          transform: [{ headers: { Authorization: "${secret:API_TOKEN}" } }],
        }],
      },
    },
    secretValues: { API_TOKEN: SECRET },
    connectTo: [`::127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const response = await proxyFetch(proxy, "https://api.example.test/big");
  assert.equal(response.status, 200);
  const text = latin1Text(response.body);
  assertNoSecret(text);
  assert.equal(text, `${filler}${MARKER}${filler}${MARKER}END`);
});

Deno.test("echo guard redacts the referenced secret itself when the upstream echoes only the token (not the whole header value)", async () => {
  const pki = await sharedTestPki();
  await using upstream = startUpstream({
    tls: pki,
    handler: async (request, respond) => {
      // What real APIs do: quote the key without its scheme prefix.
      const token = (request.get("authorization") ?? "").replace(
        /^Bearer /,
        "",
      );
      await respond.send(
        401,
        [["WWW-Authenticate", `Bearer error="invalid_token" token=${token}`]],
        JSON.stringify({
          error: `invalid api key ${token}`,
          basic: btoa(`user:${token}`),
        }),
      );
    },
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
    secretValues: { API_TOKEN: SECRET },
    connectTo: [`::127.0.0.1:${upstream.port}`],
    caCerts: [pki.caPem],
  });
  const response = await proxyFetch(proxy, "https://api.example.test/me");
  assert.equal(response.status, 401);
  const seen = response.rawHead + "\n" + response.text;
  assert.ok(!seen.includes(SECRET), `the bare secret leaked: ${seen}`);
  assert.ok(
    !seen.includes(btoa(`user:${SECRET}`).slice(8, -4)),
    `the base64 secret leaked: ${seen}`,
  );
  assert.match(response.text, /invalid api key \[airlock:redacted\]/);
});
