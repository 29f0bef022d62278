/**
 * Phase 4, forward: a connection from the sandbox's own partition of the
 * pool (dialled through the address guard), then the request head and
 * body. Nothing is dialled or sent for a run that has ended, and from the
 * moment a request waits for a connection the run's record says where it
 * got to if the run ends first.
 *
 * @module
 */

import { chunkedWriter, rawWriter, readBody } from "../_body.ts";
import { type Upstream, UpstreamError } from "../upstream.ts";
import { build, type ProxyExchange, refuse } from "./exchange.ts";

/**
 * Takes an upstream connection for the exchange.
 *
 * @param x The exchange, its request head built.
 * @returns The connection, or (none) whether the program's connection
 *   stays open.
 *
 * @example Usage
 * ```ts ignore
 * const upstream = await connect(x);
 * if (typeof upstream === "boolean") return upstream;
 * ```
 */
export async function connect(x: ProxyExchange): Promise<Upstream | boolean> {
  const { ctx, target, decision } = x;
  // The run has ended: nothing more is dialled or sent for it.
  if (ctx.exchange?.cancelled) return false;
  // If the run ends while this request waits for a connection, the audit
  // says so (and nothing is sent: see the `cancelled` check in `forward`).
  ctx.exchange?.hold(() =>
    build(x, {
      decision: "error",
      rule: decision.id,
      ...x.applied,
      reason: "the run ended before the request was forwarded",
      status: null,
      injected: x.injected,
      placeholders: x.placeholders,
    })
  );
  try {
    return await ctx.pool.acquire(
      { host: target.host, port: target.port, tls: x.secure },
      x.policy.dial,
      {
        // Never a connection of another sandbox, and one that carried a
        // credential only for that same credential (connection-bound auth:
        // NTLM, Negotiate, sessions keyed on the first request).
        owner: ctx.poolOwner,
        injected: x.headers.filter(([name, value]) =>
          x.injected.includes(name.toLowerCase()) ||
          x.secrets.some((secret) => secret !== "" && value.includes(secret))
        ),
      },
    );
  } catch (error) {
    const e = error instanceof UpstreamError
      ? error
      : new UpstreamError(502, String(error));
    return await refuse(x, {
      status: e.status,
      code: e.status === 403 ? "blocked-address" : "upstream-error",
      message: e.message,
      rule: decision.id,
      // The guard refusing an address is a decision; a failed connect or
      // TLS verification is an error.
      decision: e.status === 403 ? "deny" : "error",
    });
  }
}

/**
 * Sends the request head and body upstream (after our own `100 Continue`
 * when the program asked for one). Throws on a failed write: the driver
 * turns that into the exchange's failure.
 *
 * @param x The exchange (counts `bytesOut`).
 * @param upstream The connection from {@linkcode connect}.
 * @returns Undefined to carry on, or false when the run ended meanwhile.
 *
 * @example Usage
 * ```ts ignore
 * return await forward(x, upstream) ?? await relay(x, upstream);
 * ```
 */
export async function forward(
  x: ProxyExchange,
  upstream: Upstream,
): Promise<false | undefined> {
  const { ctx } = x;
  if (ctx.exchange?.cancelled) {
    // The run ended (and its record was written) while this request
    // waited: nothing goes out for a run that is over.
    return false;
  }
  // From here the request is on its way: if the run ends before the
  // answer, the record says what was sent, with what was injected.
  ctx.exchange?.hold(
    () =>
      build(x, {
        decision: "allow",
        rule: x.decision.id,
        ...x.applied,
        reason: "the run ended before the upstream answered",
        status: null,
        injected: x.injected,
        placeholders: x.placeholders,
        bytesOut: x.bytesOut,
      }),
    () => upstream.channel.close(),
  );
  if (x.expectContinue) {
    await x.client.write(
      new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n"),
    );
  }
  await upstream.channel.write(x.upstreamHead);
  x.bytesOut = x.framing.kind === "chunked"
    ? await chunkedWriter((b) => upstream.channel.write(b))(
      readBody(x.reader, x.framing),
    )
    : await rawWriter((b) => upstream.channel.write(b))(
      readBody(x.reader, x.framing),
    );
  return undefined;
}
