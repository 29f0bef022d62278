/**
 * Name resolution for the injector, and curl-style `--connect-to` overrides.
 *
 * The injector resolves an allowed name once, checks every address with the
 * address guard, and dials a checked address: the sandbox never gets a
 * second lookup that could answer differently (DNS rebinding). A
 * {@linkcode Resolver} is a plain function so tests can plug in a fixed one.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findConnectTo, parseConnectTo } from "./resolver.ts";
 *
 * const overrides = [parseConnectTo("api.example.com:443:[::1]:8443")];
 * assert.deepEqual(findConnectTo(overrides, "API.example.com", 443), { host: "::1", port: 8443 });
 * ```
 *
 * @module
 */

import { lookup } from "node:dns/promises";
import { canonicalHost, HostError, hostKind } from "./host_pattern.ts";
import { quote } from "./_quote.ts";

/**
 * Turns a canonical host into the addresses it resolves to, in canonical
 * text (see `canonicalHost`). Rejects if the name does not resolve. A host
 * is always a fully qualified name without its trailing dot: a resolver
 * must never complete it with search domains ({@linkcode systemResolver}
 * asks DNS for `host.`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import type { Resolver } from "./resolver.ts";
 *
 * // A fixed table, as tests use: unknown names do not resolve.
 * const table: Record<string, string[]> = { "api.example.test": ["127.0.0.1"] };
 * const resolver: Resolver = (host) =>
 *   table[host]
 *     ? Promise.resolve(table[host])
 *     : Promise.reject(new Error(`Cannot resolve '${host}'`));
 * assert.deepEqual(await resolver("api.example.test"), ["127.0.0.1"]);
 * ```
 */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * One `--connect-to` entry: requests for `host:port` go to `toHost:toPort`.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ConnectTo, parseConnectTo } from "./resolver.ts";
 *
 * const entry: ConnectTo = parseConnectTo("api.example.test:443:127.0.0.1:8443");
 * assert.deepEqual(
 *   { host: entry.host, port: entry.port, to: `${entry.toHost}:${entry.toPort}` },
 *   { host: "api.example.test", port: 443, to: "127.0.0.1:8443" },
 * );
 * ```
 */
export interface ConnectTo {
  /** The canonical request host, or `null` for any host. */
  readonly host: string | null;
  /** The request port, or `null` for any port. */
  readonly port: number | null;
  /** The canonical host to connect to instead. */
  readonly toHost: string;
  /** The port to connect to instead. */
  readonly toPort: number;
  /** The text it was parsed from. */
  readonly source: string;
}

/**
 * The hosts file, re-read when it changes (an ad-blocking hosts file can be
 * megabytes: not parsed again for every connection).
 */
class HostsFile {
  readonly #path: string;
  #stamp = "";
  #names = new Map<string, string[]>();

  constructor(path: string) {
    this.#path = path;
  }

  /** The addresses the file lists for a canonical name, in file order. */
  async addresses(host: string): Promise<string[]> {
    let stamp: string;
    try {
      const info = await Deno.stat(this.#path);
      stamp = `${info.ino}:${info.size}:${info.mtime?.getTime()}`;
    } catch {
      // No hosts file: no names from it (as glibc).
      this.#stamp = "";
      this.#names = new Map();
      return [];
    }
    if (stamp !== this.#stamp) {
      const text = await Deno.readTextFile(this.#path).catch(() => "");
      this.#names = parseHostsFile(text);
      this.#stamp = stamp;
    }
    return [...(this.#names.get(host) ?? [])];
  }
}

/** `address name [alias...]` lines, `#` comments; names canonical. */
function parseHostsFile(text: string): Map<string, string[]> {
  const names = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const [address, ...aliases] = line.replace(/#.*/, "").trim().split(/\s+/);
    if (!address || aliases.length === 0) continue;
    let ip: string;
    try {
      ip = canonicalHost(address);
    } catch {
      continue;
    }
    if (hostKind(ip) === "domain") continue;
    for (const alias of aliases) {
      let name: string;
      try {
        name = canonicalHost(alias);
      } catch {
        continue;
      }
      const list = names.get(name) ?? [];
      if (!list.includes(ip)) list.push(ip);
      names.set(name, list);
    }
  }
  return names;
}

/**
 * Options of {@linkcode createSystemResolver}; the defaults are the system's.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createSystemResolver, type SystemResolverOptions } from "./resolver.ts";
 *
 * const options: SystemResolverOptions = {
 *   hostsFile: "/nonexistent",
 *   lookup: () => Promise.resolve([{ address: "192.0.2.1" }]),
 * };
 * assert.deepEqual(await createSystemResolver(options)("a.example"), ["192.0.2.1"]);
 * ```
 */
export interface SystemResolverOptions {
  /** The hosts file consulted first; default `/etc/hosts`. */
  hostsFile?: string;
  /**
   * The DNS lookup, handed a fully qualified name (ending in `.`); default
   * `getaddrinfo` through `node:dns`.
   */
  lookup?: (fqdn: string) => Promise<{ address: string }[]>;
}

/**
 * Makes a resolver that works as the operating system's would for a fully
 * qualified name: the hosts file first (exact name), then `localhost` names
 * as loopback (RFC 6761, never asked of DNS), then DNS for the name with a
 * trailing dot, so the resolver's search domains never apply.
 *
 * Why the dot: `getaddrinfo("api.example.com")` under Kubernetes'
 * `ndots:5` first asks for `api.example.com.<namespace>.svc.cluster.local`
 * and the other search domains; whatever answers there (a wildcard record,
 * a service someone named `example.com`) would be dialled for a name the
 * policy allowed. Given `api.example.com.`, the resolver asks for that
 * name only. glibc does not match a name with a trailing dot against the
 * hosts file, so the hosts file is read here.
 *
 * @param options Where the hosts file is and how DNS is asked (tests).
 * @returns A {@linkcode Resolver}; it rejects a host that is not canonical
 *   with {@linkcode HostError}, and returns an IP literal as itself.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { createSystemResolver } from "./resolver.ts";
 * const asked: string[] = [];
 * const resolve = createSystemResolver({
 *   hostsFile: "/nonexistent",
 *   lookup: (fqdn) => {
 *     asked.push(fqdn);
 *     return Promise.resolve([{ address: "192.0.2.10" }]);
 *   },
 * });
 * assert.deepEqual(await resolve("api.example.com"), ["192.0.2.10"]);
 * assert.deepEqual(asked, ["api.example.com."]);
 * ```
 */
export function createSystemResolver(
  options: SystemResolverOptions = {},
): Resolver {
  const hostsFile = new HostsFile(options.hostsFile ?? "/etc/hosts");
  const ask = options.lookup ??
    ((fqdn: string) => lookup(fqdn, { all: true, verbatim: true }));
  return async (host: string): Promise<string[]> => {
    // getaddrinfo reads "2852039166" or "0x7f.1" as addresses itself: only a
    // canonical name (no numeric forms left in it) may reach it.
    const canonical = canonicalHost(host);
    if (canonical !== host) {
      throw new HostError(
        `Cannot resolve host ${
          quote(host)
        } as it is not canonical: pass canonicalHost(host), which is ${
          quote(canonical)
        }`,
      );
    }
    if (hostKind(host) !== "domain") return [host];
    const listed = await hostsFile.addresses(host);
    if (listed.length > 0) return listed;
    // "localhost" sent to DNS would be answered by whoever runs the
    // resolver (RFC 6761 6.3: it is loopback, always).
    if (host === "localhost" || host.endsWith(".localhost")) {
      return ["127.0.0.1", "::1"];
    }
    // The trailing dot makes the name absolute: no search domain is tried
    // (ndots, "search" in resolv.conf), so the answer is for this name only.
    const results = await ask(`${host}.`);
    return [
      ...new Set(results.map(({ address }) => canonicalAddress(address))),
    ];
  };
}

/**
 * Resolves with the operating system's configuration, every name fully
 * qualified (see {@linkcode createSystemResolver}), deduplicated. An IP
 * literal resolves to itself without any lookup.
 *
 * @param host A canonical host.
 * @returns The addresses, in the resolver's order, each canonical.
 * @throws {HostError} If `host` is not canonical.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemResolver } from "./resolver.ts";
 * assert.deepEqual(await systemResolver("192.0.2.7"), ["192.0.2.7"]);
 * ```
 */
export const systemResolver: Resolver = createSystemResolver();

function canonicalAddress(address: string): string {
  try {
    // inet_ntop writes "::ffff:1.2.3.4"; canonicalHost writes "::ffff:102:304".
    return canonicalHost(address);
  } catch {
    // A scoped "fe80::1%eth0" stays as it is: the address guard refuses it
    // as invalid, visibly, instead of it vanishing from the list.
    return address;
  }
}

/**
 * Parses curl's `--connect-to` syntax, `HOST1:PORT1:HOST2:PORT2`. An empty
 * `HOST1` or `PORT1` matches any; IPv6 addresses go in brackets (`[::1]`).
 * Unlike curl, `HOST2` and `PORT2` are required: an override must say where
 * it goes.
 *
 * @param text The override as the user wrote it.
 * @returns The parsed override, hosts canonical.
 * @throws {SyntaxError} If the text is not four fields, a host is invalid,
 *   or a port is not an integer from 1 to 65535.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConnectTo } from "./resolver.ts";
 * assert.deepEqual(parseConnectTo("::127.0.0.1:8443"), {
 *   host: null,
 *   port: null,
 *   toHost: "127.0.0.1",
 *   toPort: 8443,
 *   source: "::127.0.0.1:8443",
 * });
 * ```
 */
export function parseConnectTo(text: string): ConnectTo {
  const fail = (why: string, cause?: unknown): never => {
    throw new SyntaxError(
      `Cannot parse connect-to ${quote(text)} as ${why}`,
      cause === undefined ? undefined : { cause },
    );
  };
  if (typeof text !== "string") fail("it is not a string");
  const fields = splitFields(text);
  if (fields === null || fields.length !== 4) {
    return fail(
      "it must be HOST1:PORT1:HOST2:PORT2, with IPv6 in brackets: write 'example.com:443:[::1]:8443'",
    );
  }
  const [fromHost, fromPort, toHost, toPort] = fields as [
    string,
    string,
    string,
    string,
  ];
  const host = (field: string, name: string): string => {
    try {
      return canonicalHost(field);
    } catch (error) {
      return fail(
        `${name} is not a valid host (${(error as Error).message})`,
        error,
      );
    }
  };
  const port = (field: string, name: string): number => {
    const value = /^\d{1,5}$/.test(field) ? Number(field) : NaN;
    if (!(value >= 1 && value <= 65535)) {
      fail(
        `${name} must be an integer from 1 to 65535: current value is ${
          quote(field)
        }`,
      );
    }
    return value;
  };
  if (toHost === "") fail("HOST2 is empty: name the host to connect to");
  if (toPort === "") fail("PORT2 is empty: name the port to connect to");
  return {
    host: fromHost === "" ? null : host(fromHost, "HOST1"),
    port: fromPort === "" ? null : port(fromPort, "PORT1"),
    toHost: host(toHost, "HOST2"),
    toPort: port(toPort, "PORT2"),
    source: text,
  };
}

/** Splits on ':' outside brackets; `null` if a '[' field is malformed. */
function splitFields(text: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  while (true) {
    let end: number;
    if (text[i] === "[") {
      const close = text.indexOf("]", i);
      if (close < 0) return null;
      end = close + 1;
      if (end < text.length && text[end] !== ":") return null;
    } else {
      end = text.indexOf(":", i);
      if (end < 0) end = text.length;
    }
    fields.push(text.slice(i, end));
    if (end >= text.length) return fields;
    i = end + 1;
  }
}

/**
 * Finds the override for a request: the first entry whose host and port
 * match, hosts compared in canonical form.
 *
 * @param list Overrides from {@linkcode parseConnectTo}, in priority order.
 * @param host The request host (canonicalised here).
 * @param port The request port.
 * @returns Where to connect instead, or `null` to connect as requested.
 * @throws {HostError} If `host` is not a valid host.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { findConnectTo, parseConnectTo } from "./resolver.ts";
 * const list = [parseConnectTo("example.com::127.0.0.1:8080")];
 * assert.deepEqual(findConnectTo(list, "EXAMPLE.com.", 80), { host: "127.0.0.1", port: 8080 });
 * assert.equal(findConnectTo(list, "other.com", 80), null);
 * ```
 */
export function findConnectTo(
  list: readonly ConnectTo[],
  host: string,
  port: number,
): { host: string; port: number } | null {
  const canonical = canonicalHost(host);
  for (const entry of list) {
    if (
      (entry.host === null || entry.host === canonical) &&
      (entry.port === null || entry.port === port)
    ) {
      return { host: entry.toHost, port: entry.toPort };
    }
  }
  return null;
}
