/**
 * Which of a destination's rules apply to one request: every matching
 * `transform` rule in order, until the first matching `response` rule. A
 * rule matches when each condition it gives holds (path exactly, by prefix
 * or by regex; methods; query keys and values; header names and values).
 *
 * @module
 */

import type { CompiledRule } from "./compiled_policy.ts";

/**
 * The rules of `decision` that match a request, in order: every matching
 * transform until the first matching response rule.
 *
 * @param rules The destination's rules.
 * @param request Method, path and query of the request, and its headers.
 * @returns Header sets to apply, and a local response if one matched.
 *
 * @example Usage
 * ```ts
 * import { compileNetworkPolicy } from "./network_policy.ts";
 * import { selectRules } from "./select_rules.ts";
 * const p = compileNetworkPolicy({ allow: { "a.example": [{ transform: [{ headers: { "x-k": "v" } }], allowInsecure: false }] } }, {});
 * const d = p.decide("a.example", 443);
 * if (d.allowed) console.log(selectRules(d.rules, { method: "GET", path: "/", query: "", headers: [] }).transforms.length);
 * ```
 */
export function selectRules(
  rules: readonly CompiledRule[],
  request: {
    method: string;
    path: string;
    query: string;
    headers: readonly [string, string][];
  },
): { transforms: CompiledRule[]; response: CompiledRule | null } {
  const transforms: CompiledRule[] = [];
  for (const rule of rules) {
    if (!matches(rule, request)) continue;
    if (rule.response) return { transforms, response: rule };
    transforms.push(rule);
  }
  return { transforms, response: null };
}

function matches(
  rule: CompiledRule,
  request: {
    method: string;
    path: string;
    query: string;
    headers: readonly [string, string][];
  },
): boolean {
  const m = rule.match;
  if (!m) return true;
  if (
    m.methods &&
    !m.methods.some((x) => x.toUpperCase() === request.method.toUpperCase())
  ) {
    return false;
  }
  if (m.path) {
    if ("exact" in m.path && request.path !== m.path.exact) return false;
    if ("startsWith" in m.path && !request.path.startsWith(m.path.startsWith)) {
      return false;
    }
    if (rule.pathRegex && !rule.pathRegex.test(request.path)) return false;
  }
  if (m.query) {
    const params = new URLSearchParams(request.query);
    for (const { key, value } of m.query) {
      if (!params.has(key)) return false;
      if (value !== undefined && !params.getAll(key).includes(value)) {
        return false;
      }
    }
  }
  if (m.headers) {
    for (const { key, value } of m.headers) {
      const values = request.headers.filter(([n]) =>
        n.toLowerCase() === key.toLowerCase()
      )
        .map(([, v]) => v);
      if (values.length === 0) return false;
      if (value !== undefined && !values.includes(value)) return false;
    }
  }
  return true;
}
