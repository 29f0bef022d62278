/**
 * Plain TCP tunnels: what a policy's `tcp` rules open (databases, Redis,
 * SSH). The bytes are carried as they are: no TLS termination, no
 * injection, no echo guard (there is no credential of airlock's in them).
 * The upstream is dialled like every other one (`connectUpstream`: the
 * name resolved once, every address through the address guard, an
 * operator's `connectTo` mapping dialled as given), never pooled, and each
 * tunnel is one audit record: target, rule, bytes each way, duration.
 *
 * @module
 */

import { auditEvent } from "./_audit_event.ts";
import type { BufferedReader, SocketChannel } from "./_channel.ts";
import type { EgressEvent } from "./audit.ts";
import type { SessionContext } from "./session_context.ts";
import { connectUpstream, UpstreamError } from "./upstream.ts";

/** Where a tunnel goes and why it may. */
export interface TcpTunnelTarget {
  /** Canonical host (from the CONNECT target or the name table). */
  host: string;
  /** Port. */
  port: number;
  /** The TCP rule that allowed it. */
  rule: string;
  /** How the program reached the injector. */
  via: "proxy" | "transparent";
}

/** What the caller tells the program when the tunnel opens or fails. */
export interface TcpTunnelHooks {
  /** The upstream is connected (CONNECT answers 200 here). */
  opened?: () => Promise<void>;
  /** The upstream could not be reached (CONNECT answers with a refusal). */
  failed?: (status: number, message: string) => Promise<void>;
}

/**
 * An audit record of a TCP tunnel (or of its refusal).
 *
 * @param ctx The binding.
 * @param started `performance.now()` when the connection arrived.
 * @param target Host, port and how it came.
 * @param fields What happened.
 * @returns The record.
 *
 * @example Usage
 * ```ts ignore
 * ctx.audit(tcpEvent(ctx, started, { host, port, via: "transparent" }, { decision: "deny", rule: "not-in-tcp-rules" }));
 * ```
 */
export function tcpEvent(
  ctx: SessionContext,
  started: number,
  target: Pick<TcpTunnelTarget, "host" | "port" | "via">,
  fields: Partial<EgressEvent> & Pick<EgressEvent, "decision" | "rule">,
): EgressEvent {
  return auditEvent(ctx, started, {
    kind: "tcp",
    method: "TCP",
    scheme: "tcp",
    host: target.host,
    port: target.port,
    path: "",
    via: target.via,
    ...fields,
  });
}

/**
 * Carries one connection to its upstream until either side closes it.
 * Never throws: every outcome is an audit record.
 *
 * @param target The allowed destination.
 * @param reader The program's side (bytes it sent early are still in it).
 * @param client The program's connection.
 * @param ctx The binding.
 * @param hooks What to tell the program on open and on failure.
 * @returns When the tunnel is closed and recorded.
 *
 * @example Usage
 * ```ts ignore
 * await tunnelTcp({ host: "db.internal", port: 5432, rule: "db.internal:5432", via: "transparent" }, reader, client, ctx);
 * ```
 */
export async function tunnelTcp(
  target: TcpTunnelTarget,
  reader: BufferedReader,
  client: SocketChannel,
  ctx: SessionContext,
  hooks: TcpTunnelHooks = {},
): Promise<void> {
  const started = performance.now();
  const exchange = ctx.exchanges.open();
  const record = (fields: Partial<EgressEvent>) =>
    tcpEvent(ctx, started, target, {
      decision: "allow",
      rule: target.rule,
      ...fields,
    });
  try {
    // The run has ended: nothing more is dialled for it.
    if (exchange.cancelled) return;
    let conn: Deno.Conn;
    try {
      ({ conn } = await connectUpstream(
        { host: target.host, port: target.port, tls: false },
        ctx.policy().dial,
      ));
    } catch (error) {
      const e = error instanceof UpstreamError
        ? error
        : new UpstreamError(502, String(error));
      // The guard refusing an address (a private, loopback or metadata
      // address behind an allowed name: SSRF, DNS rebinding) is a decision;
      // an unreachable upstream is an error.
      exchange.record(record({
        decision: e.status === 403 ? "deny" : "error",
        reason: e.message,
      }));
      await hooks.failed?.(e.status, e.message).catch(() => {});
      return;
    }
    let bytesOut = 0;
    let bytesIn = 0;
    exchange.hold(
      () =>
        record({
          reason: "the run ended while the tunnel was open",
          bytesOut,
          bytesIn,
        }),
      () => conn.close(),
    );
    if (exchange.cancelled) {
      conn.close();
      return;
    }
    try {
      await hooks.opened?.();
    } catch {
      conn.close();
      exchange.record(record({ reason: "the program closed the connection" }));
      return;
    }
    const closeBoth = () => {
      client.destroy();
      try {
        conn.close();
      } catch { /* closed */ }
    };
    const outward = (async () => {
      let chunk: Uint8Array | null = reader.takePending();
      try {
        while (chunk !== null) {
          if (chunk.length > 0) {
            await writeAll(conn, chunk);
            bytesOut += chunk.length;
          }
          chunk = await client.read();
        }
        // The program half-closed: so does the upstream side.
        await conn.closeWrite().catch(() => {});
      } catch {
        closeBoth();
      }
    })();
    const inward = (async () => {
      const buffer = new Uint8Array(64 * 1024);
      try {
        for (;;) {
          const n = await conn.read(buffer);
          if (n === null) break;
          await client.write(buffer.slice(0, n));
          bytesIn += n;
        }
        client.socket.end();
      } catch {
        closeBoth();
      }
    })();
    await Promise.all([outward, inward]);
    closeBoth();
    exchange.record(record({ bytesOut, bytesIn }));
  } finally {
    exchange.end();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}
