/**
 * The network part of a sandbox policy as written (Vercel Sandbox's
 * `NetworkPolicy` shape): its schema, which refuses what the injector could
 * not enforce. Its types are in network_policy_types.ts (written out, so
 * their documentation needs no zod); `network_policy.ts` compiles a policy
 * into the form that decides each request.
 *
 * ```jsonc
 * "network": "deny-all"            // default: no egress at all
 * "network": "allow-all"           // any public host (address guard still applies)
 * "network": { "allow": ["api.github.com", "*.example.com:8443"] }
 * "network": { "allow": ["api.github.com"], "tcp": ["db.internal:5432"] }
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
 * network_policy_schema_test.ts checks each type equal to what the schema
 * accepts or gives, so they cannot drift.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetworkPolicySchema } from "./network_policy_schema.ts";
 * import type { NetworkPolicy } from "./network_policy_types.ts";
 * const policy: NetworkPolicy = NetworkPolicySchema.parse({ allow: ["api.github.com"] });
 * assert.deepEqual(policy, { allow: ["api.github.com"] });
 * assert.equal(NetworkPolicySchema.safeParse({ allow: ["*.com"] }).success, false);
 * ```
 *
 * @module
 */

import { z } from "zod";
import { HostError, parseHostPattern } from "./host_pattern.ts";
import { parseCidr } from "./address_guard.ts";

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

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

// A TCP rule names one port: plain TCP has no default port, and "allow
// db.internal" must not open every service on that host.
const TcpTarget = z.string().superRefine((text, ctx) => {
  try {
    const pattern = parseHostPattern(text, { allowPublicSuffixWildcard: true });
    if (pattern.port === null) {
      ctx.addIssue({
        code: "custom",
        message:
          `TCP rule '${text}' must name a port (e.g. 'db.internal:5432'): plain TCP has no default port`,
      });
    }
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
  key: "allow" | "tcp" = "allow",
): { path: (string | number)[]; message: string }[] {
  const sources: { text: unknown; key: string | number }[] = Array.isArray(
      allow,
    )
    ? allow.map((text, index) => ({ text, key: index }))
    : typeof allow === "object" && allow !== null
    ? Object.keys(allow).map((text) => ({ text, key: text }))
    : [];
  const issues: { path: (string | number)[]; message: string }[] = [];
  for (const { text, key: at } of sources) {
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
        path: [key, at],
        message: `${
          (error as Error).message
        }; or, if every name under it is meant, set 'allowPublicSuffixWildcards: true' in the network policy`,
      });
    }
  }
  return issues;
}

const CidrSchema = z.string().superRefine((text, ctx) => {
  try {
    parseCidr(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

const PathMatchSchema = z.union([
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

const KeyValueMatchSchema = z.strictObject({
  key: z.string().min(1),
  value: z.string().optional().describe(
    "When absent, the key only has to be present",
  ),
});

/**
 * Which requests a rule applies to; every given condition must hold.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { MatchSchema } from "./network_policy_schema.ts";
 *
 * assert.ok(MatchSchema.safeParse({ methods: ["GET"], path: { startsWith: "/v1/" } }).success);
 * assert.ok(!MatchSchema.safeParse({ path: { startsWith: "v1" } }).success);
 * ```
 */
export const MatchSchema = z.strictObject({
  path: PathMatchSchema.optional(),
  methods: z.array(z.string().regex(TOKEN)).min(1).optional()
    .describe("HTTP methods, compared case-insensitively"),
  query: z.array(KeyValueMatchSchema).optional().describe(
    "Query parameters that must be present",
  ),
  headers: z.array(KeyValueMatchSchema).optional()
    .describe("Request headers that must be present (names case-insensitive)"),
});

const TransformRuleSchema = z.strictObject({
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

const ResponseRuleSchema = z.strictObject({
  match: MatchSchema.optional(),
  response: z.strictObject({
    statusCode: z.number().int().min(200).max(599),
    headers: z.record(HeaderName, HeaderValue).optional(),
    body: z.string().optional(),
    contentType: HeaderValue.optional(),
  }).describe("Answer locally; the request never leaves the injector"),
});

/**
 * A rule: set headers (`transform`) or answer locally (`response`).
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { RuleSchema } from "./network_policy_schema.ts";
 *
 * const rule = RuleSchema.parse({ transform: [{ headers: { "x-api-key": "${env:KEY}" } }] });
 * assert.ok("transform" in rule && rule.allowInsecure === false);
 * // CR/LF in a header value would forge headers on the wire.
 * assert.ok(!RuleSchema.safeParse({ transform: [{ headers: { "x-a": "1\r\nx-b: 2" } }] }).success);
 * ```
 */
export const RuleSchema = z.union([TransformRuleSchema, ResponseRuleSchema]);

/**
 * The object form of a network policy.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetworkPolicyObjectSchema } from "./network_policy_schema.ts";
 *
 * assert.deepEqual(NetworkPolicyObjectSchema.parse({}), { allow: [] });
 * assert.ok(!NetworkPolicyObjectSchema.safeParse({ allow: ["*.vercel.app"] }).success);
 * assert.ok(
 *   NetworkPolicyObjectSchema.safeParse({
 *     allow: ["*.vercel.app"],
 *     allowPublicSuffixWildcards: true,
 *   }).success,
 * );
 * ```
 */
export const NetworkPolicyObjectSchema = z.strictObject({
  allow: z.union([
    z.array(DomainPattern).describe("Allowed host patterns, no rules"),
    z.record(DomainPattern, z.array(RuleSchema)).describe(
      "Allowed host patterns with their rules",
    ),
  ]).default([]),
  tcp: z.array(TcpTarget).optional().describe(
    "Plain TCP destinations as 'host:port' (databases, Redis, SSH): tunnelled through the injector " +
      "without TLS termination or injection, address guard applied, each connection audited",
  ),
  allowPublicSuffixWildcards: z.boolean().optional().describe(
    "Accept wildcard entries over a public suffix, such as '*.vercel.app', '*.github.io' or '*.co.uk' " +
      "(Public Suffix List): every host anyone registers there matches. Default false: such entries are refused",
  ),
  subnets: z.strictObject({
    allow: z.array(CidrSchema).optional().describe(
      "Private ranges the injector may dial (loopback, link-local and metadata stay blocked)",
    ),
    deny: z.array(CidrSchema).optional().describe(
      "Ranges never dialled; beats allow",
    ),
  }).optional(),
}).check(z.superRefine((policy, ctx) => {
  // Runs also when the input failed to parse (see `when` below), so it may
  // see anything: only a well-formed object has entries to check.
  if (typeof policy !== "object" || policy === null) return;
  if (policy.allowPublicSuffixWildcards === true) return;
  for (
    const issue of [
      ...publicSuffixIssues(policy.allow),
      ...publicSuffixIssues(policy.tcp, "tcp"),
    ]
  ) {
    ctx.addIssue({ code: "custom", ...issue });
  }
  // Also when another entry or field failed, so one pass lists every
  // problem (publicSuffixIssues reads only well-formed entries).
}, { when: () => true }));

/**
 * The network policy.
 *
 * @example Usage
 * ```ts
 * import assert from "node:assert/strict";
 * import { NetworkPolicySchema } from "./network_policy_schema.ts";
 *
 * assert.equal(NetworkPolicySchema.parse("deny-all"), "deny-all");
 * assert.ok(!NetworkPolicySchema.safeParse({ allow: ["intranet"] }).success);
 * ```
 */
export const NetworkPolicySchema = z.union([
  z.literal("deny-all"),
  z.literal("allow-all"),
  NetworkPolicyObjectSchema,
]).describe(
  "Egress policy: 'deny-all' (default), 'allow-all', or an allowlist of host patterns with rules",
);
