/**
 * Egress policy from inside real sandboxes: which hosts and ports a program
 * reaches through the injector (exact, wildcard, apex, port patterns), how
 * host spellings are canonicalised (trailing dot, case, punycode, numeric
 * IPv4), and the address guard (an allowed name or IP literal that points
 * at loopback is refused unless the operator mapped it with connectTo).
 *
 * Every refusal is checked at the wall that stopped it: Deno's
 * `--allow-net` (the program gets NotCapable, the injector sees nothing) or
 * the injector (a `deny` event in `RunResult.audit`), and the upstream that
 * would have answered saw nothing. All upstreams are local servers on
 * 127.0.0.1 reached through `upstream.connectTo`.
 */

import assert from "node:assert/strict";
import { Sandbox } from "../mod.ts";
import { Injector } from "../injector/injector.ts";
import {
  assertReached,
  assertRefused,
  type Attempt,
  egressEvents,
  fetchExpr,
  lastJson,
  RAW_PROXY_PRELUDE,
  startUpstreams,
  statusOf,
  tryEach,
  upstreamPolicy,
} from "./kits/upstreams.ts";

const LIMITS = { timeoutMs: 60_000 };

Deno.test("exact host pattern: the listed host is reached; a sibling, its parent and a child are refused", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "api2.example.test",
    "example.test",
    "v1.api.example.test",
  ]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["api.example.test"] },
      upstream: upstreamPolicy(ups),
    },
  });
  const refused = ["api2.example.test", "example.test", "v1.api.example.test"];
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "api.example.test": fetchExpr("https://api.example.test/exact"),
      ...Object.fromEntries(
        refused.map((h) => [h, fetchExpr(`https://${h}/refused`)]),
      ),
      // The same hosts asked of the injector by hand (Deno's wall bypassed
      // through the proxy port it must allow).
      ...Object.fromEntries(refused.map((h) => [
        `raw ${h}`,
        `rawProxy("", { connect: "${h}:443" })`,
      ])),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  const body = JSON.parse(assertReached(out["api.example.test"], "exact").body);
  assert.equal(body.path, "/exact");
  assert.equal(ups.get("api.example.test").seen.length, 1);
  for (const host of refused) {
    assert.equal(assertRefused(out[host], host, 443, result.audit), "deno");
    const raw = out[`raw ${host}`];
    assert.ok(raw?.ok, JSON.stringify(raw));
    const reply = (raw.value as { connectReply: string }).connectReply;
    assert.equal(statusOf(reply), 403, `raw CONNECT ${host}: ${reply}`);
    assert.match(reply, /X-Airlock-Error: blocked-by-policy/);
    const denied = egressEvents(result.audit).filter((e) =>
      e.host === host && e.decision === "deny"
    );
    assert.equal(denied.length, 1, `one deny event for ${host}`);
    assert.equal(denied[0]!.kind, "connect");
    assert.equal(denied[0]!.rule, "not-in-allowlist");
    assert.equal(denied[0]!.status, 403);
    assert.deepEqual(ups.get(host).seen, [], `${host} saw nothing`);
  }
});

Deno.test("wildcard pattern: subdomains at any depth are reached; the apex and look-alike suffixes are refused", async () => {
  await using ups = await startUpstreams([
    "a.wild.example.test",
    "x.y.wild.example.test",
    "wild.example.test",
    "evilwild.example.test",
  ]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["*.wild.example.test"] },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      one: fetchExpr("https://a.wild.example.test/one"),
      deep: fetchExpr("https://x.y.wild.example.test/deep"),
      apex: fetchExpr("https://wild.example.test/apex"),
      suffix: fetchExpr("https://evilwild.example.test/suffix"),
      "raw suffix": `rawProxy("", { connect: "evilwild.example.test:443" })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertReached(out.one, "one level");
  assertReached(out.deep, "two levels");
  assert.equal(ups.get("a.wild.example.test").seen[0]?.path, "/one");
  assert.equal(ups.get("x.y.wild.example.test").seen[0]?.path, "/deep");
  // Deno's --allow-net=*.wild.example.test admits the apex (README, Known
  // limits): the injector is the wall that refuses it.
  assert.equal(
    assertRefused(out.apex, "wild.example.test", 443, result.audit),
    "injector",
  );
  assertRefused(out.suffix, "evilwild.example.test", 443, result.audit);
  const raw = out["raw suffix"];
  assert.ok(raw?.ok);
  assert.equal(
    statusOf((raw.value as { connectReply: string }).connectReply),
    403,
  );
  assert.deepEqual(ups.get("wild.example.test").seen, []);
  assert.deepEqual(ups.get("evilwild.example.test").seen, []);
  const allowed = egressEvents(result.audit).filter((e) =>
    e.kind === "request" && e.decision === "allow"
  );
  assert.deepEqual(
    allowed.map((e) => [e.host, e.rule]).sort(),
    [
      ["a.wild.example.test", "*.wild.example.test"],
      ["x.y.wild.example.test", "*.wild.example.test"],
    ],
  );
});

Deno.test("exact beats wildcard and the longest wildcard wins: each request gets only its entry's headers", async () => {
  await using ups = await startUpstreams([
    "api.example.test",
    "b.example.test",
    "c.deep.example.test",
  ]);
  const mark = (
    value: string,
  ) => [{ transform: [{ headers: { "x-entry": value } }] }];
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "*.example.test": mark("wildcard"),
          "*.deep.example.test": mark("longer-wildcard"),
          "api.example.test": mark("exact"),
        },
      },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: tryEach({
      exact: fetchExpr("https://api.example.test/"),
      wild: fetchExpr("https://b.example.test/"),
      longer: fetchExpr("https://c.deep.example.test/"),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  for (const name of ["exact", "wild", "longer"]) {
    assertReached(out[name], name);
  }
  // Entries are never merged: exactly one x-entry value each.
  assert.equal(ups.get("api.example.test").header(0, "x-entry"), "exact");
  assert.equal(ups.get("b.example.test").header(0, "x-entry"), "wildcard");
  assert.equal(
    ups.get("c.deep.example.test").header(0, "x-entry"),
    "longer-wildcard",
  );
  const rules = Object.fromEntries(
    egressEvents(result.audit).filter((e) => e.kind === "request")
      .map((e) => [e.host, e.rule]),
  );
  assert.deepEqual(rules, {
    "api.example.test": "api.example.test",
    "b.example.test": "*.example.test",
    "c.deep.example.test": "*.deep.example.test",
  });
});

Deno.test("port patterns: host:8443 admits only 8443; a portless pattern admits 443 and 80 and nothing else", async () => {
  await using ups = await startUpstreams([
    { name: "ports.example.test", publicPort: 8443 },
    "ports.example.test",
    "api.example.test",
    { name: "api.example.test", publicPort: 80, tls: false },
    { name: "api.example.test", publicPort: 8443 },
  ]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["ports.example.test:8443", "api.example.test"] },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "ports 8443": fetchExpr("https://ports.example.test:8443/p8443"),
      "ports 443": fetchExpr("https://ports.example.test/p443"),
      "raw ports 443": `rawProxy("", { connect: "ports.example.test:443" })`,
      "api 443": fetchExpr("https://api.example.test/a443"),
      "api 80": fetchExpr("http://api.example.test/a80"),
      "api 8443": fetchExpr("https://api.example.test:8443/a8443"),
      "raw api 8443": `rawProxy("", { connect: "api.example.test:8443" })`,
      "raw api 8080 absolute": `rawProxy(
        "GET http://api.example.test:8080/ HTTP/1.1\\r\\nHost: api.example.test:8080\\r\\n\\r\\n")`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertReached(out["ports 8443"], "ports.example.test:8443");
  assertReached(out["api 443"], "api.example.test:443");
  assertReached(out["api 80"], "api.example.test:80");
  const [ports8443, ports443] = ups.servers("ports.example.test");
  const [api443, api80, api8443] = ups.servers("api.example.test");
  assert.deepEqual(ports8443!.seen.map((s) => s.path), ["/p8443"]);
  assert.deepEqual(api443!.seen.map((s) => s.path), ["/a443"]);
  assert.deepEqual(api80!.seen.map((s) => s.path), ["/a80"]);
  assertRefused(out["ports 443"], "ports.example.test", 443, result.audit);
  assertRefused(out["api 8443"], "api.example.test", 8443, result.audit);
  for (const name of ["raw ports 443", "raw api 8443"]) {
    const raw = out[name];
    assert.ok(raw?.ok, name);
    assert.equal(
      statusOf((raw.value as { connectReply: string }).connectReply),
      403,
      name,
    );
  }
  const absolute = out["raw api 8080 absolute"];
  assert.ok(absolute?.ok);
  assert.equal(
    statusOf((absolute.value as { response: string }).response),
    403,
  );
  for (
    const [host, port] of [["ports.example.test", 443], [
      "api.example.test",
      8443,
    ], ["api.example.test", 8080]] as const
  ) {
    assert.ok(
      egressEvents(result.audit).some((e) =>
        e.host === host && e.port === port && e.decision === "deny" &&
        e.rule === "not-in-allowlist"
      ),
      `deny event for ${host}:${port}`,
    );
  }
  assert.deepEqual(ports443!.seen, []);
  assert.deepEqual(api8443!.seen, []);
});

Deno.test("host spellings (upper case, trailing dot) get the exact host's injection and response rules", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "api.example.test": [
            { transform: [{ headers: { "x-injected": "for-api" } }] },
            {
              match: { methods: ["DELETE"] },
              response: { statusCode: 403, body: "deletes are not allowed" },
            },
          ],
        },
      },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      upper: fetchExpr("https://API.EXAMPLE.TEST/upper"),
      dot: fetchExpr("https://api.example.test./dot"),
      "upper dot delete": fetchExpr("https://Api.Example.Test./x", {
        method: "DELETE",
      }),
      "raw CONNECT spelled": `rawProxy(
        "DELETE /raw HTTP/1.1\\r\\nHost: API.example.TEST.\\r\\nConnection: close\\r\\n\\r\\n",
        { connect: "API.Example.Test.:443", tls: "api.example.test" })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertReached(out.upper, "upper case");
  assertReached(out.dot, "trailing dot");
  const api = ups.get("api.example.test");
  assert.deepEqual(api.seen.map((s) => s.path), ["/upper", "/dot"]);
  assert.equal(api.header(0, "x-injected"), "for-api");
  assert.equal(api.header(1, "x-injected"), "for-api");
  const deleted = out["upper dot delete"];
  assert.ok(deleted?.ok, JSON.stringify(deleted));
  const local = deleted.value as { status: number; body: string };
  assert.equal(local.status, 403);
  assert.equal(local.body, "deletes are not allowed");
  const raw = out["raw CONNECT spelled"];
  assert.ok(raw?.ok, JSON.stringify(raw));
  const { connectReply, response } = raw.value as {
    connectReply: string;
    response: string;
  };
  assert.equal(statusOf(connectReply), 200);
  assert.equal(statusOf(response), 403, response);
  assert.match(response, /deletes are not allowed/);
  assert.equal(api.seen.length, 2, "no DELETE reached the upstream");
  const events = egressEvents(result.audit);
  assert.ok(events.every((e) => e.host === "api.example.test"));
  assert.equal(
    events.filter((e) => e.decision === "respond" && e.method === "DELETE")
      .length,
    2,
  );
});

Deno.test("IDN: a Unicode pattern admits its punycode spelling and the Unicode URL alike", async () => {
  await using ups = await startUpstreams(["xn--bcher-kva.example.test"]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          "bücher.example.test": [{
            transform: [{ headers: { "x-injected": "idn" } }],
          }],
        },
      },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: tryEach({
      punycode: fetchExpr("https://xn--bcher-kva.example.test/puny"),
      unicode: fetchExpr("https://bücher.example.test/unicode"),
      other: fetchExpr("https://bucher.example.test/other"),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertReached(out.punycode, "punycode");
  assertReached(out.unicode, "unicode");
  assertRefused(out.other, "bucher.example.test", 443, result.audit);
  const up = ups.get("xn--bcher-kva.example.test");
  assert.deepEqual(up.seen.map((s) => s.path), ["/puny", "/unicode"]);
  assert.equal(up.header(0, "x-injected"), "idn");
  assert.equal(up.header(1, "x-injected"), "idn");
  assert.ok(
    egressEvents(result.audit).filter((e) => e.kind === "request")
      .every((e) => e.host === "xn--bcher-kva.example.test"),
  );
});

Deno.test("address guard: an allowed name that resolves only to loopback is refused without connectTo", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const port = ups.get("api.example.test").port;
  // Every answer is a loopback spelling: if the guard failed, the injector
  // would dial the upstream above (and nothing beyond this machine).
  const asked: string[] = [];
  await using injector = await Injector.create({
    resolver: (host) => {
      asked.push(host);
      return Promise.resolve([
        "127.0.0.1",
        "::ffff:7f00:1",
        "127.0.0.2",
        "::1",
        "0.0.0.0",
      ]);
    },
  });
  await using sandbox = await Sandbox.create({
    injector,
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          [`api.example.test:${port}`]: [{
            transform: [{ headers: { authorization: "Bearer ${secret:T}" } }],
          }],
        },
      },
      upstream: { caCerts: [ups.caFile] },
    },
    secrets: { T: "rebinding-secret-0001" },
  });
  const result = await sandbox.run({
    code: tryEach({
      fetch: fetchExpr(`https://api.example.test:${port}/`),
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.equal(
    assertRefused(out.fetch, "api.example.test", port, result.audit),
    "injector",
  );
  const value =
    (out.fetch as { value: { status: number; airlockError: string } })
      .value;
  assert.equal(value.status, 403);
  assert.equal(value.airlockError, "blocked-address");
  assert.ok(asked.includes("api.example.test"), "the injector resolved it");
  const denied = egressEvents(result.audit).find((e) =>
    e.kind === "request" && e.decision === "deny"
  );
  assert.match(denied?.reason ?? "", /blocked addresses/);
  assert.deepEqual(ups.get("api.example.test").seen, []);
});

Deno.test("address guard: subnets.allow cannot open loopback (it stays blocked)", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const port = ups.get("api.example.test").port;
  await using injector = await Injector.create({
    resolver: () => Promise.resolve(["127.0.0.1", "::1"]),
  });
  await using sandbox = await Sandbox.create({
    injector,
    policy: {
      limits: LIMITS,
      network: {
        allow: [`api.example.test:${port}`],
        subnets: { allow: ["127.0.0.0/8", "::1/128"] },
      },
      upstream: { caCerts: [ups.caFile] },
    },
  });
  const result = await sandbox.run({
    code: tryEach({ fetch: fetchExpr(`https://api.example.test:${port}/`) }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assert.equal(
    assertRefused(out.fetch, "api.example.test", port, result.audit),
    "injector",
  );
  assert.equal(
    (out.fetch as { value: { airlockError: string } }).value.airlockError,
    "blocked-address",
  );
  assert.deepEqual(ups.get("api.example.test").seen, []);
});

Deno.test("address guard: loopback IP literals are refused even when the policy lists them (dotted, decimal, hex, short)", async () => {
  await using ups = await startUpstreams([
    { name: "127.0.0.1", leafFor: "127.0.0.1" },
    { name: "plain", tls: false },
  ]);
  const tlsPort = ups.get("127.0.0.1").port;
  const plainPort = ups.get("plain").port;
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      // Decimal spelling in the policy: canonicalised to 127.0.0.1.
      network: { allow: [`127.0.0.1:${tlsPort}`, `2130706433:${plainPort}`] },
      upstream: { caCerts: [ups.caFile] },
    },
  });
  const absolute = (host: string) =>
    `rawProxy("GET http://${host}:${plainPort}/raw HTTP/1.1\\r\\nHost: ${host}:${plainPort}\\r\\n\\r\\n")`;
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      "https dotted": fetchExpr(`https://127.0.0.1:${tlsPort}/`),
      "http decimal": fetchExpr(`http://2130706433:${plainPort}/`),
      "http hex": fetchExpr(`http://0x7f.0.0.1:${plainPort}/`),
      "http short": fetchExpr(`http://127.1:${plainPort}/`),
      "raw decimal": absolute("2130706433"),
      "raw hex": absolute("0x7f000001"),
      "raw octal": absolute("0177.0.0.1"),
      "raw CONNECT decimal":
        `rawProxy("GET / HTTP/1.1\\r\\nHost: 127.0.0.1:${plainPort}\\r\\n\\r\\n", { connect: "2130706433:${plainPort}" })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertRefused(out["https dotted"], "127.0.0.1", tlsPort, result.audit);
  for (const name of ["http decimal", "http hex", "http short"]) {
    assertRefused(out[name], "127.0.0.1", plainPort, result.audit, name);
  }
  for (
    const name of ["raw decimal", "raw hex", "raw octal", "raw CONNECT decimal"]
  ) {
    const raw = out[name];
    assert.ok(raw?.ok, `${name}: ${JSON.stringify(raw)}`);
    const response = (raw.value as { response: string }).response;
    assert.equal(statusOf(response), 403, `${name}: ${response}`);
    assert.match(response, /X-Airlock-Error: blocked-address/, name);
  }
  const events = egressEvents(result.audit).filter((e) => e.kind === "request");
  assert.ok(events.length >= 8, JSON.stringify(events));
  for (const e of events) {
    assert.equal(e.host, "127.0.0.1", "audited canonical");
    assert.equal(e.decision, "deny");
  }
  assert.deepEqual(ups.allSeen(), [], "no upstream saw anything");
});

Deno.test("direct connections that bypass the proxy reach only the injector, even to hosts --allow-net lists", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  const port = ups.get("api.example.test").port;
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: ["api.example.test", `127.0.0.1:${port}`] },
      upstream: upstreamPolicy(ups),
    },
  });
  const result = await sandbox.run({
    code: tryEach({
      "Deno.connect name":
        `Deno.connect({ hostname: "api.example.test", port: 443 }).then((c) => { c.close(); return "CONNECTED"; })`,
      // The policy names this port, so the sandbox's own bridge listens on
      // it (for names): it carries the connection to the injector, which
      // refuses an address no lookup returned.
      "Deno.connect upstream port":
        `Deno.connect({ hostname: "127.0.0.1", port: ${port} }).then(async (c) => { const n = await c.write(new TextEncoder().encode("GET / HTTP/1.1\\r\\n\\r\\n")).then(() => c.read(new Uint8Array(64))).catch(() => null); c.close(); return n === null ? "closed" : "DATA"; })`,
      "resolveDns": `Deno.resolveDns("api.example.test", "A")`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  // By address: nothing answers but a refusal (closed, or no connection).
  const byAddress = out["Deno.connect upstream port"];
  assert.ok(
    !byAddress?.ok || byAddress.value === "closed",
    JSON.stringify(byAddress),
  );
  // The sandbox's resolver is not the program's to dial.
  assert.equal(out.resolveDns?.ok, false);
  // By name: carried to the injector (transparent egress), decided there on
  // the name; nothing reached the upstream (no request was sent).
  assert.deepEqual(out["Deno.connect name"], { ok: true, value: "CONNECTED" });
  assert.deepEqual(ups.get("api.example.test").seen, []);
  assert.deepEqual(
    egressEvents(result.audit).map((e) =>
      `${e.kind} ${e.host}:${e.port} ${e.decision} ${e.via}`
    ).sort(),
    [
      "connect api.example.test:443 allow transparent",
      `tcp 127.0.0.1:${port} deny transparent`,
    ].sort(),
  );
});

Deno.test("deny-all: a sandbox with placeholders but no allowed host gets every request refused", async () => {
  await using ups = await startUpstreams(["api.example.test"]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: "deny-all",
      secrets: {
        GH_TOKEN: { hosts: ["api.example.test"], value: "${secret:GH}" },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { GH: "ghp_denyall_0000000000" },
  });
  const result = await sandbox.run({
    code: RAW_PROXY_PRELUDE + tryEach({
      fetch: fetchExpr("https://api.example.test/"),
      raw: `rawProxy("", { connect: "api.example.test:443" })`,
    }),
  });
  const out = lastJson<Record<string, Attempt>>(result);
  assertRefused(out.fetch, "api.example.test", 443, result.audit);
  assert.ok(out.raw?.ok);
  assert.equal(
    statusOf((out.raw.value as { connectReply: string }).connectReply),
    403,
  );
  const denied = egressEvents(result.audit).filter((e) =>
    e.decision === "deny"
  );
  assert.ok(denied.length >= 1);
  assert.ok(denied.every((e) => e.rule === "deny-all"));
  assert.deepEqual(ups.get("api.example.test").seen, []);
});
