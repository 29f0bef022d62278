/**
 * Phase 2, rules: the allowlist entry's rules that match the request. A
 * `response` rule answers locally (nothing goes upstream); `transform`
 * rules are kept for the inject phase.
 *
 * @module
 */

import { readBody } from "../_body.ts";
import { selectRules } from "../select_rules.ts";
import { writeLocalResponse } from "../_responses.ts";
import { wantsClose } from "../_upstream_request.ts";
import { type ProxyExchange, record } from "./exchange.ts";

/**
 * Matches the decided entry's rules against the request (method, path
 * without its query, query, headers).
 *
 * @param x The exchange (sets `transforms` and `applied`).
 * @returns Undefined to carry on, or (answered locally) whether the
 *   program's connection stays open.
 *
 * @example Usage
 * ```ts ignore
 * const ended = await applyRules(x);
 * if (ended !== undefined) return ended;
 * ```
 */
export async function applyRules(
  x: ProxyExchange,
): Promise<boolean | undefined> {
  const { request, target } = x;
  const queryAt = target.path.indexOf("?");
  const { transforms, response } = selectRules(x.decision.rules, {
    method: request.method,
    path: queryAt === -1 ? target.path : target.path.slice(0, queryAt),
    query: queryAt === -1 ? "" : target.path.slice(queryAt + 1),
    headers: request.headers,
  });
  if (response?.response) {
    // Drain the request body so the connection can carry the next request.
    for await (const _ of readBody(x.reader, x.framing)) { /* discarded */ }
    const close = wantsClose(request);
    const bytes = await writeLocalResponse(x.client, response.response, close);
    record(x, {
      decision: "respond",
      rule: response.id,
      status: response.response.statusCode,
      bytesIn: bytes,
    });
    return !close;
  }
  x.transforms = transforms;
  // The audit names the entry that decided, and the rules that shaped it.
  x.applied = transforms.length > 0
    ? { appliedRules: transforms.map((r) => r.id) }
    : {};
  return undefined;
}
