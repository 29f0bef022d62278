/**
 * The echo guard end to end against upstreams that echo the credential the
 * way real encoders do, or frame the response so the guard could be
 * misled: literal (not referenced) credentials, escaped echoes, two
 * Content-Encoding lines, a coding list, the secret in a Content-Encoding
 * value or a header name, and `Connection` naming Host or the injected
 * header.
 */

import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  concatBytes,
  proxyFetch,
  proxyTls,
  sharedTestPki,
  startProxy,
  startUpstream,
  type TestProxy,
  type UpstreamHandler,
  type UpstreamServer,
  wsAccept,
  wsUpgrade,
} from "../tests/kits/injector.ts";

const MARKER = "[airlock:redacted]";
const utf8 = new TextEncoder();

/** A literal token as a shell would paste it: base64 alphabet with +, / and =. */
const LITERAL = "gh0+Lit/eral9Tok3n+x/Q==";
/** A Basic credential written literally in the policy. */
const BASIC_PASSWORD = "b4sic+Pa55/w0rd=7";
const BASIC = btoa(`robot:${BASIC_PASSWORD}`);

interface Env extends AsyncDisposable {
  proxy: TestProxy;
  upstream: UpstreamServer;
}

async function setup(
  handler: UpstreamHandler,
  headers: Record<string, string> = { Authorization: `Bearer ${LITERAL}` },
): Promise<Env> {
  const pki = await sharedTestPki();
  const upstream = startUpstream({ tls: pki, handler });
  const proxy = await startProxy({
    network: {
      allow: { "api.example.test": [{ transform: [{ headers }] }] },
    },
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

/** The bare credential of a request's Authorization (after the scheme). */
const credentialOf = (auth: string | undefined) =>
  (auth ?? "").replace(/^\S+\s+/, "");

/** Every way the guarded token may not show up in what the program got. */
function assertNoLiteral(text: string, token = LITERAL): void {
  for (
    const form of [
      token,
      token.slice(0, 12),
      token.slice(-12),
      encodeURIComponent(token),
      token.replaceAll("+", "\\u002B"),
      token.replaceAll("+", "&#43;"),
    ]
  ) {
    assert.ok(!text.includes(form), `leaked as ${form}: ${text.slice(0, 500)}`);
  }
}

Deno.test("a literal credential in the policy is echo-guarded: header, body and bare token redacted, secret-echo audited", async () => {
  await using env = await setup(async (request, respond) => {
    const auth = request.get("authorization") ?? "";
    await respond.send(
      200,
      [["X-Echo", auth], ["Content-Type", "application/json"]],
      JSON.stringify({ auth, token: credentialOf(auth) }),
    );
  });
  const response = await proxyFetch(env.proxy, "https://api.example.test/me");
  assert.equal(
    env.upstream.requests[0]!.get("authorization"),
    `Bearer ${LITERAL}`,
  );
  assert.equal(response.status, 200);
  assertNoLiteral(response.rawHead + response.text);
  assert.match(
    response.get("x-echo") ?? "",
    /^(Bearer )?\[airlock:redacted\]$/,
  );
  const body = JSON.parse(response.text);
  assert.equal(body.token, MARKER);
  const echo = await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
  assert.ok((echo.redactions ?? 0) >= 3, JSON.stringify(echo));
  assertNoLiteral(JSON.stringify(env.proxy.events));
});

Deno.test("a literal Basic credential is guarded in its base64, decoded and password-only forms", async () => {
  await using env = await setup(
    async (request, respond) => {
      const auth = request.get("authorization") ?? "";
      const decoded = atob(credentialOf(auth));
      await respond.send(
        401,
        [["Content-Type", "text/plain"]],
        `no access for ${decoded}; password ${
          decoded.split(":")[1]
        } expired; sent ${auth}`,
      );
    },
    { Authorization: `Basic ${BASIC}` },
  );
  const response = await proxyFetch(env.proxy, "https://api.example.test/x");
  assert.equal(response.status, 401);
  assertNoLiteral(response.text, BASIC_PASSWORD);
  assertNoLiteral(response.text, BASIC);
  // The user name is an identity, not the credential: it may stay.
  assert.match(response.text, /^no access for (robot:)?\[airlock:redacted\];/);
  await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
});

/** How an echo encodes the token, by name: encoders real services use. */
const ENCODINGS: Record<string, (token: string) => string> = {
  // .NET's System.Text.Json escapes + (and HTML-sensitive characters).
  "dotnet-json": (t) =>
    JSON.stringify(t).slice(1, -1).replaceAll("+", "\\u002B").replaceAll(
      "=",
      "\\u003D",
    ),
  "json-lower-hex": (t) => t.replaceAll("+", "\\u002b").replaceAll("/", "\\/"),
  // Go's html/template and most XML writers.
  "html-decimal": (t) => t.replaceAll("+", "&#43;").replaceAll("=", "&#61;"),
  "xml-hex": (t) => t.replaceAll("+", "&#x2B;").replaceAll("/", "&#x2f;"),
  "html-named": (t) =>
    t.replaceAll("+", "&plus;").replaceAll("/", "&sol;").replaceAll(
      "=",
      "&equals;",
    ),
  // Python's urllib.parse.quote() keeps "/".
  "python-quote": (t) => t.replaceAll("+", "%2B").replaceAll("=", "%3D"),
  "percent-everything-lower": (t) =>
    [...t].map((c) => "%" + c.charCodeAt(0).toString(16)).join(""),
  // Quoted-printable, with a soft line break inside the token.
  "quoted-printable": (t) => {
    const qp = t.replaceAll("=", "=3D");
    return `${qp.slice(0, 9)}=\r\n${qp.slice(9)}`;
  },
};

for (const [name, encode] of Object.entries(ENCODINGS)) {
  Deno.test(`an echo of the credential ${name}-encoded is redacted, chunk boundaries anywhere`, async () => {
    await using env = await setup(async (request, respond) => {
      const token = credentialOf(request.get("authorization"));
      const body = utf8.encode(`{"seen":"${encode(token)}","keep":"me"}`);
      await respond.write(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" +
          // (A header value cannot hold a line break: no soft break there.)
          `X-Seen: ${encode(token).replaceAll("=\r\n", "")}\r\n` +
          "Transfer-Encoding: chunked\r\n\r\n",
      );
      for (let at = 0; at < body.length; at += 3) {
        const piece = body.subarray(at, at + 3);
        await respond.write(
          concatBytes([
            utf8.encode(`${piece.length.toString(16)}\r\n`),
            piece,
            utf8.encode("\r\n"),
          ]),
        );
      }
      await respond.write("0\r\n\r\n");
    });
    const response = await proxyFetch(env.proxy, "https://api.example.test/e");
    assert.equal(response.status, 200);
    assert.equal(response.text, `{"seen":"${MARKER}","keep":"me"}`);
    assert.equal(response.get("x-seen"), MARKER);
    await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
  });
}

/** A raw response head, then `body`. */
function rawResponse(head: string[], body: Uint8Array): Uint8Array {
  return concatBytes([
    utf8.encode(
      `HTTP/1.1 200 OK\r\n${
        head.map((h) => `${h}\r\n`).join("")
      }Content-Length: ${body.length}\r\n\r\n`,
    ),
    body,
  ]);
}

/** Sends one raw request through a tunnel and reads until the proxy closes. */
async function rawExchange(proxy: TestProxy, path: string): Promise<string> {
  const conn = await proxyTls(proxy, "api.example.test");
  try {
    await conn.send(
      `GET ${path} HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n`,
    );
    return await conn.readToEnd();
  } finally {
    conn.close();
  }
}

const gzipOf = (text: string) => new Uint8Array(zlib.gzipSync(text));

/** Framings the guard cannot check (each with the credential inside). */
const UNCHECKABLE: Record<string, (token: string) => Uint8Array> = {
  // The guard would decide on "identity" and relay the gzip bytes raw.
  "identity, then gzip, on two lines": (t) =>
    rawResponse(
      ["Content-Encoding: identity", "Content-Encoding: gzip"],
      gzipOf(`auth=${t}`),
    ),
  "gzip, then identity, on two lines": (t) =>
    rawResponse(
      ["Content-Encoding: gzip", "content-encoding: identity"],
      gzipOf(`auth=${t}`),
    ),
  "a list of codings": (t) =>
    rawResponse(
      ["Content-Encoding: gzip, gzip"],
      new Uint8Array(zlib.gzipSync(zlib.gzipSync(`auth=${t}`))),
    ),
  "an unknown coding (compress)": (t) =>
    rawResponse(["Content-Encoding: compress"], utf8.encode(`auth=${t}`)),
  // The coding's value quotes the credential: never repeated anywhere.
  "the credential as the coding": (t) =>
    rawResponse([`Content-Encoding: x-${t}`], utf8.encode("ok")),
};

for (const [name, respondWith] of Object.entries(UNCHECKABLE)) {
  Deno.test(`a credentialed response with ${name} is refused before its first byte, the coding never quoted`, async () => {
    await using env = await setup(async (request, respond) => {
      await respond.write(
        respondWith(credentialOf(request.get("authorization"))),
      );
    });
    const raw = await rawExchange(env.proxy, "/framing");
    assert.match(raw, /^HTTP\/1\.1 502 /, raw.slice(0, 200));
    assert.equal(raw.match(/HTTP\/1\.1 /g)?.length, 1, "one status line");
    assert.match(raw, /unsupported content-encoding/);
    assert.ok(!raw.includes("auth="), raw);
    assert.ok(!raw.includes("\x1f\x8b"), "no gzip bytes relayed");
    assertNoLiteral(raw);
    assert.ok(!/compress|identity|x-gh0/.test(raw), raw);
    const event = await env.proxy.waitForEvent((e) => e.decision === "error");
    assert.equal(event.status, 502);
    assert.match(event.reason ?? "", /unsupported content-encoding/);
    assertNoLiteral(JSON.stringify(env.proxy.events));
  });
}

Deno.test("control: one gzip Content-Encoding line is decoded and redacted, not refused", async () => {
  await using env = await setup(async (request, respond) => {
    const token = credentialOf(request.get("authorization"));
    await respond.write(
      rawResponse(["Content-Encoding: GZip "], gzipOf(`auth=${token};`)),
    );
  });
  const response = await proxyFetch(env.proxy, "https://api.example.test/gz");
  assert.equal(response.status, 200);
  assert.equal(response.get("content-encoding"), undefined);
  assert.equal(response.text, `auth=${MARKER};`);
});

Deno.test("a credential in a response header name drops that field and is audited as an echo", async () => {
  await using env = await setup(async (request, respond) => {
    const token = request.get("x-api-key") ?? "";
    // A token's base64 alphabet fits a field name once "+/=" are gone.
    const nameSafe = token.replace(/[+/=]/g, "");
    await respond.write(
      rawResponse(
        [
          `X-Token-${encodeURIComponent(token)}: 1`,
          `X-Plain-${nameSafe}: 2`,
          "X-Kept: yes",
        ],
        utf8.encode("ok"),
      ),
    );
  }, { "X-Api-Key": "Zq9mWp2LrT7vXc4N" });
  const response = await proxyFetch(env.proxy, "https://api.example.test/n");
  assert.equal(response.status, 200);
  assert.equal(response.text, "ok");
  assert.equal(response.get("x-kept"), "yes");
  assert.ok(!response.rawHead.includes("Zq9mWp2LrT7vXc4N"), response.rawHead);
  assert.ok(!/x-token-|x-plain-/i.test(response.rawHead), response.rawHead);
  const echo = await env.proxy.waitForEvent((e) => e.kind === "secret-echo");
  assert.ok((echo.redactions ?? 0) >= 2, JSON.stringify(echo));
});

Deno.test("Connection naming Host or the injected header (any case, any line) removes neither; other listed names go", async () => {
  await using env = await setup(async (request, respond) => {
    await request.bytes();
    await respond.send(200, [], "ok");
  }, { Authorization: "Bearer inj3cted-t0ken-123" });
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    await conn.send(
      "GET /c HTTP/1.1\r\nHost: api.example.test\r\n" +
        "Connection: HOST, Authorization , x-hop-one\r\n" +
        "connection: aUtHoRiZaTiOn,host, X-Hop-Two\r\n" +
        "X-Hop-One: 1\r\nX-Hop-Two: 2\r\nX-Stays: 3\r\n\r\n",
    );
    const response = await conn.response();
    assert.equal(response.status, 200);
  } finally {
    conn.close();
  }
  const seen = env.upstream.requests[0]!;
  assert.equal(seen.get("host"), "api.example.test");
  assert.equal(seen.get("authorization"), "Bearer inj3cted-t0ken-123");
  assert.equal(seen.get("x-stays"), "3");
  assert.equal(seen.get("x-hop-one"), undefined);
  assert.equal(seen.get("x-hop-two"), undefined);
  assert.equal(seen.get("connection"), undefined);
});

Deno.test("a credentialed WebSocket whose upstream answers with an extension nobody offered (compressed frames) is refused before the 101", async () => {
  await using env = await setup(async (request, respond) => {
    const accept = await wsAccept(request.get("sec-websocket-key") ?? "");
    await respond.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n` +
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    );
    respond.close();
  });
  const conn = await proxyTls(env.proxy, "api.example.test");
  try {
    const { response } = await wsUpgrade(conn, "/ws", "api.example.test");
    assert.equal(response.status, 502);
    assert.match(response.text, /unsupported extension/);
    assert.ok(!response.text.includes("deflate"), response.text);
  } finally {
    conn.close();
  }
  const event = await env.proxy.waitForEvent((e) => e.decision === "error");
  assert.equal(event.status, 502);
});
