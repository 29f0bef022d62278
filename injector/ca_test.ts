import assert from "node:assert/strict";
import tls from "node:tls";
import type { AddressInfo } from "node:net";
import { CertificateAuthority, LeafCache, type LeafCredentials } from "./ca.ts";

// --- helpers: real openssl, a real node:tls server, a real Deno TLS client ---

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function openssl(args: string[]): Promise<Run> {
  const out = await new Deno.Command("openssl", {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return {
    code: out.code,
    stdout: text.decode(out.stdout),
    stderr: text.decode(out.stderr),
  };
}

/** Writes PEM files to a temporary directory, runs `fn`, removes them. */
async function withFiles<T>(
  files: Record<string, string>,
  fn: (path: (name: string) => string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "airlock_ca_test_" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    return await fn((name) => `${dir}/${name}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function verify(caPem: string, leafPem: string, extra: string[] = []) {
  return withFiles(
    { "ca.pem": caPem, "leaf.pem": leafPem },
    (path) =>
      openssl([
        "verify",
        ...extra,
        "-CAfile",
        path("ca.pem"),
        path("leaf.pem"),
      ]),
  );
}

function certText(pem: string): Promise<string> {
  return withFiles({ "c.pem": pem }, async (path) => {
    const run = await openssl([
      "x509",
      "-in",
      path("c.pem"),
      "-noout",
      "-text",
    ]);
    assert.equal(run.code, 0, run.stderr);
    return run.stdout;
  });
}

/** An echo server (node:tls) on `address`:0 presenting `leaf`. */
async function withTlsServer(
  leaf: LeafCredentials,
  address: string,
  fn: (port: number) => Promise<void>,
): Promise<void> {
  const server = tls.createServer(
    { cert: leaf.certPem, key: leaf.keyPem },
    (socket) => {
      socket.on("error", () => {});
      socket.pipe(socket);
    },
  );
  // Rejected handshakes are the point of several tests.
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await fn(port);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** Connects, handshakes as `hostname` and echoes a few bytes. */
async function echoOverTls(
  address: string,
  port: number,
  hostname: string,
  caCerts?: string[],
): Promise<string> {
  const tcp = await Deno.connect({ hostname: address, port });
  const conn = await Deno.startTls(
    tcp,
    caCerts === undefined ? { hostname } : { hostname, caCerts },
  );
  try {
    await conn.handshake();
    const message = "hello through airlock";
    await conn.write(new TextEncoder().encode(message));
    const buffer = new Uint8Array(64);
    let received = "";
    while (received.length < message.length) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return received;
  } finally {
    conn.close();
  }
}

const ca = await CertificateAuthority.create();

// --- the CA certificate ---

Deno.test("CertificateAuthority.create() makes a self-signed P-256 CA limited to signing certificates", async () => {
  const text = await certText(ca.certificatePem);
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  assert.match(text, /NIST CURVE: P-256/);
  assert.match(text, /Subject: CN = airlock ephemeral CA [0-9a-f]{8}\n/);
  assert.match(text, /Issuer: CN = airlock ephemeral CA [0-9a-f]{8}\n/);
  assert.match(text, /Basic Constraints: critical\n\s+CA:TRUE, pathlen:0\n/);
  assert.match(text, /Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
  assert.match(text, /Subject Key Identifier: \n\s+[0-9A-F:]{59}\n/);
  // 16 random bytes, positive (top bit clear, so no 00 padding byte).
  const serial = text.match(/Serial Number:\n\s+([0-9a-f:]+)\n/)?.[1];
  assert.equal(serial?.split(":").length, 16);
  assert.ok(parseInt(serial!.slice(0, 2), 16) < 0x80);
  // The CA verifies itself (self-signed root).
  assert.equal((await verify(ca.certificatePem, ca.certificatePem)).code, 0);
});

Deno.test("CertificateAuthority.create() backdates notBefore by an hour and lasts validityDays", async () => {
  const before = Date.now();
  const short = await CertificateAuthority.create({ validityDays: 2 });
  const after = Date.now();
  const text = await certText(short.certificatePem);
  const notBefore = Date.parse(text.match(/Not Before: (.+)\n/)![1]!);
  const notAfter = Date.parse(text.match(/Not After : (.+)\n/)![1]!);
  assertValidity(notBefore, notAfter, before, after, 2 * 86400_000);
});

/**
 * Asserts a certificate made between `before` and `after` (however long
 * that took: no timing is asserted) starts an hour before it was made, in
 * whole seconds, and lasts `validityMs` from when it was made.
 */
function assertValidity(
  notBefore: number,
  notAfter: number,
  before: number,
  after: number,
  validityMs: number,
): void {
  const hour = 3600_000;
  const madeAt = notBefore + hour;
  assert.ok(
    madeAt >= Math.floor(before / 1000) * 1000 && madeAt <= after,
    `notBefore ${new Date(notBefore).toISOString()} is not an hour before ${
      new Date(before).toISOString()
    }..${new Date(after).toISOString()}`,
  );
  assert.equal(notAfter - madeAt, validityMs);
}

Deno.test("CertificateAuthority fingerprintSha256 is the SHA-256 of the certificate", async () => {
  const run = await withFiles(
    { "ca.pem": ca.certificatePem },
    (path) =>
      openssl([
        "x509",
        "-in",
        path("ca.pem"),
        "-noout",
        "-fingerprint",
        "-sha256",
      ]),
  );
  const expected = run.stdout.split("=")[1]!.trim().replaceAll(":", "")
    .toLowerCase();
  assert.equal(ca.fingerprintSha256, expected);
});

Deno.test("CertificateAuthority.create() uses commonName and makes distinct CAs", async () => {
  const a = await CertificateAuthority.create({
    commonName: "run 42, CN=evil",
  });
  const b = await CertificateAuthority.create({
    commonName: "run 42, CN=evil",
  });
  assert.notEqual(a.certificatePem, b.certificatePem);
  assert.notEqual(a.fingerprintSha256, b.fingerprintSha256);
  const text = await certText(a.certificatePem);
  // One CN attribute holding the comma, not a second injected attribute.
  assert.match(text, /Subject: CN = "run 42, CN=evil [0-9a-f]{8}"\n/);
});

Deno.test("CertificateAuthority.create() rejects invalid options", async () => {
  for (const validityDays of [0, -1, NaN, Infinity, 3651]) {
    await assert.rejects(
      CertificateAuthority.create({ validityDays }),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message.startsWith(
          "Cannot create a certificate authority as 'validityDays' must be",
        ),
    );
  }
  await assert.rejects(
    CertificateAuthority.create({ leafValidityDays: 0 }),
    RangeError,
  );
  for (const commonName of ["", "a\nb", "x".repeat(49)]) {
    await assert.rejects(
      CertificateAuthority.create({ commonName }),
      TypeError,
    );
  }
});

// --- the CA signing key never leaves the process ---

Deno.test("CertificateAuthority exposes no private key material on the instance", async () => {
  const local = await CertificateAuthority.create();
  await local.leafFor("api.example.test");
  assert.deepEqual(Object.keys(local).sort(), [
    "certificatePem",
    "fingerprintSha256",
  ]);
  for (const value of Object.values(local)) {
    assert.ok(!String(value).includes("PRIVATE KEY"));
  }
  assert.ok(!JSON.stringify(local).includes("PRIVATE KEY"));
  // What a log line or a debugger print would show.
  const shown = Deno.inspect(local, { showHidden: true, depth: 10 });
  assert.ok(!shown.includes("PRIVATE KEY"));
  assert.ok(!shown.includes("CryptoKey"));
});

// --- leaves ---

Deno.test("CertificateAuthority.leafFor() issues a DNS leaf that openssl verifies", async () => {
  const leaf = await ca.leafFor("api.example.test");
  assert.match(leaf.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  const ok = await verify(ca.certificatePem, leaf.certPem, [
    "-verify_hostname",
    "api.example.test",
    "-purpose",
    "sslserver",
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /leaf.pem: OK/);
  const wrongName = await verify(ca.certificatePem, leaf.certPem, [
    "-verify_hostname",
    "other.example.test",
  ]);
  assert.notEqual(wrongName.code, 0);
});

Deno.test("CertificateAuthority.leafFor() sets the leaf extensions", async () => {
  const caText = await certText(ca.certificatePem);
  const caKeyId = caText.match(/Subject Key Identifier: \n\s+(\S+)\n/)![1]!;
  const text = await certText((await ca.leafFor("api.example.test")).certPem);
  assert.match(text, /Subject: CN = api.example.test\n/);
  assert.match(text, /Issuer: CN = airlock ephemeral CA [0-9a-f]{8}\n/);
  assert.match(text, /Subject Alternative Name: \n\s+DNS:api.example.test\n/);
  assert.match(text, /Basic Constraints: critical\n\s+CA:FALSE\n/);
  assert.match(text, /Key Usage: critical\n\s+Digital Signature\n/);
  assert.match(
    text,
    /Extended Key Usage: \n\s+TLS Web Server Authentication\n/,
  );
  assert.match(
    text,
    new RegExp(`Authority Key Identifier: \\n\\s+(keyid:)?${caKeyId}\\n`),
  );
  assert.match(text, /Signature Algorithm: ecdsa-with-SHA256/);
  const serial = text.match(/Serial Number:\n\s+([0-9a-f:]+)\n/)?.[1];
  assert.equal(serial?.split(":").length, 16);
});

Deno.test("CertificateAuthority.leafFor() gives a leaf valid from an hour ago for leafValidityDays", async () => {
  const local = await CertificateAuthority.create({ leafValidityDays: 3 });
  const before = Date.now();
  const leaf = await local.leafFor("a.test");
  const after = Date.now();
  const text = await certText(leaf.certPem);
  const notBefore = Date.parse(text.match(/Not Before: (.+)\n/)![1]!);
  const notAfter = Date.parse(text.match(/Not After : (.+)\n/)![1]!);
  assertValidity(notBefore, notAfter, before, after, 3 * 86400_000);
});

Deno.test("CertificateAuthority.leafFor() never outlives the CA", async () => {
  const local = await CertificateAuthority.create({
    validityDays: 1,
    leafValidityDays: 7,
  });
  const caAfter = (await certText(local.certificatePem)).match(
    /Not After : (.+)\n/,
  )![1];
  const leafAfter = (await certText((await local.leafFor("a.test")).certPem))
    .match(/Not After : (.+)\n/)![1];
  assert.equal(leafAfter, caAfter);
});

Deno.test("CertificateAuthority.leafFor() issues IP leaves for IPv4 and IPv6 literals", async () => {
  const cases: [string, string][] = [
    ["127.0.0.1", "IP Address:127.0.0.1"],
    ["::1", "IP Address:0:0:0:0:0:0:0:1"],
    ["2001:DB8::a:1", "IP Address:2001:DB8:0:0:0:0:A:1"],
    ["::ffff:10.1.2.3", "IP Address:0:0:0:0:0:FFFF:A01:203"],
  ];
  for (const [host, san] of cases) {
    const leaf = await ca.leafFor(host);
    const text = await certText(leaf.certPem);
    assert.ok(
      new RegExp(`Subject Alternative Name: \\n\\s+${san}\\n`).test(text),
      text,
    );
    assert.ok(!text.includes("DNS:"));
  }
  const ok = await verify(
    ca.certificatePem,
    (await ca.leafFor("::1")).certPem,
    [
      "-verify_ip",
      "::1",
    ],
  );
  assert.equal(ok.code, 0, ok.stderr);
});

Deno.test("CertificateAuthority.leafFor() puts a host longer than 64 characters only in a critical subjectAltName", async () => {
  const host = `${"a".repeat(63)}.${"b".repeat(40)}.test`;
  const leaf = await ca.leafFor(host);
  const text = await certText(leaf.certPem);
  assert.match(text, /Subject: ?\n/);
  assert.ok(
    new RegExp(`Subject Alternative Name: critical\\n\\s+DNS:${host}\\n`).test(
      text,
    ),
  );
  const ok = await verify(ca.certificatePem, leaf.certPem, [
    "-verify_hostname",
    host,
  ]);
  assert.equal(ok.code, 0, ok.stderr);
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    assert.equal(
      await echoOverTls("127.0.0.1", port, host, [ca.certificatePem]),
      "hello through airlock",
    );
  });
});

// --- real TLS handshakes (node:tls server, Deno/rustls client) ---

Deno.test("CertificateAuthority leaf completes a TLS handshake for its host with a client trusting the CA", async () => {
  const leaf = await ca.leafFor("api.example.test");
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    assert.equal(
      await echoOverTls("127.0.0.1", port, "api.example.test", [
        ca.certificatePem,
      ]),
      "hello through airlock",
    );
  });
});

Deno.test("CertificateAuthority leaf is rejected for any other host name", async () => {
  const leaf = await ca.leafFor("api.example.test");
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    await assert.rejects(
      echoOverTls("127.0.0.1", port, "other.example.test", [ca.certificatePem]),
      /NotValidForName|not valid for name/i,
    );
  });
});

Deno.test("CertificateAuthority leaf is rejected by a client that does not trust the CA", async () => {
  const leaf = await ca.leafFor("api.example.test");
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    await assert.rejects(
      echoOverTls("127.0.0.1", port, "api.example.test"),
      /UnknownIssuer|unknown issuer/i,
    );
  });
});

Deno.test("CertificateAuthority leaf for 127.0.0.1 completes a TLS handshake for that address", async () => {
  const leaf = await ca.leafFor("127.0.0.1");
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    assert.equal(
      await echoOverTls("127.0.0.1", port, "127.0.0.1", [ca.certificatePem]),
      "hello through airlock",
    );
    await assert.rejects(
      echoOverTls("127.0.0.1", port, "127.0.0.2", [ca.certificatePem]),
      /NotValidForName|not valid for name/i,
    );
  });
});

Deno.test("CertificateAuthority leaf for ::1 completes a TLS handshake for that address", async () => {
  const leaf = await ca.leafFor("::1");
  await withTlsServer(leaf, "::1", async (port) => {
    assert.equal(
      await echoOverTls("::1", port, "::1", [ca.certificatePem]),
      "hello through airlock",
    );
  });
});

Deno.test("CertificateAuthority leaf from one CA does not verify under another", async () => {
  const other = await CertificateAuthority.create();
  const leaf = await other.leafFor("api.example.test");
  const run = await verify(ca.certificatePem, leaf.certPem);
  assert.notEqual(run.code, 0);
  await withTlsServer(leaf, "127.0.0.1", async (port) => {
    await assert.rejects(
      echoOverTls("127.0.0.1", port, "api.example.test", [ca.certificatePem]),
      /UnknownIssuer|unknown issuer|BadSignature/i,
    );
    // ...and does under its own CA.
    assert.equal(
      await echoOverTls("127.0.0.1", port, "api.example.test", [
        other.certificatePem,
      ]),
      "hello through airlock",
    );
  });
});

// --- cache ---

Deno.test("CertificateAuthority.leafFor() returns the cached leaf for repeated calls", async () => {
  const local = await CertificateAuthority.create();
  const first = await local.leafFor("cache.example.test");
  const second = await local.leafFor("cache.example.test");
  assert.equal(second, first);
  // DNS names are case-insensitive; IP addresses compare by value.
  assert.equal(await local.leafFor("CACHE.Example.TEST"), first);
  assert.equal(await local.leafFor("0:0::1"), await local.leafFor("::1"));
  // A different host gets a different certificate, same key.
  const other = await local.leafFor("other.example.test");
  assert.notEqual(other.certPem, first.certPem);
  assert.equal(other.keyPem, first.keyPem);
  assert.ok(Object.isFrozen(first));
});

Deno.test("CertificateAuthority.leafFor() shares one issuance between concurrent calls", async () => {
  const local = await CertificateAuthority.create();
  const results = await Promise.all(
    Array.from({ length: 10 }, () => local.leafFor("concurrent.example.test")),
  );
  for (const result of results) assert.equal(result, results[0]);
});

Deno.test("CertificateAuthority.leafFor() re-issues a leaf close to its expiry", async () => {
  // 4 s leaves: re-issued in their last 2 s (half the validity, as that is
  // shorter than a day).
  const local = await CertificateAuthority.create({
    leafValidityDays: 4 / 86400,
  });
  // The CA reads the time from Date.now(): a clock the test moves, so a
  // slow machine cannot eat into the 2 s before renewal (a real 2.1 s sleep
  // did: the cached leaf was already due when it was asked for again).
  const realNow = Date.now;
  let clock = Math.floor(realNow() / 1000) * 1000;
  Date.now = () => clock;
  try {
    const first = await local.leafFor("renew.example.test");
    clock += 1900; // still more than half the validity left: cached
    assert.equal(await local.leafFor("renew.example.test"), first);
    clock += 200; // 1.9 s left: due for renewal
    const concurrent = await Promise.all([
      local.leafFor("renew.example.test"),
      local.leafFor("renew.example.test"),
    ]);
    assert.notEqual(concurrent[0].certPem, first.certPem);
    assert.equal(concurrent[1], concurrent[0]);
  } finally {
    Date.now = realNow;
  }
});

Deno.test("CertificateAuthority.leafFor() with separate LeafCaches issues separately and shares nothing", async () => {
  const local = await CertificateAuthority.create();
  const a = new LeafCache();
  const b = new LeafCache();
  const shared = await local.leafFor("tenant.example.test");
  const forA = await local.leafFor("tenant.example.test", { cache: a });
  const forB = await local.leafFor("tenant.example.test", { cache: b });
  // Another party's cache (or the CA's own) never answers for this one: a
  // cached leaf would tell it that someone contacted the host, and when.
  assert.notEqual(forA.certPem, shared.certPem);
  assert.notEqual(forB.certPem, forA.certPem);
  assert.equal(await local.leafFor("tenant.example.test", { cache: a }), forA);
  assert.equal(a.size, 1);
  assert.equal(b.size, 1);
  // Each verifies for its host.
  await withFiles(
    { "ca.pem": local.certificatePem, "leaf.pem": forB.certPem },
    async (path) => {
      const run = await openssl([
        "verify",
        "-CAfile",
        path("ca.pem"),
        path("leaf.pem"),
      ]);
      assert.equal(run.code, 0, run.stderr);
    },
  );
});

Deno.test("LeafCache keeps at most maxEntries leaves, least recently used first out", async () => {
  const local = await CertificateAuthority.create();
  const cache = new LeafCache({ maxEntries: 2 });
  const one = await local.leafFor("one.example.test", { cache });
  await local.leafFor("two.example.test", { cache });
  // Touch "one": "two" is now the least recently used.
  assert.equal(await local.leafFor("one.example.test", { cache }), one);
  await local.leafFor("three.example.test", { cache });
  assert.equal(cache.size, 2);
  assert.equal(await local.leafFor("one.example.test", { cache }), one);
  cache.clear();
  assert.equal(cache.size, 0);
  assert.throws(() => new LeafCache({ maxEntries: 0 }), RangeError);
});

Deno.test("LeafCache belongs to one certificate authority", async () => {
  const first = await CertificateAuthority.create();
  const second = await CertificateAuthority.create();
  const cache = new LeafCache();
  await first.leafFor("owned.example.test", { cache });
  // A leaf of the first CA served as the second's would fail every handshake.
  await assert.rejects(
    () => second.leafFor("owned.example.test", { cache }),
    TypeError,
  );
});

// --- input validation (a security boundary) ---

Deno.test("CertificateAuthority.leafFor() rejects hosts that are not a plain DNS name or IP address", async () => {
  const bad = [
    "",
    "*",
    "*.example.test",
    "a*.example.test",
    "api.example.test/evil",
    "api.example.test evil",
    " api.example.test",
    "api.example.test\n",
    "api.example.test\0.evil.test",
    "api.example.test\u0007",
    "[::1]",
    "::1%lo",
    "api.example.test:443",
    "user@api.example.test",
    "api..example.test",
    ".example.test",
    "api.example.test.",
    `${"a".repeat(64)}.test`,
    `${"a.".repeat(127)}test`,
    "1.2.3.256",
    "127.1",
    "127.000.0.1",
    "0x7f.0.0.1",
    "example.0x1",
    "1::2::3",
    "12345::",
    "api.example.test,evil.test",
    "bücher.example",
  ];
  const local = await CertificateAuthority.create();
  for (const host of bad) {
    await assert.rejects(
      local.leafFor(host),
      (e: unknown) =>
        e instanceof TypeError &&
        e.message.startsWith("Cannot issue a certificate for host as it") &&
        // Control characters are escaped, never written raw into a log.
        // deno-lint-ignore no-control-regex
        !/[\u0000-\u001f]/.test(e.message),
      JSON.stringify(host),
    );
  }
});

Deno.test("CertificateAuthority.leafFor() accepts ordinary DNS names", async () => {
  const local = await CertificateAuthority.create();
  for (
    const host of [
      "localhost",
      "api.github.com",
      "xn--bcher-kva.example",
      "_dmarc.example.test",
      "a-b.c-d.test",
      "-edge-.example.test",
      "8.8.8.8.in-addr.example",
    ]
  ) {
    const leaf = await local.leafFor(host);
    const ok = await verify(local.certificatePem, leaf.certPem, [
      "-verify_hostname",
      host,
    ]);
    assert.equal(ok.code, 0, `${host}: ${ok.stdout}${ok.stderr}`);
  }
});
