/**
 * One sandbox connection to the injector, from first byte to close.
 *
 * The sandbox speaks HTTP/1.1 proxy protocol: `CONNECT host:port` for https
 * and wss (the injector terminates TLS with a leaf from its own CA), or
 * absolute-form `GET http://host/…` for plain http and ws. Every request is
 * decided on the target the sandbox asked for at CONNECT or in the absolute
 * URL, and re-decided per request (a live policy update applies to the next
 * request). Nothing the sandbox says later (Host header, SNI) can move a
 * request to another host: a mismatch is refused.
 *
 * @module
 */

import tls from "node:tls";
import type { Socket } from "node:net";
import { auditEvent as event } from "./_audit_event.ts";
import { serveBridge } from "./_bridge_session.ts";
import { BufferedReader, type ByteChannel, SocketChannel } from "./_channel.ts";
import { handleRequest } from "./_request/handle.ts";
import { canonicalHost } from "./host_pattern.ts";
import { HttpParseError, parseRequestHead, type RequestHead } from "./http1.ts";
import { parseAuthority, type Tunnel } from "./_request_target.ts";
import { writeRefusal } from "./_responses.ts";
import type { SessionContext } from "./session_context.ts";
import { tunnelTcp } from "./tcp_tunnel.ts";

export type {
  ActivePolicy,
  Placeholder,
  SessionContext,
} from "./session_context.ts";

// One SecureContext per leaf (leafFor returns the same object while the
// leaf is cached): parsing PEM on every tunnel costs more than the handshake.
const secureContexts = new WeakMap<object, tls.SecureContext>();

function secureContextFor(
  leaf: { certPem: string; keyPem: string },
): tls.SecureContext {
  let context = secureContexts.get(leaf);
  if (!context) {
    context = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    secureContexts.set(leaf, context);
  }
  return context;
}

/**
 * Serves one accepted socket until it closes. Never throws: every failure
 * ends as a refusal to the sandbox and/or an audit record.
 *
 * @param socket The accepted unix-socket connection.
 * @param ctx The binding.
 *
 * @example Usage
 * ```ts ignore
 * net.createServer((socket) => serveConnection(socket, ctx)).listen(path);
 * ```
 */
export async function serveConnection(
  socket: Socket,
  ctx: SessionContext,
): Promise<void> {
  const client = new SocketChannel(socket);
  try {
    const reader = new BufferedReader(client);
    const first = await reader.readSome();
    if (first === null) return;
    reader.unread(first);
    if (first[0] === 0) {
      // The in-sandbox bridge (transparent egress): a NUL byte, which no
      // HTTP request starts with.
      await serveBridge(reader, client, ctx, serveTunnel);
      return;
    }
    await serveRequests(reader, client, null, ctx);
  } catch {
    // A broken client connection: nothing to answer to.
  } finally {
    client.destroy();
  }
}

async function serveRequests(
  reader: BufferedReader,
  client: ByteChannel,
  tunnel: Tunnel | null,
  ctx: SessionContext,
): Promise<void> {
  while (true) {
    let head: Uint8Array | null;
    let request: RequestHead;
    try {
      head = await reader.readHead();
      if (head === null) return;
      request = parseRequestHead(head);
    } catch (error) {
      if (error instanceof HttpParseError) {
        // Malformed and smuggling-shaped requests leave a trace too.
        ctx.audit(event(ctx, performance.now(), {
          kind: "request",
          method: "?",
          scheme: tunnel?.secure ? "https" : "http",
          host: tunnel?.host ?? "?",
          port: tunnel?.port ?? 0,
          path: "",
          decision: "deny",
          rule: "malformed",
          reason: error.message,
          status: error.status,
        }));
        await writeRefusal(
          client,
          error.status,
          "bad-request",
          error.message,
          true,
        );
      }
      return;
    }
    if (!tunnel && request.method === "CONNECT") {
      await handleConnect(request, reader, client as SocketChannel, ctx);
      return;
    }
    let keepOpen: boolean;
    // Every record of the exchange goes through it: the run's end waits for
    // it, and writes what it holds if the upstream has not answered yet.
    const exchange = ctx.exchanges.open();
    const exchangeCtx: SessionContext = {
      ...ctx,
      exchange,
      audit: exchange.record,
    };
    try {
      keepOpen = await handleRequest(
        request,
        reader,
        client,
        tunnel,
        exchangeCtx,
      );
    } catch (error) {
      // A bug, not an attack we foresaw: still audited and refused, and the
      // connection closed; the injector itself carries on.
      exchange.record(event(ctx, performance.now(), {
        kind: "request",
        method: request.method.slice(0, 32),
        scheme: tunnel?.secure ? "https" : "http",
        host: tunnel?.host ?? "?",
        port: tunnel?.port ?? 0,
        path: "",
        decision: "error",
        rule: "internal",
        reason: `the injector failed on this request: ${
          (error as Error)?.message ?? error
        }`,
        status: 500,
      }));
      await writeRefusal(
        client,
        500,
        "bad-request",
        "the injector could not handle this request",
        true,
      );
      return;
    } finally {
      exchange.end();
    }
    if (!keepOpen) return;
  }
}

async function handleConnect(
  request: RequestHead,
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
): Promise<void> {
  const started = performance.now();
  const authority = parseAuthority(request.target);
  const base = {
    kind: "connect" as const,
    method: "CONNECT",
    scheme: "https" as const,
    path: "",
  };
  if (!authority) {
    ctx.audit(event(ctx, started, {
      ...base,
      host: request.target.slice(0, 255),
      port: 0,
      decision: "deny",
      rule: "bad-target",
      reason: "CONNECT target is not host:port",
      status: 400,
    }));
    await writeRefusal(
      client,
      400,
      "bad-request",
      `CONNECT target '${request.target.slice(0, 255)}' is not host:port`,
      true,
    );
    return;
  }
  const { host, port } = authority;
  const tcp = ctx.policy().network.decideTcp(host, port);
  if (tcp.allowed) {
    // A TCP rule's destination: a plain tunnel, no TLS termination, no
    // injection (the program's TLS, if any, goes to the upstream as is).
    await tunnelTcp(
      { host, port, rule: tcp.id, via: "proxy" },
      reader,
      client,
      ctx,
      {
        opened: () =>
          client.write(
            new TextEncoder().encode(
              "HTTP/1.1 200 Connection Established\r\n\r\n",
            ),
          ),
        failed: (status, message) =>
          writeRefusal(
            client,
            status,
            status === 403 ? "blocked-address" : "upstream-error",
            `CONNECT to '${host}:${port}' failed: ${message}`,
            true,
          ),
      },
    );
    return;
  }
  // Decided on the CONNECT target: the one thing the sandbox cannot change
  // later in the tunnel.
  const decision = ctx.policy().network.decide(host, port);
  if (!decision.allowed) {
    ctx.audit(event(ctx, started, {
      ...base,
      host,
      port,
      decision: "deny",
      rule: decision.id,
      reason: decision.reason,
      status: 403,
    }));
    await writeRefusal(
      client,
      403,
      "blocked-by-policy",
      `CONNECT to '${host}:${port}' refused: ${decision.reason}`,
      true,
    );
    return;
  }
  // Issued (or found) while the client reads the 200 and sends its
  // ClientHello.
  const leafing = leafFor(host, ctx);
  await client.write(
    new TextEncoder().encode("HTTP/1.1 200 Connection Established\r\n\r\n"),
  );
  ctx.audit(
    event(ctx, started, {
      ...base,
      host,
      port,
      decision: "allow",
      rule: decision.id,
      status: 200,
    }),
  );
  await serveTunnel({ host, port }, reader, client, ctx, leafing);
}

/**
 * The sandbox's own leaf for a host, being issued (or found). The
 * sandbox's own cache: a leaf cached for another sandbox would tell this
 * one that someone contacted the host, and when (its notBefore; a
 * handshake that skips the ~5 ms issuance).
 */
function leafFor(
  host: string,
  ctx: SessionContext,
): Promise<{ certPem: string; keyPem: string }> {
  const leafing = ctx.ca.leafFor(host, { cache: ctx.leaves });
  leafing.catch(() => {});
  return leafing;
}

/**
 * Serves an open tunnel to `host:port`: a CONNECT the policy allowed, or a
 * transparent connection to the name the program looked up. A TLS
 * ClientHello is answered with the sandbox's leaf for the host (the TLS
 * is terminated here); anything else is plain HTTP. Every request inside
 * is decided on the tunnel's host; a Host or SNI naming another is
 * refused.
 *
 * @param tunnel The host and port the tunnel was opened to.
 * @param reader The program's connection, at the tunnel's first byte.
 * @param client The program's connection.
 * @param ctx The binding.
 * @param leafing The host's leaf, if already asked for.
 * @returns When the tunnel is closed.
 *
 * @example Usage
 * ```ts ignore
 * await serveTunnel({ host: "api.example.com", port: 443 }, reader, client, ctx);
 * ```
 */
export async function serveTunnel(
  tunnel: { host: string; port: number },
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
  leafing: Promise<{ certPem: string; keyPem: string }> = leafFor(
    tunnel.host,
    ctx,
  ),
): Promise<void> {
  const { host, port } = tunnel;
  let pending = reader.takePending();
  if (pending.length === 0) {
    const first = await client.read();
    if (first === null) return;
    pending = first;
  }
  if (pending[0] !== 0x16) {
    // Not a TLS ClientHello: plain HTTP (or ws) inside the tunnel.
    reader.unread(pending);
    await serveRequests(reader, client, {
      host,
      port,
      secure: false,
      sniMismatch: null,
    }, ctx);
    return;
  }
  const leaf = await leafing;
  const socket = client.detach(pending);
  const secure = new tls.TLSSocket(socket, {
    isServer: true,
    secureContext: secureContextFor(leaf),
    // HTTP/1.1 only: our parser is the smuggling gate; h2 would bypass it.
    ALPNProtocols: ["http/1.1"],
  });
  const handshake = await new Promise<boolean>((resolve) => {
    secure.once("secure", () => resolve(true));
    secure.once("error", () => resolve(false));
    secure.once("close", () => resolve(false));
  });
  if (!handshake) {
    secure.destroy();
    return;
  }
  const sni =
    (secure as unknown as { servername?: string | false }).servername || null;
  let sniMismatch: string | null = null;
  if (sni) {
    let canonical: string | null = null;
    try {
      canonical = canonicalHost(sni);
    } catch {
      // unparseable SNI: treated as a mismatch
    }
    // Domain fronting: a tunnel opened to an allowed host whose TLS names
    // another host. The certificate is for the CONNECT host either way.
    if (canonical !== host) sniMismatch = sni;
  }
  const inner = new SocketChannel(secure);
  try {
    await serveRequests(new BufferedReader(inner), inner, {
      host,
      port,
      secure: true,
      sniMismatch,
    }, ctx);
  } finally {
    inner.destroy();
  }
}
