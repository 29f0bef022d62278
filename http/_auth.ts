/**
 * Who may call the HTTP API: with tokens, a bearer token names the caller
 * (compared as digests in constant time); without tokens, only this
 * machine's clients are answered (loopback peer, Host and Origin).
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv, Caller } from "./_context.ts";
import { ApiError } from "./_errors.ts";

/** The two middlewares of {@linkcode authentication}. */
export interface Authentication {
  /** For routes of a caller: sets `caller`, or answers 401. */
  authenticate: MiddlewareHandler<AppEnv>;
  /** For open routes: without tokens, still loopback only. */
  open: MiddlewareHandler<AppEnv>;
}

/**
 * The middlewares that decide who is calling.
 *
 * @param tokens Each token with its caller, or null for no authentication
 * (then only loopback clients are answered, as `anonymous`).
 * @param anonymous The caller without tokens.
 * @returns The middlewares for the caller's routes and the open ones.
 *
 * @example Usage
 * ```ts ignore
 * import { authentication } from "./_auth.ts";
 * const { authenticate, open } = authentication([[token, alice]], anonymous);
 * app.use("/health", open);
 * app.use("/sandboxes/*", authenticate);
 * ```
 */
export function authentication(
  tokens: readonly (readonly [string, Caller])[] | null,
  anonymous: Caller,
): Authentication {
  const callers = tokens === null
    ? null
    : tokens.map(([token, caller]) => ({ digest: sha256(token), caller }));
  const authenticate: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (callers === null) {
      checkLoopback(c);
      c.set("caller", anonymous);
      return await next();
    }
    const header = c.req.header("authorization");
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
    const caller = token === undefined ? null : findCaller(callers, token);
    if (!caller) {
      throw new ApiError(
        401,
        "unauthorized",
        header === undefined
          ? "Missing 'Authorization: Bearer <token>'"
          : "The bearer token is not valid",
      );
    }
    c.set("caller", caller);
    await next();
  };
  const open: MiddlewareHandler<AppEnv> = async (c, next) => {
    if (callers === null) checkLoopback(c);
    await next();
  };
  return { authenticate, open };
}

/**
 * Without tokens, only this machine may call: the peer must be loopback, the
 * Host header a loopback name (a DNS-rebinding page names its own host), and
 * a browser's Origin, if any, loopback too.
 *
 * @param c The request's context.
 * @throws {ApiError} 401 when the client is not this machine's.
 *
 * @example Usage
 * ```ts ignore
 * import { checkLoopback } from "./_auth.ts";
 * app.get("/metrics", (c) => { checkLoopback(c); return c.text("..."); });
 * ```
 */
export function checkLoopback(c: Context<AppEnv>): void {
  const remote = c.env?.remoteAddr;
  if (remote?.transport === "unix") return;
  const refuse = (why: string) =>
    new ApiError(
      401,
      "unauthorized",
      `This server has no tokens, so it only answers loopback clients: ${why}`,
    );
  if (remote?.transport !== "tcp" || !isLoopbackHost(remote.hostname)) {
    throw refuse("the client is not on loopback");
  }
  const host = new URL(c.req.url).hostname;
  if (!isLoopbackHost(host)) throw refuse(`Host '${host}' is not loopback`);
  const origin = c.req.header("origin");
  if (origin !== undefined) {
    let name = "";
    try {
      name = new URL(origin).hostname;
    } catch { /* refused below */ }
    if (!isLoopbackHost(name)) throw refuse(`Origin '${origin}' is refused`);
  }
}

function isLoopbackHost(host: string): boolean {
  const name = host.replace(/^\[|\]$/g, "").toLowerCase();
  return name === "localhost" || name === "::1" ||
    /^(::ffff:)?127\.\d+\.\d+\.\d+$/.test(name);
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * Compares digests in constant time and visits every token, so timing says
 * neither how much of a guess was right nor which token matched.
 */
function findCaller(
  callers: { digest: Buffer; caller: Caller }[],
  token: string,
): Caller | null {
  const digest = sha256(token);
  let found: Caller | null = null;
  for (const entry of callers) {
    if (timingSafeEqual(entry.digest, digest)) found ??= entry.caller;
  }
  return found;
}
