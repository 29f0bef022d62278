/**
 * The injector: the sandbox's only way out. It runs inside the harness
 * process (see the README for why), owns an ephemeral CA and a pool of
 * upstream connections, and serves each sandbox run on its own unix socket,
 * bind-mounted into that sandbox: the socket IS the sandbox's identity, so
 * there is no token inside the sandbox to steal.
 *
 * Sandboxes share the injector but not its state: each has an
 * {@linkcode EgressScope} (its own partition of the connection pool and its
 * own leaf certificates), so no sandbox is served on a connection another
 * one's credentials opened, and none can tell from its certificates or
 * handshake times which hosts another contacted.
 *
 * @module
 */

import net from "node:net";
import type { AuditSink } from "./audit.ts";
import type { CertificateAuthority } from "./ca.ts";
import { LeafCache } from "./leaf_cache.ts";
import { DRAIN_MS, ExchangeLog } from "./_exchanges.ts";
import { type ActivePolicy, serveConnection } from "./proxy_session.ts";
import { type Resolver, systemResolver } from "./resolver.ts";
import { SyntheticNames } from "./synthetic_names.ts";
import { UpstreamPool } from "./upstream.ts";

/**
 * Options for {@linkcode Injector.create}.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Injector, type InjectorOptions } from "./injector.ts";
 * import { CertificateAuthority } from "./ca.ts";
 *
 * const options: InjectorOptions = {
 *   ca: await CertificateAuthority.create(),
 *   // Every name resolves to a documentation address (tests, examples).
 *   resolver: () => Promise.resolve(["192.0.2.10"]),
 * };
 * await using injector = await Injector.create(options);
 * assert.equal(injector.ca, options.ca);
 * ```
 */
export interface InjectorOptions {
  /** Name resolution for upstreams; default: the system resolver. */
  resolver?: Resolver;
  /** An existing CA; default: a fresh ephemeral one. */
  ca?: CertificateAuthority;
}

/**
 * What one run's socket serves.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import type { BindOptions } from "./injector.ts";
 * import { AddressGuard } from "./address_guard.ts";
 * import { learnNetworkPolicy } from "./network_policy.ts";
 * import { systemResolver } from "./resolver.ts";
 *
 * const options: BindOptions = {
 *   socketPath: "/tmp/airlock-example/run-1.sock",
 *   sandboxId: "sandbox-1",
 *   runId: "run-1",
 *   policy: () => ({
 *     network: learnNetworkPolicy(),
 *     placeholders: [],
 *     dial: {
 *       resolver: systemResolver,
 *       connectTo: [],
 *       guard: new AddressGuard({ hostAddresses: [] }),
 *       caCerts: [],
 *     },
 *   }),
 *   audit: (event) => console.log(event.decision, event.host),
 * };
 * assert.equal(options.policy().network.decide("example.com", 443).allowed, true);
 * ```
 */
export interface BindOptions {
  /** Host path of the unix socket to create. */
  socketPath: string;
  /** The sandbox. */
  sandboxId: string;
  /** The run. */
  runId?: string;
  /** The policy in force, read at every request (live updates). */
  policy: () => ActivePolicy;
  /** Receives audit events. */
  audit: AuditSink;
  /** Host uid that must be able to connect (the sandbox's); null: keep. */
  ownerUid?: number | null;
  /**
   * The sandbox's scope (from {@linkcode Injector.createScope}), shared by
   * its runs; default: a scope of this binding's own, closed with it.
   */
  scope?: EgressScope;
}

/**
 * A live socket serving one run.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { Injector } from "./injector.ts";
 * import { learnNetworkPolicy } from "./network_policy.ts";
 * import { AddressGuard } from "./address_guard.ts";
 * import { systemResolver } from "./resolver.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await using injector = await Injector.create();
 * const binding = await injector.bind({
 *   socketPath: `${dir}/egress.sock`,
 *   sandboxId: "sandbox-1",
 *   policy: () => ({
 *     network: learnNetworkPolicy(),
 *     placeholders: [],
 *     dial: {
 *       resolver: systemResolver,
 *       connectTo: [],
 *       guard: new AddressGuard({ hostAddresses: [] }),
 *       caCerts: [],
 *     },
 *   }),
 *   audit: () => {},
 * });
 * assert.equal((await Deno.stat(binding.socketPath)).mode! & 0o777, 0o600);
 * await binding.close(); // the run's requests are all in the audit trail now
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export interface EgressBinding {
  /** The socket's host path. */
  readonly socketPath: string;
  /**
   * Settles once the run's in-sandbox bridge (transparent egress) has
   * opened its DNS channel, which it does only when every one of its
   * listeners is bound; or once the binding closes. Hand the program over
   * after it, so no lookup of the program comes before the bridge listens.
   */
  readonly bridgeReady: Promise<void>;
  /**
   * Stops accepting, tears down every client connection, waits (at most
   * about a second) for requests already forwarded to be answered, and
   * writes an audit record for every request still open: when it resolves,
   * every request the run sent upstream is in the audit trail, and nothing
   * more is sent for the run.
   */
  close(): Promise<void>;
}

/**
 * What the runs of one sandbox share in the injector, and no other sandbox
 * does: a partition of the upstream connection pool and a leaf certificate
 * cache. Create one per sandbox with {@linkcode Injector.createScope}.
 *
 * @example Usage
 * ```ts ignore
 * const scope = injector.createScope();
 * await injector.bind({ socketPath, sandboxId, policy, audit, scope });
 * scope.dropConnections(); // the sandbox's credentials changed
 * scope.close(); // the sandbox is gone
 * ```
 */
export interface EgressScope {
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /**
   * Closes the scope's pooled upstream connections (those in use are
   * closed when their exchange ends). Call it when the sandbox's network
   * policy changes: a connection an upstream authenticated under the old
   * credentials must not serve a request made under the new policy.
   */
  dropConnections(): void;
  /** Closes its connections and forgets its leaves; binding it then fails. */
  close(): void;
}

class Scope implements EgressScope {
  readonly leaves = new LeafCache();
  #pool: UpstreamPool;
  #closed = false;

  constructor(pool: UpstreamPool) {
    this.#pool = pool;
  }

  get closed(): boolean {
    return this.#closed;
  }

  dropConnections(): void {
    this.#pool.drop(this);
  }

  close(): void {
    this.#closed = true;
    this.#pool.drop(this);
    this.leaves.clear();
  }
}

/**
 * The egress proxy.
 *
 * @example Usage
 * ```ts ignore
 * await using injector = await Injector.create();
 * const binding = await injector.bind({ socketPath, sandboxId, policy: () => active, audit: console.log });
 * await binding.close();
 * ```
 */
export class Injector implements AsyncDisposable {
  /** The CA every sandbox trusts (and nothing else). */
  readonly ca: CertificateAuthority;
  /** The resolver upstream names go through. */
  readonly resolver: Resolver;
  #pool = new UpstreamPool();
  #bindings = new Set<EgressBinding>();
  #closed = false;

  private constructor(ca: CertificateAuthority, resolver: Resolver) {
    this.ca = ca;
    this.resolver = resolver;
  }

  /**
   * Creates an injector with a fresh CA (~70 ms).
   *
   * @param options Resolver and CA.
   * @returns The injector.
   */
  static async create(options: InjectorOptions = {}): Promise<Injector> {
    // Loaded on first use: the X.509 library is most of the harness's
    // startup cost, and deny-all sandboxes never need it.
    const ca = options.ca ??
      await (await import("./ca.ts")).CertificateAuthority.create();
    const injector = new Injector(ca, options.resolver ?? systemResolver);
    injector.#warmUp();
    return injector;
  }

  /**
   * The first TLS use in a process costs ~40 ms (crypto setup); pay it in
   * the background now rather than in a sandbox's first request. One leaf
   * and a loopback handshake with it, nothing leaves the host.
   */
  #warmUp(): void {
    this.#warming = (async () => {
      const leaf = await this.ca.leafFor("127.0.0.1");
      const tls = await import("node:tls");
      const server = tls.createServer(
        { cert: leaf.certPem, key: leaf.keyPem },
        (s) => s.end(),
      );
      server.on("error", () => {});
      await new Promise<void>((resolve) =>
        server.listen(0, "127.0.0.1", () => resolve())
      );
      const port = (server.address() as { port: number }).port;
      try {
        const conn = await Deno.connectTls({
          hostname: "127.0.0.1",
          port,
          caCerts: [this.ca.certificatePem],
        });
        await conn.handshake().catch(() => {});
        conn.close();
      } catch {
        // Warm-up only: a failure costs nothing but the warm-up.
      } finally {
        server.close();
      }
    })().catch(() => {});
  }

  #warming: Promise<void> = Promise.resolve();

  /** The CA certificate (PEM) to mount into sandboxes. */
  get caCertificatePem(): string {
    return this.ca.certificatePem;
  }

  /**
   * A scope for one sandbox: bindings given it share pooled upstream
   * connections and leaf certificates with each other and with nothing
   * else.
   *
   * @returns The scope; `close()` it when the sandbox goes away.
   */
  createScope(): EgressScope {
    const scope = new Scope(this.#pool);
    this.#scopes.add(scope);
    return scope;
  }

  #scopes = new WeakSet<Scope>();

  /**
   * Opens a unix socket serving one run.
   *
   * @param options Socket path, identity, policy and audit sink.
   * @returns The binding; close it when the run ends.
   */
  async bind(options: BindOptions): Promise<EgressBinding> {
    if (this.#closed) {
      throw new Error("Cannot bind a closed injector: create a new one");
    }
    const given = options.scope;
    if (
      given !== undefined &&
      !(given instanceof Scope && this.#scopes.has(given))
    ) {
      throw new TypeError(
        "Cannot bind with a scope another injector created: use this injector's createScope()",
      );
    }
    if (given?.closed) {
      throw new Error(
        `Cannot bind sandbox '${options.sandboxId}' with a closed scope: create a new scope`,
      );
    }
    // Without a scope the binding is its own: nothing shared with any other.
    const scope = given ?? new Scope(this.#pool);
    const audit: AuditSink = (event) => {
      try {
        options.audit(event);
      } catch {
        // A failing audit sink must not take the proxy down.
      }
    };
    const exchanges = new ExchangeLog(audit);
    // The run's own name table: a name another run looked up means nothing
    // here, so one run's addresses are no way into another's names.
    let bridgeOpened!: () => void;
    const bridgeReady = new Promise<void>((resolve) => bridgeOpened = resolve);
    const bridge = {
      names: new SyntheticNames(),
      opened: () => bridgeOpened(),
    };
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      serveConnection(socket, {
        sandboxId: options.sandboxId,
        runId: options.runId,
        policy: options.policy,
        audit,
        ca: this.ca,
        leaves: scope.leaves,
        pool: this.#pool,
        poolOwner: scope,
        exchanges,
        bridge,
      });
    });
    server.on("error", () => {});
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.socketPath, () => resolve());
    });
    // Only the sandbox's uid may connect: the socket is its identity.
    await Deno.chmod(options.socketPath, 0o600);
    if (options.ownerUid !== undefined && options.ownerUid !== null) {
      await Deno.chown(options.socketPath, options.ownerUid, options.ownerUid);
    }
    let closing: Promise<void> | null = null;
    const binding: EgressBinding = {
      socketPath: options.socketPath,
      bridgeReady,
      close: () => {
        closing ??= (async () => {
          bridgeOpened();
          const stopped = new Promise<void>((resolve) =>
            server.close(() => resolve())
          );
          for (const socket of sockets) socket.destroy();
          // The run is over, but what it sent is still in flight: its
          // result waits for those records (invariant 5), a bounded time.
          await Promise.all([stopped, exchanges.drain(DRAIN_MS)]);
          if (given === undefined) scope.close();
          this.#bindings.delete(binding);
        })();
        return closing;
      },
    };
    this.#bindings.add(binding);
    return binding;
  }

  /** Closes every binding and pooled connection. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#warming;
    await Promise.all([...this.#bindings].map((b) => b.close()));
    this.#pool.close();
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
