/**
 * One canonical spelling per host. Every host the injector compares or
 * dials goes through {@linkcode canonicalHost} first, so the policy, the
 * audit log and the connection all talk about the same host:
 * `API.Example.COM.`, `2852039166` and `bücher.de` each have exactly one
 * form (`api.example.com`, `169.254.169.254`, `xn--bcher-kva.de`). Anything
 * a URL parser, a resolver or a log reader could read two ways is refused
 * instead of guessed at.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalHost, HostError } from "./canonical_host.ts";
 * assert.equal(canonicalHost("API.Example.COM."), "api.example.com");
 * assert.throws(() => canonicalHost("x.com@evil.com"), HostError);
 * ```
 *
 * @module
 */

import { quote } from "./_quote.ts";

/** An invalid host or host pattern; the message says why and what to write. */
export class HostError extends TypeError {
  /** Always `"HostError"`, so logs tell it from other `TypeError`s. */
  override name = "HostError";
}

/**
 * What a canonical host is.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalHost, type HostKind, hostKind } from "./canonical_host.ts";
 *
 * const kind: HostKind = hostKind(canonicalHost("2852039166"));
 * assert.equal(kind, "ipv4"); // 169.254.169.254
 * ```
 */
export type HostKind = "domain" | "ipv4" | "ipv6";

/**
 * The longest DNS name, in characters (RFC 1035), without the root dot.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { MAX_HOST_LENGTH } from "./canonical_host.ts";
 * assert.equal(MAX_HOST_LENGTH, 253);
 * ```
 */
export const MAX_HOST_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;
const IPV4 = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;
const IPV6_TEXT = /^[0-9a-f:.]+$/i;
const DOMAIN_LABEL = /^[a-z0-9_-]+$/;

/**
 * Returns the one canonical spelling of a host: lower case, IDN as punycode,
 * IPv4 in dotted decimal, IPv6 compressed and without brackets, no trailing
 * dot.
 *
 * @param input A host name, IPv4 address (any form a URL parser accepts, such
 *   as `2852039166` or `0x7f.1`), or IPv6 address with or without brackets.
 * @returns The canonical host.
 * @throws {HostError} If the input is not exactly one valid host.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalHost } from "./canonical_host.ts";
 * assert.equal(canonicalHost("API.Example.COM."), "api.example.com");
 * assert.equal(canonicalHost("2852039166"), "169.254.169.254");
 * assert.equal(canonicalHost("[0:0::1]"), "::1");
 * assert.equal(canonicalHost("bücher.de"), "xn--bcher-kva.de");
 * ```
 */
export function canonicalHost(input: string): string {
  if (typeof input !== "string") {
    throw new HostError(
      `Cannot canonicalise host as it must be a string: current type is ${typeof input}`,
    );
  }
  const fail = (why: string): never => {
    throw new HostError(
      `Cannot canonicalise host as ${why}: current value is ${quote(input)}`,
    );
  };
  if (input === "") fail("it is empty");
  // Bound the work and the message before any parsing (a megabyte "host").
  if (input.length > MAX_HOST_LENGTH + 1) {
    fail(`it is longer than ${MAX_HOST_LENGTH} characters`);
  }
  // NUL, CR/LF and other controls truncate C strings, split headers and
  // forge audit lines ("x.com\r\nHost: evil.com").
  if (/\p{Cc}/u.test(input)) {
    fail("it contains a control character");
  }
  // A space ends the host in a request line or log field ("x.com evil.com").
  if (/\s/u.test(input)) fail("it contains whitespace");
  // Invisible characters are dropped by IDNA ("ex\u00ADample.com" becomes
  // "example.com"): the host a reviewer reads would not be the host dialled.
  if (/\p{Default_Ignorable_Code_Point}/u.test(input)) {
    fail("it contains an invisible character");
  }
  // "%" is an IPv6 zone id ("fe80::1%eth0" reaches a host-local interface) or
  // a percent-encoded byte a later decoder would turn into a delimiter.
  if (input.includes("%")) fail("it contains '%'");
  // "x.com@evil.com" is userinfo plus host: a URL parser would dial evil.com.
  if (input.includes("@")) fail("it contains '@' (userinfo)");
  // "evil.com/.x.com", "evil.com#.x.com": the URL parser would end the host
  // at the delimiter while a suffix check sees ".x.com".
  if (/[/\\?#]/.test(input)) {
    fail(
      "it contains a URL delimiter ('/', '\\', '?' or '#'): write the host alone",
    );
  }
  if (input.startsWith("[") || input.includes(":")) return canonicalIpv6(input);
  // "[" or "]" outside an IPv6 literal is never part of a host name.
  if (/[[\]]/.test(input)) {
    fail("it contains '[' or ']' outside an IPv6 address");
  }

  // One trailing dot is the DNS root ("x.com." is "x.com"); more is an error.
  const host = input.endsWith(".") ? input.slice(0, -1) : input;
  if (host.length > MAX_HOST_LENGTH) {
    fail(`it is longer than ${MAX_HOST_LENGTH} characters`);
  }
  checkLabels(host, fail);
  let parsed: string;
  try {
    // The WHATWG parser does IDNA (UTS #46), lower-casing, and the numeric
    // IPv4 forms browsers and curl accept; the checks above make sure "host"
    // is all of the URL's authority.
    parsed = new URL(`http://${host}/`).hostname;
  } catch {
    return fail("it is not a valid host name or IPv4 address");
  }
  if (IPV4.test(parsed)) return parsed;
  // Full-width dots ("a\u3002\u3002b") become ASCII dots only now: check again.
  checkLabels(parsed, fail);
  if (parsed.length > MAX_HOST_LENGTH) {
    fail(`its punycode form is longer than ${MAX_HOST_LENGTH} characters`);
  }
  // The URL parser lets "*", "!", "'", "{" and more into a host; none belongs
  // in a DNS name, and "*" would let a host impersonate a pattern.
  for (const label of parsed.split(".")) {
    if (!DOMAIN_LABEL.test(label)) {
      fail(
        `its label ${
          quote(label)
        } has a character other than a-z, 0-9, '-' and '_'`,
      );
    }
  }
  return parsed;
}

function canonicalIpv6(input: string): string {
  const fail = (why: string): never => {
    throw new HostError(
      `Cannot canonicalise host as ${why}: current value is ${quote(input)}`,
    );
  };
  const bracketed = input.startsWith("[") && input.endsWith("]");
  const inner = bracketed ? input.slice(1, -1) : input;
  // A port or a name with a colon is not an IPv6 address ("x.com:22" must be
  // split by the caller, never half-parsed here).
  if (!IPV6_TEXT.test(inner) || !inner.includes(":")) {
    fail(
      "it contains ':' or brackets but is not an IPv6 address: " +
        "write the port separately and IPv6 as '[::1]' or '::1'",
    );
  }
  try {
    return new URL(`http://[${inner}]/`).hostname.slice(1, -1);
  } catch {
    return fail("it is not a valid IPv6 address");
  }
}

function checkLabels(host: string, fail: (why: string) => never): void {
  for (const label of host.split(".")) {
    // "a..b" and ".x.com" are not DNS names; resolvers disagree on them.
    if (label === "") fail("it has an empty label (a leading dot or '..')");
    if (label.length > MAX_LABEL_LENGTH) {
      fail(`a label is longer than ${MAX_LABEL_LENGTH} characters`);
    }
  }
}

/**
 * Says whether a canonical host is a domain name, an IPv4 or an IPv6 address.
 *
 * @param canonical A host returned by {@linkcode canonicalHost}.
 * @returns The kind of host.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { hostKind } from "./canonical_host.ts";
 * assert.equal(hostKind("example.com"), "domain");
 * assert.equal(hostKind("10.0.0.5"), "ipv4");
 * assert.equal(hostKind("::1"), "ipv6");
 * ```
 */
export function hostKind(canonical: string): HostKind {
  if (canonical.includes(":")) return "ipv6";
  // canonicalHost turns every name whose last label is numeric into dotted
  // decimal, so a dotted quad here is always an address.
  return IPV4.test(canonical) ? "ipv4" : "domain";
}
