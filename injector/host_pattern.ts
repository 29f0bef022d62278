/**
 * Host patterns of the egress policy, and a matcher whose rules leave no
 * room for interpretation. Patterns and the hosts matched against them are
 * in the one canonical spelling of canonical_host.ts (re-exported here).
 *
 * Matching rules (the ones E2B, Vercel and srt users rely on):
 * - `x.com` matches `x.com` only;
 * - `*.x.com` matches every subdomain at any depth, never the apex `x.com`,
 *   and never an IP address;
 * - a wildcard may not cover a public suffix (`*.co.uk`, `*.vercel.app`,
 *   `*.amazonaws.com`, which covers `s3.amazonaws.com`) unless the caller
 *   opts in: anyone can register a name there;
 * - a pattern names a fully qualified host: a single label such as
 *   `intranet` (which a resolver would complete with its search domains) is
 *   refused, except `localhost`;
 * - a pattern without a port matches ports 443 and 80 only;
 * - exact beats wildcard, a longer wildcard suffix beats a shorter one, an
 *   explicit port beats the default ports; entries are never merged.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { canonicalHost, matchHost, parseHostPattern } from "./host_pattern.ts";
 *
 * const entries = [{ pattern: parseHostPattern("*.example.com"), value: "api" }];
 * assert.equal(matchHost(entries, canonicalHost("A.Example.COM."), 443)?.value, "api");
 * assert.equal(matchHost(entries, "example.com", 443), null);
 * ```
 *
 * @module
 */

import {
  canonicalHost,
  HostError,
  type HostKind,
  hostKind,
  MAX_HOST_LENGTH,
} from "./canonical_host.ts";
import { publicSuffixUnder } from "./_public_suffix.ts";
import { quote } from "./_quote.ts";

export { canonicalHost, HostError, type HostKind, hostKind };

/**
 * A parsed entry of an allow or deny list; build it with {@linkcode parseHostPattern}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type HostPattern, parseHostPattern } from "./host_pattern.ts";
 *
 * const pattern: HostPattern = parseHostPattern("*.example.com");
 * assert.deepEqual(
 *   { kind: pattern.kind, host: pattern.host, port: pattern.port },
 *   { kind: "wildcard", host: "example.com", port: null },
 * );
 * ```
 */
export interface HostPattern {
  /** The text the pattern was parsed from, for messages and audit. */
  readonly source: string;
  /** `exact` matches one host; `wildcard` matches its strict subdomains. */
  readonly kind: "exact" | "wildcard";
  /** The canonical host; for a wildcard, the suffix after `*.`. */
  readonly host: string;
  /** The one port it matches, or `null` for {@linkcode DEFAULT_PORTS}. */
  readonly port: number | null;
}

/**
 * The ports a pattern without a port matches: HTTPS and HTTP. Anything else
 * (SSH, SMTP, a database) must be named, so "allow github.com" does not also
 * open `github.com:22`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { DEFAULT_PORTS } from "./host_pattern.ts";
 * assert.deepEqual(DEFAULT_PORTS, [443, 80]);
 * ```
 */
export const DEFAULT_PORTS: readonly number[] = Object.freeze([443, 80]);

/**
 * Parses one entry of an allow or deny list: `host`, `host:port`,
 * `*.domain`, `*.domain:port`, an IPv4 address or a bracketed IPv6 address.
 *
 * Refused, with what to write instead: schemes, paths, userinfo, a `*`
 * anywhere but as the whole first label, wildcards over an IP address or a
 * top-level domain, single-label names other than `localhost`, and (unless
 * `options.allowPublicSuffixWildcard`) wildcards that cover a public suffix.
 *
 * @param text The pattern as the user wrote it.
 * @param options What the caller explicitly accepts.
 * @returns The parsed pattern.
 * @throws {HostError} If the pattern is invalid or too broad; the message
 *   says what to write instead.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHostPattern } from "./host_pattern.ts";
 * assert.deepEqual(parseHostPattern("*.Example.com:8443"), {
 *   source: "*.Example.com:8443",
 *   kind: "wildcard",
 *   host: "example.com",
 *   port: 8443,
 * });
 * assert.throws(() => parseHostPattern("*.com"), /whole top-level domain/);
 * assert.throws(() => parseHostPattern("*.vercel.app"), /public suffix/);
 * assert.equal(parseHostPattern("*.myapp.vercel.app").host, "myapp.vercel.app");
 * assert.throws(() => parseHostPattern("intranet"), /single label/);
 * ```
 */
export function parseHostPattern(
  text: string,
  options: ParseHostPatternOptions = {},
): HostPattern {
  if (typeof text !== "string") {
    throw new HostError(
      `Cannot parse host pattern as it must be a string: current type is ${typeof text}`,
    );
  }
  const fail = (why: string): never => {
    throw new HostError(
      `Cannot parse host pattern ${quote(text)} as ${why}`,
    );
  };
  // "https://x.com" would otherwise fail later with a confusing reason.
  if (text.includes("://")) {
    fail("it has a scheme: write the host alone, like 'example.com'");
  }
  // "x.com/api": a host pattern cannot limit paths; that is a rule's job.
  if (text.includes("/")) {
    fail("it has a path: write the host alone, like 'example.com'");
  }
  // "user@x.com": credentials do not belong in a policy.
  if (text.includes("@")) {
    fail("it has userinfo ('@'): write the host alone, like 'example.com'");
  }

  const { host, portText } = splitPort(text, fail);
  const port = portText === null ? null : parsePort(portText, fail);
  if (host === "*") {
    fail("'*' would match every host: list the hosts, or use '*.example.com'");
  }
  if (host.startsWith("*.")) {
    const suffix = host.slice(2);
    if (suffix.includes("*")) {
      fail(
        "only one '*' is allowed, as the whole first label: write '*.example.com'",
      );
    }
    const canonical = canonicalHost(suffix);
    // "*.10.0.0.1" has no subdomains; a wildcard over an address is a typo
    // that must not silently match nothing (or, worse, something).
    if (hostKind(canonical) !== "domain") {
      fail("a wildcard cannot cover an IP address: write the address itself");
    }
    // "*.com" or "*.internal" would open a whole top-level domain.
    if (!canonical.includes(".")) {
      fail(
        "it would match a whole top-level domain: a wildcard needs at least two labels after '*.', like '*.example.com'",
      );
    }
    // "*.vercel.app", "*.github.io", "*.co.uk": anyone can register a name
    // under a public suffix, so the wildcard lets the program send data to
    // a stranger's host (exfiltration the author did not mean). A wildcard
    // above one ("*.amazonaws.com" covers "s3.amazonaws.com", so every
    // bucket) opens the same door.
    const covered = publicSuffixUnder(canonical);
    if (covered !== null && options.allowPublicSuffixWildcard !== true) {
      fail(publicSuffixReason(canonical, covered));
    }
    return { source: text, kind: "wildcard", host: canonical, port };
  }
  // "a.*.com", "*x.com", "**.x.com": only a whole leading label may be "*".
  if (host.includes("*")) {
    fail("'*' is only allowed as the whole first label: write '*.example.com'");
  }
  const canonical = canonicalHost(host);
  // "intranet", "metadata": a resolver completes a single label with its
  // search domains (Kubernetes pods search three with ndots:5), so the host
  // dialled would depend on the machine's resolv.conf, not on the policy.
  if (
    hostKind(canonical) === "domain" && !canonical.includes(".") &&
    canonical !== "localhost"
  ) {
    fail(
      "it is a single label, which a resolver completes with its search domains: write the fully qualified name, like 'intranet.corp.example'",
    );
  }
  return { source: text, kind: "exact", host: canonical, port };
}

/** Options of {@linkcode parseHostPattern}. */
export interface ParseHostPatternOptions {
  /**
   * Accept a wildcard that covers a public suffix (`*.vercel.app`): every
   * host anyone registers under it matches. Default `false`.
   */
  allowPublicSuffixWildcard?: boolean;
}

/**
 * Why a wildcard over `suffix` is refused; `covered` is the public suffix
 * it reaches (`suffix` itself or a rule below it).
 */
function publicSuffixReason(suffix: string, covered: string): string {
  const what = covered === suffix
    ? `'${suffix}' is a public suffix`
    : `it covers the public suffix '${covered}'`;
  // A wildcard rule ("*.kawasaki.jp") makes every label below it a suffix.
  const base = covered.startsWith("*.") ? `name.${covered.slice(2)}` : covered;
  return `${what}, under which anyone can register a name: the wildcard would let the program reach strangers' hosts. Allow your own names instead, like 'name.${base}' or '*.name.${base}'`;
}

function splitPort(
  text: string,
  fail: (why: string) => never,
): { host: string; portText: string | null } {
  // "*.[::1]" is split like "[::1]" so that it is refused for what it is.
  if (text.startsWith("[") || text.startsWith("*.[")) {
    const end = text.indexOf("]");
    if (end < 0) fail("'[' has no matching ']'");
    const rest = text.slice(end + 1);
    if (rest === "") return { host: text, portText: null };
    if (!rest.startsWith(":")) {
      fail("only ':port' may follow ']': write '[::1]:443'");
    }
    return { host: text.slice(0, end + 1), portText: rest.slice(1) };
  }
  const colon = text.indexOf(":");
  if (colon < 0) return { host: text, portText: null };
  // "2001:db8::1:443" could be an address, or an address and a port.
  if (text.indexOf(":", colon + 1) >= 0) {
    fail(
      "an IPv6 address needs brackets: write '[2001:db8::1]' or '[2001:db8::1]:443'",
    );
  }
  return { host: text.slice(0, colon), portText: text.slice(colon + 1) };
}

function parsePort(text: string, fail: (why: string) => never): number {
  // Digits only: "+443", "0x1bb", "443 " and "" are refused, not coerced.
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) {
    fail(
      `its port must be an integer from 1 to 65535: current value is ${
        quote(text)
      }`,
    );
  }
  return port;
}

/**
 * Finds the one entry whose pattern allows `host:port`.
 *
 * Precedence: an exact pattern beats any wildcard; among wildcards the
 * longest suffix wins; then a pattern naming the port beats one using the
 * default ports; then the earlier entry. Entries are never merged.
 *
 * @param entries The patterns with their values (rules, secrets, ...).
 * @param host A canonical host (see {@linkcode canonicalHost}).
 * @param port The destination port.
 * @returns The winning entry, or `null` if no pattern allows the host.
 * @throws {HostError} If `host` is not canonical: matching a raw host could
 *   let "x.com." or "X.com" slip past a deny entry.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchHost, parseHostPattern } from "./host_pattern.ts";
 * const entries = ["*.example.com", "*.api.example.com", "api.example.com"]
 *   .map((text) => ({ pattern: parseHostPattern(text), value: text }));
 * assert.equal(matchHost(entries, "api.example.com", 443)?.value, "api.example.com");
 * assert.equal(matchHost(entries, "v1.api.example.com", 80)?.value, "*.api.example.com");
 * assert.equal(matchHost(entries, "example.com", 443), null);
 * assert.equal(matchHost(entries, "www.example.com", 22), null);
 * ```
 */
export function matchHost<T>(
  entries: readonly { pattern: HostPattern; value: T }[],
  host: string,
  port: number,
): { pattern: HostPattern; value: T } | null {
  // A raw host could differ from every pattern only in spelling ("X.com.",
  // "0x7f.1") and so dodge a deny entry: insist on the canonical form.
  const canonical = canonicalHost(host);
  if (canonical !== host) {
    throw new HostError(
      `Cannot match host ${
        quote(host)
      } as it is not canonical: pass canonicalHost(host), which is ${
        quote(canonical)
      }`,
    );
  }
  // IP literals have no subdomains: "*.x.com" never matches "1.2.3.4".
  const isDomain = hostKind(host) === "domain";
  let best: { pattern: HostPattern; value: T } | null = null;
  let bestRank = -1;
  for (const entry of entries) {
    const { kind, host: patternHost, port: patternPort } = entry.pattern;
    // A port that is not an integer in 1..65535 equals no pattern port.
    const portMatches = patternPort === null
      ? DEFAULT_PORTS.includes(port)
      : patternPort === port;
    if (!portMatches) continue;
    let rank: number;
    if (kind === "exact") {
      if (patternHost !== host) continue;
      rank = 2 * (MAX_HOST_LENGTH + 2);
    } else {
      // The "." before the suffix keeps "evilx.com" out of "*.x.com" and the
      // apex "x.com" out too (it is not a strict subdomain).
      if (!isDomain || !host.endsWith(`.${patternHost}`)) continue;
      rank = 2 * patternHost.length;
    }
    if (patternPort !== null) rank += 1;
    if (rank > bestRank) {
      best = entry;
      bestRank = rank;
    }
  }
  return best;
}
