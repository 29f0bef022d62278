/**
 * The injector: the sandbox's only way out. It runs inside the harness
 * process (see the README for why), owns an ephemeral CA and a pool of
 * upstream connections, and serves each sandbox run on its own unix socket,
 * bind-mounted into that sandbox: the socket IS the sandbox's identity, so
 * there is no token inside the sandbox to steal.
 *
 * @module
 */

import net from "node:net";
import type { AuditSink } from "./audit.ts";
import type { CertificateAuthority } from "./ca.ts";
import { type ActivePolicy, serveConnection } from "./proxy_session.ts";
import { type Resolver, systemResolver } from "./resolver.ts";
import { UpstreamPool } from "./upstream.ts";

/** Options for {@linkcode Injector.create}. */
export interface InjectorOptions {
  /** Name resolution for upstreams; default: the system resolver. */
  resolver?: Resolver;
  /** An existing CA; default: a fresh ephemeral one. */
  ca?: CertificateAuthority;
}

/** What one run's socket serves. */
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
}

/** A live socket serving one run. */
export interface EgressBinding {
  /** The socket's host path. */
  readonly socketPath: string;
  /** Stops accepting and tears down every open connection. */
  close(): Promise<void>;
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
   * Opens a unix socket serving one run.
   *
   * @param options Socket path, identity, policy and audit sink.
   * @returns The binding; close it when the run ends.
   */
  async bind(options: BindOptions): Promise<EgressBinding> {
    if (this.#closed) {
      throw new Error("Cannot bind a closed injector: create a new one");
    }
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => {});
      serveConnection(socket, {
        sandboxId: options.sandboxId,
        runId: options.runId,
        policy: options.policy,
        audit: (event) => {
          try {
            options.audit(event);
          } catch {
            // A failing audit sink must not take the proxy down.
          }
        },
        ca: this.ca,
        pool: this.#pool,
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
      close: () => {
        closing ??= new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }).then(() => {
          this.#bindings.delete(binding);
        });
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
