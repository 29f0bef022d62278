/**
 * Proxy bypass: the program speaks to the injector at 127.0.0.1:3128 itself
 * (its `--allow-net` grants the proxy's address) and tries every way to make
 * it connect somewhere the policy does not allow: IP literals in every
 * spelling, loopback and metadata addresses, the proxy itself, other ports,
 * Host and SNI that disagree with the CONNECT target, HTTP/2, smuggling,
 * pipelining, huge heads, nested tunnels. Each must end in a refusal the
 * injector audits, and no request may reach a listener or upstream it was
 * not meant for.
 */

import assert from "node:assert/strict";
import {
  Corpus,
  type Fixtures,
  seenWith,
  statusLine,
  valueOf,
} from "./_corpus.ts";

const corpus = new Corpus("proxy-bypass");

interface Raw {
  connectReply: string | null;
  response: string;
  responses: string[];
}

const lit = (text: string) => JSON.stringify(text);

// --- CONNECT to targets outside the allowlist ---

/** CONNECT `target` by hand: a 403 with X-Airlock-Error, nothing after. */
function connectRefused(
  id: string,
  title: string,
  target: (fx: Fixtures) => string,
  audited: (fx: Fixtures) => { host: string | RegExp; port: number },
  batch = "main",
) {
  corpus.add({
    id,
    batch,
    title,
    code: (fx) =>
      `return await rawProxy(${
        lit(`GET /${id} HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n`)
      }, { connect: ${lit(target(fx))} });`,
    expect: (v) => {
      const raw = valueOf<Raw>(v);
      assert.equal(statusLine(raw.connectReply), 403, raw.connectReply ?? "");
      assert.match(raw.connectReply ?? "", /X-Airlock-Error: /);
      assert.equal(raw.response, "", "nothing after the refusal");
      assert.deepEqual(seenWith(v.fx, id), []);
    },
    audit: (fx) => ({
      injector: { kind: "connect", ...audited(fx), status: 403 },
    }),
  });
}

connectRefused(
  "px-001",
  "CONNECT 127.0.0.1:<harness port>",
  (fx) => `127.0.0.1:${fx.tcp.port}`,
  (fx) => ({ host: "127.0.0.1", port: fx.tcp.port }),
);
connectRefused(
  "px-002",
  "CONNECT the metadata service 169.254.169.254:80",
  () => "169.254.169.254:80",
  () => ({ host: "169.254.169.254", port: 80 }),
);
connectRefused(
  "px-003",
  "CONNECT loopback as a decimal integer (2130706433)",
  (fx) => `2130706433:${fx.tcp.port}`,
  (fx) => ({ host: "127.0.0.1", port: fx.tcp.port }),
);
connectRefused(
  "px-004",
  "CONNECT loopback in octal (0177.0.0.1)",
  (fx) => `0177.0.0.1:${fx.tcp.port}`,
  (fx) => ({ host: "127.0.0.1", port: fx.tcp.port }),
);
connectRefused(
  "px-005",
  "CONNECT loopback in hex (0x7f000001)",
  (fx) => `0x7f000001:${fx.tcp.port}`,
  (fx) => ({ host: "127.0.0.1", port: fx.tcp.port }),
);
connectRefused(
  "px-006",
  "CONNECT loopback as IPv4-mapped IPv6 ([::ffff:127.0.0.1])",
  (fx) => `[::ffff:127.0.0.1]:${fx.tcp.port}`,
  (fx) => ({ host: /127\.0\.0\.1|7f00:1/, port: fx.tcp.port }),
);
connectRefused(
  "px-007",
  "CONNECT the metadata service as IPv4-mapped IPv6 in hex ([::ffff:a9fe:a9fe])",
  () => "[::ffff:a9fe:a9fe]:80",
  () => ({ host: /169\.254\.169\.254|a9fe:a9fe/, port: 80 }),
);
connectRefused(
  "px-008",
  "CONNECT the metadata service as a decimal integer (2852039166)",
  () => "2852039166:80",
  () => ({ host: "169.254.169.254", port: 80 }),
);
connectRefused(
  "px-009",
  "CONNECT a disallowed host in mixed case with a trailing dot (EVIL.Attack.Test.)",
  () => "EVIL.Attack.Test.:443",
  () => ({ host: "evil.attack.test", port: 443 }),
);
connectRefused(
  "px-010",
  "CONNECT an allowed host on another port (echo.attack.test:8443)",
  () => "echo.attack.test:8443",
  () => ({ host: "echo.attack.test", port: 8443 }),
);
connectRefused(
  "px-011",
  "CONNECT the proxy itself (127.0.0.1:3128)",
  () => "127.0.0.1:3128",
  () => ({ host: "127.0.0.1", port: 3128 }),
);
connectRefused(
  "px-012",
  "CONNECT localhost:<harness port>",
  (fx) => `localhost:${fx.tcp.port}`,
  (fx) => ({ host: "localhost", port: fx.tcp.port }),
);
connectRefused(
  "px-013",
  "CONNECT [::1]:<harness IPv6 port>",
  (fx) => `[::1]:${fx.tcp6?.port ?? fx.tcp.port}`,
  (fx) => ({ host: "::1", port: fx.tcp6?.port ?? fx.tcp.port }),
);
connectRefused(
  "px-014",
  "CONNECT 0.0.0.0 spelled '0'",
  (fx) => `0:${fx.tcp.port}`,
  (fx) => ({ host: "0.0.0.0", port: fx.tcp.port }),
);
connectRefused(
  "px-015",
  "CONNECT an allowed name as a prefix of a disallowed one (echo.attack.test.evil.attack.test)",
  () => "echo.attack.test.evil.attack.test:443",
  () => ({ host: "echo.attack.test.evil.attack.test", port: 443 }),
);
corpus.add({
  id: "px-016",
  title:
    "CONNECT with an absolute URI and userinfo (http://echo.attack.test@127.0.0.1)",
  code: (fx) =>
    `return await rawProxy("", { connect: ${
      lit(`http://echo.attack.test@127.0.0.1:${fx.tcp.port}`)
    } });`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.equal(statusLine(raw.connectReply), 400, raw.connectReply ?? "");
  },
  audit: { injector: { kind: "connect", rule: "bad-target", status: 400 } },
});

// --- Absolute-form requests ---

/** A raw absolute-form request; the expected status and audited target. */
function absoluteRefused(
  id: string,
  title: string,
  request: (fx: Fixtures) => string,
  status: number,
  audited: (fx: Fixtures) => {
    host?: string | RegExp;
    rule?: string | RegExp;
    path?: string | RegExp;
  },
  batch = "main",
) {
  corpus.add({
    id,
    batch,
    title,
    code: (fx) => `return await rawProxy(${lit(request(fx))});`,
    expect: (v) => {
      const raw = valueOf<Raw>(v);
      assert.equal(statusLine(raw.response), status, raw.response);
      assert.match(raw.response, /X-Airlock-Error: /);
      assert.deepEqual(seenWith(v.fx, id), []);
    },
    audit: (fx) => ({ injector: { kind: "request", status, ...audited(fx) } }),
  });
}

absoluteRefused(
  "px-017",
  "absolute-form URL with userinfo naming an allowed host before '@127.0.0.1'",
  (fx) =>
    `GET http://plain.attack.test@127.0.0.1:${fx.tcp.port}/px-017 HTTP/1.1\r\nHost: plain.attack.test\r\n\r\n`,
  400,
  () => ({ rule: "bad-request" }),
);
absoluteRefused(
  "px-018",
  "absolute-form to an allowed host with a Host header naming another",
  () =>
    "GET http://plain.attack.test/px-018 HTTP/1.1\r\nHost: evil.attack.test\r\n\r\n",
  400,
  () => ({ rule: "bad-request", path: /px-018/ }),
);
absoluteRefused(
  "px-019",
  "absolute-form http:// to the harness port on loopback",
  (fx) =>
    `GET http://127.0.0.1:${fx.tcp.port}/px-019 HTTP/1.1\r\nHost: 127.0.0.1:${fx.tcp.port}\r\n\r\n`,
  403,
  () => ({ host: "127.0.0.1", path: "/px-019" }),
);
corpus.add({
  id: "px-020",
  title:
    "pipeline a request to a disallowed host behind an allowed one on one keep-alive connection",
  code: `return await rawProxy([
    ${
    lit(
      "GET http://plain.attack.test/px-020-ok HTTP/1.1\r\nHost: plain.attack.test\r\n\r\n",
    )
  },
    ${
    lit(
      "GET http://evil.attack.test/px-020 HTTP/1.1\r\nHost: evil.attack.test\r\n\r\n",
    )
  },
  ]);`,
  expect: (v) => {
    const raw = valueOf<Raw>(v);
    assert.deepEqual(raw.responses.map(statusLine), [200, 403]);
    assert.deepEqual(
      seenWith(v.fx, "px-020").map((s) => s.path),
      ["/px-020-ok"],
    );
  },
  audit: {
    injector: { host: "evil.attack.test", path: "/px-020", status: 403 },
  },
});

// --- Inside a TLS tunnel to the credentialed host ---

const TLS_TO_ECHO =
  `{ connect: "echo.attack.test:443", tls: "echo.attack.test" }`;

/** A request (or several) inside a TLS tunnel to echo.attack.test. */
function inTunnel(
  id: string,
  title: string,
  requests: string[],
  statuses: (number | number[])[],
  audited: {
    path?: string | RegExp;
    rule?: string | RegExp;
    status?: number;
  },
) {
  corpus.add({
    id,
    title,
    code: `return await rawProxy(${JSON.stringify(requests)}, ${TLS_TO_ECHO});`,
    expect: (v) => {
      const raw = valueOf<Raw>(v);
      assert.equal(statusLine(raw.connectReply), 200, "the tunnel is allowed");
      const got = raw.responses.map(statusLine);
      statuses.forEach((want, i) => {
        const ok = Array.isArray(want) ? want : [want];
        assert.ok(
          ok.includes(got[i] as number),
          `response ${i}: ${got[i]} not in ${ok}: ${
            raw.response.slice(0, 500)
          }`,
        );
      });
      assert.doesNotMatch(
        raw.responses.slice(statuses.length).join(""),
        /HTTP\/1\.1 200/,
        "nothing served after the refusal",
      );
      for (const seen of seenWith(v.fx, id)) {
        assert.ok(
          seen.path.endsWith("-ok"),
          `an upstream received ${seen.path}`,
        );
      }
    },
    audit: {
      injector: { host: "echo.attack.test", port: 443, ...audited },
    },
  });
}

inTunnel(
  "px-021",
  "Host header naming another allowed host inside the credentialed tunnel",
  ["GET /px-021 HTTP/1.1\r\nHost: other.attack.test\r\n\r\n"],
  [421],
  { path: "/px-021", rule: "misdirected", status: 421 },
);
inTunnel(
  "px-022",
  "absolute-form target naming another host inside the credentialed tunnel",
  [
    "GET https://other.attack.test/px-022 HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n",
  ],
  [421],
  { rule: "misdirected", status: 421 },
);
inTunnel(
  "px-023",
  "HTTP/2 prior knowledge (PRI * preface) inside the tunnel",
  ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
  [[400, 505]],
  { rule: "malformed" },
);
inTunnel(
  "px-024",
  "request smuggling: Content-Length with Transfer-Encoding",
  [
    "POST /px-024 HTTP/1.1\r\nHost: echo.attack.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /px-024-smuggled HTTP/1.1\r\nHost: other.attack.test\r\n\r\n",
  ],
  [400],
  { rule: "malformed", status: 400 },
);
inTunnel(
  "px-025",
  "request smuggling: two different Content-Length headers",
  [
    "POST /px-025 HTTP/1.1\r\nHost: echo.attack.test\r\nContent-Length: 0\r\nContent-Length: 49\r\n\r\nGET /px-025-smuggled HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n",
  ],
  [400],
  { rule: "malformed", status: 400 },
);
inTunnel(
  "px-026",
  "request smuggling: obs-fold continuation line hiding a second Host",
  [
    "GET /px-026 HTTP/1.1\r\nHost: echo.attack.test\r\nX-A: a\r\n Host: other.attack.test\r\n\r\n",
  ],
  [400],
  { rule: "malformed", status: 400 },
);
inTunnel(
  "px-027",
  "request smuggling: bare LF line endings",
  [
    "GET /px-027 HTTP/1.1\nHost: echo.attack.test\nX-B: b\r\n\r\nGET /px-027-smuggled HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n",
  ],
  [400],
  { rule: "malformed", status: 400 },
);
inTunnel(
  "px-028",
  "request smuggling: Transfer-Encoding chunked not last ('chunked, identity')",
  [
    "POST /px-028 HTTP/1.1\r\nHost: echo.attack.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /px-028-smuggled HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n",
  ],
  [[400, 501]],
  { rule: "malformed" },
);
inTunnel(
  "px-029",
  "pipeline a second request to another host on the allowed keep-alive tunnel",
  [
    "GET /px-029-ok HTTP/1.1\r\nHost: echo.attack.test\r\n\r\n",
    "GET /px-029 HTTP/1.1\r\nHost: other.attack.test\r\n\r\n",
  ],
  [200, 421],
  { path: "/px-029", rule: "misdirected", status: 421 },
);
inTunnel(
  "px-030",
  "huge request head (100 KB of headers) to overflow the parser",
  [
    `GET /px-030 HTTP/1.1\r\nHost: echo.attack.test\r\n${
      Array.from(
        { length: 100 },
        (_, i) => `X-Pad-${i}: ${"a".repeat(1000)}\r\n`,
      )
        .join("")
    }\r\n`,
  ],
  [[400, 431]],
  { rule: "malformed" },
);
// The injector must answer (and audit) a nested CONNECT like any other
// refused request, not just drop the connection.
inTunnel(
  "px-031",
  "nested CONNECT to another host inside the tunnel",
  [
    "CONNECT other.attack.test:443 HTTP/1.1\r\nHost: other.attack.test:443\r\n\r\nGET /px-031 HTTP/1.1\r\nHost: other.attack.test\r\n\r\n",
  ],
  [[400, 403, 405, 421]],
  { path: /other\.attack\.test/ },
);
corpus.add({
  id: "px-032",
  title:
    "TLS SNI naming another allowed host inside the credentialed tunnel (verification off)",
  code: `const net = (await import("node:net")).default;
    const tls = (await import("node:tls")).default;
    const s = net.connect(3128, "127.0.0.1");
    await new Promise((r, j) => { s.once("connect", r); s.once("error", j); });
    s.write("CONNECT echo.attack.test:443 HTTP/1.1\\r\\nHost: echo.attack.test:443\\r\\n\\r\\n");
    const connectReply = await new Promise((r) => s.once("data", (d) => r(String(d))));
    const t = tls.connect({ socket: s, servername: "other.attack.test", rejectUnauthorized: false });
    await new Promise((r, j) => { t.once("secureConnect", r); t.once("error", j); });
    let received = "";
    t.on("data", (d) => received += d);
    t.on("error", () => {});
    t.write("GET /px-032 HTTP/1.1\\r\\nHost: other.attack.test\\r\\n\\r\\n");
    // Polls for the response until 8 s (inside the case's 10 s timeout; 3 s
    // is tight on a loaded machine).
    for (const end = Date.now() + 8_000; Date.now() < end && !/HTTP\\/1\\.1 \\d{3}/.test(received);) await new Promise((r) => setTimeout(r, 10));
    t.destroy(); s.destroy();
    return { connectReply, received };`,
  expect: (v) => {
    const got = valueOf<{ connectReply: string; received: string }>(v);
    assert.equal(statusLine(got.connectReply), 200);
    assert.equal(statusLine(got.received), 421, got.received);
    assert.deepEqual(seenWith(v.fx, "px-032"), []);
  },
  audit: {
    injector: {
      host: "echo.attack.test",
      path: "/px-032",
      rule: "misdirected",
      status: 421,
    },
  },
});
corpus.add({
  id: "px-033",
  title: "negotiate HTTP/2 by ALPN to get past the HTTP/1.1 parser",
  code: `let conn = await Deno.connect({ hostname: "127.0.0.1", port: 3128 });
    await conn.write(__enc.encode(connectRequest("echo.attack.test:443")));
    const reply = await readHead(conn);
    try {
      conn = await Deno.startTls(conn, { hostname: "echo.attack.test", alpnProtocols: ["h2"] });
      const hs = await conn.handshake();
      await conn.write(__enc.encode("PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n"));
      // The proxy answers and closes; 8 s of silence (not 1.5) before
      // giving up, so a loaded machine's late answer is still read.
      const response = await readResponse(conn, 8000);
      return { reply, alpn: hs.alpnProtocol, response };
    } catch (e) {
      return { reply, handshake: errText(e) };
    } finally { try { conn.close(); } catch {} }`,
  expect: (v) => {
    const got = valueOf<
      { reply: string; alpn?: string | null; response?: string }
    >(v);
    assert.equal(statusLine(got.reply), 200);
    assert.notEqual(got.alpn, "h2", "h2 was never negotiated");
    if (got.response !== undefined) {
      assert.ok(
        [400, 505].includes(statusLine(got.response) ?? 0),
        got.response,
      );
    }
  },
  audit: { injector: { host: "echo.attack.test", rule: "malformed" } },
});

// --- "allow-all": the address guard decides ---

corpus.batch("allow-all", {
  policy: () => ({
    limits: { timeoutMs: 30_000 },
    network: "allow-all",
  }),
});
corpus.add({
  id: "px-034",
  batch: "allow-all",
  title:
    "allow-all policy: fetch http://127.0.0.1:<harness port> through the proxy",
  code: (fx) =>
    `return await fetchText("http://127.0.0.1:${fx.tcp.port}/px-034");`,
  expect: (v) => {
    const got = valueOf<{ status: number; airlockError: string | null }>(v);
    assert.equal(got.status, 403);
    assert.ok(got.airlockError);
  },
  audit: (fx) => ({
    injector: { host: "127.0.0.1", port: fx.tcp.port, status: 403 },
  }),
});
/**
 * allow-all admits any CONNECT target; the address guard decides when the
 * injector dials: a request inside the tunnel (Host matching) gets 403.
 */
function guardRefused(
  id: string,
  title: string,
  target: (fx: Fixtures) => string,
  audited: (fx: Fixtures) => { host: string | RegExp; port: number },
) {
  corpus.add({
    id,
    batch: "allow-all",
    title,
    code: (fx) =>
      `return await rawProxy(${
        lit(`GET /${id} HTTP/1.1\r\nHost: ${target(fx)}\r\n\r\n`)
      }, { connect: ${lit(target(fx))} });`,
    expect: (v) => {
      const raw = valueOf<Raw>(v);
      assert.equal(statusLine(raw.response), 403, raw.response);
      assert.match(raw.response, /X-Airlock-Error: blocked-address/);
    },
    audit: (fx) => ({
      injector: {
        kind: "request",
        ...audited(fx),
        path: `/${id}`,
        status: 403,
      },
    }),
  });
}

guardRefused(
  "px-035",
  "allow-all policy: CONNECT localhost (resolves to loopback), then a request",
  (fx) => `localhost:${fx.tcp.port}`,
  (fx) => ({ host: "localhost", port: fx.tcp.port }),
);
guardRefused(
  "px-036",
  "allow-all policy: CONNECT the machine's own address, then a request",
  (fx) =>
    `${
      fx.hostIps.find((a) =>
        /^\d+\.\d+\.\d+\.\d+$/.test(a) &&
        !a.startsWith("127.")
      ) ?? "127.0.0.2"
    }:${fx.tcp.port}`,
  (fx) => ({ host: /^\d+\.\d+\.\d+\.\d+$/, port: fx.tcp.port }),
);
guardRefused(
  "px-037",
  "allow-all policy: CONNECT the metadata service, then a request",
  () => "169.254.169.254:80",
  () => ({ host: "169.254.169.254", port: 80 }),
);
guardRefused(
  "px-038",
  "allow-all policy: CONNECT the metadata service as IPv4-mapped IPv6, then a request",
  () => "[::ffff:169.254.169.254]:80",
  () => ({ host: /169\.254\.169\.254|a9fe:a9fe/, port: 80 }),
);
guardRefused(
  "px-039",
  "allow-all policy: CONNECT the IPv6 metadata address fd00:ec2::254, then a request",
  () => "[fd00:ec2::254]:80",
  () => ({ host: "fd00:ec2::254", port: 80 }),
);
absoluteRefused(
  "px-040",
  "allow-all policy: absolute-form to loopback in decimal (http://2130706433:<port>)",
  (fx) =>
    `GET http://2130706433:${fx.tcp.port}/px-040 HTTP/1.1\r\nHost: 2130706433:${fx.tcp.port}\r\n\r\n`,
  403,
  () => ({ host: "127.0.0.1", path: "/px-040" }),
  "allow-all",
);

corpus.register();
