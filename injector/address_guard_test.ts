import assert from "node:assert/strict";
import {
  AddressGuard,
  type AddressVerdict,
  cidrContains,
  localAddresses,
  parseCidr,
} from "./address_guard.ts";

const ALLOWED: AddressVerdict = { allowed: true };
const blocked = (reason: string) => ({ allowed: false, reason });

function assertVerdicts(
  guard: AddressGuard,
  cases: Record<string, string | null>,
) {
  for (const [ip, reason] of Object.entries(cases)) {
    assert.deepEqual(
      guard.check(ip),
      reason === null ? ALLOWED : blocked(reason),
      ip,
    );
  }
}

// --- parseCidr / cidrContains --------------------------------------------

Deno.test("parseCidr() parses IPv4 and IPv6 blocks and bare addresses", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), {
    family: 4,
    bytes: new Uint8Array([10, 0, 0, 0]),
    prefix: 8,
    source: "10.0.0.0/8",
  });
  assert.equal(parseCidr("192.0.2.7").prefix, 32);
  assert.equal(parseCidr("::1").prefix, 128);
  const ula = parseCidr("fd00::/8");
  assert.equal(ula.family, 6);
  assert.equal(ula.bytes[0], 0xfd);
  assert.equal(parseCidr("0.0.0.0/0").prefix, 0);
  assert.equal(parseCidr("::/0").prefix, 0);
  assert.equal(parseCidr("::ffff:10.0.0.0/104").prefix, 104);
});

Deno.test("parseCidr() throws SyntaxError for unparseable text", () => {
  for (
    const text of [
      "",
      "10.0.0.0/",
      "10.0.0/8",
      "10.0.0.0/8/8",
      "10.0.0.0/x",
      "10.0.0.0/-1",
      "010.0.0.0/8",
      "x.com/8",
      "[::1]/128",
      "fe80::1%eth0/64",
      " 10.0.0.0/8",
      "10.0.0.0/ 8",
    ]
  ) {
    assert.throws(() => parseCidr(text), SyntaxError, text);
  }
});

Deno.test("parseCidr() throws RangeError for a long prefix or host bits, naming the fix", () => {
  assert.throws(() => parseCidr("10.0.0.0/33"), RangeError);
  assert.throws(() => parseCidr("::/129"), RangeError);
  assert.throws(() => parseCidr("10.0.0.1/8"), /write '10\.0\.0\.0\/8'/);
  assert.throws(() => parseCidr("fd00::1/8"), /write 'fd00::\/8'/);
});

Deno.test("cidrContains() tests prefix bits, not text", () => {
  const net = parseCidr("172.16.0.0/12");
  assert.equal(cidrContains(net, "172.16.0.1"), true);
  assert.equal(cidrContains(net, "172.31.255.255"), true);
  assert.equal(cidrContains(net, "172.32.0.0"), false);
  assert.equal(cidrContains(net, "172.15.255.255"), false);
  assert.equal(cidrContains(parseCidr("0.0.0.0/0"), "8.8.8.8"), true);
  assert.equal(cidrContains(parseCidr("fe80::/10"), "febf::1"), true);
  assert.equal(cidrContains(parseCidr("fe80::/10"), "fec0::1"), false);
  assert.equal(
    cidrContains(parseCidr("2001:db8::/32"), "2001:DB8:0:0:0:0:0:1"),
    true,
  );
});

Deno.test("cidrContains() never mixes families", () => {
  assert.equal(cidrContains(parseCidr("0.0.0.0/0"), "::1"), false);
  assert.equal(cidrContains(parseCidr("::/0"), "127.0.0.1"), false);
});

Deno.test("cidrContains() throws SyntaxError for an invalid address instead of answering false", () => {
  for (
    const ip of ["", "10.0.0", "0x7f.1", "localhost", "fe80::1%lo", "1::2::3"]
  ) {
    assert.throws(
      () => cidrContains(parseCidr("0.0.0.0/0"), ip),
      SyntaxError,
      ip,
    );
  }
});

// --- AddressGuard: built-in ranges ---------------------------------------

Deno.test("AddressGuard.check() allows public addresses", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "93.184.215.14": null,
    "8.8.8.8": null,
    "1.1.1.1": null,
    "172.32.0.1": null,
    "100.128.0.1": null,
    "2606:4700:4700::1111": null,
    "2a00:1450:4001:80b::200e": null,
  });
});

Deno.test("AddressGuard.check() blocks every IPv4 special range", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "127.0.0.1": "loopback",
    "127.255.255.254": "loopback",
    "0.0.0.0": "unspecified",
    "0.1.2.3": "unspecified",
    "169.254.0.1": "link-local",
    "169.254.170.2": "link-local",
    "169.254.169.254": "metadata",
    "100.100.100.200": "metadata",
    "192.0.0.192": "metadata",
    "168.63.129.16": "metadata",
    "10.0.0.1": "private",
    "172.16.0.1": "private",
    "172.31.255.255": "private",
    "192.168.1.1": "private",
    "100.64.0.1": "shared",
    "100.127.255.255": "shared",
    "224.0.0.1": "multicast",
    "239.255.255.250": "multicast",
    "255.255.255.255": "broadcast",
    "240.0.0.1": "reserved",
    "192.0.0.8": "reserved",
    "192.0.2.1": "reserved",
    "192.88.99.1": "reserved",
    "198.18.0.1": "reserved",
    "198.19.255.255": "reserved",
    "198.51.100.1": "reserved",
    "203.0.113.1": "reserved",
  });
});

Deno.test("AddressGuard.check() blocks every IPv6 special range", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "::1": "loopback",
    "0:0:0:0:0:0:0:1": "loopback",
    "::": "unspecified",
    "fe80::1": "link-local",
    "febf:ffff::1": "link-local",
    "fd00:ec2::254": "metadata",
    "fd20:ce::254": "metadata",
    "fd00::1": "private",
    "fc00::1": "private",
    "ff02::1": "multicast",
    "ff05::1:3": "multicast",
    "2001:db8::1": "reserved",
    "2001::1": "reserved",
    "2001:2::1": "reserved",
    "3fff::1": "reserved",
    "fec0::1": "reserved",
    "100::1": "reserved",
    "64:ff9b:1::1": "reserved",
    "4000::1": "reserved",
  });
});

Deno.test("AddressGuard.check() refuses unparseable and ambiguous addresses as invalid", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "": "invalid",
    "localhost": "invalid",
    "0177.0.0.1": "invalid", // octal to inet_aton
    "0x7f.0.0.1": "invalid",
    "2130706433": "invalid",
    "127.1": "invalid",
    "256.0.0.1": "invalid",
    "1.2.3.4.": "invalid",
    " 1.2.3.4": "invalid",
    "fe80::1%eth0": "invalid", // zone id picks a host interface
    "[::1]": "invalid",
    "1::2::3": "invalid",
    "1:2:3:4:5:6:7:8:9": "invalid",
    "12345::": "invalid",
    "::ffff:1.2.3": "invalid",
  });
});

// --- AddressGuard: IPv4 hidden in IPv6 -----------------------------------

Deno.test("AddressGuard.check() judges IPv4-mapped IPv6 by its IPv4 (no ::ffff:127.0.0.1 bypass)", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "::ffff:127.0.0.1": "loopback",
    "::ffff:7f00:1": "loopback",
    "0:0:0:0:0:ffff:7f00:1": "loopback",
    "::FFFF:169.254.169.254": "metadata",
    "::ffff:a9fe:a9fe": "metadata",
    "::ffff:10.0.0.1": "private",
    "::ffff:0.0.0.0": "unspecified",
    "::ffff:8.8.8.8": null,
    "::ffff:0:127.0.0.1": "loopback", // IPv4-translated (SIIT)
  });
});

Deno.test("AddressGuard.check() judges NAT64, 6to4 and IPv4-compatible by their IPv4", () => {
  assertVerdicts(new AddressGuard({ hostAddresses: [] }), {
    "64:ff9b::127.0.0.1": "loopback",
    "64:ff9b::a9fe:a9fe": "metadata",
    "64:ff9b::a00:1": "private",
    "64:ff9b::808:808": null,
    "2002:7f00:1::1": "loopback",
    "2002:a9fe:a9fe::": "metadata",
    "2002:c0a8:101::1": "private",
    "2002:808:808::1": null,
    "::127.0.0.1": "loopback",
    "::7f00:1": "loopback",
    "::169.254.169.254": "metadata",
    "::2": "unspecified", // ::0.0.0.2
    "::8.8.8.8": null,
  });
});

// --- AddressGuard: options -----------------------------------------------

Deno.test("AddressGuard.check() lets allowSubnets open private, shared and reserved ranges", () => {
  const guard = new AddressGuard({
    allowSubnets: [
      "10.1.0.0/16",
      "100.64.0.0/10",
      "198.18.0.0/15",
      "fd12::/16",
    ],
    hostAddresses: [],
  });
  assertVerdicts(guard, {
    "10.1.2.3": null,
    "10.2.0.1": "private",
    "100.64.1.1": null,
    "198.18.0.1": null,
    "fd12::1": null,
    "fd13::1": "private",
    "::ffff:10.1.2.3": null,
  });
});

Deno.test("AddressGuard.check() allowSubnets can never open loopback, link-local, metadata or the like", () => {
  const guard = new AddressGuard({
    allowSubnets: [
      "0.0.0.0/0",
      "::/0",
      "127.0.0.0/8",
      "169.254.169.254",
      "fe80::/10",
    ],
    hostAddresses: ["203.0.113.9"],
  });
  assertVerdicts(guard, {
    "127.0.0.1": "loopback",
    "::1": "loopback",
    "::ffff:127.0.0.1": "loopback",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "169.254.1.1": "link-local",
    "fe80::1": "link-local",
    "169.254.169.254": "metadata",
    "100.100.100.200": "metadata",
    "fd00:ec2::254": "metadata",
    "224.0.0.1": "multicast",
    "ff02::1": "multicast",
    "255.255.255.255": "broadcast",
    "203.0.113.9": "this-host",
    // What the wide allow list may open:
    "10.0.0.1": null,
    "100.64.0.1": null,
    "240.0.0.1": null,
    "fd00::1": null,
  });
});

Deno.test("AddressGuard.check() denySubnets beat allowSubnets", () => {
  const guard = new AddressGuard({
    allowSubnets: ["10.0.0.0/8"],
    denySubnets: ["10.9.0.0/16", "8.8.8.0/24", "2606:4700::/32"],
    hostAddresses: [],
  });
  assertVerdicts(guard, {
    "10.1.0.1": null,
    "10.9.0.1": "denied-subnet",
    "8.8.8.8": "denied-subnet",
    "8.8.4.4": null,
    "2606:4700::1111": "denied-subnet",
    // The IPv4 deny list also covers the IPv6 forms that carry it.
    "::ffff:8.8.8.8": "denied-subnet",
    "64:ff9b::808:808": "denied-subnet",
    "2002:a09:1::": "denied-subnet",
  });
});

Deno.test("AddressGuard.check() blocks this host's own addresses, in every form", () => {
  const guard = new AddressGuard({
    allowSubnets: ["10.0.0.0/8"],
    hostAddresses: ["203.0.113.9", "10.0.0.7", "2001:db9::7"],
  });
  assertVerdicts(guard, {
    "203.0.113.9": "this-host",
    "::ffff:203.0.113.9": "this-host",
    "64:ff9b::cb00:7109": "this-host",
    // An allow list that covers the host's private address does not open it.
    "10.0.0.7": "this-host",
    "10.0.0.8": null,
    "2001:db9::7": "this-host",
    "2001:db9:0:0::7": "this-host",
    "2001:db9::8": null,
  });
});

Deno.test("AddressGuard constructor throws on an invalid subnet or host address", () => {
  assert.throws(
    () => new AddressGuard({ allowSubnets: ["10.0.0.0/33"] }),
    RangeError,
  );
  assert.throws(() => new AddressGuard({ denySubnets: ["nope"] }), SyntaxError);
  assert.throws(
    () => new AddressGuard({ hostAddresses: ["localhost"] }),
    SyntaxError,
  );
});

Deno.test("AddressGuard defaults to the host's interface addresses", () => {
  const guard = new AddressGuard();
  for (const address of localAddresses()) {
    const verdict = guard.check(address);
    assert.equal(verdict.allowed, false, address);
  }
});

Deno.test("localAddresses() returns parseable addresses including loopback", () => {
  const addresses = localAddresses();
  for (const address of addresses) {
    assert.doesNotThrow(() => parseCidr(address), address);
  }
  assert.ok(addresses.includes("127.0.0.1"), String(addresses));
});

Deno.test({
  name: "localAddresses() returns [] without --allow-sys instead of throwing",
  permissions: { sys: false },
  fn() {
    assert.deepEqual(localAddresses(), []);
  },
});

Deno.test("AddressGuard.check() gives every IPv6 wrapping of an IPv4 address that address's verdict", () => {
  const guard = new AddressGuard({
    allowSubnets: ["10.1.0.0/16"],
    denySubnets: ["8.8.4.0/24"],
    hostAddresses: ["198.51.100.9"],
  });
  const ipv4s = [
    "127.0.0.1",
    "0.0.0.0",
    "169.254.169.254",
    "169.254.1.1",
    "10.0.0.1",
    "10.1.0.1",
    "172.20.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "224.0.0.251",
    "255.255.255.255",
    "240.0.0.1",
    "198.51.100.9",
    "8.8.4.4",
    "8.8.8.8",
    "93.184.215.14",
  ];
  for (const ipv4 of ipv4s) {
    const [a, b, c, d] = ipv4.split(".").map(Number) as [
      number,
      number,
      number,
      number,
    ];
    const hex = (x: number, y: number) => ((x << 8) | y).toString(16);
    const wrapped = [
      `::ffff:${ipv4}`,
      `::ffff:${hex(a, b)}:${hex(c, d)}`,
      `::ffff:0:${ipv4}`,
      `64:ff9b::${ipv4}`,
      `2002:${hex(a, b)}:${hex(c, d)}::1`,
      `::${ipv4}`,
    ];
    for (const ipv6 of wrapped) {
      // ::0.0.0.0 is "::" itself, judged as IPv6 unspecified: same verdict.
      assert.deepEqual(
        guard.check(ipv6),
        guard.check(ipv4),
        `${ipv6} vs ${ipv4}`,
      );
    }
  }
});
