/**
 * The network policy compiled: secret references resolved, host patterns
 * parsed, and the one question asked of it at every request (or CONNECT):
 * may the sandbox reach this host and port, and under which rules? The
 * policy as written (network_policy_schema.ts, network_policy_types.ts) is
 * re-exported here; rules are matched against a request by select_rules.ts.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileNetworkPolicy, NetworkPolicySchema } from "./network_policy.ts";
 * const policy = compileNetworkPolicy(
 *   NetworkPolicySchema.parse({ allow: ["api.github.com"] }),
 *   {},
 * );
 * assert.equal(policy.decide("api.github.com", 443).allowed, true);
 * assert.equal(policy.decide("api.github.com", 22).allowed, false);
 * ```
 *
 * @module
 */

import {
  DEFAULT_PORTS,
  HostError,
  type HostPattern,
  matchHost,
  parseHostPattern,
} from "./host_pattern.ts";
import { credentialForms } from "./echo_guard.ts";
import type {
  CompiledNetworkPolicy,
  CompiledRule,
  Decision,
} from "./compiled_policy.ts";
import type { NetworkPolicy, Rule } from "./network_policy_types.ts";
import {
  REDACTED,
  resolveSecretRefs,
  type SecretSources,
} from "./secret_refs.ts";

export type {
  CompiledNetworkPolicy,
  CompiledRule,
  Decision,
} from "./compiled_policy.ts";
export {
  MatchSchema,
  NetworkPolicyObjectSchema,
  NetworkPolicySchema,
  RuleSchema,
} from "./network_policy_schema.ts";
export type {
  KeyValueMatch,
  LocalResponse,
  Match,
  NetworkPolicy,
  NetworkPolicyInput,
  PathMatch,
  ResponseRule,
  Rule,
  RuleInput,
  Subnets,
  TransformRule,
  TransformRuleInput,
} from "./network_policy_types.ts";

/**
 * Shortest secret the echo guard can recognise without redacting innocent
 * bytes everywhere (a 3-character "secret" occurs in any large body).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { MIN_SECRET_LENGTH } from "./network_policy.ts";
 * assert.equal(MIN_SECRET_LENGTH, 8);
 * ```
 */
export const MIN_SECRET_LENGTH = 8;

/**
 * A policy could not be compiled (bad value or unresolved secret).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { compileNetworkPolicy, NetworkPolicyError } from "./network_policy.ts";
 * assert.throws(
 *   () => compileNetworkPolicy({ allow: { "a.example": [{ transform: [{ headers: { "x-k": "${env:AIRLOCK_UNSET_NAME}" } }], allowInsecure: false }] } }, { env: () => undefined }),
 *   NetworkPolicyError,
 * );
 * ```
 */
export class NetworkPolicyError extends Error {
  /** Problems as path + message. */
  readonly issues: { path: string; message: string }[];
  /**
   * Makes the error; its message lists every problem, one a line.
   *
   * @param issues Every problem.
   */
  constructor(issues: { path: string; message: string }[]) {
    super(
      `Invalid network policy: ${issues.length} problem${
        issues.length === 1 ? "" : "s"
      }\n` +
        issues.map((i) => `  - ${i.path}: ${i.message}`).join("\n"),
    );
    this.name = "NetworkPolicyError";
    this.issues = issues;
  }
}

/**
 * Compiles a validated network policy, resolving secret references.
 *
 * @param policy A value accepted by {@linkcode NetworkPolicySchema}.
 * @param sources Where `${env:…}` / `${secret:…}` come from.
 * @param path Path prefix for error messages.
 * @returns The compiled policy.
 * @throws {NetworkPolicyError} Listing unresolved references by path.
 *
 * @example Usage
 * ```ts
 * import { compileNetworkPolicy } from "./network_policy.ts";
 * const p = compileNetworkPolicy({ allow: ["api.example.com"] }, {});
 * console.log(p.decide("api.example.com", 443).allowed); // true
 * console.log(p.decide("evil.example", 443).allowed); // false
 * ```
 */
export function compileNetworkPolicy(
  policy: NetworkPolicy,
  sources: SecretSources,
  path = "network",
): CompiledNetworkPolicy {
  if (policy === "deny-all") {
    return fixed(policy, {
      allowed: false,
      id: "deny-all",
      reason: "the policy denies all egress",
    }, []);
  }
  if (policy === "allow-all") {
    return fixed(policy, { allowed: true, id: "allow-all", rules: [] }, null);
  }
  const issues: { path: string; message: string }[] = [];
  const secretValues: string[] = [];
  const ruleSets: Record<string, Rule[]> = Array.isArray(policy.allow)
    ? Object.fromEntries(policy.allow.map((p) => [p, []]))
    : policy.allow;
  const entries: { pattern: HostPattern; value: CompiledRule[] }[] = [];
  for (const [source, rules] of Object.entries(ruleSets)) {
    let pattern: HostPattern;
    try {
      // Checked again here: a caller may compile a policy the schema never
      // saw, and a public-suffix wildcard must not slip in that way.
      pattern = parseHostPattern(source, {
        allowPublicSuffixWildcard: policy.allowPublicSuffixWildcards === true,
      });
    } catch (error) {
      if (!(error instanceof HostError)) throw error;
      issues.push({ path: `${path}.allow.${source}`, message: error.message });
      continue;
    }
    const compiled = rules.map((rule, index) =>
      compileRule(
        rule,
        `${source}#${index}`,
        `${path}.allow.${source}.${index}`,
        sources,
        issues,
        secretValues,
      )
    );
    entries.push({ pattern, value: compiled });
  }
  const tcp: { pattern: HostPattern; value: true }[] = [];
  for (const [index, source] of (policy.tcp ?? []).entries()) {
    let pattern: HostPattern;
    try {
      pattern = parseHostPattern(source, {
        allowPublicSuffixWildcard: policy.allowPublicSuffixWildcards === true,
      });
    } catch (error) {
      if (!(error instanceof HostError)) throw error;
      issues.push({ path: `${path}.tcp.${index}`, message: error.message });
      continue;
    }
    if (pattern.port === null) {
      // Plain TCP has no default port: "db.internal" alone would open
      // every service on the host.
      issues.push({
        path: `${path}.tcp.${index}`,
        message:
          `TCP rule '${source}' must name a port (e.g. 'db.internal:5432')`,
      });
      continue;
    }
    tcp.push({ pattern, value: true });
  }
  if (issues.length > 0) throw new NetworkPolicyError(issues);
  const redacted = redactPolicy(policy);
  const httpPorts = new Set<number>(DEFAULT_PORTS);
  for (const { pattern } of entries) {
    if (pattern.port !== null) httpPorts.add(pattern.port);
  }
  return {
    redacted,
    allowSubnets: policy.subnets?.allow ?? [],
    denySubnets: policy.subnets?.deny ?? [],
    secretValues,
    denoNetGrants: [...entries, ...tcp].map(({ pattern }) => denoGrant(pattern))
      .flat(),
    ports: {
      http: [...httpPorts],
      tcp: [...new Set(tcp.map(({ pattern }) => pattern.port!))],
    },
    decideTcp(host, port) {
      const found = matchHost(tcp, host, port);
      if (!found) {
        return {
          allowed: false,
          id: "not-in-tcp-rules",
          reason: `'${host}:${port}' is not in the policy's TCP rules`,
        };
      }
      return { allowed: true, id: found.pattern.source, rules: [] };
    },
    decide(host, port) {
      const found = matchHost(entries, host, port);
      if (!found) {
        return {
          allowed: false,
          id: "not-in-allowlist",
          reason: `host '${host}:${port}' is not in the allowlist`,
        };
      }
      return { allowed: true, id: found.pattern.source, rules: found.value };
    },
  };
}

function fixed(
  policy: NetworkPolicy,
  decision: Decision,
  grants: string[] | null,
): CompiledNetworkPolicy {
  return {
    redacted: policy,
    allowSubnets: [],
    denySubnets: [],
    secretValues: [],
    denoNetGrants: grants,
    ports: { http: [...DEFAULT_PORTS], tcp: [] },
    decide: () => decision,
    // "allow-all" and learning are about HTTP(S): plain TCP is only ever
    // opened by a rule that names its host and port.
    decideTcp: (host, port) => ({
      allowed: false,
      id: "not-in-tcp-rules",
      reason:
        `'${host}:${port}' is not in the policy's TCP rules (the policy has none)`,
    }),
  };
}

/**
 * Why a `${secret:NAME}` did not resolve: not passed, or passed with no
 * value (`{ API_TOKEN: Deno.env.get("API_TOKEN")! }` with the variable unset
 * passes the key with `undefined`).
 */
function passedEmpty(sources: SecretSources, name: string): string {
  if (!sources.secrets || !Object.hasOwn(sources.secrets, name)) {
    return " (pass it in the secrets map)";
  }
  const value: unknown = sources.secrets[name];
  return ` (the secrets map has '${name}', but its value is ${
    value === "" ? "an empty string" : String(value)
  }: check where the value comes from, e.g. an environment variable that is not set)`;
}

function compileRule(
  rule: Rule,
  id: string,
  path: string,
  sources: SecretSources,
  issues: { path: string; message: string }[],
  secretValues: string[],
): CompiledRule {
  const pathRegex = rule.match?.path && "regex" in rule.match.path
    ? new RegExp(rule.match.path.regex)
    : undefined;
  if ("response" in rule) {
    return {
      id,
      match: rule.match,
      pathRegex,
      headers: null,
      allowInsecure: false,
      response: rule.response,
      carriesSecret: false,
      secrets: [],
    };
  }
  const headers: [string, string][] = [];
  const secrets: string[] = [];
  rule.transform.forEach((step, stepIndex) => {
    for (const [name, raw] of Object.entries(step.headers)) {
      const { value, missing, secrets: referenced } = resolveSecretRefs(
        raw,
        sources,
      );
      for (const ref of missing) {
        issues.push({
          path: `${path}.transform.${stepIndex}.headers.${name}`,
          message: `unresolved secret reference '\${${ref}}'${
            ref.startsWith("env:")
              ? " (set it in the harness's environment)"
              : passedEmpty(sources, ref.slice("secret:".length))
          }`,
        });
      }
      if (/[\0\r\n]/.test(value)) {
        // A secret containing CRLF would inject extra headers on the wire.
        issues.push({
          path: `${path}.transform.${stepIndex}.headers.${name}`,
          message: "the resolved value contains NUL, CR or LF",
        });
      }
      for (const secret of referenced) {
        // Each secret on its own must be long enough to recognise: a short
        // token inside "Bearer <token>" would otherwise slip past the guard.
        if (secret.length < MIN_SECRET_LENGTH) {
          issues.push({
            path: `${path}.transform.${stepIndex}.headers.${name}`,
            message:
              `a referenced secret has ${secret.length} characters: the echo guard needs at least ${MIN_SECRET_LENGTH} to recognise it in responses`,
          });
        }
      }
      // Every injected value is a credential to the echo guard, referenced
      // or written literally (`--inject "h:Authorization=Bearer $TOKEN"`
      // after the shell expanded it): an echoing upstream must not hand
      // either back. Also the credential alone, after its scheme word.
      const guarded = [
        ...referenced,
        ...credentialForms(value, { minLength: MIN_SECRET_LENGTH }),
      ];
      secrets.push(...guarded);
      secretValues.push(...guarded);
      headers.push([name, value]);
    }
  });
  return {
    id,
    match: rule.match,
    pathRegex,
    headers,
    allowInsecure: rule.allowInsecure,
    response: null,
    // Literal header values count as credentials too for the cleartext
    // rule: the author may have pasted a token.
    carriesSecret: headers.length > 0,
    secrets: [...new Set(secrets)],
  };
}

/**
 * A network policy with every transform header value replaced by
 * `<redacted>` (values may hold resolved or literal credentials).
 *
 * @param policy A network policy.
 * @returns A redacted copy.
 *
 * @example Usage
 * ```ts
 * import { redactNetworkPolicy } from "./network_policy.ts";
 * console.log(JSON.stringify(redactNetworkPolicy({ allow: { "a.example": [{ transform: [{ headers: { authorization: "x" } }], allowInsecure: false }] } })));
 * ```
 */
export function redactNetworkPolicy(policy: NetworkPolicy): NetworkPolicy {
  return typeof policy === "string" ? policy : redactPolicy(policy);
}

function redactPolicy(policy: Exclude<NetworkPolicy, string>): NetworkPolicy {
  if (Array.isArray(policy.allow)) return structuredClone(policy);
  const allow: Record<string, Rule[]> = {};
  for (const [pattern, rules] of Object.entries(policy.allow)) {
    allow[pattern] = rules.map((rule) =>
      "transform" in rule
        ? {
          ...structuredClone(rule),
          transform: rule.transform.map((t) => ({
            headers: Object.fromEntries(
              Object.keys(t.headers).map((k) => [k, REDACTED]),
            ),
          })),
        }
        : structuredClone(rule)
    );
  }
  return { ...structuredClone(policy), allow };
}

/**
 * Deno `--allow-net` entries for a pattern: the sandbox's second wall only
 * lets the program ask for hosts the injector would allow anyway.
 */
function denoGrant(pattern: HostPattern): string[] {
  const host = pattern.host.includes(":") ? `[${pattern.host}]` : pattern.host;
  const name = pattern.kind === "wildcard" ? `*.${host}` : host;
  return pattern.port === null
    ? [`${name}:443`, `${name}:80`]
    : [`${name}:${pattern.port}`];
}

/**
 * The network policy of learn mode: every destination is "allowed" so the
 * program's attempts reach the injector and are recorded, and every request
 * is answered locally with 503 by a response rule: nothing is ever sent
 * upstream, so learning cannot exfiltrate anything.
 *
 * @returns A compiled policy.
 *
 * @example Usage
 * ```ts
 * import { learnNetworkPolicy } from "./network_policy.ts";
 * console.log(learnNetworkPolicy().decide("example.com", 443).allowed); // true
 * ```
 */
export function learnNetworkPolicy(): CompiledNetworkPolicy {
  const rule: CompiledRule = {
    id: "learn",
    match: undefined,
    pathRegex: undefined,
    headers: null,
    allowInsecure: false,
    response: {
      statusCode: 503,
      contentType: "text/plain; charset=utf-8",
      body: "airlock learn mode: request recorded, not sent\n",
    },
    carriesSecret: false,
    secrets: [],
  };
  return fixed(
    "allow-all",
    { allowed: true, id: "learn", rules: [rule] },
    null,
  );
}
