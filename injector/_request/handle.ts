/**
 * One proxied HTTP exchange (or WebSocket upgrade), phase by phase: decide
 * on the target, apply the matching rules, inject, forward to the upstream,
 * relay the response through the echo guard. Never throws on the program's
 * or the upstream's behalf: failures become refusals and audit records.
 *
 * The phases share one record, the {@linkcode ProxyExchange}; each lives in
 * its own module beside this one, its security checks next to the comments
 * naming the attacks they stop. The checks, in order:
 *
 * 1. decide.ts: a framing two parsers could read two ways (smuggling); a
 *    target that is not the one asked for (Host or SNI mismatch, CONNECT
 *    inside a tunnel); dot segments (path-rule bypass); TRACE (XST); the
 *    policy's decision on the target.
 * 2. rules.ts: a `response` rule answers locally, nothing goes out.
 * 3. inject.ts: no credential over plain http unless the rule says so;
 *    injected headers replace the program's in any letter case;
 *    placeholders only toward their hosts and over TLS; only codings the
 *    echo guard can read, and no byte ranges, for a credentialed request.
 * 4. forward.ts: nothing dialled or sent for a run that has ended; a pooled
 *    connection only of this sandbox and this credential; every resolved
 *    address through the address guard (in the pool's dial; an operator's
 *    `connectTo` mapping is dialled as given).
 * 5. relay.ts: echoed secrets redacted in header names and values, bodies
 *    and WebSocket frames; a coding or extension the guard cannot read
 *    refused before the first byte; only standard reason phrases; errors
 *    that quote nothing of the upstream.
 *
 * @module
 */

import type { BufferedReader, ByteChannel } from "../_channel.ts";
import type { RequestHead } from "../http1.ts";
import type { Tunnel } from "../_request_target.ts";
import type { SessionContext } from "../session_context.ts";
import { decide } from "./decide.ts";
import { type ProxyExchange, receive } from "./exchange.ts";
import { connect, forward } from "./forward.ts";
import { inject } from "./inject.ts";
import { fail, relay } from "./relay.ts";
import { applyRules } from "./rules.ts";

export type { ProxyExchange };

/**
 * Handles one request from the program.
 *
 * @param request The parsed request head.
 * @param reader The program's connection, positioned at the body.
 * @param client Where answers go.
 * @param tunnel The CONNECT tunnel it came through, if any.
 * @param ctx The binding, with this request's exchange in the run's log.
 * @returns Whether the program's connection can carry another request.
 *
 * @example Usage
 * ```ts ignore
 * const keepOpen = await handleRequest(request, reader, client, tunnel, ctx);
 * ```
 */
export async function handleRequest(
  request: RequestHead,
  reader: BufferedReader,
  client: ByteChannel,
  tunnel: Tunnel | null,
  ctx: SessionContext,
): Promise<boolean> {
  // Each phase hands the exchange on, or ends it having answered the
  // program (true: the connection can carry another request).
  const x = await decide(receive(request, reader, client, tunnel, ctx));
  if (typeof x === "boolean") return x;
  const ended = await applyRules(x) ?? await inject(x);
  if (ended !== undefined) return ended;
  while (true) {
    const upstream = await connect(x);
    if (typeof upstream === "boolean") return upstream;
    let retry = false;
    try {
      return await forward(x, upstream) ?? await relay(x, upstream);
    } catch (error) {
      retry = mayRetry(x, upstream);
      if (!retry) return await fail(x, error);
    } finally {
      ctx.pool.release(upstream, !retry && x.reusable);
    }
  }
}

/** Methods a request may be sent again for (RFC 9110, 9.2.2). */
const IDEMPOTENT = new Set([
  "GET",
  "HEAD",
  "OPTIONS",
  "TRACE",
  "PUT",
  "DELETE",
]);

/**
 * Whether a failed exchange is sent again on another connection: only when
 * a pooled connection the upstream had closed (its close crossing this
 * request) failed before any byte of an answer, for an idempotent request
 * without a body, so nothing the upstream acted on is repeated and nothing
 * of the program's was consumed. A fresh connection's failure is final,
 * so the retries end (each one drops a stale pooled connection).
 */
function mayRetry(x: ProxyExchange, upstream: { reused: boolean }): boolean {
  return upstream.reused && x.answered === null &&
    x.framing.kind === "none" && !x.expectContinue &&
    IDEMPOTENT.has(x.request.method.toUpperCase()) &&
    !x.ctx.exchange?.cancelled;
}
