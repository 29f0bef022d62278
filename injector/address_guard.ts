/**
 * The resolved-address guard: the last check before the injector dials.
 *
 * A host name on the allow list says nothing about where it points. A
 * sandboxed program can register `evil.example` with an A record of
 * `169.254.169.254`, or flip it there after the first lookup (DNS
 * rebinding). The injector therefore resolves an allowed name once, asks
 * {@linkcode AddressGuard} about every address, and dials only an address
 * the guard allowed.
 *
 * Blocked always: loopback, unspecified, link-local, cloud metadata,
 * multicast, broadcast and the host's own addresses. Blocked unless an
 * `allowSubnets` entry opens them: private, shared (CGNAT) and reserved
 * ranges. `denySubnets` beat `allowSubnets`. IPv6 forms that carry an IPv4
 * address (`::ffff:127.0.0.1`, NAT64, 6to4, IPv4-compatible) are judged by
 * that IPv4 address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressGuard } from "./address_guard.ts";
 *
 * const guard = new AddressGuard({ allowSubnets: ["10.1.0.0/16"], hostAddresses: [] });
 * assert.deepEqual(guard.check("93.184.215.14"), { allowed: true });
 * assert.deepEqual(guard.check("10.1.2.3"), { allowed: true });
 * assert.deepEqual(guard.check("::ffff:127.0.0.1"), { allowed: false, reason: "loopback" });
 * ```
 *
 * @module
 */

import { contains, formatIp, type Ip, maskBytes, parseIp } from "./_ip.ts";
import { quote } from "./_quote.ts";

/** A parsed CIDR block. */
export interface Cidr {
  /** IPv4 or IPv6. */
  readonly family: 4 | 6;
  /** The network address (4 or 16 bytes, host bits zero). */
  readonly bytes: Uint8Array;
  /** How many leading bits are fixed. */
  readonly prefix: number;
  /** The text it was parsed from. */
  readonly source: string;
}

/**
 * Why an address is refused.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressGuard, type BlockReason } from "./address_guard.ts";
 *
 * const guard = new AddressGuard({ hostAddresses: [] });
 * const reasons: BlockReason[] = ["::1", "169.254.169.254", "192.168.0.1"]
 *   .map((ip) => guard.check(ip))
 *   .flatMap((v) => v.allowed ? [] : [v.reason]);
 * assert.deepEqual(reasons, ["loopback", "metadata", "private"]);
 * ```
 */
export type BlockReason =
  | "loopback"
  | "unspecified"
  | "link-local"
  | "metadata"
  | "private"
  | "shared"
  | "multicast"
  | "broadcast"
  | "reserved"
  | "this-host"
  | "denied-subnet"
  | "invalid";

/**
 * The guard's answer for one address.
 *
 * @example Usage
 * ```ts
 * import { AddressGuard, type AddressVerdict } from "./address_guard.ts";
 *
 * const verdict: AddressVerdict = new AddressGuard({ hostAddresses: [] })
 *   .check("127.0.0.1");
 * console.log(verdict.allowed ? "dial" : `refused: ${verdict.reason}`); // refused: loopback
 * ```
 */
export type AddressVerdict =
  | { allowed: true }
  | { allowed: false; reason: BlockReason };

/**
 * What to open, close, and count as this host.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressGuard, type AddressGuardOptions } from "./address_guard.ts";
 *
 * const options: AddressGuardOptions = {
 *   allowSubnets: ["10.1.0.0/16"],
 *   denySubnets: ["10.1.2.0/24"],
 *   hostAddresses: [],
 * };
 * const guard = new AddressGuard(options);
 * assert.deepEqual(guard.check("10.1.1.1"), { allowed: true });
 * assert.deepEqual(guard.check("10.1.2.1"), { allowed: false, reason: "denied-subnet" });
 * ```
 */
export interface AddressGuardOptions {
  /** CIDRs that open private, shared or reserved ranges (never the others). */
  allowSubnets?: readonly string[];
  /** CIDRs that are always refused; they beat `allowSubnets`. */
  denySubnets?: readonly string[];
  /** The host's own addresses; default: {@linkcode localAddresses}. */
  hostAddresses?: readonly string[];
}

/**
 * Parses `address/prefix`; a bare address is a single-host block.
 *
 * @param text Such as `10.0.0.0/8`, `fd00::/8` or `192.0.2.7`.
 * @returns The parsed block.
 * @throws {SyntaxError} If the address or prefix is not parseable.
 * @throws {RangeError} If the prefix is too long or host bits are set.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCidr } from "./address_guard.ts";
 * assert.equal(parseCidr("fd00::/8").prefix, 8);
 * assert.equal(parseCidr("192.0.2.7").prefix, 32);
 * assert.throws(() => parseCidr("10.0.0.1/8"), RangeError);
 * ```
 */
export function parseCidr(text: string): Cidr {
  const [addressText = "", prefixText, extra] = String(text).split("/");
  const ip = parseIp(addressText);
  if (ip === null || extra !== undefined) {
    throw new SyntaxError(
      `Cannot parse CIDR as it is not 'address/prefix': current value is ${
        quote(text)
      }`,
    );
  }
  const max = ip.family === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText)) {
      throw new SyntaxError(
        `Cannot parse CIDR as its prefix must be a decimal number: current value is ${
          quote(text)
        }`,
      );
    }
    prefix = Number(prefixText);
    if (prefix > max) {
      throw new RangeError(
        `Cannot parse CIDR as an IPv${ip.family} prefix must be 0 to ${max}: current value is ${
          quote(text)
        }`,
      );
    }
  }
  const network = maskBytes(ip.bytes, prefix);
  // "10.0.0.1/8" is ambiguous: the one host or the whole /8? Make the user say.
  if (!network.every((byte, i) => byte === ip.bytes[i])) {
    throw new RangeError(
      `Cannot parse CIDR ${quote(text)} as it has host bits set: write '${
        formatIp({ family: ip.family, bytes: network })
      }/${prefix}'`,
    );
  }
  return { family: ip.family, bytes: network, prefix, source: text };
}

/**
 * Says whether an address lies in a CIDR block. Addresses of the other
 * family never do (judging embedded IPv4 is {@linkcode AddressGuard}'s job).
 *
 * @param cidr A block from {@linkcode parseCidr}.
 * @param ip An IPv4 or IPv6 address.
 * @returns Whether `ip` is inside `cidr`.
 * @throws {SyntaxError} If `ip` is not an address: a silent `false` would
 *   let a malformed address slip past a deny list.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { cidrContains, parseCidr } from "./address_guard.ts";
 * assert.equal(cidrContains(parseCidr("10.0.0.0/8"), "10.200.0.1"), true);
 * assert.equal(cidrContains(parseCidr("fd00::/8"), "fe80::1"), false);
 * ```
 */
export function cidrContains(cidr: Cidr, ip: string): boolean {
  const parsed = parseIp(ip);
  if (parsed === null) {
    throw new SyntaxError(
      `Cannot test CIDR membership as the address is invalid: current value is ${
        quote(ip)
      }`,
    );
  }
  return contains(cidr, parsed);
}

/**
 * Returns every address of this host's network interfaces, or `[]` when the
 * program may not list them (no `--allow-sys`).
 *
 * @returns The addresses, without zone ids.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { localAddresses } from "./address_guard.ts";
 * assert.ok(Array.isArray(localAddresses()));
 * ```
 */
export function localAddresses(): string[] {
  let interfaces: Deno.NetworkInterfaceInfo[];
  try {
    interfaces = Deno.networkInterfaces();
  } catch (error) {
    if (
      error instanceof Deno.errors.NotCapable ||
      error instanceof Deno.errors.PermissionDenied
    ) {
      return [];
    }
    throw error;
  }
  const addresses = interfaces
    .map((info) => info.address.split("%")[0] ?? "")
    .filter((address) => parseIp(address) !== null);
  return [...new Set(addresses)];
}

// Reasons no allowSubnets entry can lift: these reach the host itself, its
// cloud's control plane, or many receivers at once.
const HARD_REASONS: ReadonlySet<BlockReason> = new Set([
  "loopback",
  "unspecified",
  "link-local",
  "metadata",
  "multicast",
  "broadcast",
]);

// First match wins, so metadata sits before the ranges that contain it.
const IPV4_RANGES: readonly [Cidr, BlockReason][] = table([
  // Cloud metadata services hand out instance credentials (the classic SSRF
  // prize). AWS/GCP/Azure/OCI use the link-local one; the others sit in
  // ranges a user may open, so they are named one by one.
  ["169.254.169.254", "metadata"],
  ["100.100.100.200", "metadata"], // Alibaba Cloud, inside 100.64/10
  ["192.0.0.192", "metadata"], // Oracle Cloud (legacy), inside 192.0.0/24
  ["168.63.129.16", "metadata"], // Azure WireServer, a public-looking address
  // "0.0.0.0" dials this host on Linux: a loopback bypass.
  ["0.0.0.0/8", "unspecified"],
  // The host's own services (the injector, databases, debuggers).
  ["127.0.0.0/8", "loopback"],
  // Link-local: cloud agents (ECS task credentials at 169.254.170.2), DHCP.
  ["169.254.0.0/16", "link-local"],
  // The host's LAN or VPC.
  ["10.0.0.0/8", "private"],
  ["172.16.0.0/12", "private"],
  ["192.168.0.0/16", "private"],
  // Carrier-grade NAT; also Tailscale and some clouds' internal services.
  ["100.64.0.0/10", "shared"],
  ["224.0.0.0/4", "multicast"],
  ["255.255.255.255/32", "broadcast"],
  // Never on the public internet; where they route, they route somewhere
  // internal (240/4 is used inside some clouds, 198.18/15 by fake-IP DNS).
  ["240.0.0.0/4", "reserved"],
  ["192.0.0.0/24", "reserved"], // IETF protocol assignments
  ["192.0.2.0/24", "reserved"], // TEST-NET-1
  ["192.88.99.0/24", "reserved"], // deprecated 6to4 relay anycast
  ["198.18.0.0/15", "reserved"], // benchmarking
  ["198.51.100.0/24", "reserved"], // TEST-NET-2
  ["203.0.113.0/24", "reserved"], // TEST-NET-3
]);

const IPV6_RANGES: readonly [Cidr, BlockReason][] = table([
  ["::/128", "unspecified"],
  ["::1/128", "loopback"],
  ["fd00:ec2::254/128", "metadata"], // AWS IMDS over IPv6, inside fc00::/7
  ["fd20:ce::254/128", "metadata"], // GCP metadata over IPv6, inside fc00::/7
  ["fe80::/10", "link-local"],
  ["fc00::/7", "private"], // unique local addresses: the VPC's IPv6
  ["ff00::/8", "multicast"],
  ["2001::/32", "reserved"], // Teredo: an obfuscated IPv4 we do not unwrap
  ["2001:2::/48", "reserved"], // benchmarking
  ["2001:db8::/32", "reserved"], // documentation
  ["3fff::/20", "reserved"], // documentation
]);

// Only 2000::/3 is global unicast. Everything else left after the table
// (site-local fec0::/10, discard 100::/64, local NAT64 64:ff9b:1::/48, ...)
// routes, if at all, somewhere internal.
const IPV6_GLOBAL = parseCidr("2000::/3");

// IPv6 forms that carry an IPv4 address the packet really goes to: judged by
// that address, or "::ffff:127.0.0.1" would bypass the IPv4 loopback check.
const EMBEDDED_IPV4: readonly [Cidr, number][] = [
  [parseCidr("::ffff:0:0/96"), 12], // IPv4-mapped
  [parseCidr("::ffff:0:0:0/96"), 12], // IPv4-translated (SIIT)
  [parseCidr("64:ff9b::/96"), 12], // NAT64 well-known prefix
  [parseCidr("2002::/16"), 2], // 6to4
  [parseCidr("::/96"), 12], // IPv4-compatible (deprecated); "::" and "::1" excluded below
];

/**
 * Decides whether the injector may dial an address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressGuard } from "./address_guard.ts";
 * const guard = new AddressGuard({ denySubnets: ["203.0.113.0/24"], hostAddresses: [] });
 * assert.deepEqual(guard.check("169.254.169.254"), { allowed: false, reason: "metadata" });
 * assert.deepEqual(guard.check("192.168.1.1"), { allowed: false, reason: "private" });
 * ```
 */
export class AddressGuard {
  readonly #allow: readonly Cidr[];
  readonly #deny: readonly Cidr[];
  readonly #hostAddresses: ReadonlySet<string>;

  /**
   * Builds a guard; the host's addresses are read once, here.
   *
   * @param options Subnets to open or close, and the host's own addresses.
   * @throws {SyntaxError} If a subnet or host address is not parseable.
   * @throws {RangeError} If a subnet's prefix is out of range or has host bits.
   */
  constructor(options: AddressGuardOptions = {}) {
    this.#allow = (options.allowSubnets ?? []).map(parseCidr);
    this.#deny = (options.denySubnets ?? []).map(parseCidr);
    const hostAddresses = options.hostAddresses ?? localAddresses();
    this.#hostAddresses = new Set(hostAddresses.map((address) => {
      const ip = parseIp(address);
      if (ip === null) {
        throw new SyntaxError(
          `Cannot build address guard as a host address is invalid: current value is ${
            quote(address)
          }`,
        );
      }
      return key(ip);
    }));
  }

  /**
   * Judges one address, as returned by a resolver.
   *
   * @param ip An IPv4 address in dotted decimal, or an IPv6 address without
   *   brackets or zone id.
   * @returns `{ allowed: true }`, or the reason it is refused.
   *
   * @example Usage
   * ```ts
   * import assert from "node:assert/strict";
   * import { AddressGuard } from "./address_guard.ts";
   * const guard = new AddressGuard({ hostAddresses: [] });
   * assert.deepEqual(guard.check("64:ff9b::a00:1"), { allowed: false, reason: "private" });
   * assert.deepEqual(guard.check("0177.0.0.1"), { allowed: false, reason: "invalid" });
   * ```
   */
  check(ip: string): AddressVerdict {
    // Strict parsing: "0177.0.0.1" is 127.0.0.1 to inet_aton but 177.0.0.1
    // to a naive parser, and "fe80::1%eth0" picks an interface.
    const address = parseIp(ip);
    if (address === null) return { allowed: false, reason: "invalid" };
    const ipv4 = address.family === 4 ? address : embeddedIpv4(address);
    const candidates = ipv4 && ipv4 !== address ? [address, ipv4] : [address];
    const reason = ipv4 ? classify(ipv4, IPV4_RANGES) : classifyIpv6(address);
    if (reason !== null && HARD_REASONS.has(reason)) {
      return { allowed: false, reason };
    }
    // The host's public address reaches its services just like 127.0.0.1.
    if (candidates.some((c) => this.#hostAddresses.has(key(c)))) {
      return { allowed: false, reason: "this-host" };
    }
    // Deny beats allow: an allowSubnets entry cannot reopen a denied one.
    if (this.#deny.some((cidr) => candidates.some((c) => contains(cidr, c)))) {
      return { allowed: false, reason: "denied-subnet" };
    }
    if (reason === null) return { allowed: true };
    if (this.#allow.some((cidr) => candidates.some((c) => contains(cidr, c)))) {
      return { allowed: true };
    }
    return { allowed: false, reason };
  }
}

function classifyIpv6(ip: Ip): BlockReason | null {
  const reason = classify(ip, IPV6_RANGES);
  if (reason !== null) return reason;
  return contains(IPV6_GLOBAL, ip) ? null : "reserved";
}

function classify(
  ip: Ip,
  ranges: readonly [Cidr, BlockReason][],
): BlockReason | null {
  for (const [cidr, reason] of ranges) {
    if (contains(cidr, ip)) return reason;
  }
  return null;
}

function embeddedIpv4(ip: Ip): Ip | null {
  // "::" and "::1" are themselves, not IPv4-compatible 0.0.0.0 and 0.0.0.1.
  if (
    ip.bytes.subarray(0, 15).every((byte) => byte === 0) && ip.bytes[15]! <= 1
  ) {
    return null;
  }
  for (const [cidr, offset] of EMBEDDED_IPV4) {
    if (contains(cidr, ip)) {
      return { family: 4, bytes: ip.bytes.slice(offset, offset + 4) };
    }
  }
  return null;
}

function key(ip: Ip): string {
  return `${ip.family}:${ip.bytes.join(".")}`;
}

function table(rows: readonly [string, BlockReason][]): [Cidr, BlockReason][] {
  return rows.map(([text, reason]) => [parseCidr(text), reason]);
}
