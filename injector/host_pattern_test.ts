import assert from "node:assert/strict";
import {
  canonicalHost,
  DEFAULT_PORTS,
  HostError,
  hostKind,
  matchHost,
  parseHostPattern,
} from "./host_pattern.ts";

function entries(...texts: string[]) {
  return texts.map((text) => ({
    pattern: parseHostPattern(text),
    value: text,
  }));
}

function winner(texts: string[], host: string, port = 443): string | null {
  return matchHost(entries(...texts), host, port)?.value ?? null;
}

// --- canonicalHost -------------------------------------------------------

Deno.test("canonicalHost() lower-cases and strips one trailing dot", () => {
  assert.equal(canonicalHost("API.Example.COM."), "api.example.com");
  assert.equal(canonicalHost("example.com"), "example.com");
  assert.equal(canonicalHost("localhost"), "localhost");
  assert.equal(canonicalHost("_dmarc.example.com"), "_dmarc.example.com");
  assert.equal(canonicalHost("a-b.example.com"), "a-b.example.com");
});

Deno.test("canonicalHost() writes IDN as punycode", () => {
  assert.equal(canonicalHost("bücher.de"), "xn--bcher-kva.de");
  assert.equal(canonicalHost("BÜCHER.de"), "xn--bcher-kva.de");
  assert.equal(canonicalHost("XN--BCHER-KVA.DE"), "xn--bcher-kva.de");
  assert.equal(canonicalHost("faß.de"), "xn--fa-hia.de");
  // Full-width letters and dots fold to ASCII.
  assert.equal(canonicalHost("ｅｘａｍｐｌｅ．ｃｏｍ"), "example.com");
});

Deno.test("canonicalHost() writes every numeric IPv4 form as dotted decimal", () => {
  assert.equal(canonicalHost("2852039166"), "169.254.169.254");
  assert.equal(canonicalHost("0x7f.1"), "127.0.0.1");
  assert.equal(canonicalHost("0177.0.0.1"), "127.0.0.1");
  assert.equal(canonicalHost("0x7F000001"), "127.0.0.1");
  assert.equal(canonicalHost("127.1"), "127.0.0.1");
  assert.equal(canonicalHost("0"), "0.0.0.0");
  assert.equal(canonicalHost("10.0.0.5."), "10.0.0.5");
  assert.equal(canonicalHost("１２７.０.０.１"), "127.0.0.1");
});

Deno.test("canonicalHost() writes IPv6 compressed, lower case, without brackets", () => {
  assert.equal(canonicalHost("::1"), "::1");
  assert.equal(canonicalHost("[::1]"), "::1");
  assert.equal(canonicalHost("[0:0:0:0:0:0:0:1]"), "::1");
  assert.equal(canonicalHost("FE80::1"), "fe80::1");
  assert.equal(canonicalHost("2001:DB8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(canonicalHost("::ffff:127.0.0.1"), "::ffff:7f00:1");
  assert.equal(canonicalHost("[::]"), "::");
});

Deno.test("canonicalHost() output is a fixed point", () => {
  for (
    const input of [
      "A.B.C.",
      "2852039166",
      "[::FFFF:1.2.3.4]",
      "bücher.de",
      "0x7f.1",
      "x.1e",
    ]
  ) {
    const once = canonicalHost(input);
    assert.equal(canonicalHost(once), once, input);
  }
});

Deno.test("canonicalHost() refuses control characters, NUL and CR/LF", () => {
  for (
    const input of [
      "a\0.com",
      "x.com\r\nHost: evil.com",
      "a\tb.com",
      "a\x7f.com",
      "a\x85.com",
      "x.com\n",
    ]
  ) {
    assert.throws(() => canonicalHost(input), HostError, JSON.stringify(input));
  }
});

Deno.test("canonicalHost() escapes control characters in its message", () => {
  assert.throws(
    () => canonicalHost("x.com\r\nX: y"),
    (error: Error) =>
      error instanceof HostError &&
      error.message.includes("'x.com\\r\\nX: y'") &&
      !/[\r\n]/.test(error.message),
  );
});

Deno.test("canonicalHost() refuses what a URL parser would read as more than a host", () => {
  const refused = {
    "": /empty/,
    "a b.com": /whitespace/,
    "a\u00a0b.com": /whitespace/,
    "fe80::1%eth0": /'%'/,
    "ex%61mple.com": /'%'/,
    "user@evil.com": /userinfo/,
    "x.com@evil.com": /userinfo/,
    "evil.com/.x.com": /delimiter/,
    "evil.com\\.x.com": /delimiter/,
    "evil.com?.x.com": /delimiter/,
    "evil.com#.x.com": /delimiter/,
    "x.com:443": /not an IPv6 address/,
    "[x.com]": /not an IPv6 address/,
    "a]b.com": /'\[' or '\]'/,
    "ex\u00adample.com": /invisible/,
    "ex\u200bample.com": /invisible/,
  };
  for (const [input, message] of Object.entries(refused)) {
    assert.throws(() => canonicalHost(input), (error: Error) => {
      assert.ok(error instanceof HostError, input);
      assert.match(error.message, message, input);
      return true;
    });
  }
});

Deno.test("canonicalHost() refuses empty labels, long labels and long names", () => {
  for (
    const input of [
      "a..b",
      ".x.com",
      "x.com..",
      ".",
      "a\u3002\u3002b",
      `${"a".repeat(64)}.com`,
      `${"a.".repeat(127)}a`, // 255 characters
      `${"ü".repeat(60)}.de`, // short in characters, over 63 as punycode
    ]
  ) {
    assert.throws(() => canonicalHost(input), HostError, input);
  }
  // The limits themselves are fine.
  assert.equal(canonicalHost(`${"a".repeat(63)}.com`), `${"a".repeat(63)}.com`);
  const longest = `${"a.".repeat(126)}a`; // 253 characters
  assert.equal(canonicalHost(`${longest}.`), longest);
});

Deno.test("canonicalHost() refuses characters that are not in DNS names", () => {
  for (
    const input of [
      "*.x.com",
      "a*b.com",
      "a!b.com",
      "{x}.com",
      "a'b.com",
      "a^b.com",
      "a<b>.com",
    ]
  ) {
    assert.throws(() => canonicalHost(input), HostError, input);
  }
});

Deno.test("canonicalHost() refuses invalid addresses and punycode", () => {
  for (
    const input of [
      "1.2.3.4.5",
      "1.2.3.09",
      "4294967296",
      "a.1",
      "::1::",
      "[::1",
      "1:2:3:4:5:6:7:8:9",
      "xn--zz.com",
    ]
  ) {
    assert.throws(() => canonicalHost(input), HostError, input);
  }
});

Deno.test("canonicalHost() refuses a non-string with HostError", () => {
  assert.throws(() => canonicalHost(42 as unknown as string), HostError);
});

// --- hostKind ------------------------------------------------------------

Deno.test("hostKind() tells domains from addresses", () => {
  assert.equal(hostKind("example.com"), "domain");
  assert.equal(hostKind("x.1e"), "domain");
  assert.equal(hostKind("127.0.0.1"), "ipv4");
  assert.equal(hostKind("fe80::1"), "ipv6");
  assert.equal(hostKind(canonicalHost("2852039166")), "ipv4");
});

// --- parseHostPattern ----------------------------------------------------

Deno.test("parseHostPattern() accepts hosts, wildcards, ports and addresses", () => {
  const cases: [string, string, string, number | null][] = [
    ["api.example.com", "exact", "api.example.com", null],
    ["API.Example.COM.", "exact", "api.example.com", null],
    ["*.example.com", "wildcard", "example.com", null],
    ["*.Example.com.", "wildcard", "example.com", null],
    ["api.example.com:8443", "exact", "api.example.com", 8443],
    ["*.example.com:8443", "wildcard", "example.com", 8443],
    ["[::1]:443", "exact", "::1", 443],
    ["[::1]", "exact", "::1", null],
    ["10.0.0.5", "exact", "10.0.0.5", null],
    ["10.0.0.5:5432", "exact", "10.0.0.5", 5432],
    ["2852039166:80", "exact", "169.254.169.254", 80],
    ["*.bücher.de", "wildcard", "xn--bcher-kva.de", null],
    ["*.a.b.example.com", "wildcard", "a.b.example.com", null],
    ["x.com:1", "exact", "x.com", 1],
    ["x.com:65535", "exact", "x.com", 65535],
  ];
  for (const [source, kind, host, port] of cases) {
    assert.deepEqual(parseHostPattern(source), { source, kind, host, port });
  }
});

Deno.test("parseHostPattern() refuses patterns that are too broad", () => {
  const refused = {
    "*": /every host/,
    "*:443": /every host/,
    "*.com": /whole top-level domain/,
    "*.COM.": /whole top-level domain/,
    "*.internal": /whole top-level domain/,
    "*.10.0.0.1": /IP address/,
    "*.0.1": /IP address/,
    "*.[::1]": /IP address/,
  };
  for (const [text, message] of Object.entries(refused)) {
    assert.throws(() => parseHostPattern(text), (error: Error) => {
      assert.ok(error instanceof HostError, text);
      assert.match(error.message, message, text);
      return true;
    });
  }
});

Deno.test("parseHostPattern() refuses a wildcard over a public suffix, ICANN or private section", () => {
  // Anyone can register a name under these: the wildcard would be an
  // exfiltration channel to a stranger's host.
  const refused = {
    "*.co.uk": "'co.uk' is a public suffix",
    "*.vercel.app": "'vercel.app' is a public suffix",
    "*.github.io": "'github.io' is a public suffix",
    "*.s3.amazonaws.com": "'s3.amazonaws.com' is a public suffix",
    "*.Vercel.APP.:443": "'vercel.app' is a public suffix",
    "*.xn--55qx5d.cn": "'xn--55qx5d.cn' is a public suffix",
    "*.公司.cn": "'xn--55qx5d.cn' is a public suffix",
    // A wildcard PSL rule ("*.ck") makes every label below it a suffix.
    "*.anything.ck": "'anything.ck' is a public suffix",
  };
  for (const [text, reason] of Object.entries(refused)) {
    assert.throws(() => parseHostPattern(text), (error: Error) => {
      assert.ok(error instanceof HostError, text);
      assert.ok(error.message.includes(reason), `${text}: ${error.message}`);
      assert.match(error.message, /anyone can register a name/, text);
      assert.match(error.message, /Allow your own names instead/, text);
      return true;
    });
  }
});

Deno.test("parseHostPattern() refuses a wildcard above a public suffix (it covers every name below)", () => {
  // "*.amazonaws.com" matches "bucket.s3.amazonaws.com": anyone's bucket.
  for (const text of ["*.amazonaws.com", "*.windows.net", "*.kawasaki.jp"]) {
    assert.throws(
      () => parseHostPattern(text),
      /covers the public suffix|is a public suffix/,
      text,
    );
  }
  assert.throws(
    () => parseHostPattern("*.amazonaws.com"),
    /it covers the public suffix '[a-z0-9.-]+\.amazonaws\.com'/,
  );
});

Deno.test("parseHostPattern() accepts a wildcard one owner's name deep under a public suffix", () => {
  for (
    const [text, host] of [
      ["*.myapp.vercel.app", "myapp.vercel.app"],
      ["*.me.github.io", "me.github.io"],
      ["*.bucket.s3.amazonaws.com", "bucket.s3.amazonaws.com"],
      ["*.example.co.uk", "example.co.uk"],
      ["*.github.com", "github.com"],
      // An exception rule ("!city.kawasaki.jp") makes the name registrable.
      ["*.city.kawasaki.jp", "city.kawasaki.jp"],
      // A name no rule lists is not a suffix ("internal" is not in the list).
      ["*.corp.internal", "corp.internal"],
    ]
  ) {
    assert.equal(parseHostPattern(text!).host, host, text);
  }
});

Deno.test("parseHostPattern() accepts a public-suffix wildcard only when the caller opts in", () => {
  assert.deepEqual(
    parseHostPattern("*.vercel.app", { allowPublicSuffixWildcard: true }),
    {
      source: "*.vercel.app",
      kind: "wildcard",
      host: "vercel.app",
      port: null,
    },
  );
  assert.equal(
    parseHostPattern("*.amazonaws.com:443", { allowPublicSuffixWildcard: true })
      .host,
    "amazonaws.com",
  );
  // The opt-in never widens the other rules.
  for (const text of ["*.com", "*", "*.10.0.0.1", "intranet"]) {
    assert.throws(
      () => parseHostPattern(text, { allowPublicSuffixWildcard: true }),
      HostError,
      text,
    );
  }
});

Deno.test("parseHostPattern() accepts a public suffix as an exact host (one host, run by the suffix's operator)", () => {
  for (const text of ["co.uk", "vercel.app", "github.io", "s3.amazonaws.com"]) {
    assert.equal(parseHostPattern(text).kind, "exact", text);
  }
});

Deno.test("parseHostPattern() refuses single-label names except localhost", () => {
  // A resolver completes "intranet" with its search domains (ndots:5 in
  // Kubernetes): the host dialled would depend on resolv.conf.
  for (
    const text of ["intranet", "metadata", "INTRANET.", "db:5432", "com", "_x"]
  ) {
    assert.throws(() => parseHostPattern(text), (error: Error) => {
      assert.ok(error instanceof HostError, text);
      assert.match(error.message, /single label/, text);
      assert.match(error.message, /fully qualified name/, text);
      return true;
    });
  }
  assert.equal(parseHostPattern("localhost").host, "localhost");
  assert.equal(parseHostPattern("LocalHost.:8080").port, 8080);
  // Addresses are not names: a bare number is an IPv4 address.
  assert.equal(parseHostPattern("2130706433").host, "127.0.0.1");
});

Deno.test("parseHostPattern() refuses '*' anywhere but as the whole first label", () => {
  for (
    const text of [
      "*.*.x.com",
      "a.*.com",
      "*x.com",
      "x*.com",
      "**.x.com",
      "x.com.*",
      "*.x.*",
    ]
  ) {
    assert.throws(() => parseHostPattern(text), HostError, text);
  }
});

Deno.test("parseHostPattern() refuses bad ports", () => {
  for (
    const text of [
      "x.com:0",
      "x.com:65536",
      "x.com:99999",
      "x.com:",
      "x.com:https",
      "x.com:+443",
      "x.com:0x1bb",
      "x.com:443 ",
      "[::1]:",
      "[::1]:0",
      "x.com:123456",
    ]
  ) {
    assert.throws(() => parseHostPattern(text), HostError, text);
  }
});

Deno.test("parseHostPattern() refuses schemes, paths, userinfo and bare IPv6", () => {
  const refused = {
    "https://x.com": /scheme/,
    "x.com/a": /path/,
    "user@x.com": /userinfo/,
    "user:pw@x.com": /userinfo/,
    "::1": /brackets/,
    "2001:db8::1:443": /brackets/,
    "[::1]x": /only ':port'/,
    "[::1": /no matching/,
  };
  for (const [text, message] of Object.entries(refused)) {
    assert.throws(() => parseHostPattern(text), (error: Error) => {
      assert.ok(error instanceof HostError, text);
      assert.match(error.message, message, text);
      return true;
    });
  }
});

Deno.test("parseHostPattern() refuses empty labels and control characters", () => {
  for (
    const text of [
      "",
      ".",
      "a..b.com",
      ".x.com",
      "*.",
      "*..x.com",
      "*.x..com",
      "x.com\0",
      "x.com\r\n",
      "*.x.com\n",
      "\tx.com",
    ]
  ) {
    assert.throws(
      () => parseHostPattern(text),
      HostError,
      JSON.stringify(text),
    );
  }
});

// --- matchHost -----------------------------------------------------------

Deno.test("matchHost() exact pattern matches only the same host", () => {
  const list = ["api.example.com"];
  assert.equal(winner(list, "api.example.com"), "api.example.com");
  assert.equal(winner(list, "example.com"), null);
  assert.equal(winner(list, "v1.api.example.com"), null);
  assert.equal(winner(list, "api.example.com.evil.com"), null);
  assert.equal(winner(list, "xapi.example.com"), null);
});

Deno.test("matchHost() wildcard matches subdomains at any depth", () => {
  const list = ["*.example.com"];
  assert.equal(winner(list, "a.example.com"), "*.example.com");
  assert.equal(winner(list, "a.b.example.com"), "*.example.com");
  assert.equal(winner(list, "a.b.c.d.example.com"), "*.example.com");
});

Deno.test("matchHost() wildcard never matches the apex", () => {
  assert.equal(winner(["*.example.com"], "example.com"), null);
  assert.equal(winner(["*.example.com:8443"], "example.com", 8443), null);
});

Deno.test("matchHost() wildcard never matches a look-alike suffix", () => {
  const list = ["*.example.com"];
  assert.equal(winner(list, "evilexample.com"), null);
  assert.equal(winner(list, "example.com.evil.com"), null);
  assert.equal(winner(list, "a.example.co"), null);
  assert.equal(winner(list, "a.example.comx"), null);
});

Deno.test("matchHost() never matches an IP address with a wildcard", () => {
  // No pattern can be "*.<ip>", but an IP must not match a domain wildcard
  // either, whatever its text looks like.
  assert.equal(winner(["*.example.com"], "127.0.0.1"), null);
  assert.equal(winner(["*.example.com"], "::1"), null);
});

Deno.test("matchHost() IP patterns match the same canonical address only", () => {
  assert.equal(winner(["10.0.0.5"], "10.0.0.5"), "10.0.0.5");
  assert.equal(winner(["10.0.0.5"], "10.0.0.6"), null);
  assert.equal(winner(["0x7f.1"], "127.0.0.1"), "0x7f.1");
  assert.equal(winner(["[::1]"], "::1"), "[::1]");
  assert.equal(
    winner(["[::ffff:127.0.0.1]"], "::ffff:7f00:1"),
    "[::ffff:127.0.0.1]",
  );
  // IPv4-mapped IPv6 is a different host text from the IPv4 it carries.
  assert.equal(winner(["127.0.0.1"], "::ffff:7f00:1"), null);
});

Deno.test("matchHost() port-less patterns match ports 443 and 80 only", () => {
  assert.deepEqual(DEFAULT_PORTS, [443, 80]);
  for (const list of [["x.com"], ["*.x.com"]]) {
    const host = list[0] === "x.com" ? "x.com" : "a.x.com";
    assert.equal(winner(list, host, 443), list[0]);
    assert.equal(winner(list, host, 80), list[0]);
    for (const port of [22, 8080, 8443, 0, 65535, -443, 443.5, NaN]) {
      assert.equal(winner(list, host, port), null, `${host}:${port}`);
    }
  }
});

Deno.test("matchHost() a pattern with a port matches that port only", () => {
  for (const list of [["x.com:8443"], ["*.x.com:8443"]]) {
    const host = list[0] === "x.com:8443" ? "x.com" : "a.x.com";
    assert.equal(winner(list, host, 8443), list[0]);
    assert.equal(winner(list, host, 443), null);
    assert.equal(winner(list, host, 80), null);
  }
  assert.equal(winner(["x.com:443"], "x.com", 80), null);
});

Deno.test("matchHost() exact beats wildcard whatever the order", () => {
  const list = ["*.example.com", "api.example.com"];
  assert.equal(winner(list, "api.example.com"), "api.example.com");
  assert.equal(winner(list.toReversed(), "api.example.com"), "api.example.com");
  assert.equal(winner(list, "www.example.com"), "*.example.com");
});

Deno.test("matchHost() the longest wildcard suffix wins whatever the order", () => {
  const list = ["*.example.com", "*.eu.api.example.com", "*.api.example.com"];
  for (const order of [list, list.toReversed()]) {
    assert.equal(winner(order, "x.eu.api.example.com"), "*.eu.api.example.com");
    assert.equal(winner(order, "eu.api.example.com"), "*.api.example.com");
    assert.equal(winner(order, "x.api.example.com"), "*.api.example.com");
    assert.equal(winner(order, "api.example.com"), "*.example.com");
    assert.equal(winner(order, "example.com"), null);
  }
});

Deno.test("matchHost() does not merge entries: a port-bound winner hides no fallback", () => {
  // The exact entry wins on 8443; on 443 only the wildcard matches at all.
  const list = ["*.example.com", "api.example.com:8443"];
  assert.equal(winner(list, "api.example.com", 8443), "api.example.com:8443");
  assert.equal(winner(list, "api.example.com", 443), "*.example.com");
  assert.equal(winner(list, "api.example.com", 22), null);
});

Deno.test("matchHost() prefers an explicit port, then the earlier entry", () => {
  assert.equal(winner(["x.com", "x.com:443"], "x.com", 443), "x.com:443");
  assert.equal(
    winner(["*.x.com", "*.x.com:443"], "a.x.com", 443),
    "*.x.com:443",
  );
  const twins = [
    { pattern: parseHostPattern("x.com"), value: "first" },
    { pattern: parseHostPattern("X.com."), value: "second" },
  ];
  assert.equal(matchHost(twins, "x.com", 443)?.value, "first");
});

Deno.test("matchHost() returns null for an empty list", () => {
  assert.equal(matchHost([], "x.com", 443), null);
});

Deno.test("matchHost() refuses a host that is not canonical", () => {
  const list = entries("x.com", "*.x.com");
  for (
    const host of [
      "X.com",
      "x.com.",
      "a.x.com.",
      "0x7f.1",
      "[::1]",
      "a.x.com\0",
      "bücher.de",
      "",
    ]
  ) {
    assert.throws(
      () => matchHost(list, host, 443),
      HostError,
      JSON.stringify(host),
    );
  }
});
