/**
 * Attacks on the injector from inside real sandboxes. Deno's `--allow-net`
 * must list the proxy (127.0.0.1:3128), so a program can open a raw TCP
 * connection to it and speak proxy protocol by hand: CONNECT to anything,
 * Host headers and SNI naming other hosts, smuggling shapes, plain HTTP
 * inside a tunnel, HTTP/2 prefaces. Each attack must end in a refusal the
 * program can see, and no request (above all no credential) may reach an
 * upstream it was not meant for.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import {
  assertNoBytes,
  type Attempt,
  egressEvents,
  fetchExpr,
  lastJson,
  MARKER,
  randomSecret,
  RAW_PROXY_PRELUDE,
  startUpstreams,
  statusOf,
  tryEach,
  upstreamPolicy,
  type Upstreams,
} from "./kits/upstreams.ts";

const LIMITS = { timeoutMs: 60_000 };

/**
 * api.example.test injects `Authorization: Bearer <secret>`; other and
 * third.example.test are allowed without rules.
 */
async function attackSandbox(
  ups: Upstreams,
  secret: string,
): Promise<Sandbox> {
  return await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "api.example.test": [{
            transform: [{ headers: { authorization: "Bearer ${secret:T}" } }],
          }],
          "other.example.test": [],
          "third.example.test": [],
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { T: secret },
  });
}

const HOSTS = ["api.example.test", "other.example.test", "third.example.test"];

interface Raw {
  connectReply: string | null;
  response: string;
  responses: string[];
}

function raw(outcome: Attempt | undefined, name: string): Raw {
  assert.ok(outcome?.ok, `${name}: ${JSON.stringify(outcome)}`);
  return outcome.value as Raw;
}

/** JS string literal of an HTTP message (for program text). */
const lit = (text: string) => JSON.stringify(text);

const TLS_TO_API =
  `{ connect: "api.example.test:443", tls: "api.example.test" }`;

Deno.test("Host header or absolute-form target naming another allowed host inside an api tunnel gets 421; requests around it still work", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      // One tunnel: legit, Host of another allowed host, absolute-form for
      // another host, another port, legit again, two Host headers.
      pipeline: `rawProxy([
        ${lit("GET /legit-1 HTTP/1.1\r\nHost: api.example.test\r\n\r\n")},
        ${lit("GET /fronted HTTP/1.1\r\nHost: other.example.test\r\n\r\n")},
        ${
        lit(
          "GET https://other.example.test/absolute HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
        )
      },
        ${lit("GET /port HTTP/1.1\r\nHost: api.example.test:8443\r\n\r\n")},
        ${lit("GET /legit-2 HTTP/1.1\r\nHost: api.example.test\r\n\r\n")},
        // Malformed: refused, and the connection is closed after it.
        ${
        lit(
          "GET /two-hosts HTTP/1.1\r\nHost: api.example.test\r\nHost: other.example.test\r\n\r\n",
        )
      },
        ${lit("GET /after-close HTTP/1.1\r\nHost: api.example.test\r\n\r\n")},
      ], ${TLS_TO_API})`,
    }),
  });
  const { responses } = raw(
    lastJson<Record<string, Attempt>>(result).pipeline,
    "pipeline",
  );
  assert.deepEqual(
    responses.slice(0, 6).map(statusOf),
    [200, 421, 421, 421, 200, 400],
    JSON.stringify(responses),
  );
  assert.ok(
    responses.length === 6 || statusOf(responses[6]!) !== 200,
    "nothing served after the malformed request",
  );
  for (const refusal of responses.slice(1, 4)) {
    assert.match(refusal, /X-Airlock-Error: misdirected/);
  }
  assert.deepEqual(
    ups.get("api.example.test").seen.map((s) => s.path),
    ["/legit-1", "/legit-2"],
  );
  assert.deepEqual(ups.get("other.example.test").seen, []);
  const denied = egressEvents(result.audit).filter((e) =>
    e.decision === "deny"
  );
  // The three misdirected requests (the malformed one: see the audit test).
  assert.deepEqual(
    denied.filter((e) => e.rule === "misdirected").map((e) => [
      e.path,
      e.status,
    ]),
    [["/fronted", 421], ["https://other.example.test/absolute", 421], [
      "/port",
      421,
    ]],
  );
  assert.ok(denied.every((e) => e.host === "api.example.test"));
  assertNoBytes(result.stdoutBytes, secret, "stdout");
});

Deno.test("TLS SNI naming another allowed host (node:tls, verification off) gets 421 for every request in the tunnel", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: `import net from "node:net";
      import tls from "node:tls";
      const s = net.connect(3128, "127.0.0.1");
      await new Promise((r, j) => { s.once("connect", r); s.once("error", j); });
      s.write("CONNECT api.example.test:443 HTTP/1.1\\r\\nHost: api.example.test:443\\r\\n\\r\\n");
      const connectReply = await new Promise((r) => s.once("data", (d) => r(String(d))));
      const t = tls.connect({ socket: s, servername: "other.example.test", rejectUnauthorized: false });
      await new Promise((r, j) => { t.once("secureConnect", r); t.once("error", j); });
      let received = "";
      t.on("data", (d) => received += d);
      t.on("error", () => {});
      // Polls for the n-th response (20 s: a loaded machine can take seconds).
      const wait = async (n) => {
        const end = Date.now() + 20_000;
        while (Date.now() < end && (received.match(/HTTP\\/1\\.1 /g) ?? []).length < n) {
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      t.write("GET /sni-1 HTTP/1.1\\r\\nHost: api.example.test\\r\\n\\r\\n");
      await wait(1);
      t.write("GET /sni-2 HTTP/1.1\\r\\nHost: other.example.test\\r\\n\\r\\n");
      await wait(2);
      t.destroy();
      s.destroy();
      console.log(JSON.stringify({ connectReply, received }));`,
  });
  const got = lastJson<{ connectReply: string; received: string }>(result);
  assert.equal(statusOf(got.connectReply), 200);
  const statuses = [...got.received.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) =>
    Number(m[1])
  );
  assert.deepEqual(statuses, [421, 421], got.received);
  assert.match(got.received, /TLS server name 'other\.example\.test'/);
  assert.deepEqual(ups.allSeen(), [], "no upstream saw a request");
  const requests = egressEvents(result.audit).filter((e) =>
    e.kind === "request"
  );
  assert.deepEqual(requests.map((e) => [e.decision, e.status]), [
    ["deny", 421],
    ["deny", 421],
  ]);
});

Deno.test("Deno.startTls naming another host than the CONNECT target fails the handshake: nothing reaches any upstream", async () => {
  await using ups = await startUpstreams(HOSTS);
  await using sandbox = await attackSandbox(ups, randomSecret());
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      mismatch: `rawProxy(${
        lit("GET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n")
      }, { connect: "api.example.test:443", tls: "other.example.test" })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.equal(out.mismatch?.ok, false, JSON.stringify(out.mismatch));
  assert.match(
    (out.mismatch as { error: string }).error,
    /certificate|NotValidForName|InvalidData/i,
  );
  assert.deepEqual(ups.allSeen(), []);
  assert.deepEqual(
    egressEvents(result.audit).filter((e) => e.kind !== "connect"),
    [],
  );
});

Deno.test("CONNECT to hosts outside the allowlist, the proxy itself, loopback spellings or other ports: 403 with X-Airlock-Error; bad targets 400", async () => {
  await using ups = await startUpstreams(HOSTS);
  await using sandbox = await attackSandbox(ups, randomSecret());
  const targets = {
    "evil.example.test:443": 403,
    "127.0.0.1:3128": 403,
    "localhost:443": 403,
    "[::1]:443": 403,
    "2130706433:443": 403,
    "0x7f.1:443": 403,
    "169.254.169.254:80": 403,
    "api.example.test:22": 403,
    "api.example.test": 400,
    "api.example.test:99999": 400,
    "api.example.test:443/path": 400,
    "user@api.example.test:443": 400,
  };
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach(
      Object.fromEntries(
        Object.keys(targets).map((t) => [
          t,
          `rawProxy(${
            lit("GET / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
          }, { connect: ${lit(t)} })`,
        ]),
      ),
    ),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const [target, status] of Object.entries(targets)) {
    const { connectReply, response } = raw(out[target], target);
    assert.equal(
      statusOf(connectReply ?? ""),
      status,
      `${target}: ${connectReply}`,
    );
    assert.match(connectReply ?? "", /X-Airlock-Error: /, target);
    assert.equal(response, "", `${target}: nothing after the refusal`);
  }
  const connects = egressEvents(result.audit).filter((e) =>
    e.kind === "connect"
  );
  assert.equal(connects.length, Object.keys(targets).length);
  assert.ok(connects.every((e) => e.decision === "deny"));
  assert.deepEqual(
    connects.filter((e) => e.status === 403).map((e) => `${e.host}:${e.port}`)
      .sort(),
    [
      "127.0.0.1:3128",
      "127.0.0.1:443",
      "127.0.0.1:443",
      "169.254.169.254:80",
      "::1:443",
      "api.example.test:22",
      "evil.example.test:443",
      "localhost:443",
    ],
  );
  assert.deepEqual(ups.allSeen(), []);
});

Deno.test("absolute-form requests: a Host that disagrees is refused 400, https:// must use CONNECT, credentials in the URL are refused", async () => {
  await using ups = await startUpstreams([
    ...HOSTS,
    { name: "other.example.test", tls: false },
  ]);
  await using sandbox = await attackSandbox(ups, randomSecret());
  const request = (text: string) => `rawProxy(${lit(text)})`;
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "host disagrees": request(
        "GET http://other.example.test/x HTTP/1.1\r\nHost: evil.example.test\r\n\r\n",
      ),
      "no host": request("GET http://other.example.test/x HTTP/1.1\r\n\r\n"),
      "https absolute": request(
        "GET https://api.example.test/x HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
      ),
      "userinfo": request(
        "GET http://u:p@other.example.test/x HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
      ),
      "origin-form outside a tunnel": request(
        "GET /x HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
      ),
      "legit": request(
        "GET http://other.example.test/legit HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
      ),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (
    const name of [
      "host disagrees",
      "no host",
      "https absolute",
      "userinfo",
      "origin-form outside a tunnel",
    ]
  ) {
    const { response } = raw(out[name], name);
    assert.equal(statusOf(response), 400, `${name}: ${response}`);
    assert.match(response, /X-Airlock-Error: bad-request/, name);
  }
  assert.equal(statusOf(raw(out.legit, "legit").response), 200);
  const plainOther = ups.servers("other.example.test")[1]!;
  assert.deepEqual(plainOther.seen.map((s) => s.path), ["/legit"]);
  assert.deepEqual(ups.get("api.example.test").seen, []);
  assert.deepEqual(ups.get("other.example.test").seen, []);
});

Deno.test("plain HTTP inside a CONNECT tunnel to the credentialed host never carries the credential", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "plain in tunnel": `rawProxy(${
        lit("GET /plain HTTP/1.1\r\nHost: api.example.test:443\r\n\r\n")
      }, { connect: "api.example.test:443" })`,
      "plain absolute": `rawProxy(${
        lit(
          "GET http://api.example.test/abs HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
        )
      })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of ["plain in tunnel", "plain absolute"]) {
    const { response } = raw(out[name], name);
    assert.equal(statusOf(response), 403, `${name}: ${response}`);
    assert.match(response, /X-Airlock-Error: cleartext-credentials/);
  }
  assert.deepEqual(ups.allSeen(), []);
  assertNoBytes(result.stdoutBytes, secret, "stdout");
});

const SMUGGLING: Record<string, string> = {
  "CL and TE":
    "POST /cl-te HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  "duplicate CL":
    "POST /dup-cl HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  "invalid CL":
    "POST /bad-cl HTTP/1.1\r\nHost: api.example.test\r\nContent-Length: +44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  "TE not chunked last":
    "POST /te HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  "obs-fold":
    "GET /fold HTTP/1.1\r\nHost: api.example.test\r\nX-A: a\r\n Host: other.example.test\r\n\r\n",
  "bare LF":
    "GET /lf HTTP/1.1\nHost: api.example.test\nX-B: b\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: api.example.test\r\n\r\n",
  "CR in value":
    "GET /cr HTTP/1.1\r\nHost: api.example.test\r\nX-C: a\rb\r\n\r\n",
  "NUL in value":
    "GET /nul HTTP/1.1\r\nHost: api.example.test\r\nX-D: a\u0000b\r\n\r\n",
  "space before colon":
    "GET /sp HTTP/1.1\r\nHost: api.example.test\r\nTransfer-Encoding : chunked\r\n\r\n",
  "two Host headers":
    "GET /two-hosts HTTP/1.1\r\nHost: api.example.test\r\nHost: other.example.test\r\n\r\n",
  "HTTP/2 preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
};

Deno.test("request smuggling shapes inside a TLS tunnel are refused (400/501/505) and nothing reaches the upstream", async () => {
  await using ups = await startUpstreams(HOSTS);
  await using sandbox = await attackSandbox(ups, randomSecret());
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach(
      Object.fromEntries(
        Object.entries(SMUGGLING).map(([name, text]) => [
          name,
          `rawProxy(${lit(text)}, ${TLS_TO_API})`,
        ]),
      ),
    ),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of Object.keys(SMUGGLING)) {
    const { response } = raw(out[name], name);
    const status = statusOf(response);
    assert.ok(
      status === 400 || status === 501 || status === 505,
      `${name}: ${response.slice(0, 300)}`,
    );
    assert.match(response, /X-Airlock-Error: /, name);
    assert.doesNotMatch(response, /HTTP\/1\.1 200/, `${name}: nothing served`);
  }
  assert.deepEqual(ups.allSeen(), [], "no upstream saw any request");
});

Deno.test("every refused request appears in the audit trail, malformed ones included", async () => {
  await using ups = await startUpstreams(HOSTS);
  await using sandbox = await attackSandbox(ups, randomSecret());
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach(
      Object.fromEntries(
        Object.entries(SMUGGLING).map(([name, text]) => [
          name,
          `rawProxy(${lit(text)}, ${TLS_TO_API})`,
        ]),
      ),
    ),
  });
  lastJson(result);
  const events = egressEvents(result.audit);
  const tunnels = events.filter((e) => e.kind === "connect");
  assert.equal(tunnels.length, Object.keys(SMUGGLING).length);
  // README: "result.audit; // every request the injector saw, with
  // decisions", and "Audit: one event per CONNECT and per request".
  const refused = events.filter((e) =>
    e.kind !== "connect" && e.decision === "deny"
  );
  assert.equal(
    refused.length,
    Object.keys(SMUGGLING).length,
    `one deny event per refused request; got ${
      JSON.stringify(refused.map((e) => [e.path, e.status, e.reason]))
    }`,
  );
});

Deno.test("TRACE/TRACK are refused with 405; a nested CONNECT inside a tunnel reaches no other host", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      trace: `rawProxy(${
        lit("TRACE / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
      }, ${TLS_TO_API})`,
      track: `rawProxy(${
        lit("TRACK / HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
      }, ${TLS_TO_API})`,
      nested: `rawProxy(${
        lit(
          "CONNECT other.example.test:443 HTTP/1.1\r\nHost: other.example.test:443\r\n\r\nGET / HTTP/1.1\r\nHost: other.example.test\r\n\r\n",
        )
      }, ${TLS_TO_API})`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of ["trace", "track"]) {
    const { response } = raw(out[name], name);
    assert.equal(statusOf(response), 405, response);
    assertNoBytes(response, secret, name);
  }
  const nested = raw(out.nested, "nested").response;
  assert.notEqual(statusOf(nested), 200, nested);
  assert.deepEqual(ups.allSeen(), []);
});

Deno.test("a redirect from the credentialed host to another allowed host carries no credential there", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: tryEach({
      follow: fetchExpr(
        "https://api.example.test/redirect?to=https://other.example.test/landed",
      ),
      manual:
        `fetch("https://api.example.test/redirect?to=https://other.example.test/x", { redirect: "manual" })
        .then((r) => ({ status: r.status, location: r.headers.get("location") }))`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.ok(out.follow?.ok, JSON.stringify(out.follow));
  assert.equal((out.follow.value as { status: number }).status, 200);
  assert.deepEqual(out.manual, {
    ok: true,
    value: { status: 302, location: "https://other.example.test/x" },
  }, "the injector never follows redirects itself");
  const api = ups.get("api.example.test");
  const other = ups.get("other.example.test");
  assert.equal(api.seen.length, 2);
  assert.equal(api.header(0, "authorization"), `Bearer ${secret}`);
  assert.deepEqual(other.seen.map((s) => s.path), ["/landed"]);
  assert.equal(other.header(0, "authorization"), null);
  assert.ok(!JSON.stringify(other.seen).includes(secret));
});

Deno.test("credentialed requests: the program's Range and Accept-Encoding are overridden, and an undecodable coding is refused", async () => {
  await using ups = await startUpstreams(HOSTS);
  const secret = randomSecret();
  await using sandbox = await attackSandbox(ups, secret);
  const result = await sandbox.run({
    code: tryEach({
      ranged: fetchExpr("https://api.example.test/echo", {
        headers: {
          range: "bytes=10-20",
          "if-range": "x",
          "accept-encoding": "zstd",
        },
      }),
      zstd: fetchExpr("https://api.example.test/zstd-echo"),
      drip: fetchExpr("https://api.example.test/drip"),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.ok(out.ranged?.ok);
  const api = ups.get("api.example.test");
  assert.equal(api.header(0, "range"), null);
  assert.equal(api.header(0, "if-range"), null);
  assert.equal(api.header(0, "accept-encoding"), "gzip, deflate, br");
  // The injector cannot look inside zstd: refused rather than passed on.
  if (out.zstd?.ok) {
    const value = out.zstd.value as { status: number; body: string };
    assert.notEqual(value.status, 200, JSON.stringify(value));
  }
  assert.ok(out.drip?.ok, JSON.stringify(out.drip));
  assert.equal(
    (out.drip.value as { body: string }).body,
    `auth=${MARKER};`,
    "an echo dripped one byte per chunk is redacted",
  );
  assertNoBytes(result.stdoutBytes, secret, "stdout");
  assertNoBytes(result.stderrBytes, secret, "stderr");
  assert.equal(api.seen.length, 3);
});
