/**
 * Dialling upstreams for the injector: the name is resolved ONCE by the
 * injector, every address is checked by the address guard, and the checked
 * address is dialled (no second lookup a DNS-rebinding attacker could
 * answer differently). TLS is verified against the requested name with the
 * system roots plus operator-supplied CAs. Connections are kept alive and
 * pooled, each in its owner's partition (one per sandbox) and under the
 * credentials that were injected on it: a server that authenticates the
 * CONNECTION (NTLM, Negotiate, a session bound to the first request) would
 * otherwise serve one sandbox, or an uncredentialed request, as whoever
 * opened the connection.
 *
 * @module
 */

import { createHmac } from "node:crypto";
import { AddressGuard } from "./address_guard.ts";
import { BufferedReader, ConnChannel } from "./_channel.ts";
import { type ConnectTo, findConnectTo, type Resolver } from "./resolver.ts";

/** What a request is going to. */
export interface UpstreamTarget {
  /** Canonical host from the CONNECT / absolute-form target. */
  host: string;
  /** Port from the target. */
  port: number;
  /** Whether to speak TLS to the upstream. */
  tls: boolean;
}

/**
 * How to reach upstreams for one binding.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import type { DialPolicy } from "./upstream.ts";
 * import { AddressGuard } from "./address_guard.ts";
 * import { parseConnectTo, systemResolver } from "./resolver.ts";
 *
 * const dial: DialPolicy = {
 *   resolver: systemResolver,
 *   // Requests for api.example.test:443 go to a local test server.
 *   connectTo: [parseConnectTo("api.example.test:443:127.0.0.1:8443")],
 *   guard: new AddressGuard({ hostAddresses: [] }),
 *   caCerts: [],
 * };
 * assert.deepEqual(dial.guard.check("169.254.169.254"), {
 *   allowed: false,
 *   reason: "metadata",
 * });
 * ```
 */
export interface DialPolicy {
  /** Name resolution. */
  resolver: Resolver;
  /** Operator mappings of HOST:PORT to another address (curl's --connect-to). */
  connectTo: readonly ConnectTo[];
  /** Which addresses may be dialled. */
  guard: AddressGuard;
  /** Extra CA certificates (PEM) trusted for upstream TLS. */
  caCerts: readonly string[];
}

/** An upstream could not be reached; `status` is what the sandbox gets. */
export class UpstreamError extends Error {
  /** HTTP status for the sandbox: 403 (guard), 502 (unreachable), 504. */
  readonly status: 403 | 502 | 504;
  /**
   * @param status Status for the sandbox.
   * @param message Why (never contains a secret: only names and addresses).
   */
  constructor(status: 403 | 502 | 504, message: string) {
    super(message);
    this.name = "UpstreamError";
    this.status = status;
  }
}

/**
 * Who a connection may be reused for: its owner (one per sandbox; compared
 * by identity) and the header fields the injector set on the request
 * (names and values; empty when nothing was injected).
 */
export interface PoolUse {
  /** The partition's owner: any object, compared by identity. */
  owner: object;
  /** Header fields the injector set or filled with a secret. */
  injected: readonly (readonly [name: string, value: string])[];
}

/** One owner's idle connections, by key. */
interface Partition {
  idle: Map<string, Upstream[]>;
  /** Set by `drop`: a connection of this partition is never pooled again. */
  dropped: boolean;
  /** Recent injections' tags (per owner: a hit says nothing of others). */
  tags: Map<string, string>;
}

/** A pooled upstream connection. */
export interface Upstream {
  /** Pool key within its partition (the injection only as an HMAC). */
  readonly key: string;
  /** The partition it belongs to (opaque). */
  readonly partition: object;
  /** The address actually dialled. */
  readonly address: string;
  /** Whether the address came from an operator mapping (guard not applied). */
  readonly mapped: boolean;
  /** Reader over the connection. */
  readonly reader: BufferedReader;
  /** The connection. */
  readonly channel: ConnChannel;
  /** Whether it came from the pool (it may have been closed meanwhile). */
  readonly reused: boolean;
  /** When it was last released. */
  idleSince: number;
}

const MAX_IDLE_PER_KEY = 16;
// One sandbox cannot hold the harness's file descriptors in idle upstream
// connections (one per allowed subdomain, say) at the others' expense.
const MAX_IDLE_PER_OWNER = 64;
const IDLE_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Keep-alive pool of upstream connections, partitioned by owner.
 *
 * A connection is reused only within its owner's partition (connections are
 * never shared between sandboxes) and only for requests with exactly the
 * injection it was opened with: a server that binds a session to the first
 * request's credentials must never serve another sandbox, or a request that
 * carries no credential, on that session.
 *
 * @example Usage
 * ```ts ignore
 * const pool = new UpstreamPool();
 * const owner = {};
 * const up = await pool.acquire(
 *   { host: "api.example.test", port: 443, tls: true },
 *   dialPolicy,
 *   { owner, injected: [["authorization", "Bearer x"]] },
 * );
 * pool.release(up, true);
 * pool.drop(owner); // e.g. the owner's credentials changed
 * pool.close();
 * ```
 */
export class UpstreamPool {
  #partitions = new Map<object, Partition>();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  // Injections enter pool keys only as an HMAC under a key that never
  // leaves this object: a key string logged or inspected shows no secret.
  #injectionKey = crypto.getRandomValues(new Uint8Array(32));

  /**
   * An idle connection of `use.owner` for `target` with the same injection,
   * or a new one.
   *
   * @param target Destination.
   * @param policy How to dial.
   * @param use The owner and the injected header fields.
   * @returns A connection the caller owns until `release`.
   * @throws {UpstreamError} If resolution, the guard, connect or TLS fails.
   */
  async acquire(
    target: UpstreamTarget,
    policy: DialPolicy,
    use: PoolUse,
  ): Promise<Upstream> {
    const mapping = findConnectTo(policy.connectTo, target.host, target.port);
    let partition = this.#partitions.get(use.owner);
    if (partition === undefined) {
      partition = { idle: new Map(), dropped: false, tags: new Map() };
      this.#partitions.set(use.owner, partition);
    }
    const key = [
      target.tls ? "tls" : "tcp",
      target.host,
      target.port,
      mapping ? `${mapping.host}:${mapping.port}` : "dns",
      policy.caCerts.length === 0 ? "" : fingerprint(policy.caCerts),
      // A connection that carried a credential is reused only for the same
      // credential: an upstream that authenticates the connection would
      // otherwise serve an uncredentialed request as the credential's owner.
      this.#injectionTag(partition, use.injected),
    ].join("|");
    const idle = partition.idle.get(key);
    while (idle && idle.length > 0) {
      const candidate = idle.pop()!;
      // A connection pooled by another run of this owner (another binding,
      // maybe another subnet policy) is only reused if this binding's guard
      // allows its address too.
      if (candidate.channel.closed) continue;
      if (!candidate.mapped && !policy.guard.check(candidate.address).allowed) {
        idle.push(candidate);
        break;
      }
      return { ...candidate, reused: true };
    }
    return await this.#dial(key, partition, target, policy, mapping);
  }

  /**
   * Closes `owner`'s idle connections; those in use are closed when
   * released. Call it when the owner's credentials or policy change (so no
   * later request rides a session the old policy opened) and when the owner
   * goes away.
   *
   * @param owner The partition's owner.
   */
  drop(owner: object): void {
    const partition = this.#partitions.get(owner);
    if (partition === undefined) return;
    this.#partitions.delete(owner);
    partition.dropped = true;
    for (const list of partition.idle.values()) {
      for (const upstream of list) upstream.channel.close();
    }
    partition.idle.clear();
  }

  #injectionTag(partition: Partition, injected: PoolUse["injected"]): string {
    if (injected.length === 0) return "plain";
    const fields = injected.map(([n, v]) => [n.toLowerCase(), v] as const)
      .sort(([a, x], [b, y]) => a < b ? -1 : a > b ? 1 : x < y ? -1 : 1);
    // Length-prefixed, so no two different lists encode alike.
    const encoded = fields.map(([name, value]) =>
      `${name.length}:${name}${value.length}:${value}`
    ).join("");
    // Most requests repeat the last few injections: remember their tags
    // (the HMAC is most of this function's ~20 us). Values stay in this
    // private map as they stay in the compiled policy.
    let tag = partition.tags.get(encoded);
    if (tag === undefined) {
      tag = createHmac("sha256", this.#injectionKey).update(encoded).digest(
        "base64",
      );
      if (partition.tags.size >= 64) partition.tags.clear();
      partition.tags.set(encoded, tag);
    }
    return tag;
  }

  /**
   * Returns a connection to the pool (or closes it).
   *
   * @param upstream The connection.
   * @param reusable Whether the last exchange left it clean (full body read,
   *   no `Connection: close`).
   */
  release(upstream: Upstream, reusable: boolean): void {
    const partition = upstream.partition as Partition;
    if (
      !reusable || upstream.channel.closed ||
      upstream.reader.pending.length > 0 ||
      // Dropped while this exchange ran (policy update, sandbox closed).
      partition.dropped
    ) {
      upstream.channel.close();
      return;
    }
    const list = partition.idle.get(upstream.key) ?? [];
    let held = 0;
    for (const idle of partition.idle.values()) held += idle.length;
    if (list.length >= MAX_IDLE_PER_KEY || held >= MAX_IDLE_PER_OWNER) {
      upstream.channel.close();
      return;
    }
    upstream.idleSince = Date.now();
    list.push(upstream);
    partition.idle.set(upstream.key, list);
    // A server that closes an idle connection is noticed at once, instead of
    // failing the next request that would have reused it.
    upstream.channel.watchIdle(() => {
      const at = list.indexOf(upstream);
      if (at !== -1) list.splice(at, 1);
      upstream.channel.close();
    });
    this.#sweeper ??= setInterval(() => this.#sweep(), IDLE_TIMEOUT_MS);
    Deno.unrefTimer(this.#sweeper);
  }

  /** Closes every idle connection. */
  close(): void {
    for (const owner of [...this.#partitions.keys()]) this.drop(owner);
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
  }

  #sweep(): void {
    const cutoff = Date.now() - IDLE_TIMEOUT_MS;
    for (const partition of this.#partitions.values()) {
      for (const [key, list] of partition.idle) {
        const keep = list.filter((u) =>
          u.idleSince > cutoff && !u.channel.closed
        );
        for (const u of list) if (!keep.includes(u)) u.channel.close();
        if (keep.length === 0) partition.idle.delete(key);
        else partition.idle.set(key, keep);
      }
    }
  }

  async #dial(
    key: string,
    partition: Partition,
    target: UpstreamTarget,
    policy: DialPolicy,
    mapping: { host: string; port: number } | null,
  ): Promise<Upstream> {
    const { conn, address, mapped } = await connectUpstream(
      target,
      policy,
      mapping,
    );
    const channel = new ConnChannel(conn);
    return {
      key,
      partition,
      address,
      mapped,
      reader: new BufferedReader(channel),
      channel,
      reused: false,
      idleSince: 0,
    };
  }
}

/**
 * Opens a new connection to an upstream, never a pooled one: the name is
 * resolved once, every address goes through the address guard (unless an
 * operator's `connectTo` mapping names it), a checked address is dialled,
 * and TLS (when asked) is verified against the name. The pool dials with
 * it; so do plain TCP tunnels, which are never pooled.
 *
 * @param target Destination.
 * @param policy How to dial.
 * @param mapping The `connectTo` mapping for the target; default: looked up.
 * @returns The connection, the address dialled, and whether it came from a
 *   mapping (guard not applied).
 * @throws {UpstreamError} If resolution, the guard, connect or TLS fails.
 *
 * @example Usage
 * ```ts ignore
 * const { conn } = await connectUpstream({ host: "db.example.com", port: 5432, tls: false }, dialPolicy);
 * ```
 */
export async function connectUpstream(
  target: UpstreamTarget,
  policy: DialPolicy,
  mapping: { host: string; port: number } | null = findConnectTo(
    policy.connectTo,
    target.host,
    target.port,
  ),
): Promise<{ conn: Deno.Conn; address: string; mapped: boolean }> {
  let addresses: string[];
  let port = target.port;
  if (mapping) {
    // The operator mapped this name explicitly (tests, demos, local
    // services): the guard does not apply to the mapping's address.
    addresses = await resolve(policy.resolver, mapping.host);
    port = mapping.port;
  } else {
    const resolved = await resolve(policy.resolver, target.host);
    addresses = resolved.filter((a) => policy.guard.check(a).allowed);
    if (addresses.length === 0) {
      const why = resolved.map((a) => {
        const verdict = policy.guard.check(a);
        return `${a}: ${verdict.allowed ? "allowed" : verdict.reason}`;
      }).join(", ");
      // An allowed NAME that points at loopback, metadata or a private
      // range (DNS rebinding, SSRF) is refused by its address.
      throw new UpstreamError(
        403,
        `host '${target.host}' resolves only to blocked addresses (${why})`,
      );
    }
  }
  let lastError: unknown;
  for (const address of addresses) {
    let conn: Deno.TcpConn | undefined;
    try {
      conn = await withTimeout(
        Deno.connect({ hostname: address, port }),
        CONNECT_TIMEOUT_MS,
        `connecting to ${address}:${port}`,
      );
      conn.setNoDelay(true);
      const stream: Deno.Conn = target.tls
        ? await withTimeout(
          Deno.startTls(conn, {
            // Verified against the requested name, never the address.
            hostname: target.host,
            caCerts: [...policy.caCerts],
            alpnProtocols: ["http/1.1"],
          }).then(async (tlsConn) => {
            await tlsConn.handshake();
            return tlsConn;
          }),
          CONNECT_TIMEOUT_MS,
          `TLS handshake with ${target.host}`,
        )
        : conn;
      return { conn: stream, address, mapped: mapping !== null };
    } catch (error) {
      lastError = error;
      try {
        conn?.close();
      } catch { /* closed */ }
      if (error instanceof UpstreamError) throw error;
      if (isTlsError(error)) {
        throw new UpstreamError(
          502,
          `TLS verification of '${target.host}' failed: ${
            (error as Error).message
          }`,
        );
      }
    }
  }
  throw new UpstreamError(
    502,
    `cannot connect to '${target.host}:${target.port}': ${
      (lastError as Error)?.message ?? "no address"
    }`,
  );
}

async function resolve(resolver: Resolver, host: string): Promise<string[]> {
  let addresses: string[];
  try {
    addresses = await resolver(host);
  } catch (error) {
    throw new UpstreamError(
      502,
      `cannot resolve '${host}': ${(error as Error).message}`,
    );
  }
  if (addresses.length === 0) {
    throw new UpstreamError(502, `cannot resolve '${host}': no addresses`);
  }
  return addresses;
}

function isTlsError(error: unknown): boolean {
  const message = (error as Error)?.message ?? "";
  return error instanceof Deno.errors.InvalidData ||
    /certificate|tls|handshake/i.test(message);
}

function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new UpstreamError(504, `timed out ${what}`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const fingerprints = new WeakMap<readonly string[], string>();

/** A pool-key fingerprint of a CA list, computed once per list object. */
function fingerprint(pems: readonly string[]): string {
  let known = fingerprints.get(pems);
  if (known === undefined) {
    known = hashPems(pems);
    fingerprints.set(pems, known);
  }
  return known;
}

function hashPems(pems: readonly string[]): string {
  let hash = 2166136261;
  for (const pem of pems) {
    for (let i = 0; i < pem.length; i++) {
      hash = Math.imul(hash ^ pem.charCodeAt(i), 16777619) >>> 0;
    }
  }
  return hash.toString(16);
}
