/**
 * The one name a leaf certificate is issued for: a plain DNS name or an IP
 * address, validated and in canonical form. Nothing else (wildcards, ports,
 * brackets, control characters) gets into a certificate the sandbox trusts.
 *
 * @module
 */

/** A validated host: a lowercase DNS name or a canonical IP address. */
export type HostName =
  | { type: "dns"; value: string }
  /** `value` is canonical (as in URLs); `sanValue` is what the encoder takes. */
  | { type: "ip"; value: string; sanValue: string };

const IPV4 =
  /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
// Hyphens anywhere, as host_pattern.ts's canonicalHost allows: a host the
// policy admits must not be refused here (harmless in a certificate name).
const DNS_LABEL = /^[a-z0-9_-]{1,63}$/;

/**
 * Validates a host and puts it in canonical form. This is a security
 * boundary: whatever passes is written into a certificate the sandbox trusts.
 *
 * @param host A DNS name or an IP literal without brackets.
 * @returns The validated host.
 * @throws {TypeError} For anything else (wildcards, ports, spaces...).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHost } from "./_leaf_host.ts";
 * assert.deepEqual(parseHost("API.example.test"), { type: "dns", value: "api.example.test" });
 * assert.throws(() => parseHost("*.example.test"), TypeError);
 * ```
 */
export function parseHost(host: string): HostName {
  const invalid = (why: string) =>
    new TypeError(
      `Cannot issue a certificate for host as it ${why}: current value is ${
        quote(host)
      }`,
    );
  if (typeof host !== "string" || host.length === 0) {
    throw invalid("must be a non-empty DNS name or IP address");
  }
  // Wildcards, paths, ports, brackets, userinfo, spaces and control
  // characters all fail this allowlist: a certificate for "*" or
  // "a.test\0.evil.test" must never be issued, however the host was built.
  if (!/^[A-Za-z0-9._:-]+$/.test(host)) {
    throw invalid(
      "must contain only letters, digits, '.', '-', '_' and ':' (no wildcards, brackets, ports or spaces)",
    );
  }
  if (IPV4.test(host)) return { type: "ip", value: host, sanValue: host };
  if (host.includes(":")) {
    // The URL parser is the WHATWG IPv6 parser: strict, and it prints the
    // canonical form (lowercase, "::" compression, no embedded IPv4).
    let canonical: string;
    try {
      canonical = new URL(`http://[${host}]/`).hostname.slice(1, -1);
    } catch {
      throw invalid("is not a valid IPv6 address");
    }
    return { type: "ip", value: canonical, sanValue: expandIpv6(canonical) };
  }
  const name = host.toLowerCase();
  if (name.length > 253) {
    throw invalid("is longer than the 253 characters a DNS name may have");
  }
  const labels = name.split(".");
  if (!labels.every((label) => DNS_LABEL.test(label))) {
    throw invalid(
      "is not a DNS name (labels of 1 to 63 letters, digits, '-' or '_', no empty label or trailing dot)",
    );
  }
  // "127.1" or "10.0.0.010" would be read as IPv4 by URL parsers; a DNS
  // certificate for it would not match, and it is not a canonical host.
  if (/^(?:\d+|0x[0-9a-f]*)$/.test(labels[labels.length - 1]!)) {
    throw invalid(
      "looks like an IPv4 address but is not one in dotted-decimal form",
    );
  }
  return { type: "dns", value: name };
}

/** "2001:db8::1" -> "2001:db8:0:0:0:0:0:1" (input is URL-canonical). */
function expandIpv6(canonical: string): string {
  const [head = "", tail] = canonical.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(zeros).fill("0"), ...right].join(":");
}

/**
 * Quotes a value for an error message; escapes control characters.
 *
 * @param value Anything.
 * @returns Its text, JSON-quoted and cut at 80 characters.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { quote } from "./_leaf_host.ts";
 * assert.equal(quote("a\nb"), '"a\\nb"');
 * ```
 */
export function quote(value: unknown): string {
  const text = String(value);
  return JSON.stringify(
    text.length > 80 ? `${text.slice(0, 80)}...` : text,
  );
}
