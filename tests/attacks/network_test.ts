/**
 * Direct network attacks: the program ignores the proxy and dials host
 * listeners, the machine's own addresses, the metadata service, routable
 * addresses, vsock, unix and abstract sockets, UDP and DNS. Under the
 * default policy Deno's `--allow-net` (answered by the broker) stops each
 * one; under "allow-all" and with Deno's wall lowered, the empty network
 * namespace and seccomp do. No packet leaves the machine: the namespace has
 * no route.
 */

import assert from "node:assert/strict";
import {
  assertThrew,
  Corpus,
  type Fixtures,
  NOT_CAPABLE,
  valueOf,
} from "./_corpus.ts";

const corpus = new Corpus("network");

const connect = (host: string, port: number | string) =>
  `const c = await Deno.connect({ hostname: ${
    JSON.stringify(host)
  }, port: ${port} }); c.close(); return "CONNECTED";`;

/** A direct dial refused by Deno's net check (the broker). */
function deniedDial(
  id: string,
  title: string,
  code: (fx: Fixtures) => string,
  value: string | RegExp | ((fx: Fixtures) => string),
  pattern: RegExp = NOT_CAPABLE,
) {
  corpus.add({
    id,
    title,
    code,
    expect: (v) => void assertThrew(v, pattern),
    audit: (fx) => ({
      broker: "net",
      value: typeof value === "function" ? value(fx) : value,
    }),
  });
}

// --- Under the default policy: Deno's net check ---

deniedDial(
  "net-001",
  "TCP to a port the harness listens on at 127.0.0.1",
  (fx) => connect("127.0.0.1", fx.tcp.port),
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
deniedDial(
  "net-002",
  "TCP to the harness port by the name 'localhost'",
  (fx) => connect("localhost", fx.tcp.port),
  (fx) => `localhost:${fx.tcp.port}`,
);
deniedDial(
  "net-003",
  "fetch http://127.0.0.1:<harness port>/ (loopback is not exempt from the proxy)",
  (fx) => `return (await fetch("http://127.0.0.1:${fx.tcp.port}/")).status;`,
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
deniedDial(
  "net-004",
  "node:net socket to the harness port",
  (fx) =>
    `const net = (await import("node:net")).default;
    return await new Promise((resolve, reject) => {
      const s = net.connect(${fx.tcp.port}, "127.0.0.1");
      s.on("connect", () => { s.destroy(); resolve("CONNECTED"); });
      s.on("error", reject);
    });`,
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
corpus.add({
  id: "net-005",
  title:
    "TCP to the machine's own non-loopback addresses (from the test's view)",
  code: (fx) => {
    const ip = fx.hostIps.find((a) => !a.startsWith("127.") && a !== "::1") ??
      "127.0.0.2";
    return connect(ip, fx.tcp.port);
  },
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "net", value: /^(?!127\.0\.0\.1:).+:\d+$/ },
});
deniedDial(
  "net-006",
  "TCP to the cloud metadata service 169.254.169.254:80",
  () => connect("169.254.169.254", 80),
  "169.254.169.254:80",
);
deniedDial(
  "net-007",
  "fetch the metadata service's credentials path",
  () =>
    `return (await fetch("http://169.254.169.254/latest/meta-data/iam/security-credentials/")).status;`,
  "169.254.169.254:80",
);
deniedDial(
  "net-008",
  "TCP to a routable address (10.255.255.1:9)",
  () => connect("10.255.255.1", 9),
  "10.255.255.1:9",
);
deniedDial(
  "net-009",
  "TCP to the harness's IPv6 loopback listener [::1]",
  (fx) => connect("::1", fx.tcp6?.port ?? fx.tcp.port),
  /^(\[::1\]|::1):\d+$/,
);
corpus.add({
  id: "net-010",
  title: "connect to a harness unix socket by its host path",
  code: (fx) =>
    `const c = await Deno.connect({ transport: "unix", path: ${
      JSON.stringify(fx.unix.address)
    } }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: ["read", "write", "net"], value: /harness\.sock$/ },
});
corpus.add({
  id: "net-011",
  title: "connect to the harness's abstract unix socket",
  code: (fx) =>
    `const c = await Deno.connect({ transport: "unix", path: "\\0${fx.abstract.name}" }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, NOT_CAPABLE),
  audit: { broker: "net", value: /^unix:\0airlock-attack-/ },
});
deniedDial(
  "net-012",
  "DNS query straight to 8.8.8.8 (Deno.resolveDns with a nameserver)",
  () =>
    `return await Deno.resolveDns("example.com", "A", { nameServer: { ipAddr: "8.8.8.8", port: 53 } });`,
  "8.8.8.8:53",
);
// The sandbox's resolv.conf names its own resolver (transparent egress,
// answered from the policy inside): dialling it is a net check, refused.
deniedDial(
  "net-013",
  "DNS through the system resolver (Deno.resolveDns)",
  () => `return await Deno.resolveDns("example.com", "A");`,
  "127.0.0.53:53",
);
deniedDial(
  "net-014",
  "open a listening backdoor on 0.0.0.0:8080",
  () => `const l = Deno.listen({ port: 8080 }); l.close(); return "LISTENING";`,
  "0.0.0.0:8080",
);
deniedDial(
  "net-015",
  "WebSocket straight to the harness port",
  (fx) =>
    `const ws = new WebSocket("ws://127.0.0.1:${fx.tcp.port}/");
    return await new Promise((resolve) => { ws.onopen = () => resolve("OPEN"); ws.onerror = (e) => resolve("error: " + e.message); });`,
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
deniedDial(
  "net-016",
  "an HTTP client whose proxy is the harness port (skipping the injector)",
  (fx) =>
    `const client = Deno.createHttpClient({ proxy: { url: "http://127.0.0.1:${fx.tcp.port}" } });
    return (await fetch("https://echo.attack.test/", { client })).status;`,
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
deniedDial(
  "net-017",
  "TLS straight to the harness port (Deno.connectTls)",
  (fx) =>
    `const c = await Deno.connectTls({ hostname: "127.0.0.1", port: ${fx.tcp.port} }); c.close(); return "CONNECTED";`,
  (fx) => `127.0.0.1:${fx.tcp.port}`,
);
corpus.add({
  id: "net-018",
  title: "UDP datagram to 8.8.8.8 (node:dgram)",
  code: `const dgram = (await import("node:dgram")).default;
    const s = dgram.createSocket("udp4");
    return await new Promise((resolve) => {
      __onAsyncError = (e) => resolve(errText(e));
      s.on("error", (e) => resolve(errText(e)));
      try { s.send("x", 53, "8.8.8.8", (e) => resolve(e ? errText(e) : "SENT")); } catch (e) { resolve(errText(e)); }
    });`,
  expect: (v) => {
    const outcome = v.outcome;
    assert.ok(outcome, "no outcome");
    const text = outcome.ok ? String(outcome.value) : outcome.error;
    assert.match(text, NOT_CAPABLE);
  },
  audit: { broker: "net", value: "0.0.0.0:0" },
});
corpus.add({
  id: "net-019",
  title:
    "raw UDP sockets with Deno.listenDatagram (no API without --unstable-net)",
  code:
    `if (typeof Deno.listenDatagram !== "function") throw new TypeError("Deno.listenDatagram is not available");
    const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 }); s.close(); return "BOUND";`,
  expect: (v) => void assertThrew(v, /not available|unstable/),
  audit: {
    none:
      "the API does not exist without --unstable-net (and raw sockets have no Deno API at all): nothing reaches a permission check",
  },
});

// --- vsock: Deno ends the program at the call ---

corpus.batch("vsock", {});
corpus.add({
  id: "net-020",
  batch: "vsock",
  title: "vsock to the hypervisor (CID 2) without --unstable-vsock",
  code:
    `const c = await Deno.connect({ transport: "vsock", cid: 2, port: 1 }); c.close(); return "CONNECTED";`,
  expect: (v) => {
    assert.equal(v.outcome, undefined, "the program never got a connection");
    assert.match(v.run.stderr, /unstable-vsock/);
    assert.notEqual(v.run.exitCode, 0);
  },
  audit: {
    none:
      "Deno refuses the unstable API before any permission check (and seccomp refuses AF_VSOCK anyway: net-024)",
  },
});

// --- Under "allow-all": the broker allows, the namespace has no route ---

corpus.batch("allow-all", {
  policy: (fx) => ({
    limits: { timeoutMs: 30_000 },
    network: "allow-all",
    upstream: { connectTo: [], caCerts: [] },
    scratch: true,
    inputs: [`${fx.input}:/inputs/dir`],
  }),
});
corpus.add({
  id: "net-021",
  batch: "allow-all",
  title: "allow-all policy: raw TCP to the harness port, skipping the proxy",
  code: (fx) => connect("127.0.0.1", fx.tcp.port),
  expect: (v) => void assertThrew(v, /ConnectionRefused/),
  audit: {
    none:
      "allow-all grants Deno's net check; 127.0.0.1 in the sandbox is its own empty loopback (ECONNREFUSED): nothing leaves the namespace",
  },
});
corpus.add({
  id: "net-022",
  batch: "allow-all",
  title: "allow-all policy: raw TCP to the metadata service",
  code: connect("169.254.169.254", 80),
  expect: (v) => void assertThrew(v, /NetworkUnreachable|os error 101/),
  audit: {
    none:
      "allow-all grants Deno's net check; the sandbox's network namespace has no route (ENETUNREACH)",
  },
});
corpus.add({
  id: "net-023",
  batch: "allow-all",
  title: "allow-all policy: raw TCP to the machine's own address",
  code: (fx) => {
    const ip = fx.hostIps.find((a) =>
      /^\d+\.\d+\.\d+\.\d+$/.test(a) &&
      !a.startsWith("127.")
    ) ?? "192.0.2.2";
    return connect(ip, fx.tcp.port);
  },
  expect: (v) => void assertThrew(v, /NetworkUnreachable|os error 101/),
  audit: {
    none:
      "allow-all grants Deno's net check; the host's addresses do not exist in the sandbox's namespace (ENETUNREACH)",
  },
});

// --- Deno's wall lowered: namespaces and seccomp alone ---

corpus.batch("namespace", {
  mode: "namespace",
  namespace: () => ({ denoFlags: ["--unstable-vsock", "--unstable-net"] }),
});
corpus.add({
  id: "net-024",
  batch: "namespace",
  title: "namespace alone: socket(AF_VSOCK) to CID 2 with --unstable-vsock",
  code:
    `const c = await Deno.connect({ transport: "vsock", cid: 2, port: 1 }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, /os error 97/),
  audit: {
    none:
      "seccomp answers socket(AF_VSOCK) with EAFNOSUPPORT: no Deno layer is involved",
  },
});
corpus.add({
  id: "net-025",
  batch: "namespace",
  title: "namespace alone: TCP to the harness port",
  code: (fx) => connect("127.0.0.1", fx.tcp.port),
  expect: (v) => void assertThrew(v, /ConnectionRefused/),
  audit: {
    none:
      "Deno's wall is lowered here: the sandbox's loopback is its own (ECONNREFUSED)",
  },
});
corpus.add({
  id: "net-026",
  batch: "namespace",
  title: "namespace alone: the harness's abstract unix socket",
  code: (fx) =>
    `const c = await Deno.connect({ transport: "unix", path: "\\0${fx.abstract.name}" }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, /ConnectionRefused|os error 111/),
  audit: {
    none:
      "Deno's wall is lowered here: abstract sockets belong to the network namespace; the host's is not there",
  },
});
corpus.add({
  id: "net-027",
  batch: "namespace",
  title: "namespace alone: the harness's unix socket path",
  code: (fx) =>
    `const c = await Deno.connect({ transport: "unix", path: ${
      JSON.stringify(fx.unix.address)
    } }); c.close(); return "CONNECTED";`,
  expect: (v) => void assertThrew(v, /NotFound/),
  audit: {
    none:
      "Deno's wall is lowered here: the host path does not exist in the mount namespace",
  },
});
corpus.add({
  id: "net-028",
  batch: "namespace",
  title: "namespace alone: a routable address (10.255.255.1)",
  code: connect("10.255.255.1", 9),
  expect: (v) => void assertThrew(v, /NetworkUnreachable|os error 101/),
  audit: {
    none:
      "Deno's wall is lowered here: the network namespace has no route (ENETUNREACH)",
  },
});
corpus.add({
  id: "net-029",
  batch: "namespace",
  title: "namespace alone: UDP to 8.8.8.8:53 (Deno.listenDatagram)",
  code:
    `const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
    try { await s.send(new Uint8Array([0]), { transport: "udp", hostname: "8.8.8.8", port: 53 }); return "SENT"; } finally { s.close(); }`,
  expect: (v) => void assertThrew(v, /NetworkUnreachable|os error 101/),
  audit: {
    none:
      "Deno's wall is lowered here: the network namespace has no route (ENETUNREACH)",
  },
});
corpus.add({
  id: "net-030",
  batch: "namespace",
  title: "namespace alone: list the network interfaces (only lo exists)",
  code: `return [...new Set(Deno.networkInterfaces().map((i) => i.name))];`,
  expect: (v) => assert.deepEqual(valueOf<string[]>(v), ["lo"]),
  audit: {
    none:
      "Deno's wall is lowered here: the namespace holds only lo, so there is nothing to find",
  },
});

corpus.register();
