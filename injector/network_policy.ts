/**
 * The network part of the policy (Vercel Sandbox's `NetworkPolicy` shape) and
 * its compiled form, which decides each request.
 *
 * ```jsonc
 * "network": "deny-all"            // default: no egress at all
 * "network": "allow-all"           // any public host (address guard still applies)
 * "network": { "allow": ["api.github.com", "*.example.com:8443"] }
 * "network": {
 *   "allow": {
 *     "api.example.com": [
 *       { "match": { "path": { "startsWith": "/v1/" } },
 *         "transform": [{ "headers": { "authorization": "Bearer ${env:API_TOKEN}" } }] },
 *       { "match": { "methods": ["DELETE"] },
 *         "response": { "statusCode": 403, "body": "deletes are not allowed" } }
 *     ]
 *   },
 *   "subnets": { "allow": ["10.1.0.0/16"], "deny": ["10.1.2.0/24"] }
 * }
 * ```
 *
 * @module
 */

import { z } from "zod";
import {
  HostError,
  type HostPattern,
  matchHost,
  parseHostPattern,
} from "./host_pattern.ts";
import { parseCidr } from "./address_guard.ts";
import { credentialForms } from "./echo_guard.ts";
import {
  REDACTED,
  resolveSecretRefs,
  type SecretSources,
} from "./secret_refs.ts";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Shortest secret the echo guard can recognise without redacting innocent
 * bytes everywhere (a 3-character "secret" occurs in any large body).
 */
export const MIN_SECRET_LENGTH = 8;

const HeaderName = z.string().regex(
  TOKEN,
  "must be an HTTP header name (token characters)",
);
// CR/LF in a value would let a policy author (or a secret's value) forge
// extra headers on the wire: header injection.
const HeaderValue = z.string().refine((v) => !/[\0\r\n]/.test(v), {
  message: "must not contain NUL, CR or LF",
});

// Public-suffix wildcards are judged with the whole object, which holds the
// opt-in (see publicSuffixIssues); every other pattern problem is found here.
const DomainPattern = z.string().superRefine((text, ctx) => {
  try {
    parseHostPattern(text, { allowPublicSuffixWildcard: true });
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      message: error instanceof HostError ? error.message : String(error),
    });
  }
});

/**
 * The allow entries that are wildcards over a public suffix (`*.vercel.app`)
 * while the policy does not opt in, each with its path and message.
 */
function publicSuffixIssues(
  allow: unknown,
): { path: (string | number)[]; message: string }[] {
  const sources: { text: unknown; key: string | number }[] = Array.isArray(
      allow,
    )
    ? allow.map((text, index) => ({ text, key: index }))
    : typeof allow === "object" && allow !== null
    ? Object.keys(allow).map((text) => ({ text, key: text }))
    : [];
  const issues: { path: (string | number)[]; message: string }[] = [];
  for (const { text, key } of sources) {
    if (typeof text !== "string") continue;
    try {
      // Any other problem was reported by DomainPattern already.
      parseHostPattern(text, { allowPublicSuffixWildcard: true });
    } catch {
      continue;
    }
    try {
      parseHostPattern(text);
    } catch (error) {
      issues.push({
        path: ["allow", key],
        message: `${
          (error as Error).message
        }; or, if every name under it is meant, set 'allowPublicSuffixWildcards: true' in the network policy`,
      });
    }
  }
  return issues;
}

const Cidr = z.string().superRefine((text, ctx) => {
  try {
    parseCidr(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

const PathMatch = z.union([
  z.strictObject({ exact: z.string().startsWith("/") }),
  z.strictObject({ startsWith: z.string().startsWith("/") }),
  z.strictObject({
    regex: z.string().refine((r) => {
      try {
        new RegExp(r);
        return true;
      } catch {
        return false;
      }
    }, { message: "must be a valid regular expression" }),
  }),
]).describe(
  "Match the request path (without the query) exactly, by prefix, or by regex",
);

const KeyValueMatch = z.strictObject({
  key: z.string().min(1),
  value: z.string().optional().describe(
    "When absent, the key only has to be present",
  ),
});

/** Which requests a rule applies to; every given condition must hold. */
export const MatchSchema = z.strictObject({
  path: PathMatch.optional(),
  methods: z.array(z.string().regex(TOKEN)).min(1).optional()
    .describe("HTTP methods, compared case-insensitively"),
  query: z.array(KeyValueMatch).optional().describe(
    "Query parameters that must be present",
  ),
  headers: z.array(KeyValueMatch).optional()
    .describe("Request headers that must be present (names case-insensitive)"),
});

const TransformRule = z.strictObject({
  match: MatchSchema.optional(),
  transform: z.array(z.strictObject({
    headers: z.record(HeaderName, HeaderValue).describe(
      "Headers to set, replacing any the sandbox sent under the same name (any letter case). " +
        "Values may reference ${env:NAME} or ${secret:NAME}.",
    ),
  })).min(1),
  allowInsecure: z.boolean().default(false).describe(
    "Also inject over plain http:// (credentials in clear text). Default false: refused with 403.",
  ),
});

const ResponseRule = z.strictObject({
  match: MatchSchema.optional(),
  response: z.strictObject({
    statusCode: z.number().int().min(200).max(599),
    headers: z.record(HeaderName, HeaderValue).optional(),
    body: z.string().optional(),
    contentType: HeaderValue.optional(),
  }).describe("Answer locally; the request never leaves the injector"),
});

/** A rule: set headers (`transform`) or answer locally (`response`). */
export const RuleSchema = z.union([TransformRule, ResponseRule]);

/** The object form of a network policy. */
export const NetworkPolicyObjectSchema = z.strictObject({
  allow: z.union([
    z.array(DomainPattern).describe("Allowed host patterns, no rules"),
    z.record(DomainPattern, z.array(RuleSchema)).describe(
      "Allowed host patterns with their rules",
    ),
  ]).default([]),
  allowPublicSuffixWildcards: z.boolean().optional().describe(
    "Accept wildcard entries over a public suffix, such as '*.vercel.app', '*.github.io' or '*.co.uk' " +
      "(Public Suffix List): every host anyone registers there matches. Default false: such entries are refused",
  ),
  subnets: z.strictObject({
    allow: z.array(Cidr).optional().describe(
      "Private ranges the injector may dial (loopback, link-local and metadata stay blocked)",
    ),
    deny: z.array(Cidr).optional().describe(
      "Ranges never dialled; beats allow",
    ),
  }).optional(),
}).check(z.superRefine((policy, ctx) => {
  // Runs also when the input failed to parse (see `when` below), so it may
  // see anything: only a well-formed object has entries to check.
  if (typeof policy !== "object" || policy === null) return;
  if (policy.allowPublicSuffixWildcards === true) return;
  for (const issue of publicSuffixIssues(policy.allow)) {
    ctx.addIssue({ code: "custom", ...issue });
  }
  // Also when another entry or field failed, so one pass lists every
  // problem (publicSuffixIssues reads only well-formed entries).
}, { when: () => true }));

/** The network policy. */
export const NetworkPolicySchema = z.union([
  z.literal("deny-all"),
  z.literal("allow-all"),
  NetworkPolicyObjectSchema,
]).describe(
  "Egress policy: 'deny-all' (default), 'allow-all', or an allowlist of host patterns with rules",
);

/** A network policy as written. */
export type NetworkPolicyInput = z.input<typeof NetworkPolicySchema>;
/** A network policy after defaults. */
export type NetworkPolicy = z.output<typeof NetworkPolicySchema>;
/** One rule as written. */
export type Rule = z.output<typeof RuleSchema>;
/** A match as written. */
export type Match = z.output<typeof MatchSchema>;

/** A rule ready to evaluate, with secrets resolved. */
export interface CompiledRule {
  /** `pattern#index`, for audit records. */
  id: string;
  match: Match | undefined;
  pathRegex: RegExp | undefined;
  /** Headers to set (resolved values), for transform rules. */
  headers: [string, string][] | null;
  /** Whether the rule may inject over plain http. */
  allowInsecure: boolean;
  /** Local answer, for response rules. */
  response: z.output<typeof ResponseRule>["response"] | null;
  /** Whether the rule sets any header (credentials, for the cleartext rule). */
  carriesSecret: boolean;
  /**
   * What the echo guard looks for in responses after this rule injected:
   * each referenced secret on its own, and every injected value, literal
   * or not, with the credential in it (see `credentialForms`), when at
   * least {@linkcode MIN_SECRET_LENGTH} characters long.
   */
  secrets: string[];
}

/** The injector's decision about a destination. */
export type Decision =
  | { allowed: true; id: string; rules: readonly CompiledRule[] }
  | { allowed: false; id: string; reason: string };

/** A compiled policy: decides destinations and finds rules. */
export interface CompiledNetworkPolicy {
  /** The policy as given, with secret values replaced by `<redacted>`. */
  readonly redacted: NetworkPolicy;
  /** Subnets the address guard opens. */
  readonly allowSubnets: readonly string[];
  /** Subnets the address guard always refuses. */
  readonly denySubnets: readonly string[];
  /** Every resolved secret value (for the echo guard). */
  readonly secretValues: readonly string[];
  /** Host patterns for Deno's `--allow-net`, or null for any host. */
  readonly denoNetGrants: readonly string[] | null;
  /**
   * Decides a destination by the CONNECT or absolute-form target, never by
   * anything the sandbox says later.
   */
  decide(host: string, port: number): Decision;
}

/** A policy could not be compiled (bad value or unresolved secret). */
export class NetworkPolicyError extends Error {
  /** Problems as path + message. */
  readonly issues: { path: string; message: string }[];
  /** @param issues Every problem. */
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
  if (issues.length > 0) throw new NetworkPolicyError(issues);
  const redacted = redactPolicy(policy);
  return {
    redacted,
    allowSubnets: policy.subnets?.allow ?? [],
    denySubnets: policy.subnets?.deny ?? [],
    secretValues,
    denoNetGrants: entries.map(({ pattern }) => denoGrant(pattern)).flat(),
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
    decide: () => decision,
  };
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
              : " (pass it in the secrets map)"
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
 * The rules of `decision` that match a request, in order: every matching
 * transform until the first matching response rule.
 *
 * @param rules The destination's rules.
 * @param request Method, path and query of the request, and its headers.
 * @returns Header sets to apply, and a local response if one matched.
 *
 * @example Usage
 * ```ts
 * import { compileNetworkPolicy, selectRules } from "./network_policy.ts";
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
