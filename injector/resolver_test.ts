import assert from "node:assert/strict";
import { AddressGuard } from "./address_guard.ts";
import { HostError } from "./host_pattern.ts";
import {
  type ConnectTo,
  createSystemResolver,
  findConnectTo,
  parseConnectTo,
  systemResolver,
} from "./resolver.ts";

// --- systemResolver ------------------------------------------------------

Deno.test("systemResolver() resolves localhost to loopback addresses only", async () => {
  const addresses = await systemResolver("localhost");
  assert.ok(addresses.length > 0);
  assert.equal(new Set(addresses).size, addresses.length, "deduplicated");
  const guard = new AddressGuard({ hostAddresses: [] });
  for (const address of addresses) {
    assert.deepEqual(guard.check(address), {
      allowed: false,
      reason: "loopback",
    }, address);
  }
});

Deno.test("systemResolver() returns an IP literal as itself without DNS", async () => {
  assert.deepEqual(await systemResolver("192.0.2.7"), ["192.0.2.7"]);
  assert.deepEqual(await systemResolver("2001:db8::1"), ["2001:db8::1"]);
});

Deno.test("systemResolver() refuses a host that is not canonical", async () => {
  // getaddrinfo would read these numeric forms as 127.0.0.1 on its own.
  for (
    const host of [
      "0x7f.1",
      "2130706433",
      "LOCALHOST",
      "localhost.",
      "[::1]",
      "a..b",
      "x.com\0",
    ]
  ) {
    await assert.rejects(systemResolver(host), HostError, JSON.stringify(host));
  }
});

// --- createSystemResolver: fully qualified lookups, hosts file ------------

/** A resolver over a hosts file and a DNS stand-in that records each name. */
async function recording(
  hostsText: string | null,
  answers: Record<string, string[]> = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "airlock-resolver-" });
  const hostsFile = `${dir}/hosts`;
  if (hostsText !== null) await Deno.writeTextFile(hostsFile, hostsText);
  const asked: string[] = [];
  const resolve = createSystemResolver({
    hostsFile,
    lookup: (fqdn) => {
      asked.push(fqdn);
      const found = answers[fqdn];
      return found
        ? Promise.resolve(found.map((address) => ({ address })))
        : Promise.reject(new Error(`getaddrinfo ENOTFOUND ${fqdn}`));
    },
  });
  return {
    resolve,
    asked,
    hostsFile,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

Deno.test("createSystemResolver() asks DNS for the name with a trailing dot only (search domains never apply)", async () => {
  await using r = await recording(null, {
    "api.example.com.": ["192.0.2.10"],
    "a.b.c.d.e.example.com.": ["192.0.2.11"],
  });
  assert.deepEqual(await r.resolve("api.example.com"), ["192.0.2.10"]);
  // Five dots or more: a resolver would not apply ndots:5 here anyway; the
  // name is still asked as it is.
  assert.deepEqual(await r.resolve("a.b.c.d.e.example.com"), ["192.0.2.11"]);
  // A name that does not exist stays unresolved: no second, relative try.
  await assert.rejects(r.resolve("nonexistent.example.com"), /ENOTFOUND/);
  // A single label is asked as a top-level name, never completed.
  await assert.rejects(r.resolve("intranet"), /ENOTFOUND/);
  assert.deepEqual(r.asked, [
    "api.example.com.",
    "a.b.c.d.e.example.com.",
    "nonexistent.example.com.",
    "intranet.",
  ]);
});

Deno.test("createSystemResolver() answers from the hosts file first, matching names canonically", async () => {
  await using r = await recording(
    [
      "# comment line",
      "10.1.0.5   db.corp.example   DB2.Corp.Example.  # trailing comment",
      "10.1.0.6   db.corp.example",
      "2001:db8::7 v6.corp.example",
      "not-an-ip  bad.corp.example",
      "10.1.0.8",
      "   ",
    ].join("\n"),
  );
  assert.deepEqual(await r.resolve("db.corp.example"), [
    "10.1.0.5",
    "10.1.0.6",
  ]);
  assert.deepEqual(await r.resolve("db2.corp.example"), ["10.1.0.5"]);
  assert.deepEqual(await r.resolve("v6.corp.example"), ["2001:db8::7"]);
  assert.deepEqual(r.asked, [], "no DNS lookup for a name in the hosts file");
  await assert.rejects(r.resolve("bad.corp.example"), /ENOTFOUND/);
  assert.deepEqual(r.asked, ["bad.corp.example."]);
});

Deno.test("createSystemResolver() reads the hosts file again when it changes", async () => {
  await using r = await recording("10.1.0.5 db.corp.example\n");
  assert.deepEqual(await r.resolve("db.corp.example"), ["10.1.0.5"]);
  await Deno.writeTextFile(r.hostsFile, "10.1.0.99   db.corp.example\n");
  assert.deepEqual(await r.resolve("db.corp.example"), ["10.1.0.99"]);
  await Deno.remove(r.hostsFile);
  await assert.rejects(r.resolve("db.corp.example"), /ENOTFOUND/);
});

Deno.test("createSystemResolver() keeps localhost names on loopback without DNS", async () => {
  await using r = await recording(null);
  assert.deepEqual(await r.resolve("localhost"), ["127.0.0.1", "::1"]);
  assert.deepEqual(await r.resolve("app.localhost"), ["127.0.0.1", "::1"]);
  assert.deepEqual(r.asked, []);
});

Deno.test("createSystemResolver() returns canonical, deduplicated addresses", async () => {
  await using r = await recording(null, {
    "dup.example.com.": ["192.0.2.1", "192.0.2.1", "::ffff:192.0.2.2"],
  });
  assert.deepEqual(await r.resolve("dup.example.com"), [
    "192.0.2.1",
    "::ffff:c000:202",
  ]);
});

Deno.test("createSystemResolver() refuses a non-canonical host before any lookup", async () => {
  await using r = await recording(null);
  for (const host of ["api.example.com.", "API.example.com", "0x7f.1"]) {
    await assert.rejects(r.resolve(host), HostError, host);
  }
  assert.deepEqual(r.asked, []);
});

// --- parseConnectTo ------------------------------------------------------

Deno.test("parseConnectTo() parses all four fields, canonicalising hosts", () => {
  assert.deepEqual(
    parseConnectTo("API.Example.com.:443:Backend.internal:8443"),
    {
      host: "api.example.com",
      port: 443,
      toHost: "backend.internal",
      toPort: 8443,
      source: "API.Example.com.:443:Backend.internal:8443",
    },
  );
});

Deno.test("parseConnectTo() treats an empty HOST1 or PORT1 as any", () => {
  const any = parseConnectTo("::127.0.0.1:8080");
  assert.equal(any.host, null);
  assert.equal(any.port, null);
  assert.equal(any.toHost, "127.0.0.1");
  assert.equal(any.toPort, 8080);
  assert.equal(parseConnectTo("x.com::y.com:1").port, null);
  assert.equal(parseConnectTo(":443:y.com:1").host, null);
});

Deno.test("parseConnectTo() takes IPv6 addresses in brackets", () => {
  assert.deepEqual(parseConnectTo("[::1]:443:[0:0::2]:8443"), {
    host: "::1",
    port: 443,
    toHost: "::2",
    toPort: 8443,
    source: "[::1]:443:[0:0::2]:8443",
  });
  assert.equal(parseConnectTo("::[fe80::1]:80").toHost, "fe80::1");
});

Deno.test("parseConnectTo() throws SyntaxError on malformed input", () => {
  const refused = {
    "": /HOST1:PORT1:HOST2:PORT2/,
    "x.com:443:y.com": /HOST1:PORT1:HOST2:PORT2/,
    "x.com:443:y.com:80:9": /HOST1:PORT1:HOST2:PORT2/,
    "x.com:443:::1:80": /HOST1:PORT1:HOST2:PORT2/,
    "[::1:443:y.com:80": /HOST1:PORT1:HOST2:PORT2/,
    "[::1]x:443:y.com:80": /HOST1:PORT1:HOST2:PORT2/,
    "x.com:443::80": /HOST2 is empty/,
    "x.com:443:y.com:": /PORT2 is empty/,
    "x.com:0:y.com:80": /PORT1 must be an integer/,
    "x.com:443:y.com:65536": /PORT2 must be an integer/,
    "x.com:https:y.com:80": /PORT1 must be an integer/,
    "x.com:443:y.com:+80": /PORT2 must be an integer/,
    "a..b:443:y.com:80": /HOST1 is not a valid host/,
    "x.com:443:y.com\r\n:80": /HOST2 is not a valid host/,
    "x.com:443:user@y.com:80": /HOST2 is not a valid host/,
    "*.x.com:443:y.com:80": /HOST1 is not a valid host/,
    "[x.com]:443:y.com:80": /HOST1 is not a valid host/,
  };
  for (const [text, message] of Object.entries(refused)) {
    assert.throws(() => parseConnectTo(text), (error: Error) => {
      assert.ok(error instanceof SyntaxError, text);
      assert.match(error.message, message, text);
      assert.ok(!/[\r\n]/.test(error.message), "message stays on one line");
      return true;
    });
  }
});

Deno.test("parseConnectTo() keeps the host error as the cause", () => {
  assert.throws(
    () => parseConnectTo("a..b:443:y.com:80"),
    (error: Error) => error.cause instanceof HostError,
  );
});

// --- findConnectTo -------------------------------------------------------

Deno.test("findConnectTo() returns the first matching entry", () => {
  const list: ConnectTo[] = [
    "api.example.com:443:one.internal:1",
    "api.example.com::two.internal:2",
    ":8443:three.internal:3",
    "::four.internal:4",
  ].map(parseConnectTo);
  assert.deepEqual(findConnectTo(list, "api.example.com", 443), {
    host: "one.internal",
    port: 1,
  });
  assert.deepEqual(findConnectTo(list, "api.example.com", 80), {
    host: "two.internal",
    port: 2,
  });
  assert.deepEqual(findConnectTo(list, "other.com", 8443), {
    host: "three.internal",
    port: 3,
  });
  assert.deepEqual(findConnectTo(list, "other.com", 443), {
    host: "four.internal",
    port: 4,
  });
});

Deno.test("findConnectTo() compares hosts canonically", () => {
  const list = [
    parseConnectTo("bücher.de:443:a.internal:1"),
    parseConnectTo("[::1]:80:b.internal:2"),
  ];
  assert.deepEqual(findConnectTo(list, "XN--BCHER-KVA.DE.", 443), {
    host: "a.internal",
    port: 1,
  });
  assert.deepEqual(findConnectTo(list, "[0::1]", 80), {
    host: "b.internal",
    port: 2,
  });
  assert.equal(findConnectTo(list, "bücher.de", 80), null);
  assert.equal(findConnectTo(list, "buecher.de", 443), null);
});

Deno.test("findConnectTo() returns null when nothing matches, and for an empty list", () => {
  assert.equal(
    findConnectTo([parseConnectTo("x.com:443:y.com:1")], "x.com", 80),
    null,
  );
  assert.equal(findConnectTo([], "x.com", 443), null);
});

Deno.test("findConnectTo() throws HostError for an invalid host", () => {
  assert.throws(() => findConnectTo([], "a..b", 443), HostError);
});
