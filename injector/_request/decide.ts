/**
 * Phase 1, decide: the request's framing, its target and the policy's
 * decision on that target: the one the program asked for at CONNECT or in
 * the absolute URL, never what it says later (invariant 3).
 *
 * @module
 */

import { writeRefusal } from "../_responses.ts";
import {
  type BodyFraming,
  type HttpParseError,
  requestFraming,
} from "../http1.ts";
import { hasDotSegments } from "../_request_target.ts";
import {
  type ProxyExchange,
  type Received,
  record,
  refuse,
} from "./exchange.ts";

/**
 * Decides the request: refuses a malformed framing, a target that is not
 * one (a mismatched Host or SNI, a nested CONNECT), dot segments, TRACE,
 * and a destination the policy does not allow.
 *
 * @param x The received request.
 * @returns The exchange to carry on with, or (refused) whether the
 *   program's connection stays open.
 *
 * @example Usage
 * ```ts ignore
 * const x = await decide(receive(request, reader, client, tunnel, ctx));
 * if (typeof x === "boolean") return x;
 * ```
 */
export async function decide(x: Received): Promise<ProxyExchange | boolean> {
  let framing: BodyFraming;
  try {
    framing = requestFraming(x.request);
  } catch (error) {
    const e = error as HttpParseError;
    record(x, {
      decision: "deny",
      rule: "malformed",
      reason: e.message,
      status: e.status,
    });
    await writeRefusal(x.client, e.status, "bad-request", e.message, true);
    return false;
  }
  const framed = { ...x, framing };
  const target = x.resolved;
  if (!("path" in target)) {
    return await refuse(framed, {
      status: target.status,
      code: target.code,
      message: target.message,
      rule: target.code,
    });
  }
  if (hasDotSegments(target.path)) {
    // "/public/../admin" would match a rule for "/public/" here and reach
    // "/admin" upstream (after the upstream normalises it).
    return await refuse(framed, {
      status: 400,
      code: "bad-request",
      message:
        "request paths with '.' or '..' segments are refused (they could bypass path rules)",
      rule: "dot-segments",
    });
  }
  const method = x.request.method.toUpperCase();
  if (method === "TRACE" || method === "TRACK") {
    // TRACE echoes the request, injected credentials included (XST).
    return await refuse(framed, {
      status: 405,
      code: "method-not-allowed",
      message: `${method} is not allowed through the injector`,
      rule: "trace",
    });
  }
  const policy = x.ctx.policy();
  const decision = policy.network.decide(target.host, target.port);
  if (!decision.allowed) {
    return await refuse(framed, {
      status: 403,
      code: "blocked-by-policy",
      message:
        `request to '${target.host}:${target.port}' refused: ${decision.reason}`,
      rule: decision.id,
    });
  }
  return {
    ...framed,
    target,
    policy,
    decision,
    secure: target.scheme === "https",
    transforms: [],
    applied: {},
    headers: [],
    injected: [],
    secrets: [],
    placeholders: [],
    expectContinue: false,
    upstreamHead: new Uint8Array(),
    bytesOut: 0,
    answered: null,
    headSent: false,
    reusable: false,
  };
}
