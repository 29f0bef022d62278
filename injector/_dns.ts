/**
 * The DNS wire format, as far as the sandbox's name answering needs it: a
 * strict parser for one query (the bytes come from the program, through the
 * in-sandbox bridge: hostile) and the answers airlock gives (RFC 1035).
 *
 * Only standard queries with exactly one question are read; the name must
 * be plain labels (no compression pointer, which a query never needs), at
 * most 63 bytes a label and 255 in all. Anything else is refused or dropped,
 * never guessed at.
 *
 * @module
 */

/** Resource record types the answers name. */
export const DNS_TYPE = { A: 1, AAAA: 28 } as const;

/** Response codes airlock uses. */
export const DNS_RCODE = {
  /** NOERROR: an answer, or no record of that type (NODATA). */
  ok: 0,
  /** FORMERR: the query could not be read. */
  formErr: 1,
  /** NXDOMAIN: no such name. */
  nxDomain: 3,
  /** NOTIMP: not a standard query. */
  notImp: 4,
  /** REFUSED: a name airlock will not answer for. */
  refused: 5,
} as const;

/** Largest query read (a UDP query is at most 512 bytes without EDNS). */
export const MAX_DNS_QUERY = 1232;

/** One parsed query. */
export interface DnsQuery {
  /** The query's id (echoed in the answer). */
  id: number;
  /** Whether the client asked for recursion (echoed). */
  recursionDesired: boolean;
  /**
   * The name as asked (letter case kept: it is what the program sent),
   * without the trailing dot; bytes that are not printable ASCII are
   * written `\DDD` (as in a zone file).
   */
  name: string;
  /** Whether every label is printable ASCII (no `\DDD` escapes). */
  printable: boolean;
  /** Record type (1 = A, 28 = AAAA, ...). */
  type: number;
  /** Record class (1 = IN). */
  class: number;
  /** The question section as sent (echoed in the answer). */
  question: Uint8Array;
}

/** Why a query could not be read, with what an answer can still echo. */
export interface DnsParseFailure {
  /** The query's id, when the header was complete. */
  id: number | null;
  /** The response code to answer with (when there is an id). */
  rcode: number;
  /** Why, for the audit. */
  reason: string;
}

/**
 * Reads one DNS query.
 *
 * @param bytes The datagram.
 * @returns The query, or why it cannot be answered.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeDnsQuery, parseDnsQuery } from "./_dns.ts";
 *
 * const query = parseDnsQuery(encodeDnsQuery(7, "API.Example.com", 1));
 * assert.ok("name" in query);
 * assert.equal(query.name, "API.Example.com");
 * ```
 */
export function parseDnsQuery(bytes: Uint8Array): DnsQuery | DnsParseFailure {
  if (bytes.length < 12) {
    return { id: null, rcode: DNS_RCODE.formErr, reason: "short header" };
  }
  if (bytes.length > MAX_DNS_QUERY) {
    return {
      id: null,
      rcode: DNS_RCODE.formErr,
      reason: `query of ${bytes.length} bytes`,
    };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const id = view.getUint16(0);
  const flags = view.getUint16(2);
  // A response sent as a query: never answered (it would loop).
  if (flags & 0x8000) return { id: null, rcode: 0, reason: "not a query" };
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) {
    return { id, rcode: DNS_RCODE.notImp, reason: `opcode ${opcode}` };
  }
  const counts = [4, 6, 8, 10].map((at) => view.getUint16(at));
  // One question, no answers or authority; at most one additional record
  // (an EDNS OPT, which is read past and not echoed).
  if (counts[0] !== 1 || counts[1] !== 0 || counts[2] !== 0 || counts[3]! > 1) {
    return {
      id,
      rcode: DNS_RCODE.formErr,
      reason: `section counts ${counts.join("/")}`,
    };
  }
  const labels: string[] = [];
  let printable = true;
  let at = 12;
  let wire = 0;
  for (;;) {
    const length = bytes[at];
    if (length === undefined) {
      return { id, rcode: DNS_RCODE.formErr, reason: "truncated name" };
    }
    at++;
    if (length === 0) break;
    // 0xC0: a compression pointer; 0x40/0x80: reserved label types.
    if (length > 63) {
      return { id, rcode: DNS_RCODE.formErr, reason: "not a plain label" };
    }
    wire += length + 1;
    if (wire > 254 || at + length > bytes.length) {
      return { id, rcode: DNS_RCODE.formErr, reason: "name too long" };
    }
    let label = "";
    for (const byte of bytes.subarray(at, at + length)) {
      if (byte > 0x20 && byte < 0x7f && byte !== 0x2e && byte !== 0x5c) {
        label += String.fromCharCode(byte);
      } else {
        printable = false;
        label += `\\${String(byte).padStart(3, "0")}`;
      }
    }
    labels.push(label);
    at += length;
  }
  if (at + 4 > bytes.length) {
    return { id, rcode: DNS_RCODE.formErr, reason: "truncated question" };
  }
  const type = view.getUint16(at);
  const klass = view.getUint16(at + 2);
  at += 4;
  return {
    id,
    recursionDesired: (flags & 0x0100) !== 0,
    name: labels.join("."),
    printable,
    type,
    class: klass,
    question: bytes.slice(12, at),
  };
}

/**
 * An answer to a query: the question echoed, and either one A record or
 * none (`rcode` NOERROR with no record is NODATA).
 *
 * @param query The query.
 * @param answer `rcode`, and the IPv4 address of an A record, if any.
 * @returns The response datagram.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { dnsAnswer, encodeDnsQuery, parseDnsQuery } from "./_dns.ts";
 *
 * const query = parseDnsQuery(encodeDnsQuery(7, "api.example.com", 1));
 * assert.ok("name" in query);
 * const bytes = dnsAnswer(query, { rcode: 0, address: "127.64.0.1" });
 * assert.deepEqual([...bytes.subarray(-4)], [127, 64, 0, 1]);
 * ```
 */
export function dnsAnswer(
  query: DnsQuery,
  answer: { rcode: number; address?: string; ttl?: number },
): Uint8Array {
  const record = answer.address === undefined
    ? null
    : ipv4Bytes(answer.address);
  const size = 12 + query.question.length + (record ? 16 : 0);
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, query.id);
  // QR, AA (airlock is the authority for every name it answers), RD as
  // asked, RA.
  view.setUint16(
    2,
    0x8000 | 0x0400 | (query.recursionDesired ? 0x0100 : 0) | 0x0080 |
      (answer.rcode & 0xf),
  );
  view.setUint16(4, 1);
  view.setUint16(6, record ? 1 : 0);
  bytes.set(query.question, 12);
  if (record) {
    let at = 12 + query.question.length;
    view.setUint16(at, 0xc00c); // the name: a pointer to the question's
    view.setUint16(at + 2, DNS_TYPE.A);
    view.setUint16(at + 4, 1); // IN
    view.setUint32(at + 6, answer.ttl ?? 60);
    view.setUint16(at + 10, 4);
    at += 12;
    bytes.set(record, at);
  }
  return bytes;
}

/**
 * A header-only answer for a query whose question could not be read.
 *
 * @param id The query's id.
 * @param rcode The response code.
 * @returns The response datagram.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { dnsError } from "./_dns.ts";
 * assert.equal(dnsError(9, 1)[3]! & 0xf, 1);
 * ```
 */
export function dnsError(id: number, rcode: number): Uint8Array {
  const bytes = new Uint8Array(12);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, id);
  view.setUint16(2, 0x8000 | 0x0080 | (rcode & 0xf));
  return bytes;
}

/**
 * Encodes a query (tests and the bridge's self-check use it).
 *
 * @param id The id.
 * @param name A dotted name of printable labels.
 * @param type The record type.
 * @returns The datagram.
 *
 * @example Usage
 * ```ts
 * import { encodeDnsQuery } from "./_dns.ts";
 * console.log(encodeDnsQuery(1, "example.com", 28).length); // 29
 * ```
 */
export function encodeDnsQuery(
  id: number,
  name: string,
  type: number,
): Uint8Array {
  const labels = name.split(".").filter((l) => l !== "").map((l) =>
    new TextEncoder().encode(l)
  );
  const size = 12 + labels.reduce((n, l) => n + l.length + 1, 0) + 1 + 4;
  const bytes = new Uint8Array(size);
  const view = new DataView(bytes.buffer);
  view.setUint16(0, id);
  view.setUint16(2, 0x0100); // RD
  view.setUint16(4, 1);
  let at = 12;
  for (const label of labels) {
    bytes[at++] = label.length;
    bytes.set(label, at);
    at += label.length;
  }
  bytes[at++] = 0;
  view.setUint16(at, type);
  view.setUint16(at + 2, 1);
  return bytes;
}

/**
 * The name of a record type, for audit records (`A`, `AAAA`, `TYPE65`).
 *
 * @param type The type number.
 * @returns Its name.
 *
 * @example Usage
 * ```ts
 * import { dnsTypeName } from "./_dns.ts";
 * console.log(dnsTypeName(28), dnsTypeName(16)); // "AAAA TXT"
 * ```
 */
export function dnsTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

const TYPE_NAMES: Record<number, string> = {
  1: "A",
  2: "NS",
  5: "CNAME",
  6: "SOA",
  12: "PTR",
  15: "MX",
  16: "TXT",
  28: "AAAA",
  33: "SRV",
  64: "SVCB",
  65: "HTTPS",
  255: "ANY",
};

function ipv4Bytes(address: string): Uint8Array {
  const parts = address.split(".").map(Number);
  if (
    parts.length !== 4 ||
    parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)
  ) {
    throw new TypeError(
      `Cannot answer with '${address}' as it is not a dotted IPv4 address`,
    );
  }
  return new Uint8Array(parts);
}
