/**
 * The address guard's own IP parser: strict where resolvers and URL parsers
 * are lenient, so that no text means one address here and another when
 * dialled ("0177.0.0.1" is 127.0.0.1 to inet_aton, "fe80::1%eth0" picks an
 * interface: both are refused).
 *
 * @module
 */

/** An IP address: its family and its 4 or 16 bytes. */
export interface Ip {
  /** IPv4 or IPv6. */
  family: 4 | 6;
  /** The address, network byte order. */
  bytes: Uint8Array;
}

/** An address block: a network address and how many leading bits are fixed. */
export interface Block extends Ip {
  /** How many leading bits are fixed. */
  readonly prefix: number;
}

/**
 * Whether `ip` is inside the block `cidr` (never across families).
 *
 * @param cidr The block.
 * @param ip The address.
 * @returns Whether the first `cidr.prefix` bits are the same.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { contains, parseIp } from "./_ip.ts";
 * const net = { ...parseIp("10.0.0.0")!, prefix: 8 };
 * assert.equal(contains(net, parseIp("10.2.3.4")!), true);
 * assert.equal(contains(net, parseIp("::1")!), false);
 * ```
 */
export function contains(cidr: Block, ip: Ip): boolean {
  if (cidr.family !== ip.family) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) {
    if (ip.bytes[i] !== cidr.bytes[i]) return false;
  }
  const bits = cidr.prefix & 7;
  const mask = (0xff00 >> bits) & 0xff;
  return bits === 0 || ((ip.bytes[whole]! ^ cidr.bytes[whole]!) & mask) === 0;
}

/**
 * `bytes` with every bit after the first `prefix` cleared.
 *
 * @param bytes An address.
 * @param prefix How many leading bits to keep.
 * @returns The network address.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { maskBytes } from "./_ip.ts";
 * assert.deepEqual(maskBytes(new Uint8Array([10, 1, 2, 3]), 12), new Uint8Array([10, 0, 0, 0]));
 * ```
 */
export function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  return bytes.map((byte, i) => {
    const bits = Math.min(8, Math.max(0, prefix - 8 * i));
    return byte & (0xff00 >> bits);
  });
}

/**
 * Strict IPv4 (dotted decimal, no leading zeros) or IPv6 (no zone, no
 * brackets).
 *
 * @param text An address as text.
 * @returns Its family and bytes, or null if it is not one strictly.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseIp } from "./_ip.ts";
 * assert.deepEqual(parseIp("10.0.0.1"), { family: 4, bytes: new Uint8Array([10, 0, 0, 1]) });
 * assert.equal(parseIp("0177.0.0.1"), null);
 * assert.equal(parseIp("fe80::1%eth0"), null);
 * ```
 */
export function parseIp(text: string): Ip | null {
  if (typeof text !== "string" || text.length > 45) return null;
  if (text.includes(":")) {
    const bytes = parseIpv6(text);
    return bytes && { family: 6, bytes };
  }
  const bytes = parseIpv4(text);
  return bytes && { family: 4, bytes };
}

function parseIpv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (const [i, part] of parts.entries()) {
    // "010" is octal to inet_aton and decimal here: refuse the ambiguity.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return null;
    bytes[i] = Number(part);
  }
  return bytes;
}

function parseIpv6(text: string): Uint8Array | null {
  if (!/^[0-9a-fA-F:.]+$/.test(text)) return null;
  let hex = text;
  if (text.includes(".")) {
    // A dotted IPv4 tail ("::ffff:1.2.3.4") becomes two hex groups.
    const tail = text.lastIndexOf(":");
    const v4 = parseIpv4(text.slice(tail + 1));
    if (v4 === null) return null;
    hex = `${text.slice(0, tail + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${
      ((v4[2]! << 8) | v4[3]!).toString(16)
    }`;
  }
  const halves = hex.split("::");
  if (halves.length > 2) return null;
  const groups = halves.map((half) => half === "" ? [] : half.split(":"));
  const count = groups.reduce((sum, g) => sum + g.length, 0);
  if (halves.length === 1 ? count !== 8 : count > 7) return null;
  const words: number[] = [];
  for (const [i, half] of groups.entries()) {
    if (i === 1) words.push(...new Array<number>(8 - count).fill(0));
    for (const group of half) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
      words.push(parseInt(group, 16));
    }
  }
  const bytes = new Uint8Array(16);
  words.forEach((word, i) => {
    bytes[2 * i] = word >> 8;
    bytes[2 * i + 1] = word & 0xff;
  });
  return bytes;
}

/**
 * An address in canonical text (IPv6 compressed as RFC 5952 says).
 *
 * @param ip The address.
 * @returns Its text.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatIp, parseIp } from "./_ip.ts";
 * assert.equal(formatIp(parseIp("fd00:0:0:0:0:0:0:1")!), "fd00::1");
 * ```
 */
export function formatIp(ip: Ip): string {
  if (ip.family === 4) return ip.bytes.join(".");
  const words = [];
  for (let i = 0; i < 16; i += 2) {
    words.push(((ip.bytes[i]! << 8) | ip.bytes[i + 1]!).toString(16));
  }
  // The URL serializer compresses the longest zero run (RFC 5952).
  return new URL(`http://[${words.join(":")}]/`).hostname.slice(1, -1);
}
